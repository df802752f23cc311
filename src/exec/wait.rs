//! Waiting for a hook's target container before the exec ([`crate::hooks::WaitFor`]):
//! [`wait_for_container`] polls the pod through [`Executor::observe_container`] until the
//! container is running (or ready), the pod is gone or finished, or the wait times out.
//! [`container_observation`] reads a container's state out of a pod (pure).
//!
//! Polling, not a watch: one `GET pod` right away, the next after [`FIRST_POLL_DELAY`], then
//! one per [`POLL_INTERVAL`] — a handful of requests for a wait of seconds, no watch
//! bookkeeping, and every request bounded by [`POLL_REQUEST_TIMEOUT`] and the wait's deadline.
//!
//! This module does not log and does not exec; [`super::hook`] logs around it.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use tokio::time::Instant;

use crate::hooks::WaitFor;

use super::{ContainerObservation, ContainerState, ExecError, Executor};

/// Delay between the first and the second look at the pod (a container that is just starting
/// is often running a moment later).
pub const FIRST_POLL_DELAY: Duration = Duration::from_millis(200);
/// Delay between later looks.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The longest one `GET pod` may take; a slower answer counts as a failed poll.
pub const POLL_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The pod's phase and `container`'s state, from `status.containerStatuses`,
/// `status.initContainerStatuses` (native sidecars: init containers with
/// `restartPolicy: Always`) or `status.ephemeralContainerStatuses`.
pub fn container_observation(pod: &Pod, container: &str) -> ContainerObservation {
    let status = pod.status.as_ref();
    let statuses = status.into_iter().flat_map(|status| {
        [
            &status.container_statuses,
            &status.init_container_statuses,
            &status.ephemeral_container_statuses,
        ]
        .into_iter()
        .flatten()
        .flatten()
    });
    let state = statuses
        .filter(|entry| entry.name == container)
        .map(state_of)
        .next()
        .unwrap_or(ContainerState::NoStatus);
    ContainerObservation {
        pod_phase: status.and_then(|status| status.phase.clone()),
        state,
    }
}

fn state_of(entry: &ContainerStatus) -> ContainerState {
    let Some(state) = &entry.state else {
        return ContainerState::NoStatus;
    };
    if state.running.is_some() {
        ContainerState::Running { ready: entry.ready }
    } else if let Some(terminated) = &state.terminated {
        ContainerState::Terminated {
            reason: terminated.reason.clone(),
            exit_code: terminated.exit_code,
        }
    } else if let Some(waiting) = &state.waiting {
        ContainerState::Waiting {
            reason: waiting.reason.clone(),
        }
    } else {
        ContainerState::NoStatus
    }
}

/// What a wait that succeeded saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waited {
    /// How long it took (zero when the container was already there at the first look).
    pub duration: Duration,
    /// The state at the first look, when it did not satisfy the wait (`None`: no waiting).
    pub first_state: Option<String>,
}

