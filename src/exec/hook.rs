//! One resolved hook run through an [`Executor`] and logged the way Velero logs its exec
//! hooks: [`run_hook`] → [`HookOutcome`]. The hook's [`crate::hooks::Execution`] adds what
//! Velero does not do: wait for the container ([`super::wait`]), retry failures that cannot
//! have run the command ([`super::retry`]) and stop a timed-out command ([`super::kill`]).
//!
//! Log lines (Velero plugin format through [`crate::velero::log`]), each with the hook fields
//! `hookSource`, `hookType` (`exec`), `hookPhase`, `hookName`, `hookContainer`, `hookCommand`,
//! `hookOnError`, `hookTimeout` plus `namespace` and `pod` (which Velero 1.15+ omits):
//! 1. with a wait, and only when the container is not there at the first look: info
//!    `waiting up to 10s for container "db" to be running (waiting: ContainerCreating)` with
//!    `containerState` and `hookWaitTimeout`, then info `container "db" is running after
//!    1.2s` with `waitedMs` (a failed wait goes straight to line 5);
//! 2. info `running exec hook` with `hookAttempt` (1-based) — before every exec attempt (not
//!    for a hook with a defect: Velero's pre-exec checks fail before it logs this line either);
//! 3. info `stdout: …` / `stderr: …` with `hookAttempt` — after the command ran, when
//!    non-empty;
//! 4. for an attempt that will be retried: **warn** (never error: Velero counts every error
//!    line as a backup error, and a retried failure is not one yet) `exec hook attempt 1 of 4
//!    failed: <error>; retrying in 1s` with `hookAttempt`, `error`, `exitCode` (when there is
//!    one) and `retryDelayMs`;
//!    for a timed-out kill-on-timeout attempt: info `sent TERM to pid N`, then info `process N
//!    exited after TERM` or warn `killed process N after 5s` (info `process N had already
//!    exited …`, or warn `could not kill …` / `cannot kill …` when it could not be done), each
//!    with `pid` where known;
//! 5. the final outcome: info `exec hook succeeded`, or `Error executing hook` with `error` —
//!    at error level for an `on-error: Fail` hook, warn for `Continue` — both with `exitCode`
//!    (when there is one), `durationMs` and `hookAttempt` (when an exec was attempted).
//!
//! Deciding what a failure means for the pod's other hooks is the state machine's job; this
//! module only reports.

use std::time::{Duration, Instant};

use crate::hooks::{
    format_go_duration, render_command, HookDefect, OnError, PodRef, ResolvedHook, WaitFor,
    KILL_GRACE,
};

use super::kill::{self, KillReport};
use super::{retry, wait, Captured, ExecAttempt, ExecError, ExecOutput, ExecRequest, Executor};

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
    /// The command's exit code (of the last attempt), when it ran to completion.
    pub exit_code: Option<i32>,
    /// Wall-clock time of the exec calls, added up over the attempts (zero when nothing was
    /// executed). The wait for the container, the backoff between attempts and a kill after a
    /// timeout are not included.
    pub duration: Duration,
    /// Whether the command may have started in the container in any attempt: true when it
    /// ran, timed out or its stream dropped; false when it certainly did not start (defect,
    /// failed wait, pod or container not found, upgrade refused, API server unreachable, no
    /// client). A pre hook that may have run may have frozen something, so the pod's post
    /// hooks must still run.
    pub may_have_run: bool,
    /// Captured stdout of the last attempt (empty when it did not complete).
    pub stdout: Captured,
    /// Captured stderr of the last attempt (empty when it did not complete), without
    /// kill-on-timeout's PID marker.
    pub stderr: Captured,
    /// How many exec attempts were made: 0 when none was (a defect, a failed wait), 1 plus
    /// the retries made otherwise. `may_have_run` is true if any of them may have run.
    pub attempts: u32,
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

