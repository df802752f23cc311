//! The pure hook model: which exec hooks a pod gets in a backup phase, from its annotations
//! (`pre.hook.backup.quiesce.dev/*`, `post.hook.backup.quiesce.dev/*`) or from the rules of the
//! plugin ConfigMap (the `Backup.spec.hooks.resources[]` schema).
//!
//! No I/O here: no logging, no clock, no Kubernetes calls. Functions take values and return
//! values; warnings and validation problems come back as data that names the pod, key, value,
//! rule or field, for the caller to log. Nothing here runs a hook.
//!
//! Layout:
//! - `annotations.rs`: annotation keys and values (command, container, on-error, timeout).
//! - `rules.rs`: the ConfigMap's `config.yaml`, parsed and validated into [`Config`].
//! - `problem.rs`: what can be wrong in `config.yaml` and where ([`Problem`]), for `rules.rs`
//!   and `governance.rs` alike.
//! - `governance.rs`: its `governance` section — where annotation hooks may run and which
//!   containers they may never target — and the [`PolicyRefusal`]s `resolve` reports.
//! - `resolve.rs`: [`resolve`], the ordered concrete hooks of one pod and phase.
//! - `execution.rs`: the execution options (waits, retries, kill on timeout), one parser for
//!   annotation and rule values.
//! - `template.rs`: `{{backup.name}}`-style variables in argv, checked and substituted.
//! - `workload.rs`: run once per owner, consistency groups, choosing the pod that runs.
//! - `duration.rs`: Go duration parsing/rendering and the timeout policy.
//! - `selector.rs`: label selectors. `glob.rs`: namespace/resource glob patterns.

mod annotations;
mod duration;
mod execution;
mod glob;
mod governance;
mod problem;
mod resolve;
mod rules;
mod selector;
pub mod template;
mod workload;

use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

pub use annotations::{
    annotation_key, parse_command, AnnotationWarning, ParsedCommand, POST_ANNOTATION_PREFIX,
    PRE_ANNOTATION_PREFIX,
};
pub use duration::{
    format_go_duration, parse_go_duration, DurationError, GoDuration, DEFAULT_TIMEOUT, MAX_TIMEOUT,
};
pub use execution::DEFAULT_WAIT_TIMEOUT;
pub use glob::{GlobError, NamespaceFilter};
pub use governance::{
    AnnotationHookPolicy, Governance, PolicyRefusal, PolicyRule, RefusalCause,
    DEFAULT_DENIED_CONTAINERS,
};
pub use problem::{Location, Problem, Severity, CONFIG_KEY};
pub use resolve::{group_of, has_same_run_once_hook, resolve, HookDefect, Resolution, SkipReason};
pub use rules::{Config, ExecHook, Rule};
pub use selector::{LabelSelector, Operator, Requirement};
pub use workload::{
    choose_runner, owner_of, ChoiceReason, Owner, RunOnce, GROUP_ANNOTATION,
    RUN_ONCE_PER_ANNOTATION, RUN_ON_ANNOTATION,
};

/// Hook name that Velero logs (`hookName`) for annotation hooks.
pub const ANNOTATION_HOOK_NAME: &str = "<from-annotation>";

/// When a hook runs relative to the pod's volume snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Before (freeze).
    Pre,
    /// After (thaw).
    Post,
}

impl Phase {
    /// `pre` or `post`, as Velero logs `hookPhase` and as the annotation prefix starts.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pre => "pre",
            Phase::Post => "post",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a hook failure does to the rest of the pod's hooks in that phase.
///
/// The default is `Fail`, as Velero documents (Velero's code since v1.9 treats an unset mode
/// as non-fatal while logging it as `Fail`; quiesce follows the documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OnError {
    /// Stop the pod's remaining hooks of the phase; a failed pre hook fails the pod.
    #[default]
    Fail,
    /// Log the failure and go on.
    Continue,
}

impl OnError {
    /// Parses the exact, case-sensitive spelling `Fail` or `Continue`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "Fail" => Some(OnError::Fail),
            "Continue" => Some(OnError::Continue),
            _ => None,
        }
    }

    /// `Fail` or `Continue`, as Velero logs `hookOnError`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnError::Fail => "Fail",
            OnError::Continue => "Continue",
        }
    }
}

impl fmt::Display for OnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a hook was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookSource {
    /// The pod's own annotations.
    Annotation,
    /// A rule of the plugin ConfigMap (Velero's `spec.hooks` counterpart).
    Spec,
}

impl HookSource {
    /// `annotation` or `spec`, the values Velero (v1.13+) logs in `hookSource`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookSource::Annotation => "annotation",
            HookSource::Spec => "spec",
        }
    }
}

