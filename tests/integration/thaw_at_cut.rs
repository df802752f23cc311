//! Thaw at the cut (issue 16): a pod frozen for CSI volumes is thawed as soon as the
//! VolumeSnapshots of all its claims are cut — by the fake cluster's simulated snapshot
//! controller here — not when Velero, after its 5 s poll, backs up the pod's item. Each test
//! sends the pod's `Execute` only after what it checks has happened, as Velero would seconds
//! later.

use std::time::Duration;

use fake_kube::objects::persistent_volume_claim;
use fake_kube::{FakeKube, SnapshotStep};
use serde_json::Value;

use crate::util::plugin_config_map;
use crate::util::velero::{hooked_pod, Velero, NAMESPACE};

/// How long the simulated driver takes to cut a snapshot.
const CUT_LATENCY: Duration = Duration::from_millis(100);

/// Generous bound for "it happens at all" waits; never a performance assertion.
const EVENTUALLY: Duration = Duration::from_secs(20);

/// A backup whose cluster cuts snapshots after [`CUT_LATENCY`]; `env` for the plugin.
async fn velero_with_snapshots(env: &[(&str, &str)]) -> Velero {
    Velero::start_on(FakeKube::builder().snapshot_latency(CUT_LATENCY), env).await
}

/// Claim `name` bound to the CSI volume `pv-NAME`.
fn claim(name: &str) -> Value {
    persistent_volume_claim(NAMESPACE, name, &format!("pv-{name}")).build()
}

/// Velero's calls for a pod with CSI claims up to its own item: GetRelatedItems of the pod and
/// its claims, then each claim's volume and VolumeSnapshot.
async fn freeze_for_csi_snapshots(velero: &mut Velero, pod: &Value, claims: &[&str]) {
    velero.index(pod).await;
    for name in claims {
        velero.related_claim(&claim(name)).await;
    }
    for name in claims {
        velero
            .csi_volume(&format!("pv-{name}"), &claim(name))
            .await
            .unwrap();
    }
}

/// `thawedBy` of the pod's `Pod thawed` line.
fn thawed_by(velero: &Velero, pod: &str) -> String {
    let line = velero
        .plugin
        .wait_for_log("Pod thawed", Duration::from_secs(5))
        .expect("a Pod thawed line");
    let lines: Vec<Value> = velero
        .stderr()
        .into_iter()
        .filter(|l| l["@message"] == "Pod thawed" && l["pod"] == pod)
        .collect();
    assert_eq!(lines.len(), 1, "one thaw line for {pod}: {line}");
    assert!(lines[0]["freezeWindowMs"].is_u64(), "{}", lines[0]);
    lines[0]["thawedBy"].as_str().unwrap_or_default().to_owned()
}

