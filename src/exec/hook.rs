//! One resolved hook run through an [`Executor`] and logged the way Velero logs its exec
//! hooks: [`run_hook`] → [`HookOutcome`].
//!
//! Log lines (Velero plugin format through [`crate::velero::log`]), each with the hook fields
//! `hookSource`, `hookType` (`exec`), `hookPhase`, `hookName`, `hookContainer`, `hookCommand`,
//! `hookOnError`, `hookTimeout` plus `namespace` and `pod` (which Velero 1.15+ omits):
//! 1. info `running exec hook` — before the exec (not for a hook with a defect: Velero's
//!    pre-exec checks fail before it logs this line either);
//! 2. info `stdout: …` / `stderr: …` — after the command ran, when non-empty;
//! 3. info `exec hook succeeded`, or `Error executing hook` with `error` — at error level for an
//!    `on-error: Fail` hook, warn for `Continue` — both with `exitCode` (when there is one) and
//!    `durationMs`.
//!
//! Deciding what a failure means for the pod's other hooks is the state machine's job; this
//! module only reports.

use std::time::{Duration, Instant};

use crate::hooks::{format_go_duration, render_command, HookDefect, OnError, PodRef, ResolvedHook};

use super::{Captured, ExecError, ExecRequest, Executor};

/// Velero's hook type, the only one there is for backup hooks.
const HOOK_TYPE: &str = "exec";

/// The most bytes of an output logged in one `stdout:`/`stderr:` line. Below the log layer's
/// own 16 KiB cut per value so the truncation mark written here is never cut off itself.
pub const LOGGED_OUTPUT_LIMIT: usize = 15 * 1024;

/// Why a hook failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookFailure {
    /// The hook could not be executed on this pod (bad container, empty command); no exec
    /// was attempted.
    #[error(transparent)]
    Defect(HookDefect),
    /// The command ran and exited non-zero (client-go's wording, which Velero shows).
    #[error("command terminated with exit code {0}")]
    ExitCode(i32),
    /// The command did not run to completion.
    #[error(transparent)]
    Exec(ExecError),
}

/// What happened when a hook was run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookOutcome {
    /// `None` when the hook succeeded (exit code 0).
    pub failure: Option<HookFailure>,
    /// The command's exit code, when it ran to completion.
    pub exit_code: Option<i32>,
    /// Wall-clock time of the exec call (zero when nothing was executed).
    pub duration: Duration,
    /// Whether the command may have started in the container: true when it ran, timed out or
    /// its stream dropped; false when it certainly did not start (defect, pod or container
    /// not found, upgrade refused, API server unreachable, no client). A pre hook that may
    /// have run may have frozen something, so the pod's post hooks must still run.
    pub may_have_run: bool,
    /// Captured stdout (empty when the command did not complete).
    pub stdout: Captured,
    /// Captured stderr (empty when the command did not complete).
    pub stderr: Captured,
}

impl HookOutcome {
    /// Whether the hook succeeded.
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }

    /// The error text Velero would show for this failure (`None` on success).
    pub fn error_text(&self) -> Option<String> {
        self.failure.as_ref().map(ToString::to_string)
    }
}

/// Logs one event with the hook's fields at a level chosen at run time.
macro_rules! hook_event {
    ($level:expr, $fields:expr, $($rest:tt)+) => {{
        let f = $fields;
        match $level {
            tracing::Level::ERROR => tracing::error!(
                hookSource = f.source, hookType = HOOK_TYPE, hookPhase = f.phase,
                hookName = f.name, hookContainer = f.container, hookCommand = f.command.as_str(),
                hookOnError = f.on_error, hookTimeout = f.timeout.as_str(),
                namespace = f.namespace, pod = f.pod, $($rest)+
            ),
            tracing::Level::WARN => tracing::warn!(
                hookSource = f.source, hookType = HOOK_TYPE, hookPhase = f.phase,
                hookName = f.name, hookContainer = f.container, hookCommand = f.command.as_str(),
                hookOnError = f.on_error, hookTimeout = f.timeout.as_str(),
                namespace = f.namespace, pod = f.pod, $($rest)+
            ),
            _ => tracing::info!(
                hookSource = f.source, hookType = HOOK_TYPE, hookPhase = f.phase,
                hookName = f.name, hookContainer = f.container, hookCommand = f.command.as_str(),
                hookOnError = f.on_error, hookTimeout = f.timeout.as_str(),
                namespace = f.namespace, pod = f.pod, $($rest)+
            ),
        }
    }};
}

