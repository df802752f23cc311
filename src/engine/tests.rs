//! The state machine against a scripted executor and a fake cluster: every test replays
//! Velero's calls and asserts the order of hooks and snapshot markers on a shared timeline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_kube::objects;
use serde_json::{json, Value};

use super::*;
use crate::exec::session::tests::{Program, Programmed, Record};
use crate::exec::{Captured, ExecError, ExecOutput, ExecRequest, ExecStream};
use crate::kube_api::{self, PodEvent, PodVolumeBackup, SnapshotEvent, VolumeSnapshotState};

/// What happened, in order: `pre pod`, `post pod`, `snapshot pv`, … — and what held sessions
/// were sent: `open pre pod`, `stdin …`, `close`, `dropped`.
#[derive(Default)]
struct Timeline(Record);

impl Timeline {
    fn push(&self, event: String) {
        self.0.lock().unwrap().push(event);
    }
    fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn position(&self, event: &str) -> usize {
        let events = self.events();
        events
            .iter()
            .position(|e| e == event)
            .unwrap_or_else(|| panic!("{event:?} not in {events:?}"))
    }
    fn count(&self, event: &str) -> usize {
        self.events().iter().filter(|e| *e == event).count()
    }
}

/// Runs nothing: records `argv[0] pod` and answers as scripted by argv[0]; a command started
/// with stdin plays [`ScriptedExecutor::program`].
struct ScriptedExecutor {
    timeline: Arc<Timeline>,
    script: HashMap<String, Result<i32, ExecError>>,
    delay: Duration,
    program: Program,
    /// Commands (by argv[0]) that take this long instead of `delay`.
    slow: HashMap<String, Duration>,
}

#[async_trait::async_trait]
impl Executor for ScriptedExecutor {
    async fn exec(&self, request: &ExecRequest) -> Result<ExecOutput, ExecError> {
        let verb = request.command.first().cloned().unwrap_or_default();
        self.timeline
            .push(format!("{} {}", request.command.join(" "), request.pod));
        let delay = self.slow.get(&verb).copied().unwrap_or(self.delay);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let exit_code = self.script.get(&verb).cloned().unwrap_or(Ok(0))?;
        Ok(ExecOutput {
            exit_code,
            stdout: Captured::default(),
            stderr: Captured::default(),
            duration: self.delay,
        })
    }

    async fn start(&self, request: &ExecRequest) -> Result<Box<dyn ExecStream>, ExecError> {
        self.timeline.push(format!(
            "open {} {}",
            request.command.join(" "),
            request.pod
        ));
        Ok(Box::new(Programmed::start(
            self.program.clone(),
            Arc::clone(&self.timeline.0),
        )))
    }
}

#[derive(Default)]
struct FakeCluster {
    config: Config,
    pvbs: Mutex<Vec<PodVolumeBackup>>,
    pods: Mutex<Vec<Pod>>,
    events: Mutex<Vec<PodEvent>>,
    /// Namespaces listed, in order.
    listings: Mutex<Vec<String>>,
    /// How many listings fail before they succeed.
    failing_listings: Mutex<usize>,
    /// The VolumeSnapshot watches started: their namespace, label selector and feed.
    snapshot_watches: Mutex<Vec<(String, String, SnapshotFeed)>>,
    /// Whether a VolumeSnapshot watch fails to start (RBAC, no CRD).
    snapshot_watch_refused: bool,
}

type SnapshotFeed = tokio::sync::mpsc::UnboundedSender<Result<SnapshotEvent, kube_api::Error>>;

#[async_trait::async_trait]
impl Cluster for FakeCluster {
    async fn load_config(&self, _velero_namespace: &str) -> Config {
        self.config.clone()
    }
    async fn pod_volume_backups(
        &self,
        _velero_namespace: &str,
        _backup_uid: &str,
    ) -> Result<Vec<PodVolumeBackup>, kube_api::Error> {
        Ok(self.pvbs.lock().unwrap().clone())
    }
    async fn record_event(&self, event: &PodEvent) -> Result<(), kube_api::Error> {
        self.events.lock().unwrap().push(event.clone());
        Ok(())
    }
    async fn pods_in_namespace(&self, namespace: &str) -> Result<Vec<Pod>, kube_api::Error> {
        self.listings.lock().unwrap().push(namespace.to_owned());
        let mut failing = self.failing_listings.lock().unwrap();
        if *failing > 0 {
            *failing -= 1;
            return Err(kube_api::Error::Timeout(Duration::from_secs(10)));
        }
        let pods = self.pods.lock().unwrap();
        Ok(pods
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(namespace))
            .cloned()
            .collect())
    }
    fn watch_volume_snapshots(&self, namespace: &str, labels: &str) -> kube_api::SnapshotEvents {
        let (feed, events) = tokio::sync::mpsc::unbounded_channel();
        if self.snapshot_watch_refused {
            let _ = feed.send(Err(kube_api::Error::NoClient("forbidden".into())));
        } else {
            self.snapshot_watches.lock().unwrap().push((
                namespace.to_owned(),
                labels.to_owned(),
                feed,
            ));
        }
        Box::pin(tokio_stream::wrappers::UnboundedReceiverStream::new(events))
    }
}

struct Harness {
    engine: Engine,
    timeline: Arc<Timeline>,
    cluster: Arc<FakeCluster>,
}

fn harness(script: &[(&str, Result<i32, ExecError>)]) -> Harness {
    harness_with(script, Duration::ZERO)
}

fn harness_with(script: &[(&str, Result<i32, ExecError>)], delay: Duration) -> Harness {
    harness_with_options(script, delay, false)
}

fn harness_with_options(
    script: &[(&str, Result<i32, ExecError>)],
    delay: Duration,
    discover_pods_of_volumes: bool,
) -> Harness {
    harness_with_cluster(
        script,
        delay,
        discover_pods_of_volumes,
        FakeCluster::default(),
    )
}

fn harness_with_cluster(
    script: &[(&str, Result<i32, ExecError>)],
    delay: Duration,
    discover_pods_of_volumes: bool,
    cluster: FakeCluster,
) -> Harness {
    let options = Options {
        discover_pods_of_volumes,
        ..test_options()
    };
    harness_with_everything(script, delay, cluster, options)
}

/// The engine options of every harness: PodVolumeBackups polled every 100 ms.
fn test_options() -> Options {
    Options {
        pvb_poll: Duration::from_millis(100),
        ..Options::default()
    }
}

fn harness_with_engine_options(options: Options) -> Harness {
    harness_with_everything(&[], Duration::ZERO, FakeCluster::default(), options)
}

fn harness_with_everything(
    script: &[(&str, Result<i32, ExecError>)],
    delay: Duration,
    cluster: FakeCluster,
    options: Options,
) -> Harness {
    let timeline = Arc::new(Timeline::default());
    let cluster = Arc::new(cluster);
    let executor = ScriptedExecutor {
        timeline: Arc::clone(&timeline),
        script: script
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        delay,
        program: Program::holding("ready", true),
        slow: HashMap::new(),
    };
    let engine = Engine::new(Arc::new(executor), cluster.clone(), options);
    Harness {
        engine,
        timeline,
        cluster,
    }
}

fn backup() -> Vec<u8> {
    br#"{"metadata":{"name":"b1","namespace":"velero","uid":"backup-uid"},"spec":{},"status":{"phase":"InProgress"}}"#.to_vec()
}

/// A pod with `pre`/`post` annotation hooks whose argv[0] are `pre`/`post` (or as given).
fn pod(name: &str, claims: &[&str], annotations: Value) -> Vec<u8> {
    serde_json::to_vec(&pod_value(name, claims, annotations)).unwrap()
}

