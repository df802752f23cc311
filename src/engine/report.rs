//! What a backup's hooks did, for the people who run Velero: a Kubernetes Event on the pod per
//! hook outcome (rate-limited, never able to fail a hook), and the summary line (counts, the
//! longest freeze window, pods the watchdog had to thaw), logged whenever nothing is frozen.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::exec::HookOutcome;
use crate::hooks::{PodRef, ResolvedHook};
use crate::kube_api::PodEvent;

/// Events allowed in a burst, and refilled per second, per plugin process.
const EVENT_BURST: f64 = 50.0;
const EVENTS_PER_SECOND: f64 = 10.0;

/// One hook outcome as a Kubernetes Event on its pod: `QuiesceHookSucceeded` (`Normal`) or
/// `QuiesceHookFailed` (`Warning`), naming phase, hook, container, exit code or error, and
/// duration.
pub fn hook_event(
    pod: &PodRef,
    pod_uid: &str,
    hook: &ResolvedHook,
    outcome: &HookOutcome,
) -> PodEvent {
    let what = format!(
        "{} hook {} in container {}",
        hook.phase, hook.name, hook.container
    );
    let took = outcome.duration.as_millis();
    let (reason, kind, message) = match outcome.error_text() {
        // A pre hook holding a session has not exited.
        None if outcome.exit_code.is_none() && hook.holds().is_some() => (
            "QuiesceHookSucceeded",
            "Normal",
            format!("{what} succeeded (its session is held until the thaw) in {took} ms"),
        ),
        None => (
            "QuiesceHookSucceeded",
            "Normal",
            format!("{what} succeeded (exit code 0) in {took} ms"),
        ),
        Some(error) => (
            "QuiesceHookFailed",
            "Warning",
            format!("{what} failed after {took} ms: {error}"),
        ),
    };
    PodEvent {
        pod: pod.clone(),
        pod_uid: pod_uid.to_owned(),
        reason,
        kind,
        message,
    }
}

/// A token bucket: at most [`EVENT_BURST`] events at once, [`EVENTS_PER_SECOND`] sustained.
pub struct EventLimiter {
    state: Mutex<(f64, Instant)>,
}

impl EventLimiter {
    /// A full bucket.
    pub fn new() -> Self {
        EventLimiter {
            state: Mutex::new((EVENT_BURST, Instant::now())),
        }
    }

