//! Running one command in one container, and running (and logging) one resolved hook.
//!
//! [`Executor`] is the seam: the freeze/thaw engine is written against it and tested with a
//! scripted executor; [`crate::kube_api::Kube`] implements it over `pods/exec` (WebSocket)
//! and reads container states with `GET pod`. Nothing here decides *when* a hook runs — that
//! is the engine's job — and nothing here parses hooks: that is [`crate::hooks`], whose
//! [`crate::hooks::Execution`] says how a hook's exec is carried out (wait, retries, kill on
//! timeout); this module carries it out. It talks to no API server itself.
//!
//! # Layout
//! - `mod.rs`: the seam — [`ExecRequest`], [`ExecOutput`], [`ExecAttempt`], [`Captured`],
//!   [`ExecError`], [`ContainerState`], [`ContainerObservation`], [`Executor`].
//! - [`hook`]: [`run_hook`], one [`crate::hooks::ResolvedHook`] run and logged the way Velero
//!   logs it (plus quiesce's wait, attempt and kill lines), returning a [`HookOutcome`].
//! - [`wait`]: waiting for the target container to run (or be ready) before the exec.
//! - [`retry`]: which failed attempts are tried again, and after how long.
//! - [`kill`]: kill-on-timeout — the `/bin/sh` wrapper that reveals the PID, and the second
//!   exec that sends TERM, then KILL.
//! - [`session`]: commands with stdin — written then closed, or held open from the ready
//!   text until the thaw ([`session::HeldSession`]) — over an [`ExecStream`].

pub mod hook;
pub mod kill;
pub mod retry;
pub mod session;
pub mod wait;

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

pub use self::hook::{
    end_held_session, run_hook, run_hook_holding_session, HookFailure, HookOutcome,
};
pub use self::session::{HeldSession, SessionFailure};
pub use self::wait::{container_observation, wait_for_container};

/// Where and what to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name (always sent to the API server).
    pub container: String,
    /// argv, no shell.
    pub command: Vec<String>,
    /// The whole call (connecting included) is cancelled after this long.
    pub timeout: Duration,
}

/// Output of one stream, bounded: at most [`OUTPUT_LIMIT`] bytes are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// The first bytes of the stream.
    pub bytes: Vec<u8>,
    /// How many further bytes were received and dropped.
    pub dropped: u64,
}

impl Captured {
    /// Appends `chunk`, keeping at most `limit` bytes in total and counting the rest as dropped.
    /// Memory stays bounded by `limit` however much the command writes.
    pub fn push(&mut self, chunk: &[u8], limit: usize) {
        let room = limit.saturating_sub(self.bytes.len());
        let keep = room.min(chunk.len());
        self.bytes.extend_from_slice(&chunk[..keep]);
        self.dropped += (chunk.len() - keep) as u64;
    }

    /// Whether bytes were dropped.
    pub fn is_truncated(&self) -> bool {
        self.dropped > 0
    }

    /// Whether nothing was received at all.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.dropped == 0
    }

    /// Bytes received: kept plus dropped.
    pub fn total(&self) -> u64 {
        self.bytes.len() as u64 + self.dropped
    }

    /// The kept bytes as text; invalid UTF-8 (including a character cut at the limit) is
    /// replaced, never an error.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
}

/// The most bytes kept of a hook's stdout, and of its stderr.
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// A command that ran to completion (whatever its exit code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// 0 for success.
    pub exit_code: i32,
    /// Captured stdout.
    pub stdout: Captured,
    /// Captured stderr.
    pub stderr: Captured,
    /// From the exec request to the final status.
    pub duration: Duration,
}

/// One exec call's result, plus the stderr that had arrived when the call ended — also when it
/// ended without an [`ExecOutput`] (a timeout, a dropped stream). Kill-on-timeout reads the
/// hook's PID from it ([`kill`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecAttempt {
    /// What [`Executor::exec`] returns.
    pub result: Result<ExecOutput, ExecError>,
    /// Stderr received before the call failed (bounded like [`ExecOutput::stderr`]); empty on
    /// success (the output holds it then) and when the executor cannot tell.
    pub partial_stderr: Captured,
}

