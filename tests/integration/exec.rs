//! `src/exec` against the in-repo fake API server (`fake-kube`): [`Kube`] over real
//! WebSocket exec (v5 and the v4 fallback, http and https), every failure mapped to its
//! `ExecError`, the timeout cancelling the stream (the fake kills the orphan and says so in
//! its timeline), bounded output, the lazy client, `run_hook`'s Velero log lines, the
//! hook's execution settings (waiting for the container, retries of transient failures,
//! kill-on-timeout against a kubelet-like fake that leaves commands running), and the plugin
//! ConfigMap loading.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_kube::objects::{container, pod};
use fake_kube::{ExecOutcome, FakeKube, Fault, FaultRule};
use quiesce::exec::{
    run_hook, ExecError, ExecOutput, ExecRequest, Executor, HookFailure, OUTPUT_LIMIT,
};
use quiesce::hooks::{
    Execution, HookSource, OnError, Phase, PodRef, ResolvedHook, WaitFor, ANNOTATION_HOOK_NAME,
};
use quiesce::kube_api::{load_hook_config, Kube};
use quiesce::velero::log::MemoryLog;
use serde_json::{json, Value};
use tracing_subscriber::filter::LevelFilter;

use crate::util::plugin_config_map;

const NS: &str = "shop";
const POD: &str = "db-0";

/// A fake API server with pod `shop/db-0` (containers `main` and `sidecar`, Running), a
/// kubeconfig for it, and an executor using that kubeconfig.
struct Cluster {
    kube: FakeKube,
    executor: Kube,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

/// Puts pod `shop/db-0` into `kube` and builds an executor from its kubeconfig.
async fn cluster_with(kube: FakeKube) -> Cluster {
    kube.add_pod(pod(NS, POD).container("main").container("sidecar").build())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig).unwrap();
    let executor = Kube::from_kubeconfig_file(&kubeconfig);
    Cluster {
        kube,
        executor,
        kubeconfig,
        _dir: dir,
    }
}

/// A [`Cluster`] on a default fake API server.
async fn cluster() -> Cluster {
    cluster_with(FakeKube::start().await.unwrap()).await
}

/// An exec of `command` in container `main` of `shop/db-0`.
fn request(command: &[&str], timeout: Duration) -> ExecRequest {
    ExecRequest {
        namespace: NS.into(),
        pod: POD.into(),
        container: "main".into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        timeout,
    }
}

/// `sh -c SCRIPT` in `main`, with a 10 s timeout.
fn sh(script: &str) -> ExecRequest {
    request(&["sh", "-c", script], Duration::from_secs(10))
}

/// A pre hook from the annotations running `command` in `main`, 10 s timeout.
fn hook(command: &[&str], on_error: OnError) -> ResolvedHook {
    ResolvedHook {
        phase: Phase::Pre,
        source: HookSource::Annotation,
        name: ANNOTATION_HOOK_NAME.into(),
        index: 0,
        container: "main".into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        on_error,
        timeout: Duration::from_secs(10),
        execution: Default::default(),
        run_once: None,
        defect: None,
        ends_session: None,
    }
}

/// The test pod, `shop/db-0`.
fn pod_ref() -> PodRef {
    PodRef {
        namespace: NS.into(),
        name: POD.into(),
    }
}

/// Runs `request` through the cluster's executor.
async fn exec(cluster: &Cluster, request: &ExecRequest) -> Result<ExecOutput, ExecError> {
    cluster.executor.exec(request).await
}

// ----- log capture -----

/// Captures, through Velero's log layer, what this thread logs while the guard lives. The
/// tests run on a current-thread runtime, so everything `run_hook` logs is on this thread.
fn capture_logs() -> (MemoryLog, tracing::subscriber::DefaultGuard) {
    let log = MemoryLog::default();
    let guard = log.install(LevelFilter::DEBUG);
    (log, guard)
}

/// Rewrites the cluster's kubeconfig to a port that was just free (bind, note, release), so
/// every request is refused.
fn point_kubeconfig_at_a_closed_port(cluster: &Cluster) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = cluster
        .kube
        .kubeconfig_yaml()
        .replace(cluster.kube.url(), &format!("http://127.0.0.1:{port}"));
    std::fs::write(&cluster.kubeconfig, yaml).unwrap();
}

