//! Tests of running one hook: its log lines, retries, waits for the container and kill on timeout.

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
        ends_session: None,
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

    let executor = Sequence::answering(vec![Ok(output(75, b"busy\n")), Ok(output(0, b"frozen\n"))]);
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
    let (outcome, lines) = run_sequence(&executor, &with_execution(OnError::Fail, killing())).await;
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
    let (outcome, lines) = run_sequence(&executor, &with_execution(OnError::Fail, killing())).await;
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
    let (_, lines) = run_sequence(&executor, &with_execution(OnError::Continue, killing())).await;
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
    let (outcome, lines) = run_sequence(&executor, &with_execution(OnError::Fail, killing())).await;
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

// Hooks with stdin, and held sessions.

use crate::exec::session::tests::{Program, ProgramExecutor};
use crate::exec::StreamEvent;
use crate::hooks::HeldBy;

/// A pre hook holding a mysql session until `quiesce-frozen`, with kill-on-timeout if `kill`.
fn holding(kill: bool) -> ResolvedHook {
    ResolvedHook {
        command: vec!["mysql".into(), "-N".into()],
        execution: crate::hooks::Execution {
            stdin: Some("FLUSH TABLES WITH READ LOCK; SELECT 'quiesce-frozen';".into()),
            hold_until_output: Some("quiesce-frozen".into()),
            kill_on_timeout: kill,
            ..Default::default()
        },
        ..hook(OnError::Fail)
    }
}

/// The post hook ending `pre`'s session with `UNLOCK TABLES;`, timeout 2 s.
fn ending(pre: &ResolvedHook) -> ResolvedHook {
    let mut post = ResolvedHook::implicit_session_end(pre);
    post.execution.stdin = Some("UNLOCK TABLES;".into());
    post.timeout = Duration::from_secs(2);
    post
}

/// Opens `hook`'s session, then (when it holds) ends it with `ending(hook)`: both outcomes
/// and every log line.
async fn hold_and_end(
    executor: &ProgramExecutor,
    hook: &ResolvedHook,
) -> (HookOutcome, Option<HookOutcome>, Vec<serde_json::Value>) {
    let log = MemoryLog::default();
    let guard = log.install(tracing_subscriber::filter::LevelFilter::DEBUG);
    let (opened, session) = run_hook_holding_session(executor, &pod(), hook).await;
    let ended = match session {
        Some(session) => {
            Some(end_held_session(executor, &pod(), &ending(hook), session, "pod-item").await)
        }
        None => None,
    };
    drop(guard);
    (opened, ended, log.lines())
}

