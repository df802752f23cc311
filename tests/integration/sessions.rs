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

use crate::util::databases::{MariaDb, Postgres};
use crate::util::velero::{shop_pod, Velero, NAMESPACE};
use crate::util::BACKUP_NAME;

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

// ----- real databases -----

/// The ready text of every database session here.
const READY: &str = "quiesce-frozen";

/// An `INSERT` into `shop.orders`, running in a client of its own from `started`.
struct Writer {
    child: std::process::Child,
    started: Instant,
}

impl Writer {
    fn start(db: &MariaDb) -> Writer {
        let child = db
            .command("INSERT INTO shop.orders (v) VALUES (1)")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Writer {
            child,
            started: Instant::now(),
        }
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the insert to complete (it must succeed); when it did.
    async fn finished(&mut self) -> Instant {
        let deadline = Instant::now() + EVENTUALLY;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "the insert failed: {status}");
                return Instant::now();
            }
            assert!(Instant::now() < deadline, "the writer never completed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn millis(duration: Duration) -> u128 {
    duration.as_millis()
}

/// What the writer's insert is doing, as the server reports it (`Waiting for backup lock`:
/// MariaDB 10.4+ implements the global read lock with its backup lock).
fn writer_state(db: &MariaDb) -> String {
    db.sql(
        "SELECT STATE FROM information_schema.PROCESSLIST WHERE INFO LIKE 'INSERT INTO shop.orders%'",
    )
    .trim()
    .to_owned()
}

/// A pod of `shop` with claim `data` whose pre hook holds a MariaDB read lock in one `mysql`
/// session, released by the thaw's `UNLOCK TABLES` and end-of-file.
fn mariadb_pod(db: &MariaDb, name: &str) -> PodBuilder {
    let argv = db.client_argv(&["--unbuffered", "-N"]);
    shop_pod(name)
        .claims(["data"])
        .annotation(
            &format!("{PRE}command"),
            serde_json::to_string(&argv).unwrap(),
        )
        .annotation(
            &format!("{PRE}stdin"),
            format!("FLUSH TABLES WITH READ LOCK; SELECT '{READY}';"),
        )
        .annotation(&format!("{PRE}hold-until-output"), READY)
        .annotation(&format!("{POST}stdin"), "UNLOCK TABLES;")
}

/// Freezes `pod` through `velero` (its session then holds the lock) and starts a writer, which
/// must still be waiting `blocked` later.
async fn held_and_blocked(
    velero: &mut Velero,
    db: &MariaDb,
    pod: &Value,
    blocked: Duration,
) -> Writer {
    velero.index(pod).await;
    velero.volume("pv-data", "data").await.unwrap();
    let mut writer = Writer::start(db);
    tokio::time::sleep(blocked).await;
    assert!(
        writer.is_running(),
        "the insert waits while the pod is frozen"
    );
    writer
}

/// `heldMs` of the `held session ended` line (or of the failed end's line).
async fn held_ms(velero: &Velero) -> u64 {
    let ending = wait_for_line(velero, "ending held session").await;
    ending["heldMs"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_a_writer_blocks_during_a_held_read_lock_and_completes_after_the_thaw() {
    let Some(db) = MariaDb::start() else { return };
    let mut velero = Velero::start().await;
    let pod = mariadb_pod(&db, "mariadb-0").build();
    let mut writer = held_and_blocked(&mut velero, &db, &pod, Duration::from_millis(1500)).await;
    let state = writer_state(&db);
    assert!(state.starts_with("Waiting for"), "{state:?}");

    let thaw = Instant::now();
    velero.pod(&pod).await.unwrap();
    let thaw_returned = Instant::now();
    let done = writer.finished().await;
    assert!(
        done > thaw,
        "the insert completed only after the thaw began"
    );
    assert_eq!(db.sql("SELECT COUNT(*) FROM shop.orders").trim(), "1");
    let ended = wait_for_line(&velero, "held session ended").await;
    assert_eq!(ended["exitCode"], 0);
    assert_eq!(ended["thawedBy"], "pod-item");
    eprintln!(
        "mariadb held session: writer blocked ({state}) {} ms, completed {} ms after the thaw \
         began (the thaw's Execute answered after {} ms); session held {} ms",
        millis(done - writer.started),
        millis(done - thaw),
        millis(thaw_returned - thaw),
        held_ms(&velero).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_the_same_sql_as_a_one_shot_hook_holds_nothing() {
    let Some(db) = MariaDb::start() else { return };
    let mut velero = Velero::start().await;
    let argv = db.client_argv(&[
        "-N",
        "-e",
        &format!("FLUSH TABLES WITH READ LOCK; SELECT '{READY}'"),
    ]);
    let pod = shop_pod("mariadb-0")
        .claims(["data"])
        .annotation(
            &format!("{PRE}command"),
            serde_json::to_string(&argv).unwrap(),
        )
        .build();
    velero.index(&pod).await;
    velero.volume("pv-data", "data").await.unwrap();
    let ran = wait_for_line(&velero, "stdout: quiesce-frozen\n").await;
    assert_eq!(ran["hookPhase"], "pre", "the lock was taken");
    let mut writer = Writer::start(&db);
    let done = writer.finished().await;
    // The pod is still "frozen" (its item has not come), yet nothing holds the lock: the
    // client exited, its connection closed and the lock went with it.
    eprintln!(
        "mariadb one-shot FLUSH TABLES WITH READ LOCK: the writer completed in {} ms during the \
         freeze",
        millis(done - writer.started)
    );
    assert!(done - writer.started < Duration::from_secs(2));
    velero.pod(&pod).await.unwrap();
}

/// The end of a session held through `cause` (Shutdown, SIGTERM, the watchdog), `blocked_for`
/// after the writer started: the writer completes, and the log says why.
async fn assert_released(velero: &Velero, writer: &mut Writer, thawed_by: &str, what: &str) {
    let done = writer.finished().await;
    let ending = wait_for_line(velero, &format!("ending held session ({thawed_by})")).await;
    assert_eq!(ending["thawedBy"], thawed_by);
    let ended = wait_for_line(velero, "held session ended").await;
    assert_eq!(ended["exitCode"], 0);
    eprintln!(
        "mariadb held session ended by {what}: the writer completed after {} ms; session held \
         {} ms",
        millis(done - writer.started),
        ending["heldMs"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_the_watchdog_releases_a_held_lock() {
    let Some(db) = MariaDb::start() else { return };
    let mut velero = Velero::start().await;
    let pod = mariadb_pod(&db, "mariadb-0")
        .annotation("quiesce.dev/max-freeze", "2s")
        .build();
    let mut writer = held_and_blocked(&mut velero, &db, &pod, Duration::from_millis(500)).await;
    // The pod's item never comes.
    assert_released(
        &velero,
        &mut writer,
        "max-freeze",
        "the max-freeze watchdog",
    )
    .await;
    let watchdog = wait_for_line(&velero, "Pod frozen longer than its max-freeze").await;
    assert_eq!(watchdog["@level"], "error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_shutdown_releases_a_held_lock() {
    let Some(db) = MariaDb::start() else { return };
    let mut velero = Velero::start().await;
    let pod = mariadb_pod(&db, "mariadb-0").build();
    let mut writer = held_and_blocked(&mut velero, &db, &pod, Duration::from_millis(500)).await;
    let exit = velero.stop(Duration::from_secs(5)).await;
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
    assert_released(&velero, &mut writer, "shutdown", "Shutdown").await;
    wait_for_line(&velero, "Thawing pod before the plugin exits").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_sigterm_releases_a_held_lock() {
    let Some(db) = MariaDb::start() else { return };
    let mut velero = Velero::start().await;
    let pod = mariadb_pod(&db, "mariadb-0").build();
    let mut writer = held_and_blocked(&mut velero, &db, &pod, Duration::from_millis(500)).await;
    velero.plugin.signal(libc::SIGTERM);
    assert!(velero.plugin.wait_exit(Duration::from_secs(5)).is_some());
    assert_released(&velero, &mut writer, "shutdown", "SIGTERM").await;
    wait_for_line(&velero, "SIGTERM received, stopping").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_a_session_without_its_ready_text_fails_at_its_timeout_and_holds_nothing() {
    let Some(db) = MariaDb::start() else { return };
    let mut velero = Velero::start().await;
    let pod = mariadb_pod(&db, "mariadb-0")
        .annotation(&format!("{PRE}hold-until-output"), "never-printed")
        .annotation(&format!("{PRE}timeout"), "3s")
        .build();
    velero.index(&pod).await;
    let started = Instant::now();
    let refused = velero.volume("pv-data", "data").await.unwrap_err();
    let failed_after = started.elapsed();
    assert!(refused
        .message()
        .contains("timed out after 3s waiting for \"never-printed\""));
    assert!(failed_after >= Duration::from_secs(3));
    let mut writer = Writer::start(&db);
    let done = writer.finished().await;
    assert!(
        done - writer.started < Duration::from_secs(2),
        "nothing is held"
    );
    let failed = wait_for_line(&velero, "Error executing hook").await;
    assert_eq!(failed["hookPhase"], "pre");
    eprintln!(
        "mariadb session without its ready text: failed after {} ms; the writer then completed \
         in {} ms",
        millis(failed_after),
        millis(done - writer.started)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_on_a_v4_server_the_post_input_must_end_the_client() {
    let Some(db) = MariaDb::start() else { return };
    let v4 = || FakeKube::builder().v4_only(true);
    // `\q` ends the client: its exit code is the post hook's, as on v5.
    let mut velero = Velero::start_on(v4(), &[]).await;
    let pod = mariadb_pod(&db, "mariadb-0")
        .annotation(&format!("{POST}stdin"), "UNLOCK TABLES;\n\\q")
        .build();
    let mut writer = held_and_blocked(&mut velero, &db, &pod, Duration::from_millis(500)).await;
    velero.pod(&pod).await.unwrap();
    writer.finished().await;
    let ended = wait_for_line(&velero, "held session ended").await;
    assert_eq!(ended["exitCode"], 0);

    // Without it, the client never reads end-of-file: ended at the post timeout, the lock goes
    // with its connection, and the failure names the fix.
    let mut velero = Velero::start_on(v4(), &[]).await;
    let pod = mariadb_pod(&db, "mariadb-1")
        .annotation(&format!("{POST}timeout"), "2s")
        .build();
    velero.index(&pod).await;
    velero.volume("pv-data", "data").await.unwrap();
    let mut writer = Writer::start(&db);
    velero.pod(&pod).await.unwrap();
    writer.finished().await;
    let failed = wait_for_line(&velero, "Error executing hook").await;
    assert!(failed["error"].as_str().unwrap().contains("such as \\q"));
}

/// A pod of `shop` with claim `data` whose pre hook starts a non-exclusive PostgreSQL backup
/// labelled with the Backup's name (a template variable in stdin) in one held `psql` session,
/// ended at the thaw by `pg_backup_stop`.
fn postgres_pod(pg: &Postgres, name: &str) -> PodBuilder {
    shop_pod(name)
        .claims(["data"])
        .annotation(
            &format!("{PRE}command"),
            serde_json::to_string(&pg.client_argv(&[])).unwrap(),
        )
        .annotation(
            &format!("{PRE}stdin"),
            format!("SELECT pg_backup_start('{{{{backup.name}}}}', true); SELECT '{READY}';"),
        )
        .annotation(&format!("{PRE}hold-until-output"), READY)
        .annotation(&format!("{POST}stdin"), "SELECT * FROM pg_backup_stop();")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backup_mode_in_one_held_session_ends_with_its_label_in_the_post_log() {
    let Some(pg) = Postgres::start() else { return };
    let mut velero = Velero::start().await;
    let pod = postgres_pod(&pg, "postgres-0").build();
    velero.index(&pod).await;
    velero.volume("pv-data", "data").await.unwrap();
    // Between the freeze and the thaw the backup's session is connected, idle after its ready
    // text (a second session could not stop this backup: it belongs to that one).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sessions = pg.command(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle' AND query = 'SELECT ''{READY}'';'"
    ))
    .output()
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&sessions.stdout).trim(), "1");
    velero.pod(&pod).await.unwrap();
    let ended = wait_for_line(&velero, "held session ended").await;
    assert_eq!(ended["exitCode"], 0);
    assert_eq!(ended["hookPhase"], "post");
    // pg_backup_stop's row: the stop LSN, the backup_label file (labelled with the Backup's
    // name), the tablespace map.
    let label_line = format!("LABEL: {BACKUP_NAME}");
    let label = velero
        .stderr()
        .into_iter()
        .find(|l| {
            l["hookPhase"] == "post"
                && l["@message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("stdout: ") && m.contains(&label_line))
        })
        .unwrap_or_else(|| panic!("no label in the post hook's log: {:#?}", velero.stderr()));
    let text = label["@message"].as_str().unwrap();
    assert!(text.contains("START WAL LOCATION:"), "{text}");
    eprintln!(
        "postgres backup mode held {} ms; the post hook logged pg_backup_stop's label ({} bytes)",
        held_ms(&velero).await,
        label["outputBytes"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backup_mode_as_two_one_shot_hooks_fails() {
    let Some(pg) = Postgres::start() else { return };
    let mut velero = Velero::start().await;
    let start = pg.client_argv(&["-c", "SELECT pg_backup_start('quiesce', true)"]);
    let stop = pg.client_argv(&["-c", "SELECT * FROM pg_backup_stop()"]);
    let pod = shop_pod("postgres-0")
        .claims(["data"])
        .annotation(
            &format!("{PRE}command"),
            serde_json::to_string(&start).unwrap(),
        )
        .annotation(
            &format!("{POST}command"),
            serde_json::to_string(&stop).unwrap(),
        )
        .build();
    velero.back_up(&pod, &[("pv-data", "data")]).await.unwrap();
    let failed = wait_for_line(&velero, "Error executing hook").await;
    assert_eq!(failed["hookPhase"], "post");
    assert_eq!(failed["exitCode"], 1);
    let stderr = wait_for_line(&velero, "stderr: ERROR:").await;
    assert!(
        stderr["@message"]
            .as_str()
            .unwrap()
            .contains("backup is not in progress"),
        "{stderr}"
    );
    assert_eq!(
        lines_with(&velero, "exec hook succeeded")[0]["hookPhase"],
        "pre"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_ignores_end_of_file_is_killed_with_kill_on_timeout() {
    // Like a kubelet, the server leaves a command running when its client goes away: only the
    // kill exec can stop it.
    let kubelet_like = FakeKube::builder().keep_processes_on_disconnect(true);
    let mut velero = Velero::start_on(kubelet_like, &[]).await;
    let stubborn = r#"read l; echo quiesce-frozen; while :; do sleep 1; done"#;
    let db = shop_pod("db")
        .claims(["data"])
        .annotation(
            &format!("{PRE}command"),
            serde_json::to_string(&["sh", "-c", stubborn]).unwrap(),
        )
        .annotation(&format!("{PRE}stdin"), "lock")
        .annotation(&format!("{PRE}hold-until-output"), READY)
        .annotation(&format!("{PRE}kill-on-timeout"), "true")
        .annotation(&format!("{POST}timeout"), "1s")
        .build();
    velero.back_up(&db, &[("pv-data", "data")]).await.unwrap();
    let failed = wait_for_line(&velero, "Error executing hook").await;
    assert_eq!(failed["hookPhase"], "post");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .starts_with("the held session did not exit within 1s after its stdin was closed"),
        "{failed}"
    );
    let term = wait_for_line(&velero, "sent TERM to pid").await;
    let pid = term["pid"].as_u64().unwrap();
    wait_for_line(&velero, &format!("process {pid} exited after TERM")).await;
    assert!(
        velero.cluster.kept_processes().is_empty(),
        "nothing left running"
    );
}
