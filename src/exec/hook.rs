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
//! A pre hook that holds a session ([`run_hook_holding_session`]) logs lines 1–5 up to its ready text
//! (`exec hook succeeded` without `exitCode`: the command runs on), then info `holding session
//! until the thaw: …` with `holdUntilOutput`. Should the session end on its own before the
//! thaw: warn `held session ended on its own …` with `heldMs`. Its end ([`end_held_session`],
//! with the post hook's fields and the session's command and container): info `ending held
//! session …` with `heldMs` and `thawedBy`, the session's `stdout:`/`stderr:` since its ready
//! text, the kill lines of line 4 if it did not exit and its PID is known, then info `held
//! session ended` or `Error executing hook`, each with `exitCode` (when there is one),
//! `durationMs` (from the end's start), `heldMs` and `thawedBy`.
//!
//! Deciding what a failure means for the pod's other hooks is the state machine's job; this
//! module only reports.

use std::time::{Duration, Instant};

use crate::hooks::{
    format_go_duration, render_command, HookDefect, OnError, PodRef, ResolvedHook, WaitFor,
    KILL_GRACE,
};

use super::kill::{self, KillReport};
use super::session::{self, EarlyExit, HeldSession, OpenFailure, SessionEndError, SessionFailure};
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
    /// A held session did not hold (no ready text), or did not end well.
    #[error(transparent)]
    Session(SessionFailure),
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
/// counted in it). A hook with `stdin` has it written, then stdin closed. Never fails: every
/// failure is in the returned [`HookOutcome`].
///
/// A hook that holds a session is meant for [`run_hook_holding_session`]; run here, its session is
/// ended as soon as it holds.
pub async fn run_hook(executor: &dyn Executor, pod: &PodRef, hook: &ResolvedHook) -> HookOutcome {
    run_hook_holding_session(executor, pod, hook).await.0
}

