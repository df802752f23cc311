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
mod tests;