impl ExecAttempt {
    /// The attempt of a call that ended with `exit` after `duration`, having captured `stdout`
    /// and `stderr`: an [`ExecOutput`] for an exit code, else the error and the stderr so far.
    pub fn ended(
        exit: Result<i32, ExecError>,
        stdout: Captured,
        stderr: Captured,
        duration: Duration,
    ) -> Self {
        match exit {
            Ok(exit_code) => ExecAttempt {
                result: Ok(ExecOutput {
                    exit_code,
                    stdout,
                    stderr,
                    duration,
                }),
                partial_stderr: Captured::default(),
            },
            Err(error) => ExecAttempt {
                result: Err(error),
                partial_stderr: stderr,
            },
        }
    }
}

/// Why a command did not run to completion (a non-zero exit is not an error: it is an
/// [`ExecOutput`]). Texts start the way Velero's users know them where there is a Velero
/// counterpart (`timed out after 30s`, `no such container: "c"`, `unable to upgrade
/// connection: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The pod does not exist (any more): the API server answered 404.
    #[error("pod {namespace}/{pod} not found")]
    PodNotFound {
        /// Pod namespace.
        namespace: String,
        /// Pod name.
        pod: String,
    },
    /// The API server refused the container name (`container X is not valid for pod Y`).
    #[error("no such container: {container:?} in pod {namespace}/{pod}")]
    NoSuchContainer {
        /// Pod namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// The container asked for.
        container: String,
    },
    /// The API server could not be reached (connection refused, DNS, TLS handshake, …).
    #[error("cannot reach the Kubernetes API server: {0}")]
    Unreachable(String),
    /// The API server (or the kubelet behind it) answered the exec request without upgrading
    /// the connection, e.g. 403 (RBAC), 500 (`container not found ("c")` for a container that
    /// is not running), 503. `message` is the answer's `Status` message or plain-text body.
    #[error("unable to upgrade connection: {message}")]
    UpgradeRejected {
        /// HTTP status code of the answer (0 if the answer had none to give, e.g. a 101 with
        /// a wrong subprotocol).
        code: u16,
        /// What the server said.
        message: String,
    },
    /// The command could not be started (or failed for a reason other than its exit code):
    /// the status channel carried a `Failure` without an exit code, e.g. containerd's
    /// `executable file not found in $PATH`. The text is the status message, verbatim, as
    /// client-go (and so Velero) reports it.
    #[error("{0}")]
    RemoteFailure(String),
    /// The stream ended before the command's status arrived.
    #[error("exec stream dropped before the command finished: {0}")]
    StreamDropped(String),
    /// The timeout expired; the stream was cancelled.
    #[error("timed out after {}", crate::hooks::format_go_duration(*.0))]
    TimedOut(Duration),
    /// The timeout expired for a command given stdin over a `v4.channel.k8s.io` stream, which
    /// has no way to close stdin alone: the command never read end-of-file. The stream was
    /// cancelled.
    #[error(
        "timed out after {}: the API server speaks only v4.channel.k8s.io, which cannot close \
         stdin without closing the stream, so the command never read end-of-file; end its stdin \
         with a command that makes it exit (such as \\q)",
        crate::hooks::format_go_duration(*.0)
    )]
    StdinNotClosed(Duration),
    /// No Kubernetes client could be built (no in-cluster config, no kubeconfig).
    #[error("no Kubernetes client: {0}")]
    NoClient(String),
    /// The request failed inside the client for another reason (authentication plugin,
    /// request building).
    #[error("exec request failed: {0}")]
    Request(String),
    /// Reading the pod (to wait for its container) was answered with an error other than 404.
    #[error("cannot read pod {namespace}/{pod}: {message}")]
    PodReadFailed {
        /// Pod namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// HTTP status code of the answer.
        code: u16,
        /// What the server said.
        message: String,
    },
    /// The wait for the target container ran out: it never became running (or ready).
    /// `last_state` is what was seen last, e.g. `waiting: CrashLoopBackOff`,
    /// `running, not ready`, `terminated: Error, exit code 1`, `no status yet`.
    #[error(
        "container {container:?} of pod {namespace}/{pod} did not become {} within {} ({last_state})",
        if *.ready { "ready" } else { "running" },
        crate::hooks::format_go_duration(*.waited)
    )]
    ContainerNotStarted {
        /// Pod namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// The container waited for.
        container: String,
        /// Whether readiness was waited for (else: running).
        ready: bool,
        /// How long the wait lasted (the wait timeout).
        waited: Duration,
        /// The container's last observed state, or why the last poll failed.
        last_state: String,
    },
    /// The pod has finished (phase `Succeeded` or `Failed`): its containers will not run
    /// again, so there is nothing to wait for.
    #[error("pod {namespace}/{pod} has phase {phase}: its containers will not run again")]
    PodFinished {
        /// Pod namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// `Succeeded` or `Failed`.
        phase: String,
    },
    /// Kill-on-timeout starts the hook under `/bin/sh`, and it could not start: `message` is
    /// the runtime's reason (typically `/bin/sh` not found in a distroless image).
    #[error("kill-on-timeout needs /bin/sh in container {container:?}: {message}")]
    KillNeedsShell {
        /// The hook's container.
        container: String,
        /// Why the wrapper could not start, verbatim.
        message: String,
    },
}

