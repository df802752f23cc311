//! Issue 9's security promises, checked on the real binary: only a Unix socket (never a TCP
//! listener), removed on every orderly exit path; hostile annotation values give bounded, clean
//! log lines; secrets from the environment and the kubeconfig never reach the log.

use std::collections::HashSet;
use std::time::Duration;

use fake_kube::objects::pod;
use serde_json::Value;

use crate::util::{execute_request, launch_with_cluster_env, Plugin};

/// Velero's host gives the plugin 2 s after Shutdown before it SIGKILLs it.
const HOST_GRACE: Duration = Duration::from_secs(2);
/// The log layer's cap on one line (the host splits longer lines into unparsed fragments).
const MAX_LINE_BYTES: usize = 60 * 1024;

/// The socket inodes among the process's open files.
fn socket_inodes(pid: u32) -> HashSet<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect()
}

/// Inodes of TCP sockets in state LISTEN (`0A`) in the process's network namespace.
fn tcp_listeners(pid: u32) -> HashSet<String> {
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    (fields.get(3) == Some(&"0A")).then(|| fields.get(9).map(|s| s.to_string()))?
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_listens_on_no_tcp_port_even_while_talking_to_the_api_server() {
    let (plugin, cluster) = launch_with_cluster_env(&[], &[]).await;
    // Make it open a client connection to the API server first.
    let pod = pod("shop", "db")
        .uid("u1")
        .annotation("pre.hook.backup.quiesce.dev/command", "[\"true\"]")
        .container("app")
        .build();
    cluster.add_pod(pod.clone()).unwrap();
    plugin
        .backup_action()
        .await
        .execute(execute_request(serde_json::to_vec(&pod).unwrap()))
        .await
        .unwrap();
    assert_eq!(
        cluster.execs().len(),
        1,
        "the hook ran over a TCP client connection"
    );

    let pid = plugin.child.id();
    let mine = socket_inodes(pid);
    assert!(!mine.is_empty());
    let listening: Vec<_> = tcp_listeners(pid).intersection(&mine).cloned().collect();
    assert!(
        listening.is_empty(),
        "TCP listeners of the plugin: {listening:?}"
    );
}

#[tokio::test]
async fn shutdown_removes_the_socket_and_its_directory() {
    let mut plugin = Plugin::launch(&[]);
    let socket = plugin.socket.clone();
    let directory = socket.parent().unwrap().to_owned();
    assert!(socket.exists());
    plugin.shutdown().await;
    let status = plugin.wait_exit(HOST_GRACE).expect("exits after Shutdown");
    assert_eq!(status.code(), Some(0));
    assert!(!socket.exists(), "socket removed");
    assert!(!directory.exists(), "socket directory removed");
}

#[tokio::test]
async fn a_host_that_vanishes_leaves_no_socket_behind_after_sigterm() {
    // Velero's pod stopping sends SIGTERM to every process; the socket must go with it.
    let mut plugin = Plugin::launch(&[]);
    let directory = plugin.socket.parent().unwrap().to_owned();
    plugin.signal(15);
    plugin.wait_exit(HOST_GRACE).expect("exits after SIGTERM");
    assert!(!directory.exists(), "socket directory removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_annotations_give_bounded_clean_log_lines() {
    let (plugin, cluster) = launch_with_cluster_env(&[], &[]).await;
    let control = "\u{1b}[31m\u{0}\r\n\u{7}\u{202e}".repeat(16 * 1024);
    let huge = "x".repeat(200 * 1024);
    let pod = pod("shop", "db")
        .uid("u1")
        .annotation(
            "pre.hook.backup.quiesce.dev/command",
            format!("[\"{huge}\", \"{}\"]", control.escape_default()),
        )
        .annotation("pre.hook.backup.quiesce.dev/container", control.clone())
        .annotation("pre.hook.backup.quiesce.dev/timeout", control.clone())
        .annotation("pre.hook.backup.quiesce.dev/on-error", huge.clone())
        .annotation("pre.hook.backup.quiesce.dev/retries", control.clone())
        .annotation("quiesce.dev/run-on", control.clone())
        .annotation("quiesce.dev/run-once-per", "owner")
        .container("app")
        .build();
    cluster.add_pod(pod.clone()).unwrap();
    let answer = plugin
        .backup_action()
        .await
        .execute(execute_request(serde_json::to_vec(&pod).unwrap()))
        .await;
    let error = answer.expect_err("the named container does not exist");
    assert!(
        error.message().len() < 1024 * 1024,
        "the error is bounded too"
    );
    assert!(
        cluster.execs().is_empty(),
        "nothing ran in a container that does not exist"
    );

    let lines = plugin.stderr_lines();
    assert!(
        lines.iter().any(|l| l.contains("\\u001b[31m\\u0000\\r\\n")),
        "the hostile value is logged, escaped"
    );
    for line in &lines {
        assert!(line.len() <= MAX_LINE_BYTES, "line of {} bytes", line.len());
        assert!(
            !line.chars().any(|c| c.is_control()),
            "control characters are escaped in JSON"
        );
        let parsed: Value = serde_json::from_str(line).expect("every line is one JSON object");
        assert!(parsed["@message"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_the_environment_and_kubeconfig_never_reach_the_log() {
    const SECRET: &str = "s3cr3t-value-that-must-not-leak";
    let (plugin, cluster) = launch_with_cluster_env(
        &["--log-level", "debug"],
        &[
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("VELERO_TOKEN", SECRET),
            ("RUST_LOG", "trace"),
        ],
    )
    .await;
    let pod = pod("shop", "db")
        .uid("u1")
        .annotation("pre.hook.backup.quiesce.dev/command", "[\"false\"]")
        .annotation("post.hook.backup.quiesce.dev/command", "[\"true\"]")
        .container("app")
        .build();
    cluster.add_pod(pod.clone()).unwrap();
    let _ = plugin
        .backup_action()
        .await
        .execute(execute_request(serde_json::to_vec(&pod).unwrap()))
        .await;
    plugin.shutdown().await;
    let log = plugin.stderr_lines().join("\n");
    assert!(log.contains("command terminated with exit code 1"), "{log}");
    assert!(!log.contains(SECRET), "an environment secret leaked");
    let kubeconfig = cluster.kubeconfig_yaml();
    let tokens: Vec<&str> = kubeconfig
        .lines()
        .filter_map(|l| l.trim().strip_prefix("token:"))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(
        tokens.len(),
        1,
        "the plugin authenticates with a bearer token"
    );
    assert!(!log.contains(tokens[0]), "the kubeconfig token leaked");
}
