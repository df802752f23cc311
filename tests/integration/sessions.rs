//! Hooks with stdin and held sessions, end to end: the real plugin binary in Velero's call
//! order, exec over the fake API server's WebSocket (v5, and v4-only), and the commands it runs
//! locally — a shell standing in for a database client first, then real MariaDB and
//! PostgreSQL servers (`util::databases`), whose `mysql` and `psql` clients are the hook
//! commands.
//!
//! What the database tests prove, with numbers printed for the README (`--nocapture`): a
//! writer blocks during a held `FLUSH TABLES WITH READ LOCK` and completes only after the thaw,
//! while the same SQL as a one-shot hook holds nothing; `pg_backup_start` and
//! `pg_backup_stop` work in one held session (the label in the post hook's log) and fail as
//! two one-shot hooks; the watchdog, Shutdown and SIGTERM release a held lock; a session that
//! never prints its ready text fails at its timeout and holds nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use fake_kube::objects::{pod, PodBuilder};
use fake_kube::{ExecOutcome, FakeKube, TimelineEventKind};
use quiesce::exec::session::exec_with_stdin;
use quiesce::exec::{ExecError, ExecRequest};
use quiesce::kube_api::Kube;
use serde_json::Value;

use crate::util::velero::{shop_pod, Velero, NAMESPACE};

/// Generous bound for "it happens at all" waits; never a performance assertion.
const EVENTUALLY: Duration = Duration::from_secs(20);

const PRE: &str = "pre.hook.backup.quiesce.dev/";
const POST: &str = "post.hook.backup.quiesce.dev/";

/// The plugin's JSON log lines with this `@message`.
fn lines_with(velero: &Velero, message: &str) -> Vec<Value> {
    velero
        .stderr()
        .into_iter()
        .filter(|l| l["@message"] == message)
        .collect()
}

