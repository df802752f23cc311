//! Running one command in one container, and running (and logging) one resolved hook.
//!
//! [`Executor`] is the seam: the freeze/thaw state machine is written against it and tested
//! with a scripted executor; [`KubeExecutor`] implements it over `pods/exec` (WebSocket).
//! Nothing here decides *when* a hook runs — that is the state machine's job — and nothing here
//! parses hooks: that is [`crate::hooks`].
//!
//! # Layout
//! - `mod.rs`: the seam — [`ExecRequest`], [`ExecOutput`], [`Captured`], [`ExecError`],
//!   [`Executor`].
//! - [`client`]: [`ClusterClient`], the lazily built, shared Kubernetes client.
//! - [`kube`]: [`KubeExecutor`], `Api::<Pod>::exec` with bounded output, a cancelling timeout
//!   and failures mapped to [`ExecError`].
//! - [`hook`]: [`run_hook`], one [`crate::hooks::ResolvedHook`] run and logged the way Velero
//!   logs it, returning a [`HookOutcome`].
//! - [`config`]: [`load_hook_config`], the plugin ConfigMap read once through the same client.

pub mod client;
pub mod config;
pub mod hook;
pub mod kube;

use std::borrow::Cow;
use std::time::Duration;

pub use self::client::{ClientSource, ClusterClient};
pub use self::config::{load_hook_config, velero_namespace, CONFIG_LABEL_SELECTOR};
pub use self::hook::{run_hook, HookFailure, HookOutcome};
pub use self::kube::KubeExecutor;

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
    /// No Kubernetes client could be built (no in-cluster config, no kubeconfig).
    #[error("no Kubernetes client: {0}")]
    NoClient(String),
    /// The request failed inside the client for another reason (authentication plugin,
    /// request building).
    #[error("exec request failed: {0}")]
    Request(String),
}

impl ExecError {
    /// Whether the command may have started in the container despite the error. When it may
    /// have (a timeout, a dropped stream), a freeze may be in effect and the matching thaw
    /// must still run. Errors raised before the connection was upgraded mean the kubelet
    /// never started the command.
    pub fn may_have_run(&self) -> bool {
        match self {
            ExecError::TimedOut(_) | ExecError::StreamDropped(_) => true,
            ExecError::PodNotFound { .. }
            | ExecError::NoSuchContainer { .. }
            | ExecError::Unreachable(_)
            | ExecError::UpgradeRejected { .. }
            | ExecError::RemoteFailure(_)
            | ExecError::NoClient(_)
            | ExecError::Request(_) => false,
        }
    }

    /// Whether trying again later could succeed and cannot run the command twice: transport
    /// failures before the command started (API server unreachable, no client yet, upgrade
    /// refused with 429 or 5xx). Dropped streams and timeouts are not included: the command
    /// may have run.
    pub fn is_transient(&self) -> bool {
        match self {
            ExecError::Unreachable(_) | ExecError::NoClient(_) => true,
            ExecError::UpgradeRejected { code, .. } => *code == 429 || *code >= 500,
            _ => false,
        }
    }
}

/// Runs commands in containers.
#[async_trait::async_trait]
pub trait Executor: Send + Sync {
    /// Runs `request` and waits for its exit code, at most `request.timeout`.
    async fn exec(&self, request: &ExecRequest) -> Result<ExecOutput, ExecError>;
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
}