impl ExecError {
    /// Whether the command may have started in the container despite the error. When it may
    /// have (a timeout, a dropped stream), a freeze may be in effect and the matching thaw
    /// must still run. Errors raised before the connection was upgraded mean the kubelet
    /// never started the command.
    pub fn may_have_run(&self) -> bool {
        match self {
            ExecError::TimedOut(_) | ExecError::StdinNotClosed(_) | ExecError::StreamDropped(_) => {
                true
            }
            ExecError::PodNotFound { .. }
            | ExecError::NoSuchContainer { .. }
            | ExecError::Unreachable(_)
            | ExecError::UpgradeRejected { .. }
            | ExecError::RemoteFailure(_)
            | ExecError::NoClient(_)
            | ExecError::Request(_)
            | ExecError::PodReadFailed { .. }
            | ExecError::ContainerNotStarted { .. }
            | ExecError::PodFinished { .. }
            | ExecError::KillNeedsShell { .. } => false,
        }
    }

    /// Whether trying again later could succeed and cannot run the command twice: transport
    /// failures before the command started (API server unreachable, no client yet, upgrade
    /// refused — or a pod read answered — with 429 or 5xx).
    ///
    /// Dropped streams and timeouts are not included: the command may have run. That holds
    /// for a stream dropped before any output too: the kubelet opens the stream (its empty
    /// first frame per channel) *before* it asks the runtime to start the command, and a
    /// command may run without writing anything, so a client cannot tell a drop before the
    /// start from a drop after it. A freeze that may have run is never run again silently.
    pub fn is_transient(&self) -> bool {
        match self {
            ExecError::Unreachable(_) | ExecError::NoClient(_) => true,
            ExecError::UpgradeRejected { code, .. } | ExecError::PodReadFailed { code, .. } => {
                *code == 429 || *code >= 500
            }
            _ => false,
        }
    }
}

/// A container's state as the pod's status last reported it (`containerStatuses`,
/// `initContainerStatuses` — where native sidecars are — or `ephemeralContainerStatuses`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// The pod's status has no entry for the container (not scheduled or not created yet).
    NoStatus,
    /// `state.waiting`, with its reason (`ContainerCreating`, `CrashLoopBackOff`, …).
    Waiting {
        /// `state.waiting.reason`, when set.
        reason: Option<String>,
    },
    /// `state.running`; `ready` is the status's `ready` flag (readiness probe passed).
    Running {
        /// Whether the container is ready.
        ready: bool,
    },
    /// `state.terminated`, with its reason and exit code.
    Terminated {
        /// `state.terminated.reason`, when set (`Error`, `Completed`, `OOMKilled`, …).
        reason: Option<String>,
        /// `state.terminated.exitCode`.
        exit_code: i32,
    },
}

impl ContainerState {
    /// Whether the state satisfies a wait: running, and ready when `ready` is asked for.
    pub fn satisfies(&self, ready: bool) -> bool {
        match self {
            ContainerState::Running { ready: is_ready } => *is_ready || !ready,
            _ => false,
        }
    }
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContainerState::NoStatus => f.write_str("no status yet"),
            ContainerState::Waiting {
                reason: Some(reason),
            } => write!(f, "waiting: {reason}"),
            ContainerState::Waiting { reason: None } => f.write_str("waiting"),
            ContainerState::Running { ready: true } => f.write_str("running, ready"),
            ContainerState::Running { ready: false } => f.write_str("running, not ready"),
            ContainerState::Terminated {
                reason: Some(reason),
                exit_code,
            } => write!(f, "terminated: {reason}, exit code {exit_code}"),
            ContainerState::Terminated {
                reason: None,
                exit_code,
            } => write!(f, "terminated, exit code {exit_code}"),
        }
    }
}

