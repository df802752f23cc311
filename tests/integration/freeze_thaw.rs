//! Freeze and thaw at the right moments, end to end: the real binary, driven in Velero's call
//! order by a replaying host, running real commands through the fake API server. Every
//! scenario asserts on the fake server's timeline: freeze < snapshot < thaw.

use std::time::Duration;

use fake_kube::{ExecOutcome, TimelineEventKind};
use serde_json::Value;

use crate::util::backup_json;
use crate::util::velero::{pod_volume_backup, Velero};

/// Generous bound for "it happens at all" waits; never a performance assertion.
const EVENTUALLY: Duration = Duration::from_secs(20);

use crate::util::velero::hooked_pod as hooked;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_with_one_claim_is_frozen_just_around_its_snapshot() {
    let mut velero = Velero::start().await;
    let db = hooked("db", &["data"]).build();
    velero.back_up(&db, &[("pv-data", "data")]).await.unwrap();
    let timeline = velero.timeline();
    timeline.assert_frozen_around("db", "snapshot pv-data");
    assert_eq!(timeline.finished("freeze", "db"), 1);
    assert_eq!(timeline.finished("thaw", "db"), 1);
    let thawed = velero
        .stderr()
        .into_iter()
        .find(|l| l["@message"] == "Pod thawed")
        .expect("a thaw line");
    assert_eq!(thawed["pod"], "db");
    assert!(thawed["freezeWindowMs"].is_u64());
    assert_eq!(thawed["thawedBy"], "pod-item");

    // The summary comes once nothing is frozen — before Velero closes the backup's log and
    // stops the plugin, so that `velero backup logs` has it — and is not repeated at the exit.
    let summary = velero
        .plugin
        .wait_for_log("quiesce backup summary", EVENTUALLY)
        .expect("a summary line before Shutdown");
    assert_eq!(summary["hooksAttempted"], 2);
    assert_eq!(summary["hooksSucceeded"], 2);
    assert_eq!(summary["hooksFailed"], 0);
    assert_eq!(summary["longestFreezePod"], "shop/db");

    // Operators see each outcome as an Event on the pod.
    velero.plugin.shutdown().await;
    let reasons: Vec<String> = velero
        .cluster
        .events(Some("shop"))
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["reason"].as_str().unwrap_or(""),
                e["involvedObject"]["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        reasons,
        ["QuiesceHookSucceeded db", "QuiesceHookSucceeded db"]
    );
    let summaries = velero
        .stderr()
        .iter()
        .filter(|l| l["@message"] == "quiesce backup summary")
        .count();
    assert_eq!(summaries, 1, "nothing new to say at the exit");
}

