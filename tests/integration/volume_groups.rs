//! Volume groups (Velero 1.17+, issue 15): claims of a namespace sharing a value of the Backup's
//! `volumeGroupSnapshotLabelKey` are snapshotted together when Velero reaches the first of them,
//! so every pod mounting one of them must be frozen by then — and only those pods.

use fake_kube::objects::persistent_volume_claim;
use serde_json::Value;

use crate::util::velero::{hooked_pod, Velero, NAMESPACE};

/// Claim `name` bound to `pv-NAME`, in volume group `group` unless `None`.
fn claim(name: &str, group: Option<&str>) -> Value {
    let claim = persistent_volume_claim(NAMESPACE, name, &format!("pv-{name}"));
    match group {
        Some(group) => claim.label("velero.io/volume-group", group).build(),
        None => claim.build(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pod_of_a_volume_group_is_frozen_before_its_first_snapshot_and_no_other() {
    let mut velero = Velero::start().await;
    let (a, b, c) = (
        hooked_pod("a", &["data-a"]).build(),
        hooked_pod("b", &["data-b"]).build(),
        hooked_pod("c", &["data-c"]).build(),
    );
    let (data_a, data_b, data_c) = (
        claim("data-a", Some("orders")),
        claim("data-b", Some("orders")),
        claim("data-c", Some("invoices")),
    );
    // One block as Velero's claim action forms it: a, its claim, the group's other claim and
    // the pod mounting that one. c and its claim (another group) form a block of their own.
    velero.index(&a).await;
    velero.related_claim(&data_a).await;
    velero.related_claim(&data_b).await;
    velero.index(&b).await;
    velero.index(&c).await;
    velero.related_claim(&data_c).await;

    // Velero reaches the group's first claim: the group's snapshot is cut after this volume.
    velero.volume("pv-data-a", "data-a").await.unwrap();
    velero.volume("pv-data-b", "data-b").await.unwrap();
    velero.pod(&a).await.unwrap();
    velero.pod(&b).await.unwrap();
    velero.volume("pv-data-c", "data-c").await.unwrap();
    velero.pod(&c).await.unwrap();

    let timeline = velero.timeline();
    let group_cut = timeline.marker("snapshot pv-data-a");
    for member in ["a", "b"] {
        assert!(
            timeline.ended("freeze", member) < group_cut,
            "{member} frozen before the group's snapshot"
        );
        assert!(timeline.started("thaw", member) > timeline.marker("snapshot pv-data-b"));
        assert_eq!(timeline.finished("freeze", member), 1);
        assert_eq!(timeline.finished("thaw", member), 1);
    }
    assert!(
        timeline.started("freeze", "c") > group_cut,
        "c is in another group: frozen at its own volume"
    );
    timeline.assert_frozen_around("c", "snapshot pv-data-c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_freeze_in_a_volume_group_refuses_the_group_s_volume_and_thaws_its_pods() {
    let mut velero = Velero::start().await;
    let a = hooked_pod("a", &["data-a"]).build();
    let b = hooked_pod("b", &["data-b"])
        .annotation(
            "pre.hook.backup.quiesce.dev/command",
            r#"["false","freeze"]"#,
        )
        .build();
    let (data_a, data_b) = (
        claim("data-a", Some("orders")),
        claim("data-b", Some("orders")),
    );
    velero.index(&a).await;
    velero.related_claim(&data_a).await;
    velero.related_claim(&data_b).await;
    velero.index(&b).await;

    let refused = velero.volume("pv-data-a", "data-a").await.unwrap_err();
    assert!(
        refused.message().contains(
            "volume pv-data-a (claim shop/data-a) is not snapshotted: pre hook \"<from-annotation>\" \
             failed in container \"app\" of pod shop/b"
        ),
        "{}",
        refused.message()
    );
    let timeline = velero.timeline();
    for member in ["a", "b"] {
        assert_eq!(
            timeline.finished("thaw", member),
            1,
            "{member} thawed as the volume was refused"
        );
    }
    // The group is snapshotted as one: its other volume is refused too, with nothing run again.
    let also_refused = velero.volume("pv-data-b", "data-b").await.unwrap_err();
    assert!(
        also_refused
            .message()
            .contains("volume pv-data-b (claim shop/data-b) is not snapshotted"),
        "{}",
        also_refused.message()
    );
    let timeline = velero.timeline();
    for member in ["a", "b"] {
        assert_eq!(timeline.finished("freeze", member), 1);
        assert_eq!(timeline.finished("thaw", member), 1);
    }
    assert!(velero.cluster.timeline().iter().all(|e| !matches!(
        &e.kind,
        fake_kube::TimelineEventKind::Marker { label } if label.starts_with("snapshot ")
    )));
}