/// Runs a pre hook like [`run_hook`]; when it holds a session
/// ([`crate::hooks::Execution::hold_until_output`]) and its ready text came, the session is
/// returned, still running with stdin open, for [`end_held_session`] at the thaw. For any
/// other hook, or a session that did not hold, the second value is `None`.
pub async fn run_hook_holding_session(
    executor: &dyn Executor,
    pod: &PodRef,
    hook: &ResolvedHook,
) -> (HookOutcome, Option<HeldSession>) {
    let fields = HookFields::new(pod, hook);
    let failure_level = failure_level(hook.on_error);

    if let Some(defect) = &hook.defect {
        let outcome = not_attempted(HookFailure::Defect(defect.clone()));
        log_result(failure_level, &fields, &outcome);
        return (outcome, None);
    }

    if let Some(wait) = hook.execution.wait {
        if let Err(error) = wait_for_container(executor, pod, hook, wait, &fields).await {
            let outcome = not_attempted(HookFailure::Exec(error));
            log_result(failure_level, &fields, &outcome);
            return (outcome, None);
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
        let Attempt {
            result,
            session_failure,
            session,
            exec_time,
            partial_output,
        } = run_attempt(executor, pod, hook, &fields).await;
        duration += exec_time;
        may_have_run |= match &result {
            Ok(_) => true,
            Err(error) => error.may_have_run(),
        };
        let shown = match &result {
            Ok(output) => Some((&output.stdout, &output.stderr)),
            Err(_) => partial_output.as_ref().map(|(out, err)| (out, err)),
        };
        if let Some((stdout, stderr)) = shown {
            log_output(&fields, Some(attempt), "stdout", stdout);
            log_output(&fields, Some(attempt), "stderr", stderr);
        }
        let retry_after = match &session {
            Some(_) => None,
            None => retry::next_attempt_after(&hook.execution, attempt, &result),
        };
        if let Some(delay) = retry_after {
            let (error, exit_code) = match (&session_failure, &result) {
                (Some(failure), Ok(output)) => (failure.to_string(), Some(output.exit_code)),
                (_, Ok(output)) => (
                    HookFailure::ExitCode(output.exit_code).to_string(),
                    Some(output.exit_code),
                ),
                (_, Err(error)) => (error.to_string(), None),
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
                failure: match session_failure {
                    Some(failure) => Some(HookFailure::Session(failure)),
                    None => {
                        (output.exit_code != 0).then_some(HookFailure::ExitCode(output.exit_code))
                    }
                },
                // A held session has not exited.
                exit_code: session.is_none().then_some(output.exit_code),
                duration,
                may_have_run,
                stdout: output.stdout,
                stderr: output.stderr,
                attempts: attempt,
            },
            Err(error) => HookOutcome {
                failure: Some(match session_failure {
                    Some(failure) => HookFailure::Session(failure),
                    None => HookFailure::Exec(error),
                }),
                exit_code: None,
                duration,
                may_have_run,
                stdout: Captured::default(),
                stderr: Captured::default(),
                attempts: attempt,
            },
        };
        log_result(failure_level, &fields, &outcome);
        if let (Some(_), Some(ready)) = (&session, &hook.execution.hold_until_output) {
            hook_event!(
                tracing::Level::INFO,
                &fields,
                holdUntilOutput = ready.as_str(),
                "holding session until the thaw: {:?} appeared on its stdout, and the command \
                 runs on with stdin open",
                ready
            );
        }
        return (outcome, session);
    }
}

/// Ends a session held by a pre hook, at the thaw: `hook` is the post hook that ends it
/// ([`crate::hooks::ResolvedHook::ends_session`]) — its `stdin` is written to the session,
/// the session's stdin closed, and the session must exit within its `timeout`; its exit is
/// the hook's outcome. A session that does not exit has its stream closed, and its command
/// is stopped (TERM, then KILL) when its PID is known (its pre hook had kill-on-timeout).
/// `thawed_by` says why the thaw happens, for the log. A hook with a defect (its stdin uses an
/// unknown template variable) still ends the session, with no input, and fails with the
/// defect. Never fails: every failure is in the returned [`HookOutcome`].
pub async fn end_held_session(
    executor: &dyn Executor,
    pod: &PodRef,
    hook: &ResolvedHook,
    session: HeldSession,
    thawed_by: &str,
) -> HookOutcome {
    let fields = HookFields::new(pod, hook);
    let stdin = hook
        .defect
        .is_none()
        .then(|| hook.execution.stdin_bytes())
        .flatten();
    let how = match (stdin.is_some(), session.can_close_stdin()) {
        (true, true) => "writing its post stdin, then closing its stdin",
        (false, true) => "closing its stdin",
        (true, false) => {
            "writing its post stdin; its stdin cannot be closed (the API server speaks only \
             v4.channel.k8s.io), so the input must end it"
        }
        (false, false) => {
            "its stdin cannot be closed (the API server speaks only v4.channel.k8s.io) and \
             there is no post stdin to end it"
        }
    };
    hook_event!(
        tracing::Level::INFO,
        &fields,
        heldMs = millis(session.held()),
        thawedBy = thawed_by,
        "ending held session ({}): {}",
        thawed_by,
        how
    );
    let pid = session.pid();
    let end = session.end(stdin, hook.timeout).await;
    log_output(&fields, None, "stdout", &end.stdout);
    log_output(&fields, None, "stderr", &end.stderr);
    let exit_code = end.result.as_ref().ok().copied();
    let failure = match end.result {
        Ok(0) => None,
        Ok(code) => Some(HookFailure::ExitCode(code)),
        Err(SessionEndError::Session(failure)) => {
            if matches!(failure, SessionFailure::DidNotExit { .. }) && pid.is_some() {
                stop_timed_out_command(executor, pod, hook, &fields, pid).await;
            }
            Some(HookFailure::Session(failure))
        }
        Err(SessionEndError::Exec(error)) => Some(HookFailure::Exec(error)),
    };
    // The session was ended without its input: the invalid input is the failure to report.
    let failure = hook.defect.clone().map(HookFailure::Defect).or(failure);
    let outcome = HookOutcome {
        failure,
        exit_code,
        duration: end.duration,
        may_have_run: true,
        stdout: end.stdout,
        stderr: end.stderr,
        attempts: 0,
    };
    let held_ms = millis(end.held);
    match outcome.error_text() {
        None => hook_event!(
            tracing::Level::INFO,
            &fields,
            exitCode = outcome.exit_code,
            durationMs = millis(outcome.duration),
            heldMs = held_ms,
            thawedBy = thawed_by,
            "held session ended"
        ),
        Some(error) => hook_event!(
            failure_level(hook.on_error),
            &fields,
            exitCode = outcome.exit_code,
            durationMs = millis(outcome.duration),
            heldMs = held_ms,
            thawedBy = thawed_by,
            error = error.as_str(),
            "Error executing hook"
        ),
    }
    outcome
}

/// The level of a failed hook's final line.
fn failure_level(on_error: OnError) -> tracing::Level {
    match on_error {
        OnError::Fail => tracing::Level::ERROR,
        // Velero counts every error-level line of a backup as a backup error and marks the
        // backup PartiallyFailed. A `Continue` hook's failure is tolerated by definition, so
        // it is a warning; only a failure that stops the pod's hooks is an error.
        OnError::Continue => tracing::Level::WARN,
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

/// One attempt's end.
struct Attempt {
    /// The command's end as retries see it: its output (for a held session, the output up to
    /// its ready text, exit code 0), or the exec's error.
    result: Result<ExecOutput, ExecError>,
    /// Set when the attempt failed as a session: its failure replaces the result's.
    session_failure: Option<SessionFailure>,
    /// The session the attempt holds.
    session: Option<HeldSession>,
    /// Time spent in the exec (a kill after a timeout not included).
    exec_time: Duration,
    /// Output received before an error, to log (a session that never became ready).
    partial_output: Option<(Captured, Captured)>,
}

impl Attempt {
    fn of(result: Result<ExecOutput, ExecError>, exec_time: Duration) -> Self {
        Attempt {
            result,
            session_failure: None,
            session: None,
            exec_time,
            partial_output: None,
        }
    }
}

/// One exec attempt: the command alone, with its stdin, or as a session held until its ready
/// text — under the kill-on-timeout wrapper when the hook asks for it.
async fn run_attempt(
    executor: &dyn Executor,
    pod: &PodRef,
    hook: &ResolvedHook,
    fields: &HookFields<'_>,
) -> Attempt {
    let wrapped = hook.execution.kill_on_timeout;
    let request = ExecRequest {
        namespace: pod.namespace.clone(),
        pod: pod.name.clone(),
        container: hook.container.clone(),
        command: if wrapped {
            kill::wrap(&hook.command)
        } else {
            hook.command.clone()
        },
        timeout: hook.timeout,
    };
    if let Some(ready) = &hook.execution.hold_until_output {
        return open_attempt(executor, pod, hook, fields, &request, ready).await;
    }
    let stdin = hook.execution.stdin_bytes();
    let started = Instant::now();
    if !wrapped && stdin.is_none() {
        let result = executor.exec(&request).await;
        let exec_time = exec_time(&result, started);
        return Attempt::of(result, exec_time);
    }
    let ExecAttempt {
        result,
        partial_stderr,
    } = match &stdin {
        Some(stdin) => session::exec_with_stdin(executor, &request, stdin).await,
        None => executor.exec_keeping_partial_stderr(&request).await,
    };
    let exec_time = exec_time(&result, started);
    if !wrapped {
        return Attempt::of(result, exec_time);
    }
    // Only a failed attempt needs the PID; a successful one has its stderr in the output.
    let pid = kill::pid_from(&partial_stderr);
    let result = match result {
        Ok(mut output) => {
            kill::strip_marker(&mut output.stderr);
            Ok(output)
        }
        Err(error) => {
            let error = needs_shell(hook, pid, error);
            if matches!(error, ExecError::TimedOut(_) | ExecError::StdinNotClosed(_)) {
                stop_timed_out_command(executor, pod, hook, fields, pid).await;
            }
            Err(error)
        }
    };
    Attempt::of(result, exec_time)
}

/// The wrapper itself could not start (the marker never came): no shell.
fn needs_shell(hook: &ResolvedHook, pid: Option<u32>, error: ExecError) -> ExecError {
    match error {
        ExecError::RemoteFailure(message) if pid.is_none() && message.contains("/bin/sh") => {
            ExecError::KillNeedsShell {
                container: hook.container.clone(),
                message,
            }
        }
        other => other,
    }
}

/// One attempt of a pre hook that holds a session: its stdin written, its ready text waited
/// for. A session that does not become ready is ended (and stopped, with kill-on-timeout).
async fn open_attempt(
    executor: &dyn Executor,
    pod: &PodRef,
    hook: &ResolvedHook,
    fields: &HookFields<'_>,
    request: &ExecRequest,
    ready: &str,
) -> Attempt {
    let wrapped = hook.execution.kill_on_timeout;
    let stdin = hook.execution.stdin_bytes();
    let opening = session::open(
        executor,
        request,
        stdin.as_deref(),
        ready,
        early_exit_reporter(pod, hook),
    )
    .await;
    let stdout = opening.stdout;
    let mut stderr = opening.stderr;
    let pid = if wrapped {
        let pid = kill::pid_from(&stderr);
        kill::strip_marker(&mut stderr);
        pid
    } else {
        None
    };
    let output = |exit_code, stdout, stderr| ExecOutput {
        exit_code,
        stdout,
        stderr,
        duration: opening.duration,
    };
    let mut attempt = match opening.result {
        Ok(session) => Attempt {
            session: Some(session.with_pid(pid)),
            ..Attempt::of(Ok(output(0, stdout, stderr)), opening.duration)
        },
        Err(OpenFailure::ExitedBeforeReady(exit_code)) => Attempt {
            session_failure: Some(SessionFailure::ExitedBeforeReady {
                ready: ready.to_owned(),
                exit_code,
            }),
            ..Attempt::of(Ok(output(exit_code, stdout, stderr)), opening.duration)
        },
        Err(OpenFailure::NotReady) => Attempt {
            session_failure: Some(SessionFailure::NotReady {
                ready: ready.to_owned(),
                after: hook.timeout,
            }),
            partial_output: Some((stdout, stderr)),
            ..Attempt::of(Err(ExecError::TimedOut(hook.timeout)), opening.duration)
        },
        Err(OpenFailure::Exec(error)) => Attempt {
            partial_output: Some((stdout, stderr)),
            ..Attempt::of(Err(needs_shell(hook, pid, error)), opening.duration)
        },
    };
    let timed_out = matches!(attempt.result, Err(ExecError::TimedOut(_)));
    if wrapped && timed_out {
        stop_timed_out_command(executor, pod, hook, fields, pid).await;
    }
    attempt.exec_time = opening.duration;
    attempt
}

/// The warning a held session's task logs if the session ends on its own before the thaw.
fn early_exit_reporter(pod: &PodRef, hook: &ResolvedHook) -> EarlyExit {
    let (pod, hook) = (pod.clone(), hook.clone());
    Box::new(move |held, result| {
        let fields = HookFields::new(&pod, &hook);
        let how = match result {
            Ok(code) => format!("exit code {code}"),
            Err(error) => error.to_string(),
        };
        hook_event!(
            tracing::Level::WARN,
            &fields,
            heldMs = millis(held),
            exitCode = result.as_ref().ok().copied(),
            "held session ended on its own after {}, before the thaw ({}): what it held is \
             released, and the pod's snapshot may not be consistent",
            format_go_duration(round_to_millis(held)),
            how
        );
    })
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
fn log_output(fields: &HookFields<'_>, attempt: Option<u32>, stream: &str, captured: &Captured) {
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
