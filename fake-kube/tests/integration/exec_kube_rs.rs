//! Exec through kube-rs's `Api::<Pod>::exec`, the client quiesce uses.

use std::time::Duration;

use fake_kube::{ExecOutcome, FakeKube, TimelineEventKind};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::AsyncBufReadExt;

use crate::util::{api_error, client, exec, start};

/// Output on both streams and exit codes 0 and non-zero, over http or https.
async fn stdout_stderr_and_exit_codes(https: bool) {
    let kube = start(https).await;
    let client = client(&kube).await;
    let ok = exec(
        &client,
        "p",
        "main",
        &["sh", "-c", "echo out; echo err >&2"],
    )
    .await
    .unwrap();
    assert_eq!(ok.stdout_text(), "out\n");
    assert_eq!(ok.stderr_text(), "err\n");
    assert_eq!(ok.code, Some(0));

    let failed = exec(&client, "p", "main", &["sh", "-c", "echo partial; exit 3"])
        .await
        .unwrap();
    assert_eq!(failed.stdout_text(), "partial\n");
    assert_eq!(failed.code, Some(3));
    let status = failed.status.unwrap();
    assert_eq!(status.status.as_deref(), Some("Failure"));
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
}

#[tokio::test]
async fn exec_over_http_streams_output_and_exit_codes() {
    stdout_stderr_and_exit_codes(false).await;
}

#[tokio::test]
async fn exec_over_https_streams_output_and_exit_codes() {
    stdout_stderr_and_exit_codes(true).await;
}

#[tokio::test]
async fn kube_rs_falls_back_to_v4_on_a_v4_only_server() {
    let kube = FakeKube::builder().v4_only(true).start().await.unwrap();
    kube.add_pod(crate::util::standard_pod()).unwrap();
    let result = exec(
        &client(&kube).await,
        "p",
        "main",
        &["sh", "-c", "echo v4; exit 4"],
    )
    .await
    .unwrap();
    assert_eq!(result.stdout_text(), "v4\n");
    assert_eq!(result.code, Some(4));
}

#[tokio::test]
async fn command_runs_in_the_container_directory_with_the_container_env() {
    let kube = start(false).await;
    let dir = kube.container_dir("default", "p", "main").unwrap();
    std::fs::write(
        dir.join("hook.sh"),
        "#!/bin/sh\necho \"hook $GREETING $FAKE_KUBE_CONTAINER\"\n",
    )
    .unwrap();
    let result = exec(
        &client(&kube).await,
        "p",
        "main",
        &["sh", "-c", "pwd; sh ./hook.sh; echo $HOSTNAME"],
    )
    .await
    .unwrap();
    let expected = format!(
        "{}\nhook hello main\np\n",
        dir.canonicalize().unwrap().display()
    );
    assert_eq!(result.stdout_text(), expected);
}

#[tokio::test]
async fn unknown_container_is_a_bad_request_before_upgrade() {
    let kube = start(false).await;
    let error = exec(&client(&kube).await, "p", "nope", &["true"])
        .await
        .unwrap_err();
    let message = api_error(error, 400, "BadRequest");
    assert_eq!(message, "container nope is not valid for pod p");
}

#[tokio::test]
async fn missing_container_name_on_a_multi_container_pod_lists_the_choices() {
    let kube = start(false).await;
    let pods: Api<Pod> = Api::namespaced(client(&kube).await, "default");
    let error = pods
        .exec("p", vec!["true"], &AttachParams::default())
        .await
        .map(|_| ())
        .unwrap_err();
    let message = api_error(error, 400, "BadRequest");
    assert_eq!(
        message,
        "a container name must be specified for pod p, choose one of: [main sidecar]"
    );
}

#[tokio::test]
async fn missing_pod_is_not_found() {
    let kube = start(false).await;
    let error = exec(&client(&kube).await, "ghost", "main", &["true"])
        .await
        .unwrap_err();
    let message = api_error(error, 404, "NotFound");
    assert_eq!(message, "pods \"ghost\" not found");
}

#[tokio::test]
async fn removed_pod_is_not_found_afterwards() {
    let kube = start(false).await;
    let client = client(&kube).await;
    exec(&client, "p", "main", &["true"]).await.unwrap();
    kube.remove_pod("default", "p").unwrap();
    let error = exec(&client, "p", "main", &["true"]).await.unwrap_err();
    api_error(error, 404, "NotFound");
}