/// The `@message` of each log line.
fn messages(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["@message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

// ----- exec through Kube -----

#[tokio::test]
async fn command_output_and_exit_code_zero_come_back() {
    let cluster = cluster().await;
    let output = exec(&cluster, &sh("echo out; echo err >&2")).await.unwrap();
    assert_eq!(output.exit_code, 0);
    assert_eq!(output.stdout.bytes, b"out\n");
    assert_eq!(output.stderr.bytes, b"err\n");
    assert_eq!((output.stdout.dropped, output.stderr.dropped), (0, 0));
}

#[tokio::test]
async fn the_container_is_always_named_and_stdin_and_tty_are_not_requested() {
    let cluster = cluster().await;
    exec(&cluster, &request(&["true"], Duration::from_secs(10)))
        .await
        .unwrap();
    let exec_request = cluster
        .kube
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/exec"))
        .unwrap();
    let query = exec_request.query_pairs();
    let has = |k: &str, v: &str| query.iter().any(|(key, value)| key == k && value == v);
    assert!(has("container", "main"), "{query:?}");
    assert!(has("stdout", "true") && has("stderr", "true"), "{query:?}");
    assert!(!query.iter().any(|(k, _)| k == "stdin" || k == "tty") || has("stdin", "false"));
    let protocols = exec_request.header("sec-websocket-protocol").unwrap();
    assert_eq!(protocols, "v5.channel.k8s.io, v4.channel.k8s.io");
}

#[tokio::test]
async fn exec_falls_back_to_v4_on_a_server_without_v5() {
    let cluster = cluster_with(FakeKube::builder().v4_only(true).start().await.unwrap()).await;
    let output = exec(&cluster, &sh("echo v4; echo e >&2; exit 4"))
        .await
        .unwrap();
    assert_eq!(output.exit_code, 4);
    assert_eq!(output.stdout.bytes, b"v4\n");
    assert_eq!(output.stderr.bytes, b"e\n");
}

#[tokio::test]
async fn exec_works_over_https_with_the_kubeconfig_ca() {
    let cluster = cluster_with(FakeKube::start_https().await.unwrap()).await;
    let output = exec(&cluster, &sh("echo tls")).await.unwrap();
    assert_eq!(output.stdout.bytes, b"tls\n");
}

#[tokio::test]
async fn non_zero_exit_is_an_output_not_an_error() {
    let cluster = cluster().await;
    let output = exec(&cluster, &sh("echo partial; exit 3")).await.unwrap();
    assert_eq!(output.exit_code, 3);
    assert_eq!(output.stdout.bytes, b"partial\n");
}

#[tokio::test]
async fn a_program_that_cannot_start_is_a_remote_failure_with_the_runtimes_words() {
    let cluster = cluster().await;
    let error = exec(
        &cluster,
        &request(&["no-such-program-x"], Duration::from_secs(10)),
    )
    .await
    .unwrap_err();
    let ExecError::RemoteFailure(message) = &error else {
        panic!("{error:?}");
    };
    assert!(
        message.contains("executable file not found in $PATH"),
        "{message}"
    );
    assert!(!error.may_have_run());
}

#[tokio::test]
async fn timeout_cancels_the_stream_and_the_server_side_command_is_killed() {
    let cluster = cluster().await;
    let started = Instant::now();
    let error = exec(&cluster, &request(&["sleep", "60"], Duration::from_secs(1)))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(error, ExecError::TimedOut(Duration::from_secs(1)));
    assert_eq!(error.to_string(), "timed out after 1s");
    assert!(error.may_have_run());
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");

    // The server saw the client go away and killed the command.
    let ended = cluster
        .kube
        .wait_for_timeline(Duration::from_secs(5), |events| {
            fake_kube::exec_records(events)
                .iter()
                .any(|r| r.outcome == Some(ExecOutcome::ClientDisconnected))
        })
        .await;
    assert!(ended, "timeline: {:#?}", cluster.kube.timeline());
    let record = &cluster.kube.execs()[0];
    assert_eq!(record.exec.argv, ["sleep", "60"]);
    let ran_for = record.ended.unwrap() - record.started;
    assert!(
        ran_for < Duration::from_secs(5),
        "sleep ran for {ran_for:?}"
    );
}

#[tokio::test]
async fn missing_container_is_no_such_container() {
    let cluster = cluster().await;
    let mut req = request(&["true"], Duration::from_secs(10));
    req.container = "nosuch".into();
    let error = exec(&cluster, &req).await.unwrap_err();
    assert_eq!(
        error,
        ExecError::NoSuchContainer {
            namespace: NS.into(),
            pod: POD.into(),
            container: "nosuch".into()
        }
    );
    assert_eq!(
        error.to_string(),
        "no such container: \"nosuch\" in pod shop/db-0"
    );
    assert!(!error.may_have_run());
}

#[tokio::test]
async fn missing_pod_is_pod_not_found() {
    let cluster = cluster().await;
    let mut req = request(&["true"], Duration::from_secs(10));
    req.pod = "gone".into();
    let error = exec(&cluster, &req).await.unwrap_err();
    assert_eq!(
        error,
        ExecError::PodNotFound {
            namespace: NS.into(),
            pod: "gone".into()
        }
    );
    assert!(!error.may_have_run());
}

#[tokio::test]
async fn a_pod_that_is_not_running_is_refused_with_the_kubelets_words() {
    let cluster = cluster().await;
    cluster.kube.set_pod_phase(NS, POD, "Pending").unwrap();
    let error = exec(&cluster, &request(&["true"], Duration::from_secs(10)))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "unable to upgrade connection: container not found (\"main\")"
    );
    assert!(matches!(
        error,
        ExecError::UpgradeRejected { code: 500, .. }
    ));
}

/// Reads a `VmHWM`/`VmRSS`-style line of /proc/self/status, in KiB.
fn proc_status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn ten_mebibytes_of_stdout_keep_exactly_the_limit_and_count_the_rest() {
    const TOTAL: u64 = 10 * 1024 * 1024;
    let cluster = cluster().await;
    let before = proc_status_kib("VmRSS:");
    let output = exec(
        &cluster,
        &request(
            &["head", "-c", &TOTAL.to_string(), "/dev/zero"],
            Duration::from_secs(60),
        ),
    )
    .await
    .unwrap();
    let after = proc_status_kib("VmRSS:");
    assert_eq!(output.exit_code, 0);
    assert_eq!(output.stdout.bytes.len(), OUTPUT_LIMIT);
    assert_eq!(output.stdout.dropped, TOTAL - OUTPUT_LIMIT as u64);
    assert!(output.stdout.bytes.iter().all(|b| *b == 0));
    // Keeping the whole output would grow the process by ≥ 10 MiB; allow slack for the fake
    // server and tests running beside this one.
    if let (Some(before), Some(after)) = (before, after) {
        let grown = after.saturating_sub(before);
        assert!(grown < 8 * 1024, "RSS grew by {grown} KiB");
    }
}

// ----- fault knobs of the fake server -----

#[tokio::test]
async fn a_refused_upgrade_is_upgrade_rejected_with_its_code() {
    let cluster = cluster().await;
    cluster.kube.fail_next_exec_upgrades(1, 403);
    let error = exec(&cluster, &request(&["true"], Duration::from_secs(10)))
        .await
        .unwrap_err();
    let ExecError::UpgradeRejected { code, message } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*code, 403);
    assert!(message.contains("exec upgrade rejected"), "{message}");
    assert!(error
        .to_string()
        .starts_with("unable to upgrade connection: "));
    assert!(!error.may_have_run() && !error.is_transient());
    // Only the next one was refused.
    exec(&cluster, &request(&["true"], Duration::from_secs(10)))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_server_error_is_a_transient_upgrade_rejection() {
    let cluster = cluster().await;
    cluster
        .kube
        .add_fault(FaultRule::exec(Fault::ServerError).times(1));
    let error = exec(&cluster, &request(&["true"], Duration::from_secs(10)))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ExecError::UpgradeRejected { code: 500, message } if message.contains("injected fault")),
        "{error:?}"
    );
    assert!(error.is_transient());
    assert!(cluster.kube.execs().iter().all(|r| r.pid.is_none()));
}