    /// Takes a token if one is left.
    pub fn try_acquire(&self) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let (tokens, last) = &mut *state;
        let now = Instant::now();
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * EVENTS_PER_SECOND)
            .min(EVENT_BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Default for EventLimiter {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts for the summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Pods with at least one hook.
    pub pods_with_hooks: u64,
    /// Hooks run or failed before running (defects).
    pub attempted: u64,
    /// Hooks that succeeded.
    pub succeeded: u64,
    /// Hooks that failed.
    pub failed: u64,
    /// Annotation hooks refused by the ConfigMap's governance.
    pub refused_by_policy: u64,
    /// Events not posted because of the rate limit.
    pub events_dropped: u64,
    /// The longest freeze window and its pod.
    pub longest_freeze: Option<(Duration, PodRef)>,
    /// Pods the watchdog thawed.
    pub auto_thawed: Vec<PodRef>,
    /// Volumes whose snapshot was refused because a pod mounting them failed to freeze.
    pub volumes_refused: u64,
}

impl Summary {
    /// Counts one hook outcome.
    pub fn count(&mut self, outcome: &HookOutcome) {
        self.attempted += 1;
        if outcome.succeeded() {
            self.succeeded += 1;
        } else {
            self.failed += 1;
        }
    }

    /// Keeps the longest freeze window.
    pub fn freeze_window(&mut self, window: Duration, pod: &PodRef) {
        if self
            .longest_freeze
            .as_ref()
            .is_none_or(|(w, _)| window > *w)
        {
            self.longest_freeze = Some((window, pod.clone()));
        }
    }

    /// The summary line, at info level, when any pod had hooks.
    pub fn log(&self, backup: &str) {
        if self.pods_with_hooks == 0 && self.refused_by_policy == 0 {
            return;
        }
        let (longest_ms, longest_pod) = self
            .longest_freeze
            .as_ref()
            .map_or((0, String::new()), |(w, p)| {
                (w.as_millis() as u64, p.to_string())
            });
        let auto_thawed: Vec<String> = self.auto_thawed.iter().map(ToString::to_string).collect();
        tracing::info!(
            backup,
            podsWithHooks = self.pods_with_hooks,
            hooksAttempted = self.attempted,
            hooksSucceeded = self.succeeded,
            hooksFailed = self.failed,
            hooksRefusedByPolicy = self.refused_by_policy,
            longestFreezeMs = longest_ms,
            longestFreezePod = %longest_pod,
            autoThawedPods = %auto_thawed.join(","),
            volumesRefused = self.volumes_refused,
            eventsDropped = self.events_dropped,
            "quiesce backup summary"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{ExecError, HookFailure};
    use crate::hooks::{HookSource, OnError, Phase};

    fn hook() -> ResolvedHook {
        ResolvedHook {
            phase: Phase::Pre,
            source: HookSource::Annotation,
            name: "<from-annotation>".into(),
            index: 0,
            container: "db".into(),
            command: vec!["true".into()],
            on_error: OnError::Fail,
            timeout: Duration::from_secs(30),
            execution: Default::default(),
            run_once: None,
            defect: None,
            ends_session: None,
        }
    }

    fn outcome(failure: Option<HookFailure>) -> HookOutcome {
        HookOutcome {
            failure,
            exit_code: Some(0),
            duration: Duration::from_millis(12),
            may_have_run: true,
            attempts: 1,
            stdout: Default::default(),
            stderr: Default::default(),
        }
    }

    fn pod() -> PodRef {
        PodRef {
            namespace: "shop".into(),
            name: "db-0".into(),
        }
    }

    #[test]
    fn a_success_is_a_normal_event_naming_phase_hook_container_and_time() {
        let event = hook_event(&pod(), "u1", &hook(), &outcome(None));
        assert_eq!(
            (event.reason, event.kind),
            ("QuiesceHookSucceeded", "Normal")
        );
        assert_eq!(
            event.message,
            "pre hook <from-annotation> in container db succeeded (exit code 0) in 12 ms"
        );
    }

    #[test]
    fn a_failure_is_a_warning_event_with_the_error() {
        let failed = outcome(Some(HookFailure::Exec(ExecError::TimedOut(
            Duration::from_secs(30),
        ))));
        let event = hook_event(&pod(), "u1", &hook(), &failed);
        assert_eq!((event.reason, event.kind), ("QuiesceHookFailed", "Warning"));
        assert!(
            event
                .message
                .ends_with("failed after 12 ms: timed out after 30s"),
            "{}",
            event.message
        );
    }

    #[tokio::test(start_paused = true)]
    async fn events_are_limited_to_a_burst_then_a_steady_rate() {
        let limiter = EventLimiter::new();
        let burst = (0..100).filter(|_| limiter.try_acquire()).count();
        assert_eq!(burst, 50);
        tokio::time::advance(Duration::from_secs(1)).await;
        let refilled = (0..100).filter(|_| limiter.try_acquire()).count();
        assert_eq!(refilled, 10);
    }

    #[test]
    fn the_summary_counts_outcomes_and_keeps_the_longest_window() {
        let mut summary = Summary::default();
        summary.count(&outcome(None));
        summary.count(&outcome(Some(HookFailure::ExitCode(1))));
        summary.freeze_window(Duration::from_millis(20), &pod());
        summary.freeze_window(
            Duration::from_millis(5),
            &PodRef {
                namespace: "a".into(),
                name: "b".into(),
            },
        );
        assert_eq!(
            (summary.attempted, summary.succeeded, summary.failed),
            (2, 1, 1)
        );
        assert_eq!(
            summary.longest_freeze,
            Some((Duration::from_millis(20), pod()))
        );
    }
}