/// Runs `hook` in `pod` through `executor` and logs it like Velero (see the module docs):
/// first the wait for the container if the hook asks for one, then up to
/// [`retry::max_attempts`] exec attempts, each bounded by the hook's timeout (the wait is not
/// counted in it). Never fails: every failure is in the returned [`HookOutcome`].
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
        let outcome = not_attempted(HookFailure::Defect(defect.clone()));
        log_result(failure_level, &fields, &outcome);
        return outcome;
    }

    if let Some(wait) = hook.execution.wait {
        if let Err(error) = wait_for_container(executor, pod, hook, wait, &fields).await {
            let outcome = not_attempted(HookFailure::Exec(error));
            log_result(failure_level, &fields, &outcome);
            return outcome;
        }
    }

    let max_attempts = retry::max_attempts(&hook.execution);
    let mut may_have_run = false;
    let mut duration = Duration::ZERO;
    let mut attempt = 1;
    loop {
        hook_event!(
            tracing::Level::INFO,
            &fields,
            hookAttempt = attempt,
            "running exec hook"
        );
        let (result, exec_time) = run_attempt(executor, pod, hook, &fields).await;
        duration += exec_time;
        may_have_run |= match &result {
            Ok(_) => true,
            Err(error) => error.may_have_run(),
        };
        if let Ok(output) = &result {
            log_output(&fields, attempt, "stdout", &output.stdout);
            log_output(&fields, attempt, "stderr", &output.stderr);
        }
        if let Some(delay) = retry::next_attempt_after(&hook.execution, attempt, &result) {
            let (error, exit_code) = match &result {
                Ok(output) => (
                    HookFailure::ExitCode(output.exit_code).to_string(),
                    Some(output.exit_code),
                ),
                Err(error) => (error.to_string(), None),
            };
            let message = format!(
                "exec hook attempt {attempt} of {max_attempts} failed: {error}; retrying in {}",
                format_go_duration(delay)
            );
            hook_event!(
                tracing::Level::WARN,
                &fields,
                hookAttempt = attempt,
                error = error.as_str(),
                exitCode = exit_code,
                retryDelayMs = millis(delay),
                "{}",
                message
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
            continue;
        }
        let outcome = match result {
            Ok(output) => HookOutcome {
                failure: (output.exit_code != 0).then_some(HookFailure::ExitCode(output.exit_code)),
                exit_code: Some(output.exit_code),
                duration,
                may_have_run,
                stdout: output.stdout,
                stderr: output.stderr,
                attempts: attempt,
            },
            Err(error) => HookOutcome {
                failure: Some(HookFailure::Exec(error)),
                exit_code: None,
                duration,
                may_have_run,
                stdout: Captured::default(),
                stderr: Captured::default(),
                attempts: attempt,
            },
        };
        log_result(failure_level, &fields, &outcome);
        return outcome;
    }
}