/// [`pod`] as a JSON value, to add labels or owners to.
fn pod_value(name: &str, claims: &[&str], annotations: Value) -> Value {
    objects::pod("shop", name)
        .uid(format!("uid-{name}"))
        .annotation("pre.hook.backup.quiesce.dev/command", r#"["pre"]"#)
        .annotation("post.hook.backup.quiesce.dev/command", r#"["post"]"#)
        .annotations(annotations)
        .container(objects::container("app"))
        .claims(claims)
        .build()
}

/// A CSI PersistentVolume bound to `claim`.
fn pv(name: &str, claim: &str) -> Vec<u8> {
    serde_json::to_vec(&objects::csi_persistent_volume(name, "shop", claim)).unwrap()
}

/// A PersistentVolume without CSI (native snapshots, or none), bound to `claim`.
fn native_pv(name: &str, claim: &str) -> Vec<u8> {
    let mut pv = objects::persistent_volume(name, "shop", claim);
    pv["spec"]["awsElasticBlockStore"] = json!({"volumeID": "vol-1"});
    serde_json::to_vec(&pv).unwrap()
}

impl Harness {
    /// The snapshot controller cuts `claim`'s VolumeSnapshot: every watch sees it.
    fn cut(&self, claim: &str) {
        self.snapshot_of(claim, |s| {
            s.cut_at = Some(k8s_openapi::jiff::Timestamp::now())
        });
        self.timeline.push(format!("cut {claim}"));
    }

    /// Sends every watch a VolumeSnapshot of `claim`, as `edit` leaves it.
    fn snapshot_of(&self, claim: &str, edit: impl FnOnce(&mut VolumeSnapshotState)) {
        let mut snapshot = VolumeSnapshotState {
            name: format!("velero-{claim}-x7k2p"),
            claim: Some(claim.to_owned()),
            created: None,
            backup_uid: None,
            cut_at: None,
            error: None,
        };
        edit(&mut snapshot);
        for (_, _, feed) in self.cluster.snapshot_watches.lock().unwrap().iter() {
            let _ = feed.send(Ok(SnapshotEvent::Seen(snapshot.clone())));
        }
    }

    /// Waits (a bounded time) until `event` is on the timeline.
    async fn wait_for(&self, event: &str) {
        for _ in 0..200 {
            if self.timeline.count(event) > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{event:?} never came: {:?}", self.timeline.events());
    }

    /// Velero's order for a pod's claim: Execute(PV), then the snapshot is cut — unless the
    /// volume was refused, then Velero takes no snapshot (`refused pv`).
    async fn volume(&self, pv_name: &str, claim: &str) {
        match self
            .engine
            .freeze_pods_of_volume(&pv(pv_name, claim), &backup())
            .await
        {
            Ok(()) => self.timeline.push(format!("snapshot {pv_name}")),
            Err(_) => self.timeline.push(format!("refused {pv_name}")),
        }
    }
}

#[tokio::test]
async fn pod_with_one_claim_freezes_before_the_snapshot_and_thaws_after() {
    let h = harness(&[]);
    let db = pod("db", &["data"], json!({}));
    h.engine.index_pod(&db, &backup()).await.unwrap();
    assert!(h.timeline.events().is_empty(), "indexing runs nothing");
    h.volume("pv-1", "data").await;
    h.engine.back_up_pod(&db, &backup()).await.unwrap();
    assert_eq!(h.timeline.events(), ["pre db", "snapshot pv-1", "post db"]);
}

#[tokio::test]
async fn two_claims_freeze_once_before_the_first_snapshot() {
    let h = harness(&[]);
    let db = pod("db", &["data", "wal"], json!({}));
    h.engine.index_pod(&db, &backup()).await.unwrap();
    h.volume("pv-data", "data").await;
    h.volume("pv-wal", "wal").await;
    h.engine.back_up_pod(&db, &backup()).await.unwrap();
    assert_eq!(
        h.timeline.events(),
        ["pre db", "snapshot pv-data", "snapshot pv-wal", "post db"]
    );
}

#[tokio::test]
async fn a_shared_claim_freezes_every_pod_mounting_it() {
    let h = harness(&[]);
    let (a, b) = (
        pod("a", &["shared"], json!({})),
        pod("b", &["shared"], json!({})),
    );
    h.engine.index_pod(&a, &backup()).await.unwrap();
    h.engine.index_pod(&b, &backup()).await.unwrap();
    h.volume("pv-rwx", "shared").await;
    h.engine.back_up_pod(&a, &backup()).await.unwrap();
    h.engine.back_up_pod(&b, &backup()).await.unwrap();
    let snapshot = h.timeline.position("snapshot pv-rwx");
    assert!(h.timeline.position("pre a") < snapshot);
    assert!(h.timeline.position("pre b") < snapshot);
    assert!(h.timeline.position("post a") > snapshot);
    assert!(h.timeline.position("post b") > snapshot);
}

#[tokio::test]
async fn a_pod_without_claims_is_frozen_and_thawed_at_its_own_execute() {
    let h = harness(&[]);
    let web = pod("web", &[], json!({}));
    h.engine.index_pod(&web, &backup()).await.unwrap();
    h.engine.back_up_pod(&web, &backup()).await.unwrap();
    assert_eq!(h.timeline.events(), ["pre web", "post web"]);
}

#[tokio::test]
async fn a_pod_never_indexed_is_still_frozen_and_thawed() {
    let h = harness(&[]);
    let db = pod("db", &["data"], json!({}));
    h.volume("pv-1", "data").await; // Velero < 1.15: no ItemBlockAction call came first
    h.engine.back_up_pod(&db, &backup()).await.unwrap();
    assert_eq!(h.timeline.events(), ["snapshot pv-1", "pre db", "post db"]);
}

#[tokio::test]
async fn a_failed_fail_freeze_refuses_the_volume_and_thaws_the_pod_at_once() {
    let h = harness(&[("pre", Ok(1))]);
    let db = pod("db", &["data"], json!({}));
    h.engine.index_pod(&db, &backup()).await.unwrap();
    let error = h
        .engine
        .freeze_pods_of_volume(&pv("pv-1", "data"), &backup())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::VolumeRefused { .. }));
    let message = error.to_string();
    assert_eq!(
        message,
        "volume pv-1 (claim shop/data) is not snapshotted: pre hook \"<from-annotation>\" \
         failed in container \"app\" of pod shop/db: command terminated with exit code 1"
    );
    // The failing freeze command ran, so it may have frozen: the thaw runs now, once, as
    // Velero will never send the pod's own Execute.
    assert_eq!(h.timeline.events(), ["pre db", "post db"]);
    // Every later Execute of the volume gets the same answer, and runs nothing.
    let again = h
        .engine
        .freeze_pods_of_volume(&pv("pv-1", "data"), &backup())
        .await
        .unwrap_err();
    assert_eq!(again.to_string(), message);
    // Should the pod's Execute come all the same, it still drops the pod, thawing nothing twice.
    let error = h.engine.back_up_pod(&db, &backup()).await.unwrap_err();
    assert!(matches!(error, Error::PreHookFailed { .. }));
    assert_eq!(h.timeline.events(), ["pre db", "post db"]);
    assert_eq!(lock(&h.engine.inner.summary).volumes_refused, 1);
}

#[tokio::test]
async fn a_shared_volume_is_refused_when_one_of_its_pods_fails_to_freeze() {
    let h = harness(&[("pre-b", Ok(2))]);
    let a = pod("a", &["shared"], json!({}));
    let b = pod(
        "b",
        &["shared"],
        json!({"pre.hook.backup.quiesce.dev/command": "[\"pre-b\"]"}),
    );
    h.engine.index_pod(&a, &backup()).await.unwrap();
    h.engine.index_pod(&b, &backup()).await.unwrap();
    h.volume("pv-rwx", "shared").await;
    assert_eq!(h.timeline.count("refused pv-rwx"), 1);
    assert_eq!(h.timeline.count("snapshot pv-rwx"), 0);
    // Both pods are thawed right away, before Velero goes on.
    let refused = h.timeline.position("refused pv-rwx");
    assert!(h.timeline.position("post a") < refused);
    assert!(h.timeline.position("post b") < refused);
    // The pod that froze is still backed up (without the volume); the one that failed is not.
    h.engine.back_up_pod(&a, &backup()).await.unwrap();
    assert!(h.engine.back_up_pod(&b, &backup()).await.is_err());
    assert_eq!(h.timeline.count("post a"), 1);
    assert_eq!(h.timeline.count("post b"), 1);
}

#[tokio::test]
async fn a_failed_continue_freeze_still_takes_the_snapshot() {
    let h = harness(&[("pre", Ok(1))]);
    let db = pod(
        "db",
        &["data"],
        json!({"pre.hook.backup.quiesce.dev/on-error": "Continue"}),
    );
    h.engine.index_pod(&db, &backup()).await.unwrap();
    h.volume("pv-1", "data").await;
    h.engine.back_up_pod(&db, &backup()).await.unwrap();
    assert_eq!(h.timeline.events(), ["pre db", "snapshot pv-1", "post db"]);
    assert_eq!(lock(&h.engine.inner.summary).volumes_refused, 0);
}

#[tokio::test]
async fn a_pre_hook_that_never_ran_needs_no_thaw() {
    let h = harness(&[(
        "pre",
        Err(ExecError::PodNotFound {
            namespace: "shop".into(),
            pod: "db".into(),
        }),
    )]);
    let db = pod("db", &[], json!({}));
    assert!(h.engine.back_up_pod(&db, &backup()).await.is_err());
    assert_eq!(h.timeline.events(), ["pre db"]);
}

#[tokio::test]
async fn a_failed_pre_hook_with_continue_goes_on() {
    let h = harness(&[("pre", Ok(3))]);
    let db = pod(
        "db",
        &[],
        json!({"pre.hook.backup.quiesce.dev/on-error": "Continue"}),
    );
    h.engine.back_up_pod(&db, &backup()).await.unwrap();
    assert_eq!(h.timeline.events(), ["pre db", "post db"]);
}

#[tokio::test]
async fn post_hooks_never_run_twice() {
    let h = harness(&[]);
    let db = pod("db", &["data"], json!({}));
    h.volume("pv-1", "data").await;
    h.engine.back_up_pod(&db, &backup()).await.unwrap();
    h.engine.back_up_pod(&db, &backup()).await.unwrap();
    h.engine.drain().await;
    assert_eq!(h.timeline.count("pre db"), 1);
    assert_eq!(h.timeline.count("post db"), 1);
}

/// Pod `db`, whose volume `data` Velero backs up by file system, frozen at its volume and its
/// item sent: its thaw now waits for its PodVolumeBackup.
async fn file_system_backup_pod_backed_up(h: &Harness) {
    let db = pod(
        "db",
        &["data"],
        json!({"backup.velero.io/backup-volumes": "data"}),
    );
    h.engine.index_pod(&db, &backup()).await.unwrap();
    h.volume("pv-1", "data").await;
    h.engine.back_up_pod(&db, &backup()).await.unwrap();
}

/// The PodVolumeBackup of `db`'s volume `data` in `phase`.
fn pvb(phase: &str) -> PodVolumeBackup {
    PodVolumeBackup {
        pod_namespace: "shop".into(),
        pod_name: "db".into(),
        volume: "data".into(),
        phase: phase.into(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_file_system_backup_pod_thaws_only_when_its_pod_volume_backups_are_done() {
    let h = harness(&[]);
    file_system_backup_pod_backed_up(&h).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.timeline.count("post db"), 0, "no PodVolumeBackup yet");
    h.cluster.pvbs.lock().unwrap().push(pvb("InProgress"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.timeline.count("post db"), 0, "still in progress");
    *h.cluster.pvbs.lock().unwrap() = vec![pvb("Completed")];
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.timeline.events(), ["pre db", "snapshot pv-1", "post db"]);
}

#[tokio::test(start_paused = true)]
async fn an_upload_longer_than_ten_minutes_does_not_cut_a_file_system_backup_freeze_short() {
    let h = harness(&[]);
    file_system_backup_pod_backed_up(&h).await;
    // Thirty minutes of upload: past the 10m default, well within Velero's 4h fs-backup timeout.
    tokio::time::sleep(Duration::from_secs(30 * 60)).await;
    assert_eq!(
        h.timeline.count("post db"),
        0,
        "thawed in the middle of its upload"
    );
    *h.cluster.pvbs.lock().unwrap() = vec![pvb("Completed")];
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.timeline.events(), ["pre db", "snapshot pv-1", "post db"]);
    assert!(lock(&h.engine.inner.summary).auto_thawed.is_empty());
}

/// A Backup as Velero 1.17+ sends it: `volumeGroupSnapshotLabelKey` filled in.
fn backup_with_volume_groups() -> Vec<u8> {
    br#"{"metadata":{"name":"b1","namespace":"velero","uid":"backup-uid"},"spec":{"volumeGroupSnapshotLabelKey":"velero.io/volume-group"},"status":{"phase":"InProgress"}}"#.to_vec()
}

/// Claim `name` of namespace `shop`, bound, in volume group `group` if given.
fn claim(name: &str, group: Option<&str>) -> Vec<u8> {
    let mut claim = objects::persistent_volume_claim("shop", name, &format!("pv-{name}"));
    if let Some(group) = group {
        claim = claim.label("velero.io/volume-group", group);
    }
    serde_json::to_vec(&claim.build()).unwrap()
}

#[tokio::test]
async fn every_pod_of_a_volume_group_freezes_before_the_groups_first_snapshot() {
    let h = harness(&[]);
    let backup = backup_with_volume_groups();
    // One item block, as Velero's claim action forms it: the group's claims and their pods.
    for (name, group) in [
        ("a-data", Some("orders")),
        ("b-data", Some("orders")),
        ("c-data", None),
    ] {
        h.engine.index_claim(&claim(name, group), &backup).await;
    }
    let (a, b, c) = (
        pod("a", &["a-data"], json!({})),
        pod("b", &["b-data"], json!({})),
        pod("c", &["c-data"], json!({})),
    );
    for p in [&a, &b, &c] {
        h.engine.index_pod(p, &backup).await.unwrap();
    }
    // Velero's CSI action cuts the whole group at its first claim.
    h.engine
        .freeze_pods_of_volume(&pv("pv-a-data", "a-data"), &backup)
        .await
        .unwrap();
    h.timeline.push("group snapshot orders".into());
    let cut = h.timeline.position("group snapshot orders");
    assert!(h.timeline.position("pre a") < cut);
    assert!(
        h.timeline.position("pre b") < cut,
        "b is frozen before the group is cut"
    );
    assert_eq!(h.timeline.count("pre c"), 0, "c is not in the group");
    h.engine
        .freeze_pods_of_volume(&pv("pv-b-data", "b-data"), &backup)
        .await
        .unwrap();
    h.engine.back_up_pod(&a, &backup).await.unwrap();
    assert_eq!(
        h.timeline.count("post b"),
        0,
        "each pod thaws at its own item"
    );
    h.engine.back_up_pod(&b, &backup).await.unwrap();
    h.engine
        .freeze_pods_of_volume(&pv("pv-c-data", "c-data"), &backup)
        .await
        .unwrap();
    h.engine.back_up_pod(&c, &backup).await.unwrap();
    for name in ["a", "b", "c"] {
        assert_eq!(h.timeline.count(&format!("pre {name}")), 1);
        assert_eq!(h.timeline.count(&format!("post {name}")), 1);
    }
    assert!(h.timeline.position("post a") > cut && h.timeline.position("post b") > cut);
}

#[tokio::test]
async fn without_a_volume_group_label_key_claims_freeze_only_their_own_pods() {
    // Velero 1.16 sends no volumeGroupSnapshotLabelKey: labels on claims mean nothing.
    let h = harness(&[]);
    for name in ["a-data", "b-data"] {
        h.engine
            .index_claim(&claim(name, Some("orders")), &backup())
            .await;
    }
    let (a, b) = (
        pod("a", &["a-data"], json!({})),
        pod("b", &["b-data"], json!({})),
    );
    h.engine.index_pod(&a, &backup()).await.unwrap();
    h.engine.index_pod(&b, &backup()).await.unwrap();
    h.volume("pv-a-data", "a-data").await;
    assert_eq!(h.timeline.events(), ["pre a", "snapshot pv-a-data"]);
}

#[tokio::test]
async fn a_failed_freeze_in_a_volume_group_refuses_every_volume_of_the_group() {
    let h = harness(&[("pre-b", Ok(1))]);
    let backup = backup_with_volume_groups();
    for name in ["a-data", "b-data"] {
        h.engine
            .index_claim(&claim(name, Some("orders")), &backup)
            .await;
    }
    let a = pod("a", &["a-data"], json!({}));
    let b = pod(
        "b",
        &["b-data"],
        json!({"pre.hook.backup.quiesce.dev/command": "[\"pre-b\"]"}),
    );
    h.engine.index_pod(&a, &backup).await.unwrap();
    h.engine.index_pod(&b, &backup).await.unwrap();
    for volume in ["a-data", "b-data"] {
        let refused = h
            .engine
            .freeze_pods_of_volume(&pv(&format!("pv-{volume}"), volume), &backup)
            .await;
        assert!(
            refused.is_err(),
            "{volume} would be snapshotted with b never frozen"
        );
    }
    assert_eq!(
        (h.timeline.count("post a"), h.timeline.count("post b")),
        (1, 1)
    );
}

#[tokio::test]
async fn a_csi_pod_thaws_when_its_snapshot_is_cut_not_when_its_item_comes() {
    let h = harness(&[]);
    let db = pod("db", &["data"], json!({}));
    h.engine.index_pod(&db, &backup()).await.unwrap();
    h.volume("pv-1", "data").await;
    let watches = h.cluster.snapshot_watches.lock().unwrap().len();
    assert_eq!(watches, 1, "one watch for the namespace");
    assert_eq!(
        h.cluster.snapshot_watches.lock().unwrap()[0].1,
        "velero.io/backup-name=b1"
    );
    // Velero's CSI action created the VolumeSnapshot; the controller has not cut it yet.
    h.snapshot_of("data", |_| {});
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(h.timeline.count("post db"), 0, "thawed before the cut");
    h.cut("data");
    h.wait_for("post db").await;
    // Velero's poll returns later and sends the pod's item: nothing runs again.
    h.engine.back_up_pod(&db, &backup()).await.unwrap();
    assert_eq!(
        h.timeline.events(),
        ["pre db", "snapshot pv-1", "cut data", "post db"]
    );
}

#[tokio::test]
async fn a_pod_with_two_claims_thaws_once_both_are_cut() {
    let h = harness(&[]);
    let db = pod("db", &["data", "wal"], json!({}));
    h.engine.index_pod(&db, &backup()).await.unwrap();
    h.volume("pv-data", "data").await;
    h.cut("data");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(h.timeline.count("post db"), 0, "wal is not snapshotted yet");
    h.volume("pv-wal", "wal").await;
    h.cut("wal");
    h.wait_for("post db").await;
    assert!(h.timeline.position("post db") > h.timeline.position("cut wal"));
}

#[tokio::test]
async fn pods_whose_snapshots_are_not_all_cut_thaw_at_their_item() {
    let h = harness(&[]);
    // A failed snapshot, a file-system-backup pod and a stale snapshot of an earlier run of a
    // backup with the same name: none of them is a cut of this backup's volume.
    let failed = pod("failed", &["a"], json!({}));
    let uploads = pod(
        "uploads",
        &["b"],
        json!({"backup.velero.io/backup-volumes": "b"}),
    );
    let stale = pod("stale", &["c"], json!({}));
    let backup = serde_json::to_vec(&json!({
        "metadata": {"name": "b1", "namespace": "velero", "uid": "backup-uid",
                     "creationTimestamp": "2026-12-06T10:00:00Z"},
        "spec": {}, "status": {"phase": "InProgress"}
    }))
    .unwrap();
    for (p, claim) in [(&failed, "a"), (&uploads, "b"), (&stale, "c")] {
        h.engine.index_pod(p, &backup).await.unwrap();
        h.engine
            .freeze_pods_of_volume(&pv(&format!("pv-{claim}"), claim), &backup)
            .await
            .unwrap();
    }
    let now = k8s_openapi::jiff::Timestamp::now();
    h.snapshot_of("a", |s| s.error = Some("quota exceeded".into()));
    h.snapshot_of("a", |s| s.cut_at = Some(now));
    h.snapshot_of("b", |s| s.cut_at = Some(now));
    h.snapshot_of("c", |s| {
        s.created = "2026-12-05T10:00:00Z".parse().ok();
        s.cut_at = s.created;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        h.timeline.events(),
        ["pre failed", "pre uploads", "pre stale"]
    );
    h.engine.back_up_pod(&failed, &backup).await.unwrap();
    h.engine.back_up_pod(&stale, &backup).await.unwrap();
    assert_eq!(
        h.timeline.count("post failed") + h.timeline.count("post stale"),
        2
    );
}

#[tokio::test]
async fn a_volume_without_csi_starts_no_snapshot_watch() {
    let h = harness(&[]);
    let db = pod("db", &["data"], json!({}));
    h.engine.index_pod(&db, &backup()).await.unwrap();
    h.engine
        .freeze_pods_of_volume(&native_pv("pv-1", "data"), &backup())
        .await
        .unwrap();
    assert!(h.cluster.snapshot_watches.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_snapshot_watch_that_cannot_start_leaves_pods_to_their_item() {
    let cluster = FakeCluster {
        snapshot_watch_refused: true,
        ..FakeCluster::default()
    };
    let h = harness_with_cluster(&[], Duration::ZERO, false, cluster);
    let db = pod("db", &["data"], json!({}));
    h.engine.index_pod(&db, &backup()).await.unwrap();
    h.volume("pv-1", "data").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(h.timeline.count("post db"), 0);
    h.engine.back_up_pod(&db, &backup()).await.unwrap();
    assert_eq!(h.timeline.events(), ["pre db", "snapshot pv-1", "post db"]);
}

#[tokio::test]
async fn with_thaw_at_cut_switched_off_no_snapshot_is_watched() {
    let by_environment = harness_with_engine_options(Options {
        thaw_at_cut: false,
        ..test_options()
    });
    let (config, problems) = Config::from_configmap_data(&std::collections::BTreeMap::from([(
        crate::hooks::CONFIG_KEY.to_owned(),
        "thawAtSnapshotCut: false\n".to_owned(),
    )]));
    assert!(problems.is_empty());
    let by_config_map = harness_with_everything(
        &[],
        Duration::ZERO,
        FakeCluster {
            config,
            ..FakeCluster::default()
        },
        test_options(),
    );
    for h in [by_environment, by_config_map] {
        let db = pod("db", &["data"], json!({}));
        h.engine.index_pod(&db, &backup()).await.unwrap();
        h.volume("pv-1", "data").await;
        assert!(h.cluster.snapshot_watches.lock().unwrap().is_empty());
        h.engine.back_up_pod(&db, &backup()).await.unwrap();
        assert_eq!(h.timeline.events(), ["pre db", "snapshot pv-1", "post db"]);
    }
}

#[tokio::test(start_paused = true)]
async fn a_stop_during_a_long_pre_hook_abandons_it_and_thaws_the_pod() {
    let mut h = harness(&[]);
    let executor = ScriptedExecutor {
        timeline: Arc::clone(&h.timeline),
        script: HashMap::new(),
        delay: Duration::ZERO,
        program: Program::v5(),
        slow: HashMap::from([("pre".to_owned(), Duration::from_secs(300))]),
    };
    h.engine = Engine::new(Arc::new(executor), h.cluster.clone(), test_options());
    let db = pod(
        "db",
        &["data"],
        json!({"pre.hook.backup.quiesce.dev/timeout": "5m"}),
    );
    h.engine.index_pod(&db, &backup()).await.unwrap();
    let engine = h.engine.clone();
    let freezing = tokio::spawn(async move {
        engine
            .freeze_pods_of_volume(&pv("pv-1", "data"), &backup())
            .await
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h.timeline.events(),
        ["pre db"],
        "the pre hook is still running"
    );
    // SIGTERM: the drain must not wait the 5 minutes of the pre hook before thawing.
    let started = tokio::time::Instant::now();
    h.engine.drain().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(h.timeline.events(), ["pre db", "post db"]);
    // The volume's Execute, still waiting, is answered with a refusal: nothing was quiesced
    // for certain.
    assert!(freezing.await.unwrap().is_err());
}

#[tokio::test]
async fn the_summary_is_logged_whenever_nothing_is_frozen_before_the_thaw_returns() {
    let h = harness(&[]);
    let logged = |h: &Harness| {
        lock(&h.engine.inner.summary_logged)
            .as_ref()
            .map(|summary| summary.attempted)
    };
    let (a, b) = (
        pod("a", &["data-a"], json!({})),
        pod("b", &["data-b"], json!({})),
    );
    h.engine.index_pod(&a, &backup()).await.unwrap();
    h.engine.index_pod(&b, &backup()).await.unwrap();
    h.volume("pv-a", "data-a").await;
    h.engine.back_up_pod(&a, &backup()).await.unwrap();
    // Velero closes the backup's log as soon as its last item is answered: the line comes now.
    assert_eq!(logged(&h), Some(2));
    h.volume("pv-b", "data-b").await;
    assert_eq!(logged(&h), Some(2), "b is frozen: nothing new is logged");
    h.engine.back_up_pod(&b, &backup()).await.unwrap();
    assert_eq!(logged(&h), Some(4), "b's thaw logs the totals at once");
}

#[tokio::test]
async fn drain_thaws_every_pod_still_frozen() {
    let h = harness(&[]);
    for name in ["a", "b", "c"] {
        let p = pod(name, &[&format!("data-{name}")], json!({}));
        h.engine.index_pod(&p, &backup()).await.unwrap();
        h.volume(&format!("pv-{name}"), &format!("data-{name}"))
            .await;
    }
    assert_eq!(
        h.timeline.count("post a") + h.timeline.count("post b") + h.timeline.count("post c"),
        0
    );
    h.engine.drain().await;
    for name in ["a", "b", "c"] {
        assert_eq!(h.timeline.count(&format!("post {name}")), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn the_watchdog_thaws_a_pod_frozen_past_its_max_freeze() {
    let h = harness(&[]);
    let db = pod("db", &["data"], json!({"quiesce.dev/max-freeze": "1m"}));
    h.engine.index_pod(&db, &backup()).await.unwrap();
    h.volume("pv-1", "data").await;
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert_eq!(h.timeline.count("post db"), 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.timeline.count("post db"), 1);
    let auto_thawed = lock(&h.engine.inner.summary).auto_thawed.clone();
    assert_eq!(
        auto_thawed,
        [PodRef {
            namespace: "shop".into(),
            name: "db".into()
        }]
    );
    // The pod's own Execute arriving late does not thaw it again.
    h.engine.back_up_pod(&db, &backup()).await.unwrap();
    assert_eq!(h.timeline.count("post db"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_thaw_on_time_cancels_the_watchdog() {
    let h = harness(&[]);
    let db = pod("db", &[], json!({"quiesce.dev/max-freeze": "1m"}));
    h.engine.back_up_pod(&db, &backup()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(h.timeline.count("post db"), 1);
}

#[tokio::test]
async fn pods_the_backup_excludes_get_no_hooks() {
    let h = harness(&[]);
    let mut excluded: Value = serde_json::from_slice(&pod("db", &["data"], json!({}))).unwrap();
    excluded["metadata"]["labels"] = json!({"velero.io/exclude-from-backup": "true"});
    let excluded = serde_json::to_vec(&excluded).unwrap();
    h.engine.index_pod(&excluded, &backup()).await.unwrap();
    h.volume("pv-1", "data").await;
    h.engine.drain().await;
    assert_eq!(h.timeline.events(), ["snapshot pv-1"]);
}

#[tokio::test]
async fn finished_pods_get_no_hooks() {
    let h = harness(&[]);
    let mut done: Value = serde_json::from_slice(&pod("job", &[], json!({}))).unwrap();
    done["status"]["phase"] = json!("Succeeded");
    h.engine
        .back_up_pod(&serde_json::to_vec(&done).unwrap(), &backup())
        .await
        .unwrap();
    assert!(h.timeline.events().is_empty());
}

#[tokio::test]
async fn a_finalizing_backup_runs_nothing() {
    let h = harness(&[]);
    let finalizing = br#"{"metadata":{"name":"b1","namespace":"velero","uid":"backup-uid"},"status":{"phase":"Finalizing"}}"#;
    h.engine
        .back_up_pod(&pod("db", &[], json!({})), finalizing)
        .await
        .unwrap();
    assert!(h.timeline.events().is_empty());
}

#[tokio::test]
async fn an_unreadable_pod_is_a_clear_error() {
    let h = harness(&[]);
    let error = h
        .engine
        .back_up_pod(br#"{"kind":"Pod","spec":{"containers":"nope"}}"#, &backup())
        .await
        .unwrap_err();
    assert!(
        error.to_string().starts_with("the item is not a valid Pod"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_pods_at_eight_concurrent_callers_freeze_and_thaw_exactly_once() {
    let h = harness_with(&[], Duration::from_millis(1));
    let pods: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| {
            let name = format!("p{i}");
            let claims: Vec<String> = if i % 3 == 0 {
                vec![]
            } else {
                vec![format!("c{i}")]
            };
            let claims: Vec<&str> = claims.iter().map(String::as_str).collect();
            (name.clone(), pod(&name, &claims, json!({})))
        })
        .collect();
    for (_, p) in &pods {
        h.engine.index_pod(p, &backup()).await.unwrap();
    }
    let pods = Arc::new(pods);
    let workers = (0..8).map(|w| {
        let (engine, pods) = (h.engine.clone(), Arc::clone(&pods));
        tokio::spawn(async move {
            for i in (w..200).step_by(8) {
                let (_, p) = &pods[i];
                if i % 3 != 0 {
                    engine
                        .freeze_pods_of_volume(&pv(&format!("pv{i}"), &format!("c{i}")), &backup())
                        .await
                        .unwrap();
                }
                engine.back_up_pod(p, &backup()).await.unwrap();
            }
        })
    });
    for worker in workers {
        worker.await.unwrap();
    }
    h.engine.drain().await;
    for (name, _) in pods.iter() {
        assert_eq!(h.timeline.count(&format!("pre {name}")), 1, "{name}");
        assert_eq!(h.timeline.count(&format!("post {name}")), 1, "{name}");
        assert!(
            h.timeline.position(&format!("pre {name}"))
                < h.timeline.position(&format!("post {name}"))
        );
    }
}

#[tokio::test]
async fn without_an_item_block_action_the_pods_of_a_volume_are_found_through_the_api() {
    let h = harness_with_options(&[], Duration::ZERO, true);
    let db = pod("db", &["data"], json!({}));
    let other = pod("other", &["elsewhere"], json!({}));
    for p in [&db, &other] {
        h.cluster
            .pods
            .lock()
            .unwrap()
            .push(serde_json::from_slice(p).unwrap());
    }
    h.volume("pv-1", "data").await; // no GetRelatedItems came first (Velero < 1.15)
    h.engine.back_up_pod(&db, &backup()).await.unwrap();
    assert_eq!(h.timeline.events(), ["pre db", "snapshot pv-1", "post db"]);
}

#[tokio::test]
async fn without_an_item_block_action_a_pod_the_backup_does_not_select_is_not_frozen() {
    let h = harness_with_options(&[], Duration::ZERO, true);
    let mut selected = pod_value("db", &["data"], json!({}));
    selected["metadata"]["labels"] = json!({"app": "db"});
    // Shares the claim, but the Backup's label selector leaves it out: Velero never backs its
    // item up, so nothing would thaw it before the watchdog.
    let unselected = pod_value("reader", &["data"], json!({}));
    let items = h.list(&[selected, unselected]);
    let backup = serde_json::to_vec(&json!({
        "metadata": {"name": "b1", "namespace": "velero", "uid": "backup-uid"},
        "spec": {"labelSelector": {"matchLabels": {"app": "db"}}}
    }))
    .unwrap();
    h.engine
        .freeze_pods_of_volume(&pv("pv-1", "data"), &backup)
        .await
        .unwrap();
    h.timeline.push("snapshot pv-1".into());
    h.engine.back_up_pod(&items[0], &backup).await.unwrap();
    assert_eq!(h.timeline.events(), ["pre db", "snapshot pv-1", "post db"]);
}

#[tokio::test]
async fn with_an_item_block_action_the_api_is_not_searched() {
    let h = harness(&[]);
    let db = pod("db", &["data"], json!({}));
    h.cluster
        .pods
        .lock()
        .unwrap()
        .push(serde_json::from_slice(&db).unwrap());
    h.volume("pv-1", "data").await;
    h.engine.back_up_pod(&db, &backup()).await.unwrap();
    assert_eq!(h.timeline.events(), ["snapshot pv-1", "pre db", "post db"]);
}

#[tokio::test]
async fn every_hook_outcome_becomes_an_event_on_its_pod() {
    let h = harness(&[("pre", Ok(2))]);
    let db = pod(
        "db",
        &[],
        json!({"pre.hook.backup.quiesce.dev/on-error": "Continue"}),
    );
    h.engine.back_up_pod(&db, &backup()).await.unwrap();
    h.engine.drain().await; // waits for events in flight
    let events = h.cluster.events.lock().unwrap().clone();
    let reasons: Vec<_> = events
        .iter()
        .map(|e| (e.reason, e.pod.name.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [("QuiesceHookFailed", "db"), ("QuiesceHookSucceeded", "db")]
    );
    assert!(
        events[0].message.contains("exit code 2"),
        "{}",
        events[0].message
    );
    assert_eq!(events[0].pod_uid, "uid-db");
}

#[tokio::test]
async fn the_summary_counts_hooks_and_watchdog_thaws() {
    let h = harness(&[("post", Ok(1))]);
    for name in ["a", "b"] {
        h.engine
            .back_up_pod(&pod(name, &[], json!({})), &backup())
            .await
            .unwrap();
    }
    h.engine.drain().await;
    let summary = lock(&h.engine.inner.summary).clone();
    assert_eq!(summary.pods_with_hooks, 2);
    assert_eq!(
        (summary.attempted, summary.succeeded, summary.failed),
        (4, 2, 2)
    );
    assert!(summary.longest_freeze.is_some());
    assert!(summary.auto_thawed.is_empty());
}

#[tokio::test]
async fn annotation_hooks_into_a_denied_sidecar_are_refused_and_counted() {
    let h = harness(&[]);
    let mut sidecar: Value = serde_json::from_slice(&pod(
        "web",
        &[],
        json!({
            "pre.hook.backup.quiesce.dev/container": "istio-proxy",
        }),
    ))
    .unwrap();
    sidecar["spec"]["containers"] = json!([{"name": "app"}, {"name": "istio-proxy"}]);
    h.engine
        .back_up_pod(&serde_json::to_vec(&sidecar).unwrap(), &backup())
        .await
        .unwrap();
    h.engine.drain().await;
    assert!(
        h.timeline.events().is_empty(),
        "neither phase runs: {:?}",
        h.timeline.events()
    );
    assert_eq!(lock(&h.engine.inner.summary).refused_by_policy, 2);
}

impl Harness {
    /// Makes `pods` visible to the engine's API listing, and returns their item bytes.
    fn list(&self, pods: &[Value]) -> Vec<Vec<u8>> {
        let mut listed = self.cluster.pods.lock().unwrap();
        pods.iter()
            .map(|pod| {
                listed.push(serde_json::from_value(pod.clone()).unwrap());
                serde_json::to_vec(pod).unwrap()
            })
            .collect()
    }
}

fn grouped(name: &str, claims: &[&str]) -> Value {
    pod_value(name, claims, json!({"quiesce.dev/group": "shop"}))
}

#[tokio::test]
async fn a_group_across_two_blocks_freezes_before_the_first_snapshot_and_thaws_after_the_last() {
    let h = harness(&[]);
    let items = h.list(&[
        grouped("a", &["data-a"]),
        grouped("b", &["data-b"]),
        grouped("c", &[]),
    ]);
    let [a, b, c] = [&items[0], &items[1], &items[2]];
    // Block 1: pod a and its volume.
    h.engine.index_pod(a, &backup()).await.unwrap();
    h.volume("pv-a", "data-a").await;
    h.engine.back_up_pod(a, &backup()).await.unwrap();
    // Block 2: pods b and c.
    h.engine.index_pod(b, &backup()).await.unwrap();
    h.engine.index_pod(c, &backup()).await.unwrap();
    h.volume("pv-b", "data-b").await;
    h.engine.back_up_pod(b, &backup()).await.unwrap();
    assert_eq!(h.timeline.count("post a") + h.timeline.count("post b"), 0);
    h.engine.back_up_pod(c, &backup()).await.unwrap();

    let first_snapshot = h.timeline.position("snapshot pv-a");
    let last_snapshot = h.timeline.position("snapshot pv-b");
    for member in ["a", "b", "c"] {
        assert!(h.timeline.position(&format!("pre {member}")) < first_snapshot);
        assert!(h.timeline.position(&format!("post {member}")) > last_snapshot);
        assert_eq!(h.timeline.count(&format!("pre {member}")), 1);
        assert_eq!(h.timeline.count(&format!("post {member}")), 1);
    }
}

#[tokio::test]
async fn group_members_the_backup_excludes_are_not_touched() {
    let h = harness(&[]);
    let mut excluded = grouped("x", &[]);
    excluded["metadata"]["labels"] = json!({"velero.io/exclude-from-backup": "true"});
    let mut done = grouped("done", &[]);
    done["status"]["phase"] = json!("Succeeded");
    let items = h.list(&[grouped("a", &["data-a"]), excluded, done]);
    h.engine.index_pod(&items[0], &backup()).await.unwrap();
    h.volume("pv-a", "data-a").await;
    h.engine.back_up_pod(&items[0], &backup()).await.unwrap();
    assert_eq!(h.timeline.events(), ["pre a", "snapshot pv-a", "post a"]);
}

#[tokio::test]
async fn a_group_member_failing_to_freeze_is_dropped_and_the_others_thaw_after_the_rest() {
    let h = harness(&[("fail", Ok(1))]);
    let failing = pod_value(
        "b",
        &[],
        json!({"quiesce.dev/group": "shop", "pre.hook.backup.quiesce.dev/command": "[\"fail\"]"}),
    );
    let items = h.list(&[grouped("a", &["data-a"]), failing, grouped("c", &[])]);
    h.engine.index_pod(&items[0], &backup()).await.unwrap();
    h.volume("pv-a", "data-a").await;
    h.engine.back_up_pod(&items[0], &backup()).await.unwrap();
    let error = h
        .engine
        .back_up_pod(&items[1], &backup())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::PreHookFailed { .. }), "{error}");
    // b's freeze may have run: it is thawed at once, a waits for c.
    assert_eq!(h.timeline.count("post b"), 1);
    assert_eq!(h.timeline.count("post a"), 0);
    h.engine.back_up_pod(&items[2], &backup()).await.unwrap();
    assert_eq!(h.timeline.count("post a"), 1);
    assert_eq!(h.timeline.count("post c"), 1);
}

#[tokio::test]
async fn drain_thaws_a_group_whose_last_member_never_came() {
    let h = harness(&[]);
    let items = h.list(&[grouped("a", &["data-a"]), grouped("b", &[])]);
    h.engine.index_pod(&items[0], &backup()).await.unwrap();
    h.volume("pv-a", "data-a").await;
    h.engine.back_up_pod(&items[0], &backup()).await.unwrap();
    assert_eq!(h.timeline.count("post a"), 0);
    h.engine.drain().await;
    assert_eq!(h.timeline.count("post a"), 1);
    assert_eq!(h.timeline.count("post b"), 1);
}

fn replica(name: &str, role: &str) -> Value {
    let mut pod = pod_value(
        name,
        &[],
        json!({"quiesce.dev/run-once-per": "owner", "quiesce.dev/run-on": "role=primary"}),
    );
    pod["metadata"]["labels"] = json!({"role": role});
    pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "StatefulSet",
        "name": "db", "uid": "sts-uid", "controller": true}]);
    pod
}

#[tokio::test]
async fn run_once_per_owner_runs_only_in_the_primary() {
    let h = harness(&[]);
    let items = h.list(&[
        replica("db-0", "replica"),
        replica("db-1", "replica"),
        replica("db-2", "primary"),
    ]);
    for item in &items {
        h.engine.index_pod(item, &backup()).await.unwrap();
        h.engine.back_up_pod(item, &backup()).await.unwrap();
    }
    assert_eq!(h.timeline.events(), ["pre db-2", "post db-2"]);
}

#[tokio::test]
async fn run_once_without_a_listing_runs_everywhere_like_velero() {
    let h = harness(&[]);
    // Nothing listed: no candidate is found, so no pod is singled out.
    let item = serde_json::to_vec(&replica("db-1", "replica")).unwrap();
    h.engine.back_up_pod(&item, &backup()).await.unwrap();
    assert_eq!(h.timeline.events(), ["pre db-1", "post db-1"]);
}

#[tokio::test]
async fn template_variables_are_filled_in_per_pod_container_and_phase() {
    let h = harness(&[]);
    let item = pod(
        "db",
        &[],
        json!({
            "pre.hook.backup.quiesce.dev/command":
                "[\"dump\", \"--to=/backup/{{backup.namespace}}/{{backup.name}}\", \"{{pod.namespace}}.{{pod.name}}\", \"{{container}}\", \"{{phase}}\"]"
        }),
    );
    h.engine.back_up_pod(&item, &backup()).await.unwrap();
    assert_eq!(
        h.timeline.events(),
        ["dump --to=/backup/velero/b1 shop.db app pre db", "post db"]
    );
}

#[tokio::test]
async fn an_unknown_template_variable_fails_the_hook_without_running_it() {
    let h = harness(&[]);
    let item = pod(
        "db",
        &[],
        json!({"pre.hook.backup.quiesce.dev/command": "[\"dump\", \"{{backup.nmae}}\"]"}),
    );
    let error = h.engine.back_up_pod(&item, &backup()).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("unknown template variable {{backup.nmae}}"),
        "{error}"
    );
    assert!(h.timeline.events().is_empty(), "{:?}", h.timeline.events());
}

#[tokio::test]
async fn a_freeze_arriving_while_the_drain_runs_is_refused_not_left_frozen() {
    let h = harness(&[]);
    let a = pod("a", &["data-a"], json!({}));
    let b = pod("b", &["data-b"], json!({}));
    h.engine.index_pod(&a, &backup()).await.unwrap();
    h.volume("pv-a", "data-a").await;
    h.engine.drain().await;
    // Velero (or a late worker) still calls after Shutdown began.
    h.engine.index_pod(&b, &backup()).await.unwrap();
    h.volume("pv-b", "data-b").await;
    let error = h.engine.back_up_pod(&b, &backup()).await.unwrap_err();
    assert!(
        error.to_string().contains("the plugin is stopping"),
        "{error}"
    );
    assert_eq!(h.timeline.count("pre b"), 0, "no freeze after the drain");
    assert_eq!(h.timeline.count("post a"), 1);
}

#[tokio::test]
async fn run_once_never_chooses_a_replica_the_hooks_rule_does_not_select() {
    let (config, problems) = Config::from_yaml(
        "hooks:\n  resources:\n  - name: dump\n    runOncePer: owner\n    labelSelector:\n      \
         matchLabels: {backup: \"yes\"}\n    pre:\n    - exec:\n        command: [dump]\n",
    );
    assert!(problems.is_empty(), "{problems:?}");
    let cluster = FakeCluster {
        config,
        ..FakeCluster::default()
    };
    let h = harness_with_cluster(&[], Duration::ZERO, false, cluster);
    let replica = |name: &str, selected: bool| {
        let mut pod = pod_value(name, &[], json!({}));
        pod["metadata"]["annotations"] = json!({});
        if selected {
            pod["metadata"]["labels"] = json!({"backup": "yes"});
        }
        pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1",
            "kind": "StatefulSet", "name": "db", "uid": "sts-uid", "controller": true}]);
        pod
    };
    // db-0 has the lowest ordinal but the rule does not apply to it.
    let items = h.list(&[replica("db-0", false), replica("db-1", true)]);
    for item in &items {
        h.engine.back_up_pod(item, &backup()).await.unwrap();
    }
    assert_eq!(h.timeline.events(), ["dump db-1"]);
}

#[tokio::test]
async fn a_namespace_is_listed_once_per_backup_for_all_its_groups_and_run_once_hooks() {
    let h = harness(&[]);
    let mut other_group = grouped("z", &[]);
    other_group["metadata"]["annotations"]["quiesce.dev/group"] = json!("audit");
    let items = h.list(&[
        grouped("a", &["data-a"]),
        grouped("b", &[]),
        other_group,
        replica("db-0", "replica"),
        replica("db-1", "primary"),
    ]);
    for item in &items {
        h.engine.index_pod(item, &backup()).await.unwrap();
        h.engine.back_up_pod(item, &backup()).await.unwrap();
    }
    assert_eq!(h.timeline.count("pre db-1"), 1);
    assert_eq!(h.timeline.count("pre db-0"), 0);
    assert_eq!(*h.cluster.listings.lock().unwrap(), ["shop"]);

    // Another backup sees the namespace as it is then.
    let other_backup =
        serde_json::to_vec(&json!({"metadata": {"name": "b2", "namespace": "velero",
        "uid": "backup-2"}, "spec": {}}))
        .unwrap();
    h.engine
        .back_up_pod(&items[0], &other_backup)
        .await
        .unwrap();
    assert_eq!(*h.cluster.listings.lock().unwrap(), ["shop", "shop"]);
}

#[tokio::test]
async fn a_failed_namespace_listing_is_tried_again_by_the_next_group() {
    let cluster = FakeCluster {
        failing_listings: Mutex::new(1),
        ..FakeCluster::default()
    };
    let h = harness_with_cluster(&[], Duration::ZERO, false, cluster);
    let audit = |name: &str| {
        let mut pod = grouped(name, &[]);
        pod["metadata"]["annotations"]["quiesce.dev/group"] = json!("audit");
        pod
    };
    let items = h.list(&[grouped("a", &[]), grouped("b", &[]), audit("x"), audit("y")]);
    // Group shop forms without a listing: a alone; group audit lists the namespace.
    h.engine.back_up_pod(&items[0], &backup()).await.unwrap();
    h.engine.back_up_pod(&items[2], &backup()).await.unwrap();
    assert_eq!(h.cluster.listings.lock().unwrap().len(), 2);
    assert_eq!(h.timeline.count("pre y"), 1, "{:?}", h.timeline.events());
    assert_eq!(h.timeline.count("pre b"), 0, "{:?}", h.timeline.events());
    h.engine.drain().await;
}

// ----- held sessions -----

/// Annotations making the pre hook hold a session until `ready`, ended with `unlock`.
fn holding() -> Value {
    json!({
        "pre.hook.backup.quiesce.dev/stdin": "lock",
        "pre.hook.backup.quiesce.dev/hold-until-output": "ready",
        "post.hook.backup.quiesce.dev/stdin": "unlock",
    })
}

#[tokio::test]
async fn a_held_session_spans_the_snapshot_and_ends_before_the_post_command() {
    let h = harness(&[]);
    let db = pod("db", &["data"], holding());
    h.engine.index_pod(&db, &backup()).await.unwrap();
    h.volume("pv-1", "data").await;
    h.engine.back_up_pod(&db, &backup()).await.unwrap();
    assert_eq!(
        h.timeline.events(),
        [
            "open pre db",
            "stdin lock\n",
            "snapshot pv-1",
            "stdin unlock\n",
            "close",
            "dropped",
            "post db"
        ]
    );
    let summary = lock(&h.engine.inner.summary).clone();
    assert_eq!((summary.attempted, summary.succeeded), (3, 3));
}

/// Backs up pod `db` (claim `data`, volume `pv-1`) whose session is [`holding`] but for the
/// stdin texts given, and returns the harness.
async fn back_up_holding(pre_stdin: &str, post_stdin: &str) -> Harness {
    let h = harness(&[]);
    let mut annotations = holding();
    annotations["pre.hook.backup.quiesce.dev/stdin"] = json!(pre_stdin);
    annotations["post.hook.backup.quiesce.dev/stdin"] = json!(post_stdin);
    let db = pod("db", &["data"], annotations);
    h.engine.index_pod(&db, &backup()).await.unwrap();
    h.volume("pv-1", "data").await;
    h.engine.back_up_pod(&db, &backup()).await.unwrap();
    h
}

#[tokio::test]
async fn stdin_gets_its_template_variables_filled_in_the_session_end_too() {
    let h = back_up_holding(
        "lock {{backup.name}} {{phase}}",
        "unlock {{pod.name}} {{phase}}",
    )
    .await;
    assert_eq!(
        h.timeline.events()[..5],
        [
            "open pre db",
            "stdin lock b1 pre\n",
            "snapshot pv-1",
            "stdin unlock db post\n",
            "close",
        ]
    );
}

#[tokio::test]
async fn a_session_end_whose_stdin_is_invalid_still_ends_the_session_and_fails() {
    let h = back_up_holding("lock", "unlock {{pod.nmae}}").await;
    let events = h.timeline.events();
    assert_eq!(
        events[..5],
        [
            "open pre db",
            "stdin lock\n",
            "snapshot pv-1",
            "close",
            "dropped"
        ],
        "ended with no input: its stdin closed"
    );
    assert!(
        !events.iter().any(|e| e.starts_with("stdin unlock")),
        "{events:?}"
    );
    let summary = lock(&h.engine.inner.summary).clone();
    assert_eq!(summary.failed, 1, "the session end failed with its defect");
}

#[tokio::test(start_paused = true)]
async fn the_watchdog_ends_a_held_session() {
    let h = harness(&[]);
    let mut annotations = holding();
    annotations["quiesce.dev/max-freeze"] = json!("1m");
    let db = pod("db", &["data"], annotations);
    h.engine.index_pod(&db, &backup()).await.unwrap();
    h.volume("pv-1", "data").await;
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert_eq!(h.timeline.count("close"), 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.timeline.count("close"), 1);
    assert_eq!(h.timeline.count("dropped"), 1);
}

#[tokio::test]
async fn the_drain_ends_a_held_session() {
    let h = harness(&[]);
    let db = pod("db", &["data"], holding());
    h.engine.index_pod(&db, &backup()).await.unwrap();
    h.volume("pv-1", "data").await;
    h.engine.drain().await;
    assert!(h.timeline.position("close") > h.timeline.position("snapshot pv-1"));
    assert_eq!(h.timeline.count("post db"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_session_that_never_holds_fails_the_freeze_and_leaves_nothing_open() {
    let mut h = harness(&[]);
    // The ready text never comes.
    let executor = ScriptedExecutor {
        timeline: Arc::clone(&h.timeline),
        script: HashMap::new(),
        delay: Duration::ZERO,
        program: Program::v5(),
        slow: HashMap::new(),
    };
    h.engine = Engine::new(Arc::new(executor), h.cluster.clone(), test_options());
    let db = pod("db", &["data"], holding());
    h.engine.index_pod(&db, &backup()).await.unwrap();
    h.volume("pv-1", "data").await;
    let events = h.timeline.events();
    assert_eq!(
        events[..4],
        ["open pre db", "stdin lock\n", "close", "dropped"],
        "ended at its timeout"
    );
    assert_eq!(h.timeline.count("refused pv-1"), 1);
    assert_eq!(
        h.timeline.count("post db"),
        1,
        "the thaw still runs: {events:?}"
    );
    assert_eq!(h.timeline.count("stdin unlock\n"), 0, "no session to end");
}

/// A harness whose rule `db` holds a session (`hold`, stdin `lock`, ready at `ready`) as its
/// first pre hook, followed by `more` (YAML lines at the rule's list level), where `failing`
/// exits 1; and pod `db` (no annotations) that the rule applies to.
fn rule_session_harness(more: &str) -> (Harness, Vec<u8>) {
    let (config, problems) = Config::from_yaml(&format!(
        "hooks:\n  resources:\n  - name: db\n    pre:\n    - exec:\n        command: [hold]\n        \
         stdin: lock\n        holdUntilOutput: ready\n{more}"
    ));
    assert!(problems.is_empty(), "{problems:?}");
    let cluster = FakeCluster {
        config,
        ..FakeCluster::default()
    };
    let h = harness_with_cluster(&[("failing", Ok(1))], Duration::ZERO, false, cluster);
    let mut db = pod_value("db", &["data"], json!({}));
    db["metadata"]["annotations"] = json!({});
    (h, serde_json::to_vec(&db).unwrap())
}

#[tokio::test]
async fn a_session_left_by_a_failed_post_hook_is_still_ended() {
    let (h, db) = rule_session_harness(
        "    post:\n    - exec:\n        command: [failing]\n    - exec:\n        stdin: unlock\n",
    );
    h.engine.index_pod(&db, &backup()).await.unwrap();
    h.volume("pv-1", "data").await;
    h.engine.back_up_pod(&db, &backup()).await.unwrap();
    assert_eq!(
        h.timeline.events(),
        [
            "open hold db",
            "stdin lock\n",
            "snapshot pv-1",
            "failing db",
            "close",
            "dropped"
        ],
        "its own post hook was skipped, the session is ended without input"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_while_a_session_waits_for_its_ready_text_ends_the_session() {
    let mut h = harness(&[]);
    let executor = ScriptedExecutor {
        timeline: Arc::clone(&h.timeline),
        script: HashMap::new(),
        delay: Duration::ZERO,
        program: Program::v5(), // never prints its ready text
        slow: HashMap::new(),
    };
    h.engine = Engine::new(Arc::new(executor), h.cluster.clone(), test_options());
    let mut annotations = holding();
    annotations["pre.hook.backup.quiesce.dev/timeout"] = json!("5m");
    let db = pod("db", &["data"], annotations);
    h.engine.index_pod(&db, &backup()).await.unwrap();
    let engine = h.engine.clone();
    let freezing = tokio::spawn(async move {
        engine
            .freeze_pods_of_volume(&pv("pv-1", "data"), &backup())
            .await
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.timeline.events(), ["open pre db", "stdin lock\n"]);
    h.engine.drain().await;
    // The abandoned opening dropped its stream (closing the connection); nothing is held, so
    // the thaw has no session to end, and the post command runs.
    assert_eq!(
        h.timeline.events(),
        ["open pre db", "stdin lock\n", "dropped", "post db"]
    );
    assert!(freezing.await.unwrap().is_err());
}

#[tokio::test]
async fn a_freeze_that_fails_after_a_session_held_ends_that_session() {
    let (h, db) = rule_session_harness("    - exec:\n        command: [failing]\n");
    h.engine.index_pod(&db, &backup()).await.unwrap();
    h.volume("pv-1", "data").await;
    assert_eq!(
        h.timeline.events(),
        [
            "open hold db",
            "stdin lock\n",
            "failing db",
            "close",
            "dropped",
            "refused pv-1"
        ],
        "the refused volume's thaw ended the session before Velero heard of it"
    );
}