#[tokio::test]
async fn a_stream_dropped_before_the_command_is_stream_dropped() {
    let cluster = cluster().await;
    cluster
        .kube
        .add_fault(FaultRule::exec(Fault::DropStream).times(1));
    let error = exec(&cluster, &request(&["true"], Duration::from_secs(10)))
        .await
        .unwrap_err();
    assert!(matches!(error, ExecError::StreamDropped(_)), "{error:?}");
    assert!(
        error.may_have_run(),
        "the client cannot know it did not run"
    );
}

#[tokio::test]
async fn a_stream_dropped_after_the_output_is_stream_dropped() {
    let cluster = cluster().await;
    cluster
        .kube
        .add_fault(FaultRule::exec(Fault::DropStreamAfterOutput).times(1));
    let error = exec(&cluster, &sh("echo ran")).await.unwrap_err();
    let ExecError::StreamDropped(reason) = &error else {
        panic!("{error:?}");
    };
    assert!(!reason.is_empty());
    assert!(error
        .to_string()
        .starts_with("exec stream dropped before the command finished: "));
    assert!(error.may_have_run());
    assert_eq!(
        cluster.kube.execs()[0].outcome,
        Some(ExecOutcome::Dropped { command_ran: true })
    );
}

#[tokio::test]
async fn a_delay_within_the_timeout_only_slows_the_exec() {
    let cluster = cluster().await;
    cluster
        .kube
        .add_fault(FaultRule::exec(Fault::Delay(Duration::from_millis(300))).times(1));
    let output = exec(&cluster, &request(&["true"], Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(output.exit_code, 0);
    assert!(
        output.duration >= Duration::from_millis(300),
        "{:?}",
        output.duration
    );
}

#[tokio::test]
async fn a_delay_beyond_the_timeout_times_out_before_the_command_starts() {
    let cluster = cluster().await;
    cluster
        .kube
        .add_fault(FaultRule::exec(Fault::Delay(Duration::from_secs(3))).times(1));
    let started = Instant::now();
    let error = exec(&cluster, &request(&["true"], Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert_eq!(error, ExecError::TimedOut(Duration::from_secs(1)));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let cluster = cluster().await;
    point_kubeconfig_at_a_closed_port(&cluster);
    let executor = Kube::from_kubeconfig_file(&cluster.kubeconfig);
    let error = executor
        .exec(&request(&["true"], Duration::from_secs(10)))
        .await
        .unwrap_err();
    let ExecError::Unreachable(reason) = &error else {
        panic!("{error:?}");
    };
    assert!(
        reason.to_lowercase().contains("connection refused"),
        "{reason}"
    );
    assert!(error.is_transient() && !error.may_have_run());
}

// ----- the lazy client -----

#[tokio::test]
async fn the_client_is_built_on_first_use_and_a_failure_is_retried() {
    let cluster = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("later-kubeconfig");
    let executor = Kube::from_kubeconfig_file(&path);
    assert!(!executor.is_built());

    let error = executor
        .exec(&request(&["true"], Duration::from_secs(10)))
        .await
        .unwrap_err();
    let ExecError::NoClient(reason) = &error else {
        panic!("{error:?}");
    };
    assert!(reason.contains("later-kubeconfig"), "{reason}");
    assert!(!error.may_have_run());
    assert!(cluster.kube.requests().is_empty());

    cluster.kube.write_kubeconfig(&path).unwrap();
    let output = executor
        .exec(&request(&["true"], Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(output.exit_code, 0);
    assert!(executor.is_built());
}

#[tokio::test]
async fn an_executor_without_any_configuration_constructs_fine() {
    // Building reads nothing: no kubeconfig, no in-cluster environment needed.
    let executor = Kube::infer();
    assert!(!executor.is_built());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_execs_share_one_client() {
    let cluster = Arc::new(cluster().await);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let cluster = Arc::clone(&cluster);
        tasks.push(tokio::spawn(async move {
            exec(&cluster, &sh(&format!("echo {i}"))).await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let output = task.await.unwrap().unwrap();
        assert_eq!(output.stdout.bytes, format!("{i}\n").as_bytes());
    }
    assert!(cluster.executor.is_built());
    assert_eq!(cluster.kube.execs().len(), 16);
}

// ----- run_hook: outcome and Velero log lines -----

#[tokio::test]
async fn a_successful_hook_logs_running_output_and_success() {
    let cluster = cluster().await;
    let (logs, _guard) = capture_logs();
    let outcome = run_hook(
        &cluster.executor,
        &pod_ref(),
        &hook(&["sh", "-c", "echo frozen; echo note >&2"], OnError::Fail),
    )
    .await;
    assert!(outcome.succeeded());
    assert_eq!(outcome.exit_code, Some(0));
    let lines = logs.lines();
    assert_eq!(
        messages(&lines),
        [
            "running exec hook",
            "stdout: frozen\n",
            "stderr: note\n",
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
        assert_eq!(line["hookCommand"], "[sh -c echo frozen; echo note >&2]");
        assert_eq!(line["hookOnError"], "Fail");
        assert_eq!(line["hookTimeout"], "10s");
        assert_eq!(line["namespace"], NS);
        assert_eq!(line["pod"], POD);
    }
    assert_eq!(lines[3]["exitCode"], 0);
    assert!(lines[3]["durationMs"].is_u64());
}

#[tokio::test]
async fn a_failed_fail_hook_is_an_error_line_with_the_exit_code() {
    let cluster = cluster().await;
    let (logs, _guard) = capture_logs();
    let outcome = run_hook(
        &cluster.executor,
        &pod_ref(),
        &hook(&["sh", "-c", "exit 2"], OnError::Fail),
    )
    .await;
    assert_eq!(outcome.failure, Some(HookFailure::ExitCode(2)));
    assert!(outcome.may_have_run);
    let lines = logs.lines();
    assert_eq!(
        messages(&lines),
        ["running exec hook", "Error executing hook"]
    );
    assert_eq!(lines[1]["@level"], "error");
    assert_eq!(lines[1]["error"], "command terminated with exit code 2");
    assert_eq!(lines[1]["exitCode"], 2);
    assert_eq!(lines[1]["hookOnError"], "Fail");
}

#[tokio::test]
async fn a_failed_continue_hook_is_a_warning_not_a_backup_error() {
    let cluster = cluster().await;
    let (logs, _guard) = capture_logs();
    let mut continue_hook = hook(&["sh", "-c", "echo why >&2; exit 1"], OnError::Continue);
    continue_hook.source = HookSource::Spec;
    continue_hook.name = "freeze-db".into();
    continue_hook.phase = Phase::Post;
    let outcome = run_hook(&cluster.executor, &pod_ref(), &continue_hook).await;
    assert!(!outcome.succeeded());
    let lines = logs.lines();
    assert_eq!(
        messages(&lines),
        ["running exec hook", "stderr: why\n", "Error executing hook"]
    );
    assert!(lines.iter().all(|l| l["@level"] != "error"));
    assert_eq!(lines[2]["@level"], "warn");
    assert_eq!(lines[2]["hookSource"], "spec");
    assert_eq!(lines[2]["hookName"], "freeze-db");
    assert_eq!(lines[2]["hookPhase"], "post");
    assert_eq!(lines[2]["hookOnError"], "Continue");
}

#[tokio::test]
async fn a_timed_out_hook_logs_the_timeout_and_may_have_run() {
    let cluster = cluster().await;
    let (logs, _guard) = capture_logs();
    let mut sleepy = hook(&["sleep", "60"], OnError::Fail);
    sleepy.timeout = Duration::from_secs(1);
    let outcome = run_hook(&cluster.executor, &pod_ref(), &sleepy).await;
    assert!(outcome.may_have_run);
    assert_eq!(outcome.exit_code, None);
    let lines = logs.lines();
    assert_eq!(lines[1]["error"], "timed out after 1s");
    assert_eq!(lines[1]["hookTimeout"], "1s");
    assert!(lines[1].get("exitCode").is_none());
}

#[tokio::test]
async fn a_hook_into_a_missing_pod_did_not_run() {
    let cluster = cluster().await;
    let (logs, _guard) = capture_logs();
    let gone = PodRef {
        namespace: NS.into(),
        name: "gone".into(),
    };
    let outcome = run_hook(&cluster.executor, &gone, &hook(&["true"], OnError::Fail)).await;
    assert!(!outcome.may_have_run);
    assert_eq!(
        outcome.error_text().as_deref(),
        Some("pod shop/gone not found")
    );
    assert_eq!(logs.lines()[1]["pod"], "gone");
}

#[tokio::test]
async fn huge_hook_output_is_logged_cut_and_marked() {
    let cluster = cluster().await;
    let (logs, _guard) = capture_logs();
    let outcome = run_hook(
        &cluster.executor,
        &pod_ref(),
        &hook(&["head", "-c", "1048576", "/dev/zero"], OnError::Fail),
    )
    .await;
    assert!(outcome.succeeded());
    assert_eq!(outcome.stdout.bytes.len(), OUTPUT_LIMIT);
    let lines = logs.lines();
    let stdout = lines[1]["@message"].as_str().unwrap();
    assert!(stdout.starts_with("stdout: "));
    assert!(
        stdout.ends_with("[output truncated: showing the first 15360 of 1048576 bytes]"),
        "{}",
        &stdout[stdout.len() - 80..]
    );
    assert_eq!(lines[1]["truncated"], true);
    assert_eq!(lines[1]["outputBytes"], 1048576);
}

// ----- run_hook: waiting for the container -----

/// [`hook`] that first waits up to `timeout` for its container to run (and be ready).
fn waiting_hook(command: &[&str], timeout: Duration, ready: bool) -> ResolvedHook {
    ResolvedHook {
        execution: Execution {
            wait: Some(WaitFor { timeout, ready }),
            ..Default::default()
        },
        ..hook(command, OnError::Fail)
    }
}

/// Sets the state and readiness of container `main` in the pod's status.
fn set_main(cluster: &Cluster, state: Value, ready: bool) {
    cluster
        .kube
        .set_container_state(NS, POD, "main", state, ready)
        .unwrap();
}

#[tokio::test]
async fn fake_kube_refuses_exec_into_a_container_that_is_not_running_and_reports_it() {
    let cluster = cluster().await;
    set_main(
        &cluster,
        json!({"waiting": {"reason": "ContainerCreating"}}),
        false,
    );
    let error = exec(&cluster, &request(&["true"], Duration::from_secs(10)))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "unable to upgrade connection: container not found (\"main\")"
    );
    let observed = cluster
        .executor
        .observe_container(NS, POD, "main")
        .await
        .unwrap();
    assert_eq!(observed.state.to_string(), "waiting: ContainerCreating");
    assert_eq!(observed.pod_phase.as_deref(), Some("Running"));
    // A container the status does not list is left alone.
    let mut into_sidecar = request(&["true"], Duration::from_secs(10));
    into_sidecar.container = "sidecar".into();
    assert_eq!(exec(&cluster, &into_sidecar).await.unwrap().exit_code, 0);

    set_main(&cluster, json!({"running": {}}), true);
    assert_eq!(
        exec(&cluster, &request(&["true"], Duration::from_secs(10)))
            .await
            .unwrap()
            .exit_code,
        0
    );
}

#[tokio::test]
async fn a_container_that_never_starts_fails_the_hook_naming_it_and_its_state() {
    let cluster = cluster().await;
    set_main(
        &cluster,
        json!({"waiting": {"reason": "CrashLoopBackOff"}}),
        false,
    );
    let (logs, _guard) = capture_logs();
    let outcome = run_hook(
        &cluster.executor,
        &pod_ref(),
        &waiting_hook(&["true"], Duration::from_secs(1), false),
    )
    .await;
    assert_eq!(
        outcome.error_text().as_deref(),
        Some(
            "container \"main\" of pod shop/db-0 did not become running within 1s \
             (waiting: CrashLoopBackOff)"
        )
    );
    assert_eq!(outcome.attempts, 0);
    assert!(!outcome.may_have_run);
    assert!(cluster.kube.execs().is_empty(), "nothing was exec'd");
    let lines = logs.lines();
    assert_eq!(
        messages(&lines),
        [
            "waiting up to 1s for container \"main\" to be running (waiting: CrashLoopBackOff)",
            "Error executing hook"
        ]
    );
    assert_eq!(lines[1]["@level"], "error");
}

#[tokio::test]
async fn a_terminated_container_is_named_with_its_exit_code() {
    let cluster = cluster().await;
    set_main(
        &cluster,
        json!({"terminated": {"reason": "Error", "exitCode": 1}}),
        false,
    );
    let outcome = run_hook(
        &cluster.executor,
        &pod_ref(),
        &waiting_hook(&["true"], Duration::from_millis(500), false),
    )
    .await;
    assert!(outcome
        .error_text()
        .unwrap()
        .ends_with("within 500ms (terminated: Error, exit code 1)"));
}

#[tokio::test]
async fn the_hook_runs_after_its_container_starts() {
    let cluster = Arc::new(cluster().await);
    set_main(
        &cluster,
        json!({"waiting": {"reason": "ContainerCreating"}}),
        false,
    );
    let starter = {
        let cluster = Arc::clone(&cluster);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            cluster.kube.mark("main started");
            set_main(&cluster, json!({"running": {}}), false);
        })
    };
    let (logs, _guard) = capture_logs();
    let outcome = run_hook(
        &cluster.executor,
        &pod_ref(),
        &waiting_hook(&["sh", "-c", "echo ran"], Duration::from_secs(20), false),
    )
    .await;
    starter.await.unwrap();
    assert!(outcome.succeeded(), "{:?}", outcome.failure);
    assert_eq!(outcome.attempts, 1);
    let started_mark = cluster
        .kube
        .timeline()
        .into_iter()
        .find(|e| matches!(&e.kind, fake_kube::TimelineEventKind::Marker { label } if label == "main started"))
        .unwrap();
    let execs = cluster.kube.execs();
    assert_eq!(execs.len(), 1, "no exec before the container ran");
    assert!(execs[0].start_seq > started_mark.seq);
    let lines = logs.lines();
    let messages = messages(&lines);
    assert_eq!(
        messages[0],
        "waiting up to 20s for container \"main\" to be running (waiting: ContainerCreating)"
    );
    assert!(
        messages[1].starts_with("container \"main\" is running after "),
        "{messages:?}"
    );
    assert!(lines[1]["waitedMs"].as_u64().unwrap() >= 1000);
    assert_eq!(
        messages[2..],
        ["running exec hook", "stdout: ran\n", "exec hook succeeded"]
    );
}

#[tokio::test]
async fn waiting_for_ready_is_not_satisfied_by_running() {
    let cluster = cluster().await;
    set_main(&cluster, json!({"running": {}}), false);
    let outcome = run_hook(
        &cluster.executor,
        &pod_ref(),
        &waiting_hook(&["true"], Duration::from_secs(1), true),
    )
    .await;
    assert_eq!(
        outcome.error_text().as_deref(),
        Some("container \"main\" of pod shop/db-0 did not become ready within 1s (running, not ready)")
    );

    // Running is enough when readiness is not asked for.
    let outcome = run_hook(
        &cluster.executor,
        &pod_ref(),
        &waiting_hook(&["true"], Duration::from_secs(1), false),
    )
    .await;
    assert!(outcome.succeeded());

    set_main(&cluster, json!({"running": {}}), true);
    let outcome = run_hook(
        &cluster.executor,
        &pod_ref(),
        &waiting_hook(&["true"], Duration::from_secs(1), true),
    )
    .await;
    assert!(outcome.succeeded());
}

#[tokio::test]
async fn a_native_sidecar_is_waited_for_through_init_container_statuses() {
    let cluster = cluster().await;
    cluster
        .kube
        .add_pod(
            pod(NS, "web-0")
                .init_container(container("proxy").restart_policy("Always"))
                .container("web")
                .build(),
        )
        .unwrap();
    let web = PodRef {
        namespace: NS.into(),
        name: "web-0".into(),
    };
    let mut sidecar_hook = waiting_hook(&["true"], Duration::from_millis(500), true);
    sidecar_hook.container = "proxy".into();
    cluster
        .kube
        .set_container_state(NS, "web-0", "proxy", json!({"waiting": {}}), false)
        .unwrap();
    let outcome = run_hook(&cluster.executor, &web, &sidecar_hook).await;
    assert!(outcome.error_text().unwrap().ends_with("(waiting)"));

    let pod = cluster
        .kube
        .set_container_state(NS, "web-0", "proxy", json!({"running": {}}), true)
        .unwrap();
    assert_eq!(pod["status"]["initContainerStatuses"][0]["name"], "proxy");
    let outcome = run_hook(&cluster.executor, &web, &sidecar_hook).await;
    assert!(outcome.succeeded(), "{:?}", outcome.failure);
}

#[tokio::test]
async fn a_finished_pod_fails_the_wait_at_once() {
    let cluster = cluster().await;
    cluster.kube.set_pod_phase(NS, POD, "Succeeded").unwrap();
    let hook = waiting_hook(&["true"], Duration::from_secs(600), false);
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        run_hook(&cluster.executor, &pod_ref(), &hook),
    )
    .await
    .expect("no waiting on a finished pod");
    assert_eq!(
        outcome.error_text().as_deref(),
        Some("pod shop/db-0 has phase Succeeded: its containers will not run again")
    );
    assert!(cluster.kube.execs().is_empty());
}

#[tokio::test]
async fn a_pod_that_is_gone_fails_the_wait_as_pod_not_found() {
    let cluster = cluster().await;
    cluster.kube.remove_pod(NS, POD).unwrap();
    let hook = waiting_hook(&["true"], Duration::from_secs(600), false);
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        run_hook(&cluster.executor, &pod_ref(), &hook),
    )
    .await
    .expect("no waiting for a pod that is gone");
    assert_eq!(
        outcome.error_text().as_deref(),
        Some("pod shop/db-0 not found")
    );
}

// ----- run_hook: retries -----

/// [`hook`] retried up to `retries` times, also on the given exit codes.
fn retrying_hook(command: &[&str], retries: u32, exit_codes: &[i32]) -> ResolvedHook {
    ResolvedHook {
        execution: Execution {
            retries,
            retry_backoff: Duration::from_millis(50),
            retry_on_exit_codes: exit_codes.to_vec(),
            ..Default::default()
        },
        ..hook(command, OnError::Fail)
    }
}

#[tokio::test]
async fn transient_upgrade_failures_are_retried_and_the_command_runs_once() {
    let cluster = cluster().await;
    cluster.kube.fail_next_exec_upgrades(2, 503);
    let (logs, _guard) = capture_logs();
    let outcome = run_hook(
        &cluster.executor,
        &pod_ref(),
        &retrying_hook(&["sh", "-c", "echo ran >> runs"], 3, &[]),
    )
    .await;
    assert!(outcome.succeeded(), "{:?}", outcome.failure);
    assert_eq!(outcome.attempts, 3);
    let execs = cluster.kube.execs();
    assert_eq!(execs.len(), 3);
    let ran: Vec<_> = execs.iter().filter(|r| r.pid.is_some()).collect();
    assert_eq!(ran.len(), 1, "exactly one command execution");
    assert_eq!(ran[0].outcome, Some(ExecOutcome::Exited { code: 0 }));
    let dir = cluster.kube.container_dir(NS, POD, "main").unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("runs")).unwrap(), "ran\n");

    let lines = logs.lines();
    let messages = messages(&lines);
    assert_eq!(messages.len(), 6, "{messages:#?}");
    assert_eq!(messages[0], "running exec hook");
    assert!(
        messages[1].starts_with("exec hook attempt 1 of 4 failed: unable to upgrade connection: ")
            && messages[1].ends_with("; retrying in 50ms"),
        "{}",
        messages[1]
    );
    assert!(
        messages[3].starts_with("exec hook attempt 2 of 4 failed: ")
            && messages[3].ends_with("; retrying in 100ms")
    );
    assert_eq!(messages[5], "exec hook succeeded");
    let attempts: Vec<_> = lines.iter().map(|l| l["hookAttempt"].clone()).collect();
    assert_eq!(attempts, [1, 1, 2, 2, 3, 3]);
    assert!(lines.iter().all(|l| l["@level"] != "error"));
    assert_eq!(lines[1]["@level"], "warn");
}

#[tokio::test]
async fn a_forbidden_exec_is_not_retried() {
    let cluster = cluster().await;
    cluster.kube.fail_next_exec_upgrades(1, 403);
    let (logs, _guard) = capture_logs();
    let outcome = run_hook(
        &cluster.executor,
        &pod_ref(),
        &retrying_hook(&["true"], 3, &[]),
    )
    .await;
    assert_eq!(outcome.attempts, 1);
    assert!(matches!(
        outcome.failure,
        Some(HookFailure::Exec(ExecError::UpgradeRejected {
            code: 403,
            ..
        }))
    ));
    assert_eq!(cluster.kube.execs().len(), 1);
    assert_eq!(
        messages(&logs.lines()),
        ["running exec hook", "Error executing hook"]
    );
}

#[tokio::test]
async fn exhausted_retries_log_one_error_line_for_the_final_failure() {
    let cluster = cluster().await;
    cluster.kube.fail_next_exec_upgrades(10, 503);
    let (logs, _guard) = capture_logs();
    let outcome = run_hook(
        &cluster.executor,
        &pod_ref(),
        &retrying_hook(&["true"], 2, &[]),
    )
    .await;
    assert_eq!(outcome.attempts, 3);
    assert!(!outcome.may_have_run);
    let lines = logs.lines();
    let errors: Vec<_> = lines.iter().filter(|l| l["@level"] == "error").collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["@message"], "Error executing hook");
    assert_eq!(errors[0]["hookAttempt"], 3);
    assert_eq!(lines.iter().filter(|l| l["@level"] == "warn").count(), 2);
}

#[tokio::test]
async fn exit_code_one_is_not_retried_unless_listed() {
    let cluster = cluster().await;
    let script = "echo ran >> runs; exit 1";
    let outcome = run_hook(
        &cluster.executor,
        &pod_ref(),
        &retrying_hook(&["sh", "-c", script], 2, &[]),
    )
    .await;
    assert_eq!((outcome.attempts, outcome.exit_code), (1, Some(1)));
    let runs = cluster
        .kube
        .container_dir(NS, POD, "main")
        .unwrap()
        .join("runs");
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "ran\n");

    let outcome = run_hook(
        &cluster.executor,
        &pod_ref(),
        &retrying_hook(&["sh", "-c", script], 2, &[1]),
    )
    .await;
    assert_eq!((outcome.attempts, outcome.exit_code), (3, Some(1)));
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "ran\n".repeat(4));
}