impl fmt::Display for HookSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Namespace and name of a pod, for messages (`namespace/name`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PodRef {
    /// `metadata.namespace` (empty if unset).
    pub namespace: String,
    /// `metadata.name` (empty if unset).
    pub name: String,
}

impl PodRef {
    /// The namespace and name of `pod`.
    pub fn of(pod: &Pod) -> Self {
        PodRef {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One concrete hook of a pod and phase, ready to run (unless `defect` says it cannot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedHook {
    /// Pre or post.
    pub phase: Phase,
    /// Annotation or spec (ConfigMap rule).
    pub source: HookSource,
    /// [`ANNOTATION_HOOK_NAME`] for annotations, else the rule's `name` (Velero's `hookName`).
    pub name: String,
    /// Position in the rule's `pre`/`post` list (0 for annotations), as in Velero's hook
    /// tracker key since v1.17; (`name`, `index`) identifies a spec hook within a phase.
    pub index: usize,
    /// Target container: the one named, or the pod's first container.
    pub container: String,
    /// argv, executed without a shell.
    pub command: Vec<String>,
    /// Failure mode.
    pub on_error: OnError,
    /// Effective timeout (default 30s, at most 4h).
    pub timeout: Duration,
    /// How the exec is carried out: waiting for the container, retries, kill on timeout.
    /// [`Execution::default`] is Velero's behaviour (one attempt, no wait, disconnect only).
    pub execution: Execution,
    /// Only one pod of the pod's owner runs this hook (`run-once-per: owner`).
    pub run_once: Option<RunOnce>,
    /// Set when the hook cannot be executed on this pod (for instance its container is not in
    /// the pod). The caller must not exec it: it records the hook as failed with this error
    /// and applies `on_error`, as Velero does for `no such container`.
    pub defect: Option<HookDefect>,
    /// Set on a post hook that runs no command of its own: it ends the session that this pre
    /// hook holds ([`Execution::hold_until_output`]) — its `execution.stdin` is written to the
    /// session, the session's stdin is closed, and the session must exit within `timeout`.
    /// `container` and `command` are the session's, for the log. `None` for every other hook.
    pub ends_session: Option<HeldBy>,
}

/// The pre hook that holds a session, as the post hook that ends it names it: its source,
/// name and position in its rule's `pre` list (0 for the annotation hook). One rule holds at
/// most one session, and a pod has at most one annotation pre hook.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeldBy {
    /// Annotation or spec.
    pub source: HookSource,
    /// [`ANNOTATION_HOOK_NAME`] or the rule's name.
    pub name: String,
    /// The pre hook's index.
    pub index: usize,
}

impl ResolvedHook {
    /// The key of the session this hook holds, when it is a pre hook that holds one.
    pub fn holds(&self) -> Option<HeldBy> {
        (self.phase == Phase::Pre && self.execution.hold_until_output.is_some()).then(|| HeldBy {
            source: self.source,
            name: self.name.clone(),
            index: self.index,
        })
    }

    /// The post hook that ends the session `pre` holds when nothing else says how: no input,
    /// the default timeout, on-error `Fail`. Used for a rule that holds a session and has no
    /// post hook of its own for it, and for a session still held when the thaw's hooks are done.
    pub fn implicit_session_end(pre: &ResolvedHook) -> ResolvedHook {
        ResolvedHook {
            phase: Phase::Post,
            source: pre.source,
            name: pre.name.clone(),
            index: pre.index,
            container: pre.container.clone(),
            command: pre.command.clone(),
            on_error: OnError::Fail,
            timeout: DEFAULT_TIMEOUT,
            execution: Execution::default(),
            run_once: pre.run_once.clone(),
            defect: None,
            ends_session: Some(HeldBy {
                source: pre.source,
                name: pre.name.clone(),
                index: pre.index,
            }),
        }
    }
}

/// How a hook's exec is carried out beyond Velero's single attempt. Set per phase by the
/// annotations `<phase>.hook.backup.quiesce.dev/{wait-timeout,wait-for,retries,retry-backoff,
/// retry-on-exit-code,kill-on-timeout,stdin,hold-until-output}` or per hook by the matching
/// `exec` fields of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Execution {
    /// Wait for the target container before the first attempt; `None`: exec right away.
    pub wait: Option<WaitFor>,
    /// Further attempts after a failed one (0: a single attempt). Only failures that could
    /// not have run the command ([`crate::exec::ExecError::is_transient`]) are retried, plus
    /// exit codes listed in `retry_on_exit_codes`.
    pub retries: u32,
    /// Delay before the first retry; each further retry doubles it, capped at
    /// [`MAX_RETRY_BACKOFF`]. Zero when unset means [`DEFAULT_RETRY_BACKOFF`].
    pub retry_backoff: Duration,
    /// Exit codes after which the command is run again (empty: never re-run a command that ran).
    pub retry_on_exit_codes: Vec<i32>,
    /// Start the command under `/bin/sh` so its PID is known, and on timeout send it TERM,
    /// then KILL after [`KILL_GRACE`], through a second exec.
    pub kill_on_timeout: bool,
    /// Text written to the command's stdin once it starts, as a line (a newline is added when
    /// it does not end with one: line-reading clients such as `mysql` act on a line only once
    /// it is complete). Stdin is then closed, unless the hook holds a session. `None`: the
    /// exec has no stdin, as Velero's.
    pub stdin: Option<String>,
    /// Pre hooks only: the hook succeeds when this text appears on the command's stdout
    /// (within its timeout), and the command keeps running with stdin open — a held session —
    /// until the thaw ends it. `None`: the hook ends when its command exits.
    pub hold_until_output: Option<String>,
}

/// What to wait for before exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitFor {
    /// Give up (and fail the hook, naming the container's state) after this long.
    pub timeout: Duration,
    /// Wait for the container to be ready, not only running.
    pub ready: bool,
}

/// Delay before the first retry when `retry-backoff` is not set.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// Longest delay between two attempts.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(60);
/// Most retries a hook may ask for.
pub const MAX_RETRIES: u32 = 10;
/// Time between TERM and KILL for `kill-on-timeout`.
pub const KILL_GRACE: Duration = Duration::from_secs(5);
/// Longest `hold-until-output` text, in bytes (stdout is searched for it as it arrives).
pub const MAX_READY_TEXT: usize = 1024;

impl Execution {
    /// What is written to stdin: the `stdin` text, ending with a newline. `None` without stdin.
    pub fn stdin_bytes(&self) -> Option<Vec<u8>> {
        self.stdin.as_ref().map(|text| {
            let mut bytes = text.clone().into_bytes();
            if !bytes.ends_with(b"\n") {
                bytes.push(b'\n');
            }
            bytes
        })
    }

    /// The delay before retry number `retry` (1-based): the backoff doubled per retry, capped.
    pub fn backoff_before(&self, retry: u32) -> Duration {
        let base = if self.retry_backoff.is_zero() {
            DEFAULT_RETRY_BACKOFF
        } else {
            self.retry_backoff
        };
        let factor = 1u32 << retry.saturating_sub(1).min(16);
        base.saturating_mul(factor).min(MAX_RETRY_BACKOFF)
    }
}

/// Renders argv the way Velero logs `hookCommand` (Go's `fmt.Sprint` of a `[]string`):
/// elements joined by single spaces inside brackets, unquoted, e.g.
/// `[/sbin/fsfreeze --freeze /data]`.
pub fn render_command(command: &[String]) -> String {
    format!("[{}]", command.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_command_matches_go_sprint_of_string_slice() {
        let argv: Vec<String> = ["/sbin/fsfreeze", "--freeze", "/data"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(render_command(&argv), "[/sbin/fsfreeze --freeze /data]");
    }

    #[test]
    fn render_command_does_not_quote_elements_with_spaces() {
        let argv = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "sync && echo ok".to_owned(),
        ];
        assert_eq!(render_command(&argv), "[/bin/sh -c sync && echo ok]");
    }

    #[test]
    fn render_command_of_empty_argv_is_empty_brackets() {
        assert_eq!(render_command(&[]), "[]");
    }

    #[test]
    fn phase_strings_are_pre_and_post() {
        assert_eq!(Phase::Pre.as_str(), "pre");
        assert_eq!(Phase::Post.as_str(), "post");
    }

    #[test]
    fn hook_source_strings_match_velero_hook_source_field() {
        assert_eq!(HookSource::Annotation.as_str(), "annotation");
        assert_eq!(HookSource::Spec.as_str(), "spec");
    }

    #[test]
    fn on_error_parses_only_exact_spellings() {
        assert_eq!(OnError::parse("Fail"), Some(OnError::Fail));
        assert_eq!(OnError::parse("Continue"), Some(OnError::Continue));
        for wrong in ["fail", "FAIL", "continue", "CONTINUE", " Fail", "Fail ", ""] {
            assert_eq!(OnError::parse(wrong), None, "{wrong:?}");
        }
    }

    #[test]
    fn on_error_defaults_to_fail_as_documented() {
        assert_eq!(OnError::default(), OnError::Fail);
    }
}