/// Waits until `container` of `namespace/pod` is running (ready when `wait.ready`), at most
/// `wait.timeout`. `on_waiting` is called once, with the state seen, when the first look does
/// not satisfy the wait (so the caller can say it is waiting).
///
/// Fails with [`ExecError::PodNotFound`] as soon as the pod is gone, [`ExecError::PodFinished`]
/// as soon as its phase is `Succeeded` or `Failed`, the read error itself when it is not
/// transient (e.g. 403), and [`ExecError::ContainerNotStarted`], naming the last state seen,
/// when time runs out. Transient read failures (unreachable, 429, 5xx, a slow answer) only
/// count as a look that saw nothing new.
pub async fn wait_for_container(
    executor: &dyn Executor,
    namespace: &str,
    pod: &str,
    container: &str,
    wait: WaitFor,
    mut on_waiting: impl FnMut(&str) + Send,
) -> Result<Waited, ExecError> {
    let started = Instant::now();
    let deadline = started + wait.timeout;
    let mut delay = FIRST_POLL_DELAY;
    let mut first_state: Option<String> = None;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let budget = remaining.clamp(Duration::from_millis(100), POLL_REQUEST_TIMEOUT);
        let looked = tokio::time::timeout(
            budget,
            executor.observe_container(namespace, pod, container),
        )
        .await;
        let last_state = match looked {
            Ok(Ok(observation)) => {
                if let Some(phase) = observation
                    .pod_finished()
                    .then(|| observation.pod_phase.clone())
                    .flatten()
                {
                    return Err(ExecError::PodFinished {
                        namespace: namespace.to_owned(),
                        pod: pod.to_owned(),
                        phase,
                    });
                }
                if observation.state.satisfies(wait.ready) {
                    return Ok(Waited {
                        duration: started.elapsed(),
                        first_state,
                    });
                }
                observation.state.to_string()
            }
            Ok(Err(error)) if error.is_transient() => format!("last look failed: {error}"),
            Ok(Err(error)) => return Err(error),
            Err(_elapsed) => format!(
                "last look failed: no answer within {}",
                crate::hooks::format_go_duration(budget)
            ),
        };
        if first_state.is_none() {
            on_waiting(&last_state);
            first_state = Some(last_state.clone());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(ExecError::ContainerNotStarted {
                namespace: namespace.to_owned(),
                pod: pod.to_owned(),
                container: container.to_owned(),
                ready: wait.ready,
                waited: wait.timeout,
                last_state,
            });
        }
        tokio::time::sleep(delay.min(deadline - now)).await;
        delay = POLL_INTERVAL;
    }
}