#[tokio::test]
async fn a_listed_exit_code_is_retried_until_the_command_succeeds() {
    let cluster = cluster().await;
    let (logs, _guard) = capture_logs();
    // Busy (exit 75) the first time, fine the second.
    let script = "if [ -e tried ]; then echo frozen; else touch tried; echo busy >&2; exit 75; fi";
    let outcome = run_hook(
        &cluster.executor,
        &pod_ref(),
        &retrying_hook(&["sh", "-c", script], 3, &[75]),
    )
    .await;
    assert!(outcome.succeeded());
    assert_eq!(outcome.attempts, 2);
    assert_eq!(outcome.stdout.bytes, b"frozen\n");
    assert_eq!(
        messages(&logs.lines()),
        [
            "running exec hook",
            "stderr: busy\n",
            "exec hook attempt 1 of 4 failed: command terminated with exit code 75; retrying in 50ms",
            "running exec hook",
            "stdout: frozen\n",
            "exec hook succeeded",
        ]
    );
}

// ----- run_hook: kill on timeout -----

/// Hangs until killed; on TERM writes `terminated` in its working directory and exits.
const HANGS_UNTIL_TERM: &str =
    "trap 'echo bye > terminated; exit 143' TERM; echo $$ > pid; while true; do sleep 0.1; done";