/// The first log line whose `@message` starts with `prefix`, waiting for it to come.
async fn wait_for_line(velero: &Velero, prefix: &str) -> Value {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        if let Some(line) = velero.stderr().into_iter().find(|l| {
            l["@message"]
                .as_str()
                .is_some_and(|m| m.starts_with(prefix))
        }) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no line starting with {prefix:?}: {:#?}",
            velero.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ----- stdin over the exec protocol, without the plugin -----

/// A kube client for `kube`, and the pod `shop/db-0` (container `main`) to exec into.
async fn executor(kube: &FakeKube, dir: &Path) -> Kube {
    kube.add_pod(pod(NAMESPACE, "db-0").container("main").build())
        .unwrap();
    let kubeconfig = dir.join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig).unwrap();
    Kube::from_kubeconfig_file(&kubeconfig)
}

/// `sh -c SCRIPT` in `shop/db-0`, timeout `seconds`.
fn sh(script: &str, seconds: u64) -> ExecRequest {
    ExecRequest {
        namespace: NAMESPACE.into(),
        pod: "db-0".into(),
        container: "main".into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        timeout: Duration::from_secs(seconds),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_reaches_the_command_and_is_closed_over_v5() {
    let kube = FakeKube::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let executor = executor(&kube, dir.path()).await;
    let attempt = exec_with_stdin(&executor, &sh("cat; echo done", 10), b"hello\n").await;
    let output = attempt.result.unwrap();
    assert_eq!(output.stdout.text(), "hello\ndone\n");
    assert_eq!(output.exit_code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_v4_server_stdin_stays_open_so_the_input_must_end_the_command() {
    let kube = FakeKube::builder().v4_only(true).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let executor = executor(&kube, dir.path()).await;
    // A command that reads one line ends by itself: its output and exit code arrive.
    let attempt = exec_with_stdin(&executor, &sh("read l; echo got $l", 10), b"hi\n").await;
    assert_eq!(attempt.result.unwrap().stdout.text(), "got hi\n");
    // One that reads to the end never sees it: the timeout says why.
    let attempt = exec_with_stdin(&executor, &sh("cat", 2), b"hi\n").await;
    let error = attempt.result.unwrap_err();
    assert_eq!(error, ExecError::StdinNotClosed(Duration::from_secs(2)));
    assert!(error.to_string().contains("v4.channel.k8s.io"), "{error}");
    let protocols: Vec<_> = kube
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/exec"))
        .map(|r| r.header("sec-websocket-protocol").map(str::to_owned))
        .collect();
    assert!(protocols
        .iter()
        .all(|p| p.as_deref() == Some("v5.channel.k8s.io, v4.channel.k8s.io")));
}

// ----- a held session through the plugin, a shell standing in for the database -----

/// Appends the lines it reads to `session.txt` until end-of-file (or a line `quit`), printing
/// `quiesce-frozen` after the first: a client holding a lock until its input ends.
const SHELL_SESSION: &str = r#"read first; echo "$first" > session.txt; echo quiesce-frozen;
while read line; do [ "$line" = quit ] && break; echo "$line" >> session.txt; done; echo ended"#;

/// A pod of `shop` with claim `data` whose pre hook holds [`SHELL_SESSION`] (stdin `lock`)
/// and whose post hooks end it with `post_stdin`, then run `echo thawed`.
fn shell_session_pod(name: &str, post_stdin: &str) -> PodBuilder {
    shop_pod(name)
        .claims(["data"])
        .annotation(
            &format!("{PRE}command"),
            serde_json::to_string(&["sh", "-c", SHELL_SESSION]).unwrap(),
        )
        .annotation(&format!("{PRE}stdin"), "lock")
        .annotation(&format!("{PRE}hold-until-output"), "quiesce-frozen")
        .annotation(&format!("{POST}stdin"), post_stdin)
        .annotation(&format!("{POST}timeout"), "3s")
        .annotation(&format!("{POST}command"), r#"["echo","thawed"]"#)
}

/// What the session wrote into its container's directory.
fn session_file(velero: &Velero, pod: &str) -> String {
    let dir = velero.cluster.container_dir(NAMESPACE, pod, "app").unwrap();
    std::fs::read_to_string(dir.join("session.txt")).unwrap_or_default()
}

/// The outcome the fake API server recorded for the session's exec (`sh -c …`).
fn session_outcome(velero: &Velero) -> Option<ExecOutcome> {
    velero
        .cluster
        .timeline()
        .into_iter()
        .find_map(|e| match e.kind {
            TimelineEventKind::ExecFinished { exec, outcome } if exec.argv[0] == "sh" => {
                Some(outcome)
            }
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_session_spans_the_snapshot_and_ends_at_the_thaw() {
    let mut velero = Velero::start().await;
    let db = shell_session_pod("db", "unlock").build();
    velero.index(&db).await;
    velero.volume("pv-data", "data").await.unwrap();
    assert_eq!(session_file(&velero, "db"), "lock\n", "the session holds");
    assert_eq!(session_outcome(&velero), None, "and runs on");
    velero.pod(&db).await.unwrap();

    assert_eq!(session_file(&velero, "db"), "lock\nunlock\n");
    assert_eq!(
        session_outcome(&velero),
        Some(ExecOutcome::Exited { code: 0 })
    );
    let held = wait_for_line(&velero, "holding session until the thaw").await;
    assert_eq!(held["holdUntilOutput"], "quiesce-frozen");
    let ending = wait_for_line(&velero, "ending held session (pod-item)").await;
    assert_eq!(ending["hookPhase"], "post");
    let ended = wait_for_line(&velero, "held session ended").await;
    assert_eq!(ended["exitCode"], 0);
    assert_eq!(ended["thawedBy"], "pod-item");
    assert!(ended["heldMs"].is_u64());
    assert_eq!(lines_with(&velero, "stdout: ended\n").len(), 1);
    // The post command runs after the session ended, and the pod is thawed once.
    let thawed = lines_with(&velero, "stdout: thawed\n");
    assert_eq!(thawed.len(), 1);
    assert_eq!(lines_with(&velero, "Pod thawed").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_v4_server_a_held_session_ends_when_its_post_input_ends_it() {
    let v4 = || FakeKube::builder().v4_only(true);
    let mut velero = Velero::start_on(v4(), &[]).await;
    let db = shell_session_pod("db", "unlock\nquit").build();
    velero.back_up(&db, &[("pv-data", "data")]).await.unwrap();
    let ended = wait_for_line(&velero, "held session ended").await;
    assert_eq!(ended["exitCode"], 0);
    assert_eq!(session_file(&velero, "db"), "lock\nunlock\n");
    let ending = wait_for_line(&velero, "ending held session").await;
    assert!(
        ending["@message"]
            .as_str()
            .unwrap()
            .contains("its stdin cannot be closed (the API server speaks only v4.channel.k8s.io)"),
        "{ending}"
    );

    // Without input that ends it, the session cannot see end-of-file: it is ended at the post
    // timeout, and the post hook fails saying why.
    let mut velero = Velero::start_on(v4(), &[]).await;
    let db = shell_session_pod("db", "unlock").build();
    velero.back_up(&db, &[("pv-data", "data")]).await.unwrap();
    let failed = wait_for_line(&velero, "Error executing hook").await;
    assert_eq!(failed["hookPhase"], "post");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.starts_with("the held session did not exit within 3s; the API server speaks only")
            && error.contains("\\q"),
        "{error}"
    );
    assert!(matches!(
        session_outcome(&velero),
        Some(ExecOutcome::ClientDisconnected)
    ));
}