/// A pod's phase and one of its containers' state, read from the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerObservation {
    /// `status.phase` (`Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`), when set.
    pub pod_phase: Option<String>,
    /// The container's state.
    pub state: ContainerState,
}

impl ContainerObservation {
    /// Whether the pod has finished (`Succeeded` or `Failed`): no container will run again.
    pub fn pod_finished(&self) -> bool {
        matches!(self.pod_phase.as_deref(), Some("Succeeded" | "Failed"))
    }
}

/// What a command started by [`Executor::start`] sent, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// A chunk of its stdout.
    Stdout(Vec<u8>),
    /// A chunk of its stderr.
    Stderr(Vec<u8>),
    /// The end: its exit code from the status channel, or why the stream ended without one
    /// ([`ExecError::StreamDropped`], [`ExecError::RemoteFailure`]). Nothing follows it.
    Exited(Result<i32, ExecError>),
}

/// A command running with stdin open ([`Executor::start`]). Dropping it ends the stream: the
/// connection is closed, which a kubelet turns into end-of-file on the command's stdin.
#[async_trait::async_trait]
pub trait ExecStream: Send {
    /// Writes `data` to the command's stdin.
    async fn write_stdin(&mut self, data: &[u8]) -> Result<(), ExecError>;

    /// Whether stdin can be closed on its own, leaving output and exit status to come: the
    /// `v5.channel.k8s.io` close signal. A `v4.channel.k8s.io` stream has none — there,
    /// closing stdin means closing the whole stream, losing what the command still sends.
    fn can_close_stdin(&self) -> bool;

    /// Closes the command's stdin (it reads end-of-file). Does nothing where
    /// [`ExecStream::can_close_stdin`] is false.
    async fn close_stdin(&mut self) -> Result<(), ExecError>;

    /// The next output chunk, or the end. Cancel-safe: a call dropped before it returns loses
    /// nothing. Called again after [`StreamEvent::Exited`], it returns `Exited` again.
    async fn next_event(&mut self) -> StreamEvent;
}

/// Runs commands in containers (and, for the wait before a hook, reads their state).
#[async_trait::async_trait]
pub trait Executor: Send + Sync {
    /// Runs `request` and waits for its exit code, at most `request.timeout`.
    async fn exec(&self, request: &ExecRequest) -> Result<ExecOutput, ExecError>;

    /// Runs `request` like [`Executor::exec`], also keeping the stderr received before the
    /// call ended when it ends without an output (kill-on-timeout reads the hook's PID from
    /// it). The default calls `exec` and keeps nothing, so a timed-out hook's PID stays
    /// unknown and it cannot be killed.
    async fn exec_keeping_partial_stderr(&self, request: &ExecRequest) -> ExecAttempt {
        ExecAttempt {
            result: self.exec(request).await,
            partial_stderr: Captured::default(),
        }
    }

    /// Starts `request` with stdin, stdout and stderr open and hands back the stream as soon as
    /// the connection is upgraded (within `request.timeout`): the caller writes stdin, reads
    /// the output and ends it ([`session`]). The default, for executors that cannot keep a
    /// stream open (test doubles), refuses: hooks with stdin fail on them.
    async fn start(&self, request: &ExecRequest) -> Result<Box<dyn ExecStream>, ExecError> {
        Err(ExecError::Request(format!(
            "this executor cannot open a stream with stdin for {:?}",
            request.command
        )))
    }