#[tokio::test]
async fn pod_that_is_not_running_refuses_exec() {
    let kube = start(false).await;
    kube.set_pod_phase("default", "p", "Succeeded").unwrap();
    let error = exec(&client(&kube).await, "p", "main", &["true"])
        .await
        .unwrap_err();
    match error {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 500);
            assert_eq!(status.message, "container not found (\"main\")");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn unknown_executable_fails_like_containerd_without_exit_code() {
    let kube = start(false).await;
    let result = exec(
        &client(&kube).await,
        "p",
        "main",
        &["no-such-binary-xyz", "-f"],
    )
    .await
    .unwrap();
    assert_eq!(result.code, None);
    let status = result.status.unwrap();
    assert_eq!(status.status.as_deref(), Some("Failure"));
    assert_eq!(status.reason.as_deref(), Some("InternalError"));
    let message = status.message.unwrap();
    assert!(
        message.contains("exec: \"no-such-binary-xyz\": executable file not found in $PATH"),
        "{message}"
    );
    let execs = kube.execs();
    assert!(matches!(
        execs[0].outcome,
        Some(ExecOutcome::StartFailed { .. })
    ));
}

#[tokio::test]
async fn ten_mebibytes_of_stdout_arrive_complete() {
    let kube = start(false).await;
    let result = exec(
        &client(&kube).await,
        "p",
        "main",
        &["sh", "-c", "head -c 10485760 /dev/zero; echo done >&2"],
    )
    .await
    .unwrap();
    assert_eq!(result.stdout.len(), 10 * 1024 * 1024);
    assert!(result.stdout.iter().all(|b| *b == 0));
    assert_eq!(result.stderr_text(), "done\n");
    assert_eq!(result.code, Some(0));
}

/// Whether the process no longer runs (gone from /proc, or a zombie).
fn process_is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie waiting for its (new) parent to reap it is dead too.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn client_disconnect_kills_the_command_and_its_children() {
    let kube = start(false).await;
    let pods: Api<Pod> = Api::namespaced(client(&kube).await, "default");
    let params = AttachParams::default().container("main").stderr(false);
    let mut process = pods
        .exec(
            "p",
            vec![
                "sh",
                "-c",
                "sleep 60 & echo $! > sleep.pid; echo started; wait",
            ],
            &params,
        )
        .await
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(process.stdout().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).await.unwrap();
    assert_eq!(line, "started\n");
    let dir = kube.container_dir("default", "p", "main").unwrap();
    let sleep_pid: u32 = std::fs::read_to_string(dir.join("sleep.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let shell_pid = kube.execs()[0].pid.unwrap();
    drop(stdout);
    drop(process); // aborts kube-rs's stream task: the connection closes mid-command

    let ended = kube
        .wait_for_timeline(Duration::from_secs(10), |events| {
            events.iter().any(|e| {
                matches!(
                    &e.kind,
                    TimelineEventKind::ExecFinished {
                        outcome: ExecOutcome::ClientDisconnected,
                        ..
                    }
                )
            })
        })
        .await;
    assert!(
        ended,
        "no ClientDisconnected end record: {:?}",
        kube.timeline()
    );
    for _ in 0..100 {
        if process_is_gone(sleep_pid) && process_is_gone(shell_pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sleep {sleep_pid} or sh {shell_pid} still alive 10 s after the client left");
}

#[tokio::test]
async fn timeline_orders_execs_and_markers() {
    let kube = start(false).await;
    let client = client(&kube).await;
    exec(&client, "p", "main", &["echo", "freeze"])
        .await
        .unwrap();
    let marker = kube.mark("snapshot pvc/data");
    exec(&client, "p", "sidecar", &["sh", "-c", "exit 2"])
        .await
        .unwrap();

    let execs = kube.execs();
    assert_eq!(execs.len(), 2);
    let (freeze, thaw) = (&execs[0], &execs[1]);
    assert_eq!(freeze.exec.argv, vec!["echo", "freeze"]);
    assert_eq!(freeze.exec.container, "main");
    assert_eq!(freeze.outcome, Some(ExecOutcome::Exited { code: 0 }));
    assert_eq!(thaw.exec.container, "sidecar");
    assert_eq!(thaw.outcome, Some(ExecOutcome::Exited { code: 2 }));
    assert!(freeze.end_seq.unwrap() < marker && marker < thaw.start_seq);
    assert!(freeze.ended.unwrap() <= thaw.started);
    let timeline = kube.timeline();
    assert!(timeline
        .windows(2)
        .all(|w| w[0].seq < w[1].seq && w[0].at <= w[1].at));
}

#[tokio::test]
async fn request_log_shows_what_kube_rs_sent() {
    let kube = start(false).await;
    exec(
        &client(&kube).await,
        "p",
        "main",
        &["sh", "-c", "echo a; exit 0"],
    )
    .await
    .unwrap();
    let request = kube
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/exec"))
        .unwrap();
    assert_eq!(request.method, "GET");
    assert_eq!(request.query_values("container"), vec!["main"]);
    assert_eq!(
        request.query_values("command"),
        vec!["sh", "-c", "echo a; exit 0"]
    );
    assert_eq!(
        request.header("sec-websocket-protocol"),
        Some("v5.channel.k8s.io, v4.channel.k8s.io")
    );
    assert_eq!(
        request.header("authorization").map(str::to_string),
        Some(format!("Bearer {}", fake_kube::DUMMY_TOKEN))
    );
}