#[tokio::test]
async fn a_held_session_logs_its_hold_then_its_end_with_the_time_held() {
    let executor = ProgramExecutor::new(Program {
        on_stdin: vec![
            vec![StreamEvent::Stdout(b"quiesce-frozen\n".to_vec())],
            vec![StreamEvent::Stdout(b"unlocked\n".to_vec())],
        ],
        on_close: vec![StreamEvent::Exited(Ok(0))],
        ..Program::v5()
    });
    let (opened, ended, lines) = hold_and_end(&executor, &holding(false)).await;
    assert!(opened.succeeded() && opened.may_have_run);
    assert_eq!(opened.exit_code, None, "the session has not exited");
    let ended = ended.unwrap();
    assert!(ended.succeeded());
    assert_eq!(ended.exit_code, Some(0));
    assert_eq!(ended.stdout.text(), "unlocked\n");
    assert_eq!(
        message_list(&lines),
        [
            "running exec hook",
            "stdout: quiesce-frozen\n",
            "exec hook succeeded",
            "holding session until the thaw: \"quiesce-frozen\" appeared on its stdout, and the \
             command runs on with stdin open",
            "ending held session (pod-item): writing its post stdin, then closing its stdin",
            "stdout: unlocked\n",
            "held session ended",
        ]
    );
    assert!(lines[2].get("exitCode").is_none());
    assert_eq!(lines[3]["holdUntilOutput"], "quiesce-frozen");
    for line in &lines[4..] {
        assert_eq!(line["hookPhase"], "post");
        assert_eq!(line["hookCommand"], "[mysql -N]");
        assert_eq!(line["hookContainer"], "main");
        assert_eq!(line["@level"], "info");
    }
    assert_eq!(lines[6]["exitCode"], 0);
    assert_eq!(lines[6]["thawedBy"], "pod-item");
    assert!(lines[6]["heldMs"].is_u64() && lines[4]["heldMs"].is_u64());
    assert_eq!(
        executor.record(),
        [
            "start mysql -N",
            "stdin FLUSH TABLES WITH READ LOCK; SELECT 'quiesce-frozen';\n",
            "stdin UNLOCK TABLES;\n",
            "close",
            "dropped"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_session_that_never_prints_its_ready_text_fails_at_its_timeout() {
    let executor = ProgramExecutor::new(Program {
        on_stdin: vec![vec![StreamEvent::Stderr(b"warning: slow\n".to_vec())]],
        ..Program::v5()
    });
    let (opened, ended, lines) = hold_and_end(&executor, &holding(false)).await;
    assert!(ended.is_none());
    assert_eq!(
        opened.error_text().as_deref(),
        Some(
            "timed out after 30s waiting for \"quiesce-frozen\" on its stdout; the session was \
             ended"
        )
    );
    assert!(opened.may_have_run, "its freeze may have happened: thaw");
    let messages = message_list(&lines);
    assert_eq!(messages[1], "stderr: warning: slow\n");
    let last = lines.last().unwrap();
    assert_eq!(last["@message"], "Error executing hook");
    assert_eq!(last["@level"], "error");
    assert_eq!(executor.record()[2..], ["close", "dropped"]);
}

#[tokio::test]
async fn a_session_that_exits_before_its_ready_text_fails_with_its_exit_code() {
    let executor = ProgramExecutor::new(Program {
        on_stdin: vec![vec![
            StreamEvent::Stderr(b"ERROR 2002 (HY000): Can't connect\n".to_vec()),
            StreamEvent::Exited(Ok(1)),
        ]],
        ..Program::v5()
    });
    let (opened, _, lines) = hold_and_end(&executor, &holding(false)).await;
    assert_eq!(opened.exit_code, Some(1));
    assert_eq!(
        opened.error_text().as_deref(),
        Some("command exited with code 1 before \"quiesce-frozen\" appeared on its stdout")
    );
    assert!(message_list(&lines).contains(&"stderr: ERROR 2002 (HY000): Can't connect\n".into()));
}

#[tokio::test(start_paused = true)]
async fn a_session_that_does_not_exit_at_the_thaw_is_killed_with_kill_on_timeout() {
    let mut executor = ProgramExecutor::new(Program {
        on_start: vec![StreamEvent::Stderr(b"@quiesce-pid=42@\n".to_vec())],
        on_stdin: vec![vec![StreamEvent::Stdout(b"quiesce-frozen\n".to_vec())]],
        ..Program::v5()
    });
    executor.exec = Ok(output(0, b"term\nexited\n"));
    let (opened, ended, lines) = hold_and_end(&executor, &holding(true)).await;
    assert!(opened.succeeded());
    assert!(opened.stderr.is_empty(), "the PID marker is not output");
    let ended = ended.unwrap();
    assert_eq!(
        ended.error_text().as_deref(),
        Some(
            "the held session did not exit within 2s after its stdin was closed; its stream \
             was closed"
        )
    );
    let record = executor.record();
    assert!(record[0].starts_with("start /bin/sh -c"), "{record:?}");
    assert!(
        record
            .iter()
            .any(|r| r.starts_with("exec /bin/sh") && r.ends_with(" 42 5")),
        "{record:?}"
    );
    let messages = message_list(&lines);
    assert!(
        messages.contains(&"sent TERM to pid 42".to_owned()),
        "{messages:?}"
    );
    assert!(messages.contains(&"process 42 exited after TERM".to_owned()));
    assert_eq!(lines.last().unwrap()["@level"], "error");
}

#[tokio::test]
async fn a_one_shot_hook_with_stdin_gets_it_as_a_line_then_end_of_file() {
    let executor = ProgramExecutor::new(Program {
        on_close: vec![
            StreamEvent::Stdout(b"done\n".to_vec()),
            StreamEvent::Exited(Ok(0)),
        ],
        ..Program::v5()
    });
    let hook = with_execution(
        OnError::Fail,
        crate::hooks::Execution {
            stdin: Some("SELECT 1;".into()),
            ..Default::default()
        },
    );
    let log = MemoryLog::default();
    let guard = log.install(tracing_subscriber::filter::LevelFilter::DEBUG);
    let outcome = run_hook(&executor, &pod(), &hook).await;
    drop(guard);
    assert!(outcome.succeeded());
    assert_eq!(outcome.stdout.text(), "done\n");
    assert_eq!(
        message_list(&log.lines()),
        ["running exec hook", "stdout: done\n", "exec hook succeeded"]
    );
    assert_eq!(
        executor.record()[1..],
        ["stdin SELECT 1;\n", "close", "dropped"]
    );
}

#[test]
fn a_session_end_names_the_pre_hook_whose_session_it_ends() {
    let pre = holding(false);
    let post = ResolvedHook::implicit_session_end(&pre);
    assert_eq!(
        post.ends_session,
        Some(HeldBy {
            source: HookSource::Annotation,
            name: ANNOTATION_HOOK_NAME.into(),
            index: 0
        })
    );
    assert_eq!(pre.holds(), post.ends_session);
    assert_eq!(post.phase, Phase::Post);
    assert_eq!(post.execution, crate::hooks::Execution::default());
}