/// Velero closes the backup's log as soon as its last item is done: a summary line logged even
/// a moment after the last thaw is lost, and `velero backup logs` would show the counts of an
/// earlier pod as the backup's. Found on the real cluster, where two pods thawed within the same
/// second and the log said 2 hooks when 3 ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backups_totals_are_logged_before_its_last_pod_is_answered() {
    let mut velero = Velero::start().await;
    for name in ["db", "web"] {
        let pod = hooked(name, &["data"]).build();
        velero.back_up(&pod, &[("pv-data", "data")]).await.unwrap();
    }
    // No waiting: what Velero has when its last item is answered.
    let summaries: Vec<Value> = velero
        .stderr()
        .into_iter()
        .filter(|l| l["@message"] == "quiesce backup summary")
        .collect();
    let last = summaries.last().expect("a summary line before Shutdown");
    assert_eq!(last["podsWithHooks"], 2, "{summaries:?}");
    assert_eq!(last["hooksAttempted"], 4, "{summaries:?}");
    assert_eq!(last["hooksSucceeded"], 4, "{summaries:?}");
    assert_eq!(
        summaries.len(),
        2,
        "one line each time nothing is frozen: {summaries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_with_two_claims_stays_frozen_across_both_snapshots() {
    let mut velero = Velero::start().await;
    let db = hooked("db", &["data", "wal"]).build();
    velero
        .back_up(&db, &[("pv-data", "data"), ("pv-wal", "wal")])
        .await
        .unwrap();
    let timeline = velero.timeline();
    timeline.assert_frozen_around("db", "snapshot pv-data");
    timeline.assert_frozen_around("db", "snapshot pv-wal");
    assert_eq!(timeline.finished("freeze", "db"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_sharing_a_claim_are_all_frozen_before_its_snapshot() {
    let mut velero = Velero::start().await;
    let (a, b) = (
        hooked("web-a", &["shared"]).build(),
        hooked("web-b", &["shared"]).build(),
    );
    velero.index(&a).await;
    velero.index(&b).await;
    velero.volume("pv-shared", "shared").await.unwrap();
    velero.pod(&a).await.unwrap();
    velero.pod(&b).await.unwrap();
    let timeline = velero.timeline();
    timeline.assert_frozen_around("web-a", "snapshot pv-shared");
    timeline.assert_frozen_around("web-b", "snapshot pv-shared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_without_claims_is_frozen_and_thawed_at_its_own_execute() {
    let mut velero = Velero::start().await;
    let web = hooked("web", &[]).build();
    velero.back_up(&web, &[]).await.unwrap();
    let timeline = velero.timeline();
    assert!(timeline.ended("freeze", "web") < timeline.started("thaw", "web"));
    assert!(velero
        .stderr()
        .iter()
        .all(|l| l["@level"] != "warn" && l["@level"] != "error"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_whose_claim_is_unbound_is_frozen_late_with_a_warning() {
    let mut velero = Velero::start().await;
    let db = hooked("db", &["pending-claim"]).build();
    velero.back_up(&db, &[]).await.unwrap(); // no PV: Velero never calls Execute(PV)
    let timeline = velero.timeline();
    assert!(timeline.ended("freeze", "db") < timeline.started("thaw", "db"));
    let warning = velero
        .stderr()
        .into_iter()
        .find(|l| l["@level"] == "warn")
        .expect("a warning that snapshots may have preceded the freeze");
    assert!(
        warning["@message"]
            .as_str()
            .unwrap()
            .contains("may have preceded the freeze"),
        "{warning}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_system_backup_pod_thaws_only_after_its_pod_volume_backups() {
    let mut velero = Velero::start().await;
    let db = hooked("db", &["data"])
        .annotation("backup.velero.io/backup-volumes", "data")
        .build();
    velero.back_up(&db, &[("pv-data", "data")]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        velero.timeline().finished("thaw", "db"),
        0,
        "thaw waits for the PodVolumeBackup"
    );
    let pvb = |phase: &str| pod_volume_backup("abcde", "db", phase);
    velero.cluster.add_object(pvb("InProgress")).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        velero.timeline().finished("thaw", "db"),
        0,
        "still in progress"
    );
    velero.cluster.add_object(pvb("Completed")).unwrap();
    let marker = velero.cluster.mark("pod volume backup completed");
    assert!(
        velero.wait_for("thaw", "db", 1).await,
        "thawed once the PodVolumeBackup completed"
    );
    let timeline = velero.timeline();
    timeline.assert_frozen_around("db", "snapshot pv-data");
    assert!(timeline.started("thaw", "db") > marker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_system_backup_pod_stays_frozen_as_long_as_velero_lets_its_upload_take() {
    // No max-freeze on the pod or in a ConfigMap: the default is Velero's --fs-backup-timeout,
    // which Velero forwards to every plugin, not 10m.
    let mut velero = Velero::start_with(
        fake_kube::FakeKube::builder(),
        &["--fs-backup-timeout=6h0m0s"],
        &[],
    )
    .await;
    let db = hooked("db", &["data"])
        .annotation("backup.velero.io/backup-volumes", "data")
        .build();
    velero.back_up(&db, &[("pv-data", "data")]).await.unwrap();
    let frozen = velero
        .plugin
        .wait_for_log(
            "Pod stays frozen while the files of its file-system-backup volumes are uploaded (up \
             to its max-freeze); CSI snapshots of these volumes would hold the freeze only until \
             the snapshot is cut",
            EVENTUALLY,
        )
        .expect("an info line at the freeze");
    assert_eq!(frozen["@level"], "info");
    assert_eq!(frozen["maxFreeze"], "6h0m0s");
    assert_eq!(frozen["volumes"], "data");

    // A slow upload: in progress, then done; the pod thaws when it is done.
    let pvb = |phase: &str| pod_volume_backup("slowx", "db", phase);
    velero.cluster.add_object(pvb("InProgress")).unwrap();
    let done = velero.cluster.mark("pod volume backup completed");
    velero.cluster.add_object(pvb("Completed")).unwrap();
    assert!(velero.wait_for("thaw", "db", 1).await);
    assert!(velero.timeline().started("thaw", "db") > done);
    let thawed = velero
        .plugin
        .wait_for_log("Pod thawed", EVENTUALLY)
        .expect("a thaw line");
    assert_eq!(thawed["thawedBy"], "fs-backup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pre_hook_with_fail_drops_the_pod_and_still_thaws_it() {
    let mut velero = Velero::start().await;
    let db = hooked("db", &[])
        .annotation(
            "pre.hook.backup.quiesce.dev/command",
            "[\"sh\",\"-c\",\"exit 7\",\"freeze\"]",
        )
        .build();
    let status = velero.back_up(&db, &[]).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unknown);
    assert!(
        status
            .message()
            .contains("command terminated with exit code 7"),
        "{}",
        status.message()
    );
    assert!(status.message().contains("shop/db"), "{}", status.message());
    // The failed freeze command ran, so it may have frozen something: thaw once.
    assert_eq!(velero.timeline().finished("thaw", "db"), 1);
    let errors: Vec<Value> = velero
        .stderr()
        .into_iter()
        .filter(|l| l["@level"] == "error")
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly one error line, the failed hook: {errors:#?}"
    );
    assert_eq!(errors[0]["hookPhase"], "pre");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pre_hook_with_continue_is_a_warning_and_the_pod_is_backed_up() {
    let mut velero = Velero::start().await;
    let db = hooked("db", &[])
        .annotation(
            "pre.hook.backup.quiesce.dev/command",
            "[\"sh\",\"-c\",\"exit 3\",\"freeze\"]",
        )
        .annotation("pre.hook.backup.quiesce.dev/on-error", "Continue")
        .build();
    velero.back_up(&db, &[]).await.unwrap();
    assert_eq!(velero.timeline().finished("thaw", "db"), 1);
    let lines = velero.stderr();
    assert!(lines.iter().all(|l| l["@level"] != "error"), "{lines:#?}");
    assert!(lines
        .iter()
        .any(|l| l["@level"] == "warn" && l["hookPhase"] == "pre"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thaw_that_hangs_is_cancelled_at_its_timeout() {
    let mut velero = Velero::start().await;
    let db = hooked("db", &["data"])
        .annotation(
            "post.hook.backup.quiesce.dev/command",
            "[\"sh\",\"-c\",\"sleep 60\",\"thaw\"]",
        )
        .annotation("post.hook.backup.quiesce.dev/timeout", "1s")
        .build();
    velero.back_up(&db, &[("pv-data", "data")]).await.unwrap();
    assert!(
        velero
            .cluster
            .wait_for_timeline(EVENTUALLY, |events| events.iter().any(|e| matches!(
                &e.kind,
                TimelineEventKind::ExecFinished {
                    outcome: ExecOutcome::ClientDisconnected,
                    ..
                }
            )))
            .await,
        "the hung command was cancelled on the server side: {:#?} {:#?}",
        velero.cluster.timeline(),
        velero.plugin.stderr_lines()
    );
    let error = velero
        .stderr()
        .into_iter()
        .find(|l| l["@level"] == "error")
        .expect("an error line");
    assert!(error.to_string().contains("timed out after 1s"), "{error}");
}

/// Three pods, each with one claim, frozen at their volumes and never sent their own Execute;
/// returns their names.
async fn frozen_pods(velero: &mut Velero) -> Vec<String> {
    let names: Vec<String> = (1..=3).map(|i| format!("db-{i}")).collect();
    for name in &names {
        let claim = format!("data-{name}");
        let p = hooked(name, &[&claim]).build();
        velero.index(&p).await;
        velero.volume(&format!("pv-{name}"), &claim).await.unwrap();
    }
    for name in &names {
        assert_eq!(velero.timeline().finished("thaw", name), 0);
    }
    names
}

/// Asserts that each pod was thawed exactly once.
fn assert_thawed_once(velero: &Velero, names: &[String]) {
    let timeline = velero.timeline();
    for name in names {
        assert_eq!(
            timeline.finished("thaw", name),
            1,
            "{name} thawed before exit"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_thaws_every_pod_still_frozen_before_the_process_exits() {
    let mut velero = Velero::start().await;
    let names = frozen_pods(&mut velero).await;
    let status = velero
        .stop(Duration::from_secs(2))
        .await
        .expect("exited within Velero's grace");
    assert_eq!(status.code(), Some(0));
    assert_thawed_once(&velero, &names);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_thaws_every_pod_still_frozen_before_the_process_exits() {
    let mut velero = Velero::start().await;
    let names = frozen_pods(&mut velero).await;
    velero.plugin.signal(15);
    let status = velero.plugin.wait_exit(EVENTUALLY).expect("exited");
    assert_eq!(status.code(), Some(0));
    assert_thawed_once(&velero, &names);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_thaws_a_pod_frozen_past_its_max_freeze() {
    let mut velero = Velero::start().await;
    let db = hooked("db", &["data"])
        .annotation("quiesce.dev/max-freeze", "1s")
        .build();
    velero.index(&db).await;
    velero.volume("pv-data", "data").await.unwrap();
    // Velero never gets to the pod's Execute (say, a slow snapshot): the watchdog steps in.
    assert!(
        velero.wait_for("thaw", "db", 1).await,
        "thawed by the watchdog"
    );
    let error = velero
        .stderr()
        .into_iter()
        .find(|l| l["@level"] == "error")
        .expect("an error line");
    assert!(
        error["@message"].as_str().unwrap().contains("max-freeze"),
        "{error}"
    );
    velero.pod(&db).await.unwrap();
    assert_eq!(
        velero.timeline().finished("thaw", "db"),
        1,
        "never thawed twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_pods_at_eight_concurrent_callers_each_freeze_and_thaw_once() {
    let velero = Velero::start().await;
    let pods: Vec<(String, Value)> = (0..200)
        .map(|i| {
            let name = format!("p{i:03}");
            let claim = format!("c{i:03}");
            let claims: Vec<&str> = if i % 4 == 0 {
                vec![]
            } else {
                vec![claim.as_str()]
            };
            let p = hooked(&name, &claims).build();
            (name, p)
        })
        .collect();
    for (_, p) in &pods {
        velero.cluster.add_pod(p.clone()).unwrap();
    }
    let pods = std::sync::Arc::new(pods);
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (mut worker, pods) = (velero.worker(), pods.clone());
            tokio::spawn(async move {
                for i in (w..200).step_by(8) {
                    let (name, p) = &pods[i];
                    let (pv, claim) = (format!("pv-{name}"), format!("c{i:03}"));
                    let volumes: &[(&str, &str)] = if i % 4 != 0 {
                        &[(pv.as_str(), claim.as_str())]
                    } else {
                        &[]
                    };
                    worker.back_up(p, volumes).await.unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let timeline = velero.timeline();
    for (name, _) in pods.iter() {
        assert_eq!(timeline.finished("freeze", name), 1, "{name}");
        assert_eq!(timeline.finished("thaw", name), 1, "{name}");
        assert!(
            timeline.ended("freeze", name) < timeline.started("thaw", name),
            "{name}"
        );
    }
    assert!(velero
        .stderr()
        .iter()
        .all(|l| l["@level"] != "error" && l["@level"] != "warn"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_velero_before_1_15_the_item_block_action_can_be_switched_off() {
    let mut velero = Velero::start_with_env(&[("QUIESCE_ITEM_BLOCK_ACTION", "false")]).await;
    let kinds: Vec<String> = velero
        .plugin
        .list_plugins()
        .await
        .into_iter()
        .map(|p| p.kind)
        .collect();
    assert_eq!(
        kinds,
        ["BackupItemActionV2"],
        "Velero < 1.15 refuses the ItemBlockAction kind"
    );
    // No GetRelatedItems: the pods of the volume are found through the API.
    let db = hooked("db", &["data"]).build();
    velero.cluster.add_pod(db.clone()).unwrap();
    velero.volume("pv-data", "data").await.unwrap();
    velero.pod(&db).await.unwrap();
    let timeline = velero.timeline();
    timeline.assert_frozen_around("db", "snapshot pv-data");
}

/// A pod of consistency group `shop`.
fn member(name: &str, claims: &[&str]) -> Value {
    hooked(name, claims)
        .annotation("quiesce.dev/group", "shop")
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_three_pods_across_two_blocks_freezes_and_thaws_together() {
    let mut velero = Velero::start().await;
    let (a, b, c) = (
        member("a", &["data-a"]),
        member("b", &["data-b"]),
        member("c", &[]),
    );
    for p in [&a, &b, &c] {
        velero.cluster.add_pod(p.clone()).unwrap();
    }
    // Block 1 is pod a alone; block 2 holds b and c.
    velero.back_up(&a, &[("pv-a", "data-a")]).await.unwrap();
    velero.index(&b).await;
    velero.index(&c).await;
    velero.volume("pv-b", "data-b").await.unwrap();
    velero.pod(&b).await.unwrap();
    velero.pod(&c).await.unwrap();

    let timeline = velero.timeline();
    let first = timeline.marker("snapshot pv-a");
    let last = timeline.marker("snapshot pv-b");
    for name in ["a", "b", "c"] {
        assert!(
            timeline.ended("freeze", name) < first,
            "{name} frozen before the first snapshot"
        );
        assert!(
            timeline.started("thaw", name) > last,
            "{name} thawed after the last snapshot"
        );
        assert_eq!(timeline.finished("freeze", name), 1);
        assert_eq!(timeline.finished("thaw", name), 1);
    }
    let window = velero
        .stderr()
        .into_iter()
        .find(|l| l["@message"] == "Consistency group thawed")
        .expect("the group's freeze window is logged");
    assert_eq!(window["group"], "shop");
    assert_eq!(window["members"], 3);
    assert!(window["freezeWindowMs"].is_u64());
}

/// Replica `name` of StatefulSet `db` with label `role`, hooks once per owner on the primary.
fn replica(name: &str, role: &str) -> Value {
    hooked(name, &[])
        .annotation("quiesce.dev/run-once-per", "owner")
        .annotation("quiesce.dev/run-on", "role=primary")
        .label("role", role)
        .owner("apps/v1", "StatefulSet", "db", "sts-db")
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_run_their_hooks_once_on_the_primary() {
    let mut velero = Velero::start().await;
    let replicas = [
        replica("db-0", "replica"),
        replica("db-1", "replica"),
        replica("db-2", "primary"),
    ];
    for r in &replicas {
        velero.cluster.add_pod(r.clone()).unwrap();
    }
    for r in &replicas {
        velero.back_up(r, &[]).await.unwrap();
    }
    let execs: Vec<String> = velero
        .cluster
        .execs()
        .iter()
        .map(|e| format!("{} {}", e.exec.argv[1], e.exec.pod))
        .collect();
    assert_eq!(execs, ["freeze db-2", "thaw db-2"]);
    let skipped: Vec<Value> = velero
        .stderr()
        .into_iter()
        .filter(|l| {
            l["@message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Hook skipped: it runs once per owner"))
        })
        .collect();
    let mut skipped_pods: Vec<&str> = skipped.iter().map(|l| l["pod"].as_str().unwrap()).collect();
    skipped_pods.sort();
    assert_eq!(
        skipped_pods,
        ["db-0", "db-0", "db-1", "db-1"],
        "pre and post, each says why"
    );
    assert!(skipped[0]["@message"]
        .as_str()
        .unwrap()
        .ends_with("in pod db-2 (it matches run-on)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templated_arguments_reach_the_command_as_single_elements() {
    let mut velero = Velero::start().await;
    let db = hooked("db", &[])
        .annotation(
            "pre.hook.backup.quiesce.dev/command",
            "[\"echo\", \"freeze\", \"{{backup.namespace}}/{{backup.name}}\", \"{{pod.name}} {{container}} {{phase}}\"]",
        )
        .build();
    velero.back_up(&db, &[]).await.unwrap();
    let execs = velero.cluster.execs();
    let backup: Value = serde_json::from_slice(&backup_json()).unwrap();
    let expected = format!(
        "{}/{}",
        backup["metadata"]["namespace"].as_str().unwrap(),
        backup["metadata"]["name"].as_str().unwrap()
    );
    assert_eq!(
        execs[0].exec.argv,
        ["echo", "freeze", expected.as_str(), "db app pre"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_template_variable_fails_the_pod_without_an_exec() {
    let mut velero = Velero::start().await;
    let db = hooked("db", &[])
        .annotation(
            "pre.hook.backup.quiesce.dev/command",
            "[\"echo\", \"freeze\", \"{{backup.nmae}}\"]",
        )
        .build();
    let status = velero.back_up(&db, &[]).await.unwrap_err();
    assert!(
        status
            .message()
            .contains("unknown template variable {{backup.nmae}}"),
        "{status:?}"
    );
    assert!(velero.cluster.execs().is_empty(), "nothing ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_pods_cannot_be_listed_run_once_falls_back_to_every_pod_and_groups_to_those_seen() {
    let mut velero = Velero::start().await;
    velero.cluster.add_fault(
        fake_kube::FaultRule::any_request(fake_kube::Fault::Reject { code: 403 })
            .path_prefix("/api/v1/namespaces/shop/pods")
            .except_exec(),
    );
    let replicas = [replica("db-0", "replica"), replica("db-1", "primary")];
    for r in &replicas {
        velero.cluster.add_pod(r.clone()).unwrap();
    }
    let (a, b) = (member("a", &["data-a"]), member("b", &[]));
    velero.cluster.add_pod(b.clone()).unwrap();
    velero.cluster.clear_requests();
    for r in &replicas {
        velero.back_up(r, &[]).await.unwrap();
    }
    velero.back_up(&a, &[("pv-a", "data-a")]).await.unwrap();
    velero.back_up(&b, &[]).await.unwrap();

    let timeline = velero.timeline();
    for name in ["db-0", "db-1", "a", "b"] {
        assert_eq!(
            timeline.finished("freeze", name),
            1,
            "{name} froze as in Velero"
        );
        assert_eq!(timeline.finished("thaw", name), 1, "{name} thawed");
    }
    // b was not known when a froze: a thaws at its own item, b is frozen at its own.
    assert!(timeline.started("thaw", "a") < timeline.started("freeze", "b"));
    let warnings: Vec<String> = velero
        .stderr()
        .into_iter()
        .filter(|l| l["@level"] == "warn")
        .filter_map(|l| l["@message"].as_str().map(str::to_owned))
        .collect();
    assert!(
        warnings
            .iter()
            .any(|m| m.starts_with("Cannot list the pods of a workload")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|m| m.starts_with("Cannot list the pods of a consistency group")),
        "{warnings:?}"
    );
}