/// The outcome of a hook that failed before any exec.
fn not_attempted(failure: HookFailure) -> HookOutcome {
    HookOutcome {
        failure: Some(failure),
        exit_code: None,
        duration: Duration::ZERO,
        may_have_run: false,
        stdout: Captured::default(),
        stderr: Captured::default(),
        attempts: 0,
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The wait before the first attempt, with its log lines (module docs, line 1).
async fn wait_for_container(
    executor: &dyn Executor,
    pod: &PodRef,
    hook: &ResolvedHook,
    wait: WaitFor,
    fields: &HookFields<'_>,
) -> Result<(), ExecError> {
    let wanted = wait::wanted(wait);
    let timeout = format_go_duration(wait.timeout);
    let waited = wait::wait_for_container(
        executor,
        &pod.namespace,
        &pod.name,
        &hook.container,
        wait,
        |state| {
            let message = format!(
                "waiting up to {timeout} for container {:?} to be {wanted} ({state})",
                hook.container
            );
            hook_event!(
                tracing::Level::INFO,
                fields,
                containerState = state,
                hookWaitTimeout = timeout.as_str(),
                "{}",
                message
            );
        },
    )
    .await?;
    if waited.first_state.is_some() {
        let message = format!(
            "container {:?} is {wanted} after {}",
            hook.container,
            format_go_duration(round_to_millis(waited.duration))
        );
        hook_event!(
            tracing::Level::INFO,
            fields,
            waitedMs = millis(waited.duration),
            "{}",
            message
        );
    }
    Ok(())
}

fn round_to_millis(duration: Duration) -> Duration {
    Duration::from_millis(millis(duration))
}

/// One exec attempt (under the kill-on-timeout wrapper when the hook asks for it) and the
/// time the exec took (a kill after a timeout not included).
async fn run_attempt(
    executor: &dyn Executor,
    pod: &PodRef,
    hook: &ResolvedHook,
    fields: &HookFields<'_>,
) -> (Result<ExecOutput, ExecError>, Duration) {
    let mut request = ExecRequest {
        namespace: pod.namespace.clone(),
        pod: pod.name.clone(),
        container: hook.container.clone(),
        command: hook.command.clone(),
        timeout: hook.timeout,
    };
    let started = Instant::now();
    if !hook.execution.kill_on_timeout {
        let result = executor.exec(&request).await;
        let exec_time = exec_time(&result, started);
        return (result, exec_time);
    }

    request.command = kill::wrap(&hook.command);
    let ExecAttempt {
        result,
        partial_stderr,
    } = executor.exec_keeping_partial_stderr(&request).await;
    let exec_time = exec_time(&result, started);
    // Only a failed attempt needs the PID; a successful one has its stderr in the output.
    let pid = kill::pid_from(&partial_stderr);
    let result = match result {
        Ok(mut output) => {
            kill::strip_marker(&mut output.stderr);
            Ok(output)
        }
        // The wrapper itself could not start (the marker never came): no shell.
        Err(ExecError::RemoteFailure(message)) if pid.is_none() && message.contains("/bin/sh") => {
            Err(ExecError::KillNeedsShell {
                container: hook.container.clone(),
                message,
            })
        }
        Err(ExecError::TimedOut(after)) => {
            stop_timed_out_command(executor, pod, hook, fields, pid).await;
            Err(ExecError::TimedOut(after))
        }
        Err(other) => Err(other),
    };
    (result, exec_time)
}

fn exec_time(result: &Result<ExecOutput, ExecError>, started: Instant) -> Duration {
    match result {
        Ok(output) => output.duration,
        Err(_) => started.elapsed(),
    }
}

/// After a kill-on-timeout attempt timed out: TERM, then KILL after [`KILL_GRACE`], through a
/// second exec, and log what happened (module docs, line 4). The hook's failure stays the
/// timeout whatever happens here.
async fn stop_timed_out_command(
    executor: &dyn Executor,
    pod: &PodRef,
    hook: &ResolvedHook,
    fields: &HookFields<'_>,
    pid: Option<u32>,
) {
    let Some(pid) = pid else {
        hook_event!(
            tracing::Level::WARN,
            fields,
            "cannot kill the timed-out hook command: its PID had not arrived when the timeout fired"
        );
        return;
    };
    let request = ExecRequest {
        namespace: pod.namespace.clone(),
        pod: pod.name.clone(),
        container: hook.container.clone(),
        command: kill::kill_command(pid, KILL_GRACE),
        timeout: KILL_GRACE + kill::KILL_EXEC_SLACK,
    };
    let report = match executor.exec(&request).await {
        Ok(output) if output.exit_code == 0 => kill::parse_kill_output(&output.stdout.text()),
        Ok(output) => KillReport::Failed(format!(
            "the kill command exited with code {}: {}",
            output.exit_code,
            output.stderr.text().trim()
        )),
        Err(error) => KillReport::Failed(error.to_string()),
    };
    let sent_term = || {
        hook_event!(
            tracing::Level::INFO,
            fields,
            pid = pid,
            "sent TERM to pid {}",
            pid
        )
    };
    match report {
        KillReport::AlreadyGone => hook_event!(
            tracing::Level::INFO,
            fields,
            pid = pid,
            "process {} had already exited when its hook timed out",
            pid
        ),
        KillReport::ExitedAfterTerm => {
            sent_term();
            hook_event!(
                tracing::Level::INFO,
                fields,
                pid = pid,
                "process {} exited after TERM",
                pid
            );
        }
        KillReport::Killed => {
            sent_term();
            let grace = format_go_duration(KILL_GRACE);
            hook_event!(
                tracing::Level::WARN,
                fields,
                pid = pid,
                "killed process {} after {}",
                pid,
                grace
            );
        }
        KillReport::Failed(reason) => hook_event!(
            tracing::Level::WARN,
            fields,
            pid = pid,
            error = reason.as_str(),
            "could not kill process {} of the timed-out hook: {}",
            pid,
            reason
        ),
    }
}

/// The final line: success at info, failure at `failure_level`.
fn log_result(failure_level: tracing::Level, fields: &HookFields<'_>, outcome: &HookOutcome) {
    let duration_ms = millis(outcome.duration);
    let attempt = (outcome.attempts > 0).then_some(outcome.attempts);
    match outcome.error_text() {
        None => hook_event!(
            tracing::Level::INFO,
            fields,
            exitCode = outcome.exit_code,
            durationMs = duration_ms,
            hookAttempt = attempt,
            "exec hook succeeded"
        ),
        Some(error) => hook_event!(
            failure_level,
            fields,
            exitCode = outcome.exit_code,
            durationMs = duration_ms,
            hookAttempt = attempt,
            error = error.as_str(),
            "Error executing hook"
        ),
    }
}

/// `stdout: …` / `stderr: …` at info, when the stream carried anything.
fn log_output(fields: &HookFields<'_>, attempt: u32, stream: &str, captured: &Captured) {
    if captured.is_empty() {
        return;
    }
    let message = format!("{stream}: {}", output_for_log(captured));
    hook_event!(
        tracing::Level::INFO,
        fields,
        hookAttempt = attempt,
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
            run_once: None,
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

    // ----- wait, retries and kill-on-timeout, against a scripted sequence -----

    /// Answers execs from a queue (one entry per call, in order) and records every request;
    /// answers looks at the container from a second queue (the last one repeats).
    #[derive(Default)]
    struct Sequence {
        execs: std::sync::Mutex<std::collections::VecDeque<ExecAttempt>>,
        looks: std::sync::Mutex<
            std::collections::VecDeque<Result<super::super::ContainerObservation, ExecError>>,
        >,
        requests: std::sync::Mutex<Vec<ExecRequest>>,
    }

    impl Sequence {
        fn answering(results: Vec<Result<ExecOutput, ExecError>>) -> Self {
            let sequence = Sequence::default();
            for result in results {
                sequence.then(result, b"");
            }
            sequence
        }

        fn then(&self, result: Result<ExecOutput, ExecError>, partial_stderr: &[u8]) {
            let mut captured = Captured::default();
            captured.push(partial_stderr, OUTPUT_LIMIT);
            self.execs.lock().unwrap().push_back(ExecAttempt {
                result,
                partial_stderr: captured,
            });
        }

        fn commands(&self) -> Vec<Vec<String>> {
            let requests = self.requests.lock().unwrap();
            requests.iter().map(|r| r.command.clone()).collect()
        }
    }

    #[async_trait::async_trait]
    impl Executor for Sequence {
        async fn exec(&self, request: &ExecRequest) -> Result<ExecOutput, ExecError> {
            self.exec_keeping_partial_stderr(request).await.result
        }

        async fn exec_keeping_partial_stderr(&self, request: &ExecRequest) -> ExecAttempt {
            self.requests.lock().unwrap().push(request.clone());
            let next = self.execs.lock().unwrap().pop_front();
            next.expect("no more scripted execs")
        }

        async fn observe_container(
            &self,
            _namespace: &str,
            _pod: &str,
            _container: &str,
        ) -> Result<super::super::ContainerObservation, ExecError> {
            let mut looks = self.looks.lock().unwrap();
            if looks.len() > 1 {
                looks.pop_front().unwrap()
            } else {
                looks.front().cloned().expect("no scripted looks")
            }
        }
    }

    fn unavailable() -> Result<ExecOutput, ExecError> {
        Err(ExecError::UpgradeRejected {
            code: 503,
            message: "the server is currently unable to handle the request".into(),
        })
    }

    fn with_execution(on_error: OnError, execution: crate::hooks::Execution) -> ResolvedHook {
        ResolvedHook {
            execution,
            ..hook(on_error)
        }
    }

    fn retrying(retries: u32, exit_codes: &[i32]) -> crate::hooks::Execution {
        crate::hooks::Execution {
            retries,
            retry_backoff: Duration::from_millis(100),
            retry_on_exit_codes: exit_codes.to_vec(),
            ..Default::default()
        }
    }

    /// Runs a hook on a paused clock (backoffs and waits take no real time).
    async fn run_sequence(
        executor: &Sequence,
        hook: &ResolvedHook,
    ) -> (HookOutcome, Vec<serde_json::Value>) {
        let log = MemoryLog::default();
        let guard = log.install(tracing_subscriber::filter::LevelFilter::DEBUG);
        let outcome = run_hook(executor, &pod(), hook).await;
        drop(guard);
        (outcome, log.lines())
    }

    fn message_list(lines: &[serde_json::Value]) -> Vec<String> {
        lines
            .iter()
            .map(|l| l["@message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_with_doubling_backoff_and_logged_per_attempt() {
        let executor = Sequence::answering(vec![unavailable(), unavailable(), Ok(output(0, b""))]);
        let started = tokio::time::Instant::now();
        let (outcome, lines) =
            run_sequence(&executor, &with_execution(OnError::Fail, retrying(3, &[]))).await;
        assert!(outcome.succeeded());
        assert_eq!(outcome.attempts, 3);
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(300),
            "100ms + 200ms"
        );
        assert_eq!(
            message_list(&lines),
            [
                "running exec hook",
                "exec hook attempt 1 of 4 failed: unable to upgrade connection: the server is \
                 currently unable to handle the request; retrying in 100ms",
                "running exec hook",
                "exec hook attempt 2 of 4 failed: unable to upgrade connection: the server is \
                 currently unable to handle the request; retrying in 200ms",
                "running exec hook",
                "exec hook succeeded",
            ]
        );
        let attempts: Vec<_> = lines.iter().map(|l| l["hookAttempt"].clone()).collect();
        assert_eq!(attempts, [1, 1, 2, 2, 3, 3]);
        assert_eq!(lines[1]["@level"], "warn");
        assert_eq!(lines[1]["retryDelayMs"], 100);
        assert_eq!(lines[3]["retryDelayMs"], 200);
        assert!(lines.iter().all(|l| l["@level"] != "error"));
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_final_failure_is_logged_at_the_hooks_failure_level() {
        let executor = Sequence::answering(vec![unavailable(), unavailable(), unavailable()]);
        let (outcome, lines) =
            run_sequence(&executor, &with_execution(OnError::Fail, retrying(2, &[]))).await;
        assert_eq!(outcome.attempts, 3);
        assert!(!outcome.may_have_run);
        let levels: Vec<_> = lines.iter().map(|l| l["@level"].clone()).collect();
        assert_eq!(
            levels,
            ["info", "warn", "info", "warn", "info", "error"],
            "{lines:#?}"
        );
        assert_eq!(lines[5]["hookAttempt"], 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_that_is_not_transient_is_not_retried() {
        let executor = Sequence::answering(vec![Err(ExecError::UpgradeRejected {
            code: 403,
            message: "forbidden".into(),
        })]);
        let (outcome, lines) =
            run_sequence(&executor, &with_execution(OnError::Fail, retrying(3, &[]))).await;
        assert_eq!(outcome.attempts, 1);
        assert_eq!(executor.commands().len(), 1);
        assert_eq!(
            message_list(&lines),
            ["running exec hook", "Error executing hook"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_command_that_may_have_run_is_never_run_again() {
        for error in [
            ExecError::TimedOut(Duration::from_secs(30)),
            ExecError::StreamDropped("connection reset".into()),
        ] {
            let executor = Sequence::answering(vec![Err(error)]);
            let (outcome, _) =
                run_sequence(&executor, &with_execution(OnError::Fail, retrying(3, &[1]))).await;
            assert_eq!(outcome.attempts, 1);
            assert!(outcome.may_have_run);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_non_zero_exit_is_retried_only_when_its_code_is_listed() {
        let executor = Sequence::answering(vec![Ok(output(1, b""))]);
        let (outcome, _) =
            run_sequence(&executor, &with_execution(OnError::Fail, retrying(3, &[]))).await;
        assert_eq!((outcome.attempts, outcome.exit_code), (1, Some(1)));

        let executor =
            Sequence::answering(vec![Ok(output(75, b"busy\n")), Ok(output(0, b"frozen\n"))]);
        let (outcome, lines) = run_sequence(
            &executor,
            &with_execution(OnError::Fail, retrying(3, &[75])),
        )
        .await;
        assert!(outcome.succeeded());
        assert_eq!(outcome.attempts, 2);
        assert_eq!(outcome.stdout.bytes, b"frozen\n");
        assert_eq!(
            message_list(&lines),
            [
                "running exec hook",
                "stdout: busy\n",
                "exec hook attempt 1 of 4 failed: command terminated with exit code 75; \
                 retrying in 100ms",
                "running exec hook",
                "stdout: frozen\n",
                "exec hook succeeded",
            ]
        );
        assert_eq!(lines[1]["hookAttempt"], 1);
        assert_eq!(lines[2]["exitCode"], 75);
        assert_eq!(lines[4]["hookAttempt"], 2);
    }

    #[tokio::test(start_paused = true)]
    async fn may_have_run_holds_if_any_attempt_may_have_run() {
        let executor = Sequence::answering(vec![Ok(output(75, b"")), unavailable()]);
        let (outcome, _) = run_sequence(
            &executor,
            &with_execution(OnError::Fail, retrying(1, &[75])),
        )
        .await;
        assert_eq!(outcome.attempts, 2);
        assert!(matches!(
            outcome.failure,
            Some(HookFailure::Exec(ExecError::UpgradeRejected {
                code: 503,
                ..
            }))
        ));
        assert!(outcome.may_have_run, "attempt 1 ran the command");
    }

    #[tokio::test(start_paused = true)]
    async fn duration_adds_up_the_attempts_without_the_backoff() {
        let executor = Sequence::answering(vec![Ok(output(75, b"")), Ok(output(0, b""))]);
        let (outcome, lines) = run_sequence(
            &executor,
            &with_execution(OnError::Fail, retrying(1, &[75])),
        )
        .await;
        assert_eq!(outcome.duration, Duration::from_millis(24));
        assert_eq!(lines.last().unwrap()["durationMs"], 24);
    }

    fn waiting_for(ready: bool) -> crate::hooks::Execution {
        crate::hooks::Execution {
            wait: Some(crate::hooks::WaitFor {
                timeout: Duration::from_secs(10),
                ready,
            }),
            ..Default::default()
        }
    }

    fn looked(
        state: super::super::ContainerState,
    ) -> Result<super::super::ContainerObservation, ExecError> {
        Ok(super::super::ContainerObservation {
            pod_phase: Some("Running".into()),
            state,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_hook_runs_once_its_container_is_running_and_says_it_waited() {
        let executor = Sequence::answering(vec![Ok(output(0, b""))]);
        executor.looks.lock().unwrap().extend([
            looked(super::super::ContainerState::Waiting {
                reason: Some("ContainerCreating".into()),
            }),
            looked(super::super::ContainerState::Running { ready: false }),
        ]);
        let (outcome, lines) = run_sequence(
            &executor,
            &with_execution(OnError::Fail, waiting_for(false)),
        )
        .await;
        assert!(outcome.succeeded());
        assert_eq!(
            message_list(&lines),
            [
                "waiting up to 10s for container \"main\" to be running (waiting: ContainerCreating)",
                "container \"main\" is running after 200ms",
                "running exec hook",
                "exec hook succeeded",
            ]
        );
        assert_eq!(lines[0]["containerState"], "waiting: ContainerCreating");
        assert_eq!(lines[0]["hookWaitTimeout"], "10s");
        assert_eq!(lines[1]["waitedMs"], 200);
    }

    #[tokio::test(start_paused = true)]
    async fn a_container_already_running_is_not_mentioned() {
        let executor = Sequence::answering(vec![Ok(output(0, b""))]);
        executor
            .looks
            .lock()
            .unwrap()
            .push_back(looked(super::super::ContainerState::Running {
                ready: true,
            }));
        let (_, lines) =
            run_sequence(&executor, &with_execution(OnError::Fail, waiting_for(true))).await;
        assert_eq!(
            message_list(&lines),
            ["running exec hook", "exec hook succeeded"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_wait_runs_nothing_and_fails_the_hook() {
        let executor = Sequence::default();
        executor
            .looks
            .lock()
            .unwrap()
            .push_back(looked(super::super::ContainerState::Running {
                ready: false,
            }));
        let (outcome, lines) =
            run_sequence(&executor, &with_execution(OnError::Fail, waiting_for(true))).await;
        assert_eq!(outcome.attempts, 0);
        assert!(!outcome.may_have_run);
        assert!(executor.commands().is_empty());
        assert_eq!(
            outcome.error_text().as_deref(),
            Some(
                "container \"main\" of pod ns/db-0 did not become ready within 10s \
                 (running, not ready)"
            )
        );
        let last = lines.last().unwrap();
        assert_eq!(last["@message"], "Error executing hook");
        assert_eq!(last["@level"], "error");
        assert!(last.get("hookAttempt").is_none());
        assert!(!message_list(&lines).contains(&"running exec hook".to_owned()));
    }

    fn killing() -> crate::hooks::Execution {
        crate::hooks::Execution {
            kill_on_timeout: true,
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn kill_on_timeout_wraps_the_command_and_strips_the_pid_marker() {
        let executor = Sequence::default();
        let mut answer = output(0, b"frozen\n");
        answer
            .stderr
            .push(b"@quiesce-pid=31@\nnote\n", OUTPUT_LIMIT);
        executor.then(Ok(answer), b"@quiesce-pid=31@\nnote\n");
        let (outcome, lines) =
            run_sequence(&executor, &with_execution(OnError::Fail, killing())).await;
        assert!(outcome.succeeded());
        assert_eq!(outcome.stderr.bytes, b"note\n");
        assert_eq!(
            executor.commands()[0],
            kill::wrap(&hook(OnError::Fail).command)
        );
        assert!(message_list(&lines).contains(&"stderr: note\n".to_owned()));
        assert_eq!(lines[0]["hookCommand"], "[/sbin/fsfreeze --freeze /data]");
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_out_hook_is_sent_term_then_kill_through_a_second_exec() {
        let executor = Sequence::default();
        executor.then(
            Err(ExecError::TimedOut(Duration::from_secs(30))),
            b"@quiesce-pid=4242@\n",
        );
        executor.then(Ok(output(0, b"term\nkilled\n")), b"");
        let (outcome, lines) =
            run_sequence(&executor, &with_execution(OnError::Fail, killing())).await;
        assert_eq!(outcome.error_text().as_deref(), Some("timed out after 30s"));
        assert!(outcome.may_have_run);
        let kill_request = executor.requests.lock().unwrap()[1].clone();
        assert_eq!(kill_request.command, kill::kill_command(4242, KILL_GRACE));
        assert_eq!(kill_request.container, "main");
        assert_eq!(kill_request.timeout, KILL_GRACE + kill::KILL_EXEC_SLACK);
        assert_eq!(
            message_list(&lines),
            [
                "running exec hook",
                "sent TERM to pid 4242",
                "killed process 4242 after 5s",
                "Error executing hook",
            ]
        );
        assert_eq!(lines[1]["pid"], 4242);
        assert_eq!(lines[2]["@level"], "warn");
        assert_eq!(lines[3]["error"], "timed out after 30s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_process_that_exits_on_term_is_reported_so() {
        let executor = Sequence::default();
        executor.then(
            Err(ExecError::TimedOut(Duration::from_secs(1))),
            b"@quiesce-pid=7@\n",
        );
        executor.then(Ok(output(0, b"term\nexited\n")), b"");
        let (_, lines) =
            run_sequence(&executor, &with_execution(OnError::Continue, killing())).await;
        assert_eq!(
            message_list(&lines)[1..3],
            ["sent TERM to pid 7", "process 7 exited after TERM"]
        );
        assert!(lines[1..3].iter().all(|l| l["@level"] == "info"));
    }

    #[tokio::test(start_paused = true)]
    async fn without_the_pid_nothing_is_killed_and_that_is_logged() {
        let executor = Sequence::default();
        executor.then(Err(ExecError::TimedOut(Duration::from_secs(1))), b"");
        let (outcome, lines) =
            run_sequence(&executor, &with_execution(OnError::Fail, killing())).await;
        assert_eq!(executor.commands().len(), 1, "no kill exec");
        assert_eq!(outcome.error_text().as_deref(), Some("timed out after 1s"));
        assert_eq!(lines[1]["@level"], "warn");
        assert!(lines[1]["@message"]
            .as_str()
            .unwrap()
            .starts_with("cannot kill the timed-out hook command"));
    }

    #[tokio::test(start_paused = true)]
    async fn kill_on_timeout_in_a_container_without_a_shell_says_it_needs_one() {
        let message = "failed to exec in container: failed to start exec \"0\": OCI runtime exec \
                       failed: exec failed: unable to start container process: exec: \"/bin/sh\": \
                       stat /bin/sh: no such file or directory: unknown";
        let executor = Sequence::answering(vec![Err(ExecError::RemoteFailure(message.into()))]);
        let (outcome, _) = run_sequence(&executor, &with_execution(OnError::Fail, killing())).await;
        assert_eq!(
            outcome.error_text(),
            Some(format!(
                "kill-on-timeout needs /bin/sh in container \"main\": {message}"
            ))
        );
        assert!(!outcome.may_have_run);
    }
}