/// The fields every line of a hook carries.
struct HookFields<'a> {
    source: &'static str,
    phase: &'static str,
    name: &'a str,
    container: &'a str,
    command: String,
    on_error: &'static str,
    timeout: String,
    namespace: &'a str,
    pod: &'a str,
}

impl<'a> HookFields<'a> {
    fn new(pod: &'a PodRef, hook: &'a ResolvedHook) -> Self {
        HookFields {
            source: hook.source.as_str(),
            phase: hook.phase.as_str(),
            name: &hook.name,
            container: &hook.container,
            command: render_command(&hook.command),
            on_error: hook.on_error.as_str(),
            timeout: format_go_duration(hook.timeout),
            namespace: &pod.namespace,
            pod: &pod.name,
        }
    }
}

/// Runs `hook` in `pod` through `executor` and logs it like Velero (see the module docs).
/// Never fails: every failure is in the returned [`HookOutcome`].
pub async fn run_hook(executor: &dyn Executor, pod: &PodRef, hook: &ResolvedHook) -> HookOutcome {
    let fields = HookFields::new(pod, hook);
    let failure_level = match hook.on_error {
        OnError::Fail => tracing::Level::ERROR,
        // Velero counts every error-level line of a backup as a backup error and marks the
        // backup PartiallyFailed. A `Continue` hook's failure is tolerated by definition, so
        // it is a warning; only a failure that stops the pod's hooks is an error.
        OnError::Continue => tracing::Level::WARN,
    };

    if let Some(defect) = &hook.defect {
        let outcome = HookOutcome {
            failure: Some(HookFailure::Defect(defect.clone())),
            exit_code: None,
            duration: Duration::ZERO,
            may_have_run: false,
            stdout: Captured::default(),
            stderr: Captured::default(),
        };
        log_result(failure_level, &fields, &outcome);
        return outcome;
    }

    hook_event!(tracing::Level::INFO, &fields, "running exec hook");
    let request = ExecRequest {
        namespace: pod.namespace.clone(),
        pod: pod.name.clone(),
        container: hook.container.clone(),
        command: hook.command.clone(),
        timeout: hook.timeout,
    };
    let started = Instant::now();
    let outcome = match executor.exec(&request).await {
        Ok(output) => {
            log_output(&fields, "stdout", &output.stdout);
            log_output(&fields, "stderr", &output.stderr);
            HookOutcome {
                failure: (output.exit_code != 0).then_some(HookFailure::ExitCode(output.exit_code)),
                exit_code: Some(output.exit_code),
                duration: output.duration,
                may_have_run: true,
                stdout: output.stdout,
                stderr: output.stderr,
            }
        }
        Err(error) => HookOutcome {
            may_have_run: error.may_have_run(),
            failure: Some(HookFailure::Exec(error)),
            exit_code: None,
            duration: started.elapsed(),
            stdout: Captured::default(),
            stderr: Captured::default(),
        },
    };
    log_result(failure_level, &fields, &outcome);
    outcome
}

/// The line after the exec: success at info, failure at `failure_level`.
fn log_result(failure_level: tracing::Level, fields: &HookFields<'_>, outcome: &HookOutcome) {
    let duration_ms = u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX);
    match outcome.error_text() {
        None => hook_event!(
            tracing::Level::INFO,
            fields,
            exitCode = outcome.exit_code,
            durationMs = duration_ms,
            "exec hook succeeded"
        ),
        Some(error) => hook_event!(
            failure_level,
            fields,
            exitCode = outcome.exit_code,
            durationMs = duration_ms,
            error = error.as_str(),
            "Error executing hook"
        ),
    }
}