/// `running` or `ready`, as the messages say what was waited for.
pub fn wanted(wait: WaitFor) -> &'static str {
    if wait.ready {
        "ready"
    } else {
        "running"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use crate::exec::{ExecOutput, ExecRequest};

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "db"}], "initContainers": [{"name": "proxy", "restartPolicy": "Always"}]},
            "status": status,
        }))
        .unwrap()
    }

    fn state_in(status: serde_json::Value, container: &str) -> String {
        container_observation(&pod(status), container)
            .state
            .to_string()
    }

    #[test]
    fn states_read_from_container_statuses() {
        let status = serde_json::json!({"phase": "Running", "containerStatuses": [
            {"name": "db", "ready": false, "state": {"running": {}}},
        ]});
        assert_eq!(state_in(status, "db"), "running, not ready");
        let status = serde_json::json!({"containerStatuses": [
            {"name": "db", "ready": false, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
        ]});
        assert_eq!(state_in(status, "db"), "waiting: CrashLoopBackOff");
        let status = serde_json::json!({"containerStatuses": [
            {"name": "db", "ready": false, "state": {"terminated": {"reason": "Error", "exitCode": 1}}},
        ]});
        assert_eq!(state_in(status, "db"), "terminated: Error, exit code 1");
        assert_eq!(
            state_in(serde_json::json!({"phase": "Pending"}), "db"),
            "no status yet"
        );
    }

    #[test]
    fn native_sidecars_are_found_in_init_container_statuses() {
        let status = serde_json::json!({"phase": "Running", "initContainerStatuses": [
            {"name": "proxy", "ready": true, "state": {"running": {}}},
        ]});
        let observation = container_observation(&pod(status), "proxy");
        assert_eq!(observation.state, ContainerState::Running { ready: true });
        assert_eq!(observation.pod_phase.as_deref(), Some("Running"));
    }

    /// Answers each look with the next scripted observation (the last one repeats).
    struct Looks(Mutex<VecDeque<Result<ContainerObservation, ExecError>>>);

    #[async_trait::async_trait]
    impl Executor for Looks {
        async fn exec(&self, _request: &ExecRequest) -> Result<ExecOutput, ExecError> {
            unreachable!("the wait never execs")
        }

        async fn observe_container(
            &self,
            _namespace: &str,
            _pod: &str,
            _container: &str,
        ) -> Result<ContainerObservation, ExecError> {
            let mut looks = self.0.lock().unwrap();
            if looks.len() > 1 {
                looks.pop_front().unwrap()
            } else {
                looks.front().cloned().unwrap()
            }
        }
    }

    fn running(ready: bool) -> Result<ContainerObservation, ExecError> {
        observed("Running", ContainerState::Running { ready })
    }

    fn observed(phase: &str, state: ContainerState) -> Result<ContainerObservation, ExecError> {
        Ok(ContainerObservation {
            pod_phase: Some(phase.to_owned()),
            state,
        })
    }

    async fn wait_with(
        looks: Vec<Result<ContainerObservation, ExecError>>,
        ready: bool,
    ) -> (Result<Waited, ExecError>, Vec<String>) {
        let executor = Looks(Mutex::new(looks.into()));
        let mut announced = Vec::new();
        let result = wait_for_container(
            &executor,
            "ns",
            "p",
            "db",
            WaitFor {
                timeout: Duration::from_secs(10),
                ready,
            },
            |state| announced.push(state.to_owned()),
        )
        .await;
        (result, announced)
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_container_needs_no_waiting() {
        let (result, announced) = wait_with(vec![running(false)], false).await;
        assert_eq!(result.unwrap().first_state, None);
        assert!(announced.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_goes_on_until_the_container_runs() {
        let creating = ContainerState::Waiting {
            reason: Some("ContainerCreating".into()),
        };
        let (result, announced) = wait_with(
            vec![
                observed("Pending", creating.clone()),
                observed("Pending", creating),
                running(false),
            ],
            false,
        )
        .await;
        let waited = result.unwrap();
        assert_eq!(
            waited.first_state.as_deref(),
            Some("waiting: ContainerCreating")
        );
        assert_eq!(waited.duration, FIRST_POLL_DELAY + POLL_INTERVAL);
        assert_eq!(announced, ["waiting: ContainerCreating"]);
    }

    #[tokio::test(start_paused = true)]
    async fn ready_is_waited_for_beyond_running() {
        let (result, _) =
            wait_with(vec![running(false), running(false), running(true)], true).await;
        assert!(result.is_ok());
        let (result, _) = wait_with(vec![running(false)], true).await;
        assert_eq!(
            result.unwrap_err().to_string(),
            "container \"db\" of pod ns/p did not become ready within 10s (running, not ready)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_container_that_never_starts_times_out_naming_its_last_state() {
        let (result, _) = wait_with(
            vec![observed(
                "Running",
                ContainerState::Waiting {
                    reason: Some("CrashLoopBackOff".into()),
                },
            )],
            false,
        )
        .await;
        let error = result.unwrap_err();
        assert_eq!(
            error.to_string(),
            "container \"db\" of pod ns/p did not become running within 10s (waiting: CrashLoopBackOff)"
        );
        assert!(!error.may_have_run() && !error.is_transient());
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_pod_fails_at_once() {
        let terminated = ContainerState::Terminated {
            reason: Some("Completed".into()),
            exit_code: 0,
        };
        let started = Instant::now();
        let (result, _) = wait_with(vec![observed("Succeeded", terminated)], false).await;
        assert_eq!(
            result.unwrap_err().to_string(),
            "pod ns/p has phase Succeeded: its containers will not run again"
        );
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pod_that_is_gone_fails_at_once_with_pod_not_found() {
        let gone = ExecError::PodNotFound {
            namespace: "ns".into(),
            pod: "p".into(),
        };
        let (result, _) = wait_with(vec![running(false).and(Err(gone.clone()))], false).await;
        assert_eq!(result.unwrap_err(), gone);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_read_failures_are_looked_past() {
        let unreachable = Err(ExecError::Unreachable("connection refused".into()));
        let (result, announced) = wait_with(vec![unreachable, running(false)], false).await;
        assert!(result.is_ok());
        assert_eq!(
            announced,
            ["last look failed: cannot reach the Kubernetes API server: connection refused"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_forbidden_read_fails_the_wait() {
        let forbidden = ExecError::PodReadFailed {
            namespace: "ns".into(),
            pod: "p".into(),
            code: 403,
            message: "pods \"p\" is forbidden".into(),
        };
        let (result, _) = wait_with(vec![Err(forbidden.clone())], false).await;
        assert_eq!(result.unwrap_err(), forbidden);
    }
}