/// [`hook`] whose command hangs until SIGTERM, with a 2 s timeout.
fn hung_hook(kill_on_timeout: bool) -> ResolvedHook {
    ResolvedHook {
        timeout: Duration::from_secs(2),
        execution: Execution {
            kill_on_timeout,
            ..Default::default()
        },
        ..hook(&["sh", "-c", HANGS_UNTIL_TERM], OnError::Fail)
    }
}

/// A [`Cluster`] whose fake API server leaves commands running when their client goes away, as a
/// kubelet does.
async fn kubelet_like_cluster() -> Cluster {
    cluster_with(
        FakeKube::builder()
            .keep_processes_on_disconnect(true)
            .start()
            .await
            .unwrap(),
    )
    .await
}

/// Whether a process with this PID exists.
fn is_alive(pid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// Waits (bounded) until fake-kube has noticed the client went away and kept its command
/// running; returns the PIDs kept.
async fn kept_processes_appear(kube: &FakeKube) -> Vec<u32> {
    for _ in 0..100 {
        let kept = kube.kept_processes();
        if !kept.is_empty() {
            return kept;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Vec::new()
}

/// Waits (bounded) until fake-kube has reaped every command it kept running.
async fn kept_processes_gone(kube: &FakeKube) -> bool {
    for _ in 0..100 {
        if kube.kept_processes().is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn a_hung_hook_is_sent_term_with_kill_on_timeout() {
    let cluster = kubelet_like_cluster().await;
    let dir = cluster.kube.container_dir(NS, POD, "main").unwrap();
    let (logs, _guard) = capture_logs();
    let outcome = run_hook(&cluster.executor, &pod_ref(), &hung_hook(true)).await;
    assert_eq!(outcome.error_text().as_deref(), Some("timed out after 2s"));
    assert!(outcome.may_have_run);

    let pid: u32 = std::fs::read_to_string(dir.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("terminated")).unwrap(),
        "bye\n"
    );
    assert!(
        kept_processes_gone(&cluster.kube).await,
        "{:?}",
        cluster.kube.kept_processes()
    );
    let lines = logs.lines();
    assert_eq!(
        messages(&lines),
        [
            "running exec hook".to_owned(),
            format!("sent TERM to pid {pid}"),
            format!("process {pid} exited after TERM"),
            "Error executing hook".to_owned(),
        ]
    );
    assert_eq!(lines[1]["pid"], pid);
    assert_eq!(lines[3]["error"], "timed out after 2s");
    assert_eq!(
        lines[3]["hookCommand"],
        format!("[sh -c {HANGS_UNTIL_TERM}]")
    );
    // The wrapper ran the command, then a second exec killed it.
    let execs = cluster.kube.execs();
    assert_eq!(execs.len(), 2);
    assert_eq!(execs[0].exec.argv[..2], ["/bin/sh", "-c"]);
    assert_eq!(execs[0].exec.argv[4..], ["sh", "-c", HANGS_UNTIL_TERM]);
    assert_eq!(
        execs[0].pid,
        Some(pid),
        "the command kept the wrapper's PID"
    );
    assert_eq!(
        execs[1].exec.argv[3..5],
        ["quiesce-kill".to_owned(), pid.to_string()]
    );
}

#[tokio::test]
async fn without_kill_on_timeout_a_hung_hook_keeps_running_under_a_kubelet() {
    let cluster = kubelet_like_cluster().await;
    let dir = cluster.kube.container_dir(NS, POD, "main").unwrap();
    let outcome = run_hook(&cluster.executor, &pod_ref(), &hung_hook(false)).await;
    assert_eq!(outcome.error_text().as_deref(), Some("timed out after 2s"));
    let kept = kept_processes_appear(&cluster.kube).await;
    assert_eq!(kept.len(), 1);
    assert!(is_alive(kept[0]));
    assert!(!dir.join("terminated").exists());
    assert_eq!(cluster.kube.execs().len(), 1, "no kill exec");

    cluster.kube.kill_kept_processes();
    assert!(kept_processes_gone(&cluster.kube).await);
    assert!(!is_alive(kept[0]));
}

#[tokio::test]
async fn dropping_fake_kube_kills_the_commands_it_kept_running() {
    let cluster = kubelet_like_cluster().await;
    let error = exec(
        &cluster,
        &request(&["sleep", "60"], Duration::from_millis(500)),
    )
    .await
    .unwrap_err();
    assert_eq!(error, ExecError::TimedOut(Duration::from_millis(500)));
    let kept = kept_processes_appear(&cluster.kube).await;
    assert_eq!(kept.len(), 1);
    drop(cluster);
    let mut gone = false;
    for _ in 0..100 {
        // Killed and reaped by fake-kube's task: the PID no longer exists.
        if !is_alive(kept[0]) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "pid {} outlived fake-kube", kept[0]);
}

#[tokio::test]
async fn kill_on_timeout_keeps_the_pid_marker_out_of_the_output() {
    let cluster = cluster().await;
    let (logs, _guard) = capture_logs();
    let mut quick = hung_hook(true);
    quick.command = ["sh", "-c", "echo out; echo err >&2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let outcome = run_hook(&cluster.executor, &pod_ref(), &quick).await;
    assert!(outcome.succeeded());
    assert_eq!(outcome.stdout.bytes, b"out\n");
    assert_eq!(outcome.stderr.bytes, b"err\n");
    assert_eq!(
        messages(&logs.lines()),
        [
            "running exec hook",
            "stdout: out\n",
            "stderr: err\n",
            "exec hook succeeded"
        ]
    );
}

#[tokio::test]
async fn a_timed_out_exec_keeps_the_stderr_that_arrived() {
    let cluster = cluster().await;
    let attempt = cluster
        .executor
        .exec_keeping_partial_stderr(&request(
            &["sh", "-c", "echo early >&2; sleep 60"],
            Duration::from_secs(1),
        ))
        .await;
    assert_eq!(
        attempt.result,
        Err(ExecError::TimedOut(Duration::from_secs(1)))
    );
    assert_eq!(attempt.partial_stderr.bytes, b"early\n");
}

// ----- the plugin ConfigMap -----

const VELERO_NS: &str = "velero";

const RULES: &str = "\
hooks:
  resources:
  - name: freeze-db
    includedNamespaces: [shop]
    pre:
    - exec:
        command: [/sbin/fsfreeze, --freeze, /data]
";

#[tokio::test]
async fn rules_are_loaded_from_the_labelled_config_map() {
    let cluster = cluster().await;
    cluster
        .kube
        .add_config_map(plugin_config_map("quiesce-config", RULES))
        .unwrap();
    // Same data without the labels: must not be picked.
    cluster
        .kube
        .add_config_map(json!({
            "metadata": {"name": "aaa-unlabelled", "namespace": VELERO_NS},
            "data": {"config.yaml": "hooks: {resources: [{name: wrong}]}"},
        }))
        .unwrap();
    let (logs, _guard) = capture_logs();
    let config = load_hook_config(&cluster.executor, VELERO_NS).await;
    assert_eq!(config.rules().len(), 1);
    assert_eq!(config.rules()[0].name(), "freeze-db");
    let lines = logs.lines();
    let loaded = lines
        .iter()
        .find(|l| l["@message"] == "loaded hook rules from the plugin ConfigMap")
        .unwrap();
    assert_eq!(loaded["configMap"], "velero/quiesce-config");
    assert_eq!(loaded["rules"], 1);
    let list = cluster
        .kube
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/v1/namespaces/velero/configmaps")
        .unwrap();
    assert!(list.query_pairs().iter().any(|(k, v)| k == "labelSelector"
        && v == "velero.io/plugin-config,quiesce.dev/pod-hooks=BackupItemActionV2"));
}

#[tokio::test]
async fn no_config_map_means_the_default_config_and_an_info_line() {
    let cluster = cluster().await;
    let (logs, _guard) = capture_logs();
    let config = load_hook_config(&cluster.executor, VELERO_NS).await;
    assert!(config.rules().is_empty());
    let lines = logs.lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["@level"], "info");
    assert_eq!(
        lines[0]["@message"],
        "no plugin ConfigMap found; only annotation hooks apply"
    );
}

#[tokio::test]
async fn an_unreachable_api_server_is_an_error_line_and_the_default_config() {
    let cluster = cluster().await;
    point_kubeconfig_at_a_closed_port(&cluster);
    let (logs, _guard) = capture_logs();
    let config =
        load_hook_config(&Kube::from_kubeconfig_file(&cluster.kubeconfig), VELERO_NS).await;
    assert!(config.rules().is_empty());
    let lines = logs.lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["@level"], "error");
    assert!(lines[0]["error"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .contains("connection refused"));
}

#[tokio::test]
async fn several_config_maps_use_the_first_by_name_and_warn() {
    let cluster = cluster().await;
    cluster
        .kube
        .add_config_map(plugin_config_map("zz-second", "hooks: {resources: []}"))
        .unwrap();
    cluster
        .kube
        .add_config_map(plugin_config_map("aa-first", RULES))
        .unwrap();
    let (logs, _guard) = capture_logs();
    let config = load_hook_config(&cluster.executor, VELERO_NS).await;
    assert_eq!(config.rules().len(), 1);
    let lines = logs.lines();
    let warning = lines.iter().find(|l| l["@level"] == "warn").unwrap();
    assert_eq!(warning["configMap"], "velero/aa-first");
    assert_eq!(warning["candidates"], "aa-first, zz-second");
}

#[tokio::test]
async fn configuration_problems_are_logged_naming_the_config_map() {
    let cluster = cluster().await;
    cluster
        .kube
        .add_config_map(plugin_config_map("broken", "hooks: [this is: not valid"))
        .unwrap();
    let (logs, _guard) = capture_logs();
    let config = load_hook_config(&cluster.executor, VELERO_NS).await;
    assert!(config.rules().is_empty());
    let lines = logs.lines();
    let error = lines.iter().find(|l| l["@level"] == "error").unwrap();
    assert_eq!(error["configMap"], "velero/broken");
    assert!(error["@message"]
        .as_str()
        .unwrap()
        .starts_with("plugin ConfigMap velero/broken: config.yaml"));
}