/// `stdout: …` / `stderr: …` at info, when the stream carried anything.
fn log_output(fields: &HookFields<'_>, stream: &str, captured: &Captured) {
    if captured.is_empty() {
        return;
    }
    let message = format!("{stream}: {}", output_for_log(captured));
    hook_event!(
        tracing::Level::INFO,
        fields,
        outputBytes = captured.total(),
        truncated = captured.is_truncated() || captured.bytes.len() > LOGGED_OUTPUT_LIMIT,
        "{}",
        message
    );
}

/// The captured text, cut to [`LOGGED_OUTPUT_LIMIT`] on a character boundary, with a mark
/// saying how much of the output the line shows when anything is missing.
pub(crate) fn output_for_log(captured: &Captured) -> String {
    let text = captured.text();
    let total = captured.total();
    if text.len() <= LOGGED_OUTPUT_LIMIT && !captured.is_truncated() {
        return text.into_owned();
    }
    let mut end = text.len().min(LOGGED_OUTPUT_LIMIT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… [output truncated: showing the first {end} of {total} bytes]",
        &text[..end]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{ExecOutput, OUTPUT_LIMIT};
    use crate::hooks::{HookSource, Phase, ANNOTATION_HOOK_NAME};
    use crate::velero::log::MemoryLog;

    /// Answers every exec with one scripted result.
    struct Scripted(Result<ExecOutput, ExecError>);

    #[async_trait::async_trait]
    impl Executor for Scripted {
        async fn exec(&self, _request: &ExecRequest) -> Result<ExecOutput, ExecError> {
            self.0.clone()
        }
    }

    fn hook(on_error: OnError) -> ResolvedHook {
        ResolvedHook {
            phase: Phase::Pre,
            source: HookSource::Annotation,
            name: ANNOTATION_HOOK_NAME.into(),
            index: 0,
            container: "main".into(),
            command: vec!["/sbin/fsfreeze".into(), "--freeze".into(), "/data".into()],
            on_error,
            timeout: Duration::from_secs(30),
            execution: Default::default(),
            defect: None,
        }
    }

    fn pod() -> PodRef {
        PodRef {
            namespace: "ns".into(),
            name: "db-0".into(),
        }
    }

    fn output(exit_code: i32, stdout: &[u8]) -> ExecOutput {
        let mut captured = Captured::default();
        captured.push(stdout, OUTPUT_LIMIT);
        ExecOutput {
            exit_code,
            stdout: captured,
            stderr: Captured::default(),
            duration: Duration::from_millis(12),
        }
    }

    /// Runs a hook against a scripted executor and returns the outcome and the log lines.
    fn run(
        result: Result<ExecOutput, ExecError>,
        hook: ResolvedHook,
    ) -> (HookOutcome, Vec<serde_json::Value>) {
        let log = MemoryLog::default();
        let guard = log.install(tracing_subscriber::filter::LevelFilter::DEBUG);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let executor = Scripted(result);
        let outcome = runtime.block_on(run_hook(&executor, &pod(), &hook));
        drop(guard);
        (outcome, log.lines())
    }

    #[test]
    fn success_logs_running_stdout_and_success_with_velero_fields() {
        let (outcome, lines) = run(Ok(output(0, b"frozen\n")), hook(OnError::Fail));
        assert!(outcome.succeeded());
        assert_eq!(outcome.exit_code, Some(0));
        assert!(outcome.may_have_run);
        let messages: Vec<_> = lines
            .iter()
            .map(|l| l["@message"].as_str().unwrap())
            .collect();
        assert_eq!(
            messages,
            [
                "running exec hook",
                "stdout: frozen\n",
                "exec hook succeeded"
            ]
        );
        for line in &lines {
            assert_eq!(line["@level"], "info");
            assert_eq!(line["hookSource"], "annotation");
            assert_eq!(line["hookType"], "exec");
            assert_eq!(line["hookPhase"], "pre");
            assert_eq!(line["hookName"], "<from-annotation>");
            assert_eq!(line["hookContainer"], "main");
            assert_eq!(line["hookCommand"], "[/sbin/fsfreeze --freeze /data]");
            assert_eq!(line["hookOnError"], "Fail");
            assert_eq!(line["hookTimeout"], "30s");
            assert_eq!(line["namespace"], "ns");
            assert_eq!(line["pod"], "db-0");
        }
        assert_eq!(lines[2]["exitCode"], 0);
        assert_eq!(lines[2]["durationMs"], 12);
        assert!(lines[0].get("exitCode").is_none());
    }

    #[test]
    fn non_zero_exit_of_a_fail_hook_is_an_error_line() {
        let (outcome, lines) = run(Ok(output(3, b"")), hook(OnError::Fail));
        assert_eq!(outcome.failure, Some(HookFailure::ExitCode(3)));
        assert_eq!(
            outcome.error_text().as_deref(),
            Some("command terminated with exit code 3")
        );
        assert_eq!(lines.len(), 2, "no stdout/stderr lines for empty output");
        assert_eq!(lines[1]["@level"], "error");
        assert_eq!(lines[1]["@message"], "Error executing hook");
        assert_eq!(lines[1]["error"], "command terminated with exit code 3");
        assert_eq!(lines[1]["exitCode"], 3);
    }

    #[test]
    fn failure_of_a_continue_hook_is_a_warning() {
        let (outcome, lines) = run(Ok(output(1, b"")), hook(OnError::Continue));
        assert!(!outcome.succeeded());
        assert_eq!(lines[1]["@level"], "warn");
        assert_eq!(lines[1]["hookOnError"], "Continue");
    }

    #[test]
    fn a_timeout_may_have_run_and_has_no_exit_code() {
        let (outcome, lines) = run(
            Err(ExecError::TimedOut(Duration::from_secs(1))),
            hook(OnError::Fail),
        );
        assert!(outcome.may_have_run);
        assert_eq!(outcome.exit_code, None);
        assert_eq!(lines[1]["error"], "timed out after 1s");
        assert!(lines[1].get("exitCode").is_none());
    }

    #[test]
    fn a_defect_fails_without_exec_and_without_the_running_line() {
        let mut defective = hook(OnError::Fail);
        defective.defect = Some(HookDefect::NoSuchContainer {
            pod: pod(),
            container: "sidecar".into(),
        });
        let (outcome, lines) = run(Ok(output(0, b"must not run")), defective);
        assert!(!outcome.may_have_run);
        assert!(matches!(outcome.failure, Some(HookFailure::Defect(_))));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["@message"], "Error executing hook");
        assert!(lines[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("no such container: \"sidecar\""));
    }

    #[test]
    fn upgrade_rejection_did_not_run_the_command() {
        let (outcome, _) = run(
            Err(ExecError::UpgradeRejected {
                code: 403,
                message: "forbidden".into(),
            }),
            hook(OnError::Fail),
        );
        assert!(!outcome.may_have_run);
    }

    #[test]
    fn long_output_is_cut_for_the_log_and_the_cut_is_marked() {
        let mut captured = Captured::default();
        captured.push(&vec![b'x'; 100_000], OUTPUT_LIMIT);
        let text = output_for_log(&captured);
        assert!(text.len() < 16 * 1024);
        assert!(text.ends_with(&format!(
            "… [output truncated: showing the first {LOGGED_OUTPUT_LIMIT} of 100000 bytes]"
        )));
    }

    #[test]
    fn short_output_that_was_cut_at_capture_is_marked_too() {
        let captured = Captured {
            bytes: b"abc".to_vec(),
            dropped: 7,
        };
        assert_eq!(
            output_for_log(&captured),
            "abc… [output truncated: showing the first 3 of 10 bytes]"
        );
    }
}