/// Waits until the simulated snapshot controller has cut a snapshot of `claim`.
async fn wait_for_cut(velero: &Velero, claim: &str) {
    let cut = velero
        .cluster
        .wait_for_timeline(EVENTUALLY, |events| {
            crate::util::velero::Timeline::of(events)
                .snapshot_step(claim, |step| *step == SnapshotStep::Cut)
                .is_some()
        })
        .await;
    assert!(cut, "the snapshot of {claim} was cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_thaws_when_its_snapshot_is_cut_long_before_its_own_item() {
    let mut velero = velero_with_snapshots(&[]).await;
    let db = hooked_pod("db", &["data"]).build();
    freeze_for_csi_snapshots(&mut velero, &db, &["data"]).await;
    assert!(
        velero.wait_for("thaw", "db", 1).await,
        "thawed by the cut, while Velero still polls for the snapshot"
    );
    let item = velero.cluster.mark("Execute(pod db)");
    velero.pod(&db).await.unwrap();

    let timeline = velero.timeline();
    let cut = timeline.cut("data");
    assert!(timeline.ended("freeze", "db") < timeline.marker("snapshot pv-data"));
    assert!(timeline.marker("snapshot pv-data") < cut);
    assert!(cut < timeline.started("thaw", "db"), "never before the cut");
    assert!(timeline.started("thaw", "db") < item);
    assert_eq!(
        timeline.finished("thaw", "db"),
        1,
        "the item finds it thawed"
    );
    assert_eq!(thawed_by(&velero, "db"), "snapshot-cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_waits_until_every_claim_of_it_is_cut() {
    let mut velero = velero_with_snapshots(&[]).await;
    // `both` has a CSI claim and a natively snapshotted one, which never gets a VolumeSnapshot.
    let both = hooked_pod("both", &["data", "wal"]).build();
    let single = hooked_pod("single", &["other"]).build();
    velero.index(&both).await;
    velero.index(&single).await;
    velero.csi_volume("pv-data", &claim("data")).await.unwrap();
    velero.volume("pv-wal", "wal").await.unwrap();
    wait_for_cut(&velero, "data").await;
    velero
        .csi_volume("pv-other", &claim("other"))
        .await
        .unwrap();
    // One watch per namespace sees the snapshots in order: once `single` is thawed, the
    // snapshot of `data` was seen too.
    assert!(velero.wait_for("thaw", "single", 1).await);
    assert_eq!(velero.timeline().finished("thaw", "both"), 0);
    let item = velero.cluster.mark("Execute(pod both)");
    velero.pod(&both).await.unwrap();
    velero.pod(&single).await.unwrap();
    let timeline = velero.timeline();
    assert!(timeline.started("thaw", "both") > item);
    assert_eq!(thawed_by(&velero, "both"), "pod-item");
    assert_eq!(thawed_by(&velero, "single"), "snapshot-cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_with_an_error_leaves_the_pod_to_its_item() {
    let mut velero = velero_with_snapshots(&[]).await;
    velero
        .cluster
        .fail_snapshots(NAMESPACE, "data", "driver: quota exceeded");
    let db = hooked_pod("db", &["data"]).build();
    freeze_for_csi_snapshots(&mut velero, &db, &["data"]).await;
    let seen = velero
        .plugin
        .wait_for_log(
            "VolumeSnapshot reports an error: pods mounting its claim thaw at their own item",
            EVENTUALLY,
        )
        .expect("the plugin saw the error");
    assert_eq!(seen["error"], "driver: quota exceeded");
    assert_eq!(seen["claim"], "data");
    assert_eq!(velero.timeline().finished("thaw", "db"), 0);

    let item = velero.cluster.mark("Execute(pod db)");
    velero.pod(&db).await.unwrap();
    assert!(velero.timeline().started("thaw", "db") > item);
    assert_eq!(thawed_by(&velero, "db"), "pod-item");
}

/// With the thaw at the cut switched off (`env` or `config_map`), the pod thaws at its item
/// and the plugin never asks for VolumeSnapshots.
async fn switched_off(env: &[(&str, &str)], config_map: Option<&str>) {
    let mut velero = velero_with_snapshots(env).await;
    if let Some(yaml) = config_map {
        velero
            .cluster
            .add_config_map(plugin_config_map("quiesce", yaml))
            .unwrap();
    }
    let db = hooked_pod("db", &["data"]).build();
    freeze_for_csi_snapshots(&mut velero, &db, &["data"]).await;
    wait_for_cut(&velero, "data").await;
    let item = velero.cluster.mark("Execute(pod db)");
    velero.pod(&db).await.unwrap();
    let timeline = velero.timeline();
    assert!(timeline.started("thaw", "db") > item);
    assert_eq!(thawed_by(&velero, "db"), "pod-item");
    let asked: Vec<String> = velero
        .cluster
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("volumesnapshots"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(asked.is_empty(), "no VolumeSnapshot requests: {asked:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiesce_thaw_at_cut_false_thaws_at_the_item() {
    switched_off(&[("QUIESCE_THAW_AT_CUT", "false")], None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thaw_at_snapshot_cut_false_in_the_config_map_thaws_at_the_item() {
    switched_off(&[], Some("thawAtSnapshotCut: false\n")).await;
}