    /// The pod's phase and `container`'s state, as the API server reports them now. A pod
    /// that does not exist is [`ExecError::PodNotFound`].
    ///
    /// The default, for executors that cannot see pods (test doubles), reports a running pod
    /// with the container running and ready, so waiting for it never delays them.
    async fn observe_container(
        &self,
        _namespace: &str,
        _pod: &str,
        _container: &str,
    ) -> Result<ContainerObservation, ExecError> {
        Ok(ContainerObservation {
            pod_phase: Some("Running".to_owned()),
            state: ContainerState::Running { ready: true },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_keeps_everything_below_the_limit() {
        let mut captured = Captured::default();
        captured.push(b"hello ", 16);
        captured.push(b"world", 16);
        assert_eq!(captured.bytes, b"hello world");
        assert_eq!(captured.dropped, 0);
        assert!(!captured.is_truncated());
    }

    #[test]
    fn captured_cuts_inside_a_chunk_and_counts_the_rest() {
        let mut captured = Captured::default();
        captured.push(b"0123456789", 4);
        assert_eq!(captured.bytes, b"0123");
        assert_eq!(captured.dropped, 6);
        captured.push(b"abc", 4);
        assert_eq!(captured.bytes, b"0123");
        assert_eq!(captured.dropped, 9);
        assert_eq!(captured.total(), 13);
        assert!(captured.is_truncated());
    }

    #[test]
    fn captured_fills_exactly_to_the_limit() {
        let mut captured = Captured::default();
        let chunk = vec![b'x'; 1000];
        for _ in 0..100 {
            captured.push(&chunk, OUTPUT_LIMIT);
        }
        assert_eq!(captured.bytes.len(), OUTPUT_LIMIT);
        assert_eq!(captured.dropped, 100_000 - OUTPUT_LIMIT as u64);
        assert!(captured.bytes.capacity() < 2 * OUTPUT_LIMIT);
    }

    #[test]
    fn captured_text_replaces_a_character_cut_at_the_limit() {
        let mut captured = Captured::default();
        captured.push("é".as_bytes(), 1);
        assert_eq!(captured.text(), "\u{FFFD}");
        assert_eq!(captured.dropped, 1);
    }

    #[test]
    fn timeout_error_is_rendered_as_a_go_duration() {
        assert_eq!(
            ExecError::TimedOut(Duration::from_secs(1)).to_string(),
            "timed out after 1s"
        );
        assert_eq!(
            ExecError::TimedOut(Duration::from_millis(1500)).to_string(),
            "timed out after 1.5s"
        );
    }

    #[test]
    fn only_timeouts_and_dropped_streams_may_have_run_the_command() {
        assert!(ExecError::TimedOut(Duration::from_secs(1)).may_have_run());
        assert!(ExecError::StreamDropped("eof".into()).may_have_run());
        assert!(!ExecError::UpgradeRejected {
            code: 403,
            message: "forbidden".into()
        }
        .may_have_run());
        assert!(!ExecError::PodNotFound {
            namespace: "ns".into(),
            pod: "p".into()
        }
        .may_have_run());
    }

    #[test]
    fn only_failures_before_the_command_started_are_transient() {
        assert!(ExecError::Unreachable("refused".into()).is_transient());
        assert!(ExecError::UpgradeRejected {
            code: 503,
            message: "x".into()
        }
        .is_transient());
        assert!(!ExecError::UpgradeRejected {
            code: 403,
            message: "x".into()
        }
        .is_transient());
        assert!(!ExecError::StreamDropped("x".into()).is_transient());
        assert!(!ExecError::TimedOut(Duration::from_secs(1)).is_transient());
    }

    #[test]
    fn wait_and_kill_errors_never_ran_the_command_and_only_overload_is_transient() {
        let pod_read = |code| ExecError::PodReadFailed {
            namespace: "ns".into(),
            pod: "p".into(),
            code,
            message: "x".into(),
        };
        let errors = [
            pod_read(403),
            ExecError::ContainerNotStarted {
                namespace: "ns".into(),
                pod: "p".into(),
                container: "db".into(),
                ready: false,
                waited: Duration::from_secs(10),
                last_state: ContainerState::NoStatus.to_string(),
            },
            ExecError::PodFinished {
                namespace: "ns".into(),
                pod: "p".into(),
                phase: "Failed".into(),
            },
            ExecError::KillNeedsShell {
                container: "db".into(),
                message: "no /bin/sh".into(),
            },
        ];
        for error in &errors {
            assert!(!error.may_have_run() && !error.is_transient(), "{error:?}");
        }
        assert_eq!(
            errors[1].to_string(),
            "container \"db\" of pod ns/p did not become running within 10s (no status yet)"
        );
        assert!(pod_read(503).is_transient() && pod_read(429).is_transient());
    }

    #[test]
    fn container_states_read_like_kubectl_describes_them() {
        let terminated = ContainerState::Terminated {
            reason: Some("Error".into()),
            exit_code: 1,
        };
        assert_eq!(terminated.to_string(), "terminated: Error, exit code 1");
        assert!(!terminated.satisfies(false));
        let not_ready = ContainerState::Running { ready: false };
        assert!(not_ready.satisfies(false) && !not_ready.satisfies(true));
        assert_eq!(
            ContainerState::Waiting { reason: None }.to_string(),
            "waiting"
        );
    }
}
