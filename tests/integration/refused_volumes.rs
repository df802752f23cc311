//! A failed freeze takes no snapshot (issue 15): when a pre hook with on-error `Fail` fails while
//! the pods of a volume freeze, the volume's `Execute` fails, so Velero skips its snapshots and
//! drops the pod; every pod frozen for it is thawed at once. `Continue` keeps the snapshot.

use serde_json::Value;

use crate::util::velero::{hooked_pod, Velero};

/// A [`hooked_pod`] whose freeze (`false freeze`) exits 1, with on-error `on_error`.
fn failing(name: &str, claims: &[&str], on_error: &str) -> Value {
    hooked_pod(name, claims)
        .annotation(
            "pre.hook.backup.quiesce.dev/command",
            r#"["false","freeze"]"#,
        )
        .annotation("pre.hook.backup.quiesce.dev/on-error", on_error)
        .build()
}

/// The plugin's log lines at `level`.
fn lines_at(velero: &Velero, level: &str) -> Vec<Value> {
    velero
        .stderr()
        .into_iter()
        .filter(|l| l["@level"] == level)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_claim_with_one_failing_pod_is_refused_and_both_pods_are_thawed_at_once() {
    let mut velero = Velero::start().await;
    let ok = hooked_pod("web-a", &["shared"]).build();
    let broken = failing("web-b", &["shared"], "Fail");
    velero.index(&ok).await;
    velero.index(&broken).await;

    let refused = velero.volume("pv-shared", "shared").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unknown);
    assert!(
        refused.message().contains(
            "volume pv-shared (claim shop/shared) is not snapshotted: pre hook \
             \"<from-annotation>\" failed in container \"app\" of pod shop/web-b: command \
             terminated with exit code 1"
        ),
        "{}",
        refused.message()
    );
    // Both thawed before the refusal reached Velero; no snapshot was taken.
    let timeline = velero.timeline();
    for pod in ["web-a", "web-b"] {
        assert_eq!(timeline.finished("thaw", pod), 1, "{pod} thawed at once");
    }
    let warning = velero
        .plugin
        .wait_for_log(
            "Volume not snapshotted: a pod mounting it failed to freeze; the pods frozen for it \
             are thawed now",
            std::time::Duration::from_secs(5),
        )
        .expect("a warning naming the volume");
    assert_eq!(warning["persistentVolume"], "pv-shared");
    assert_eq!(warning["pods"], "web-a,web-b");

    // Every later Execute of the volume gets the same answer, and nothing runs again.
    let again = velero.volume("pv-shared", "shared").await.unwrap_err();
    assert_eq!(again.message(), refused.message());
    velero.pod(&ok).await.unwrap();
    let status = velero.pod(&broken).await.unwrap_err();
    assert!(status.message().contains("of pod shop/web-b"), "{status:?}");
    let timeline = velero.timeline();
    for pod in ["web-a", "web-b"] {
        assert_eq!(timeline.finished("freeze", pod), 1, "{pod}");
        assert_eq!(
            timeline.finished("thaw", pod),
            1,
            "{pod} never thawed twice"
        );
    }
    let errors = lines_at(&velero, "error");
    assert_eq!(
        errors.len(),
        1,
        "only the failed hook is an error: {errors:#?}"
    );
    assert_eq!(errors[0]["pod"], "web-b");

    velero.plugin.shutdown().await;
    let summary = velero
        .plugin
        .wait_for_log("quiesce backup summary", std::time::Duration::from_secs(20))
        .expect("a summary line at shutdown");
    assert_eq!(summary["volumesRefused"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_takes_the_snapshot_of_a_failed_freeze_and_fail_refuses_it() {
    let mut velero = Velero::start().await;
    let lenient = failing("lenient", &["data-lenient"], "Continue");
    let strict = failing("strict", &["data-strict"], "Fail");
    velero
        .back_up(&lenient, &[("pv-lenient", "data-lenient")])
        .await
        .unwrap();
    let refused = velero
        .back_up(&strict, &[("pv-strict", "data-strict")])
        .await
        .unwrap_err();
    assert!(
        refused
            .message()
            .contains("volume pv-strict (claim shop/data-strict) is not snapshotted"),
        "{}",
        refused.message()
    );

    let timeline = velero.timeline();
    // Continue: the snapshot is taken (unquiesced, as asked), the pod thawed at its item.
    timeline.assert_frozen_around("lenient", "snapshot pv-lenient");
    // Fail: no snapshot, and the pod thawed right away.
    assert!(velero.cluster.timeline().iter().all(|e| !matches!(
        &e.kind,
        fake_kube::TimelineEventKind::Marker { label } if label == "snapshot pv-strict"
    )));
    for pod in ["lenient", "strict"] {
        assert_eq!(timeline.finished("thaw", pod), 1, "{pod}");
    }
    let thawed: Vec<(String, String)> = velero
        .stderr()
        .into_iter()
        .filter(|l| l["@message"] == "Pod thawed")
        .map(|l| (l["pod"].to_string(), l["thawedBy"].to_string()))
        .collect();
    assert!(
        thawed.contains(&("\"strict\"".into(), "\"pre-hook-failed\"".into())),
        "{thawed:?}"
    );
    assert!(
        thawed.contains(&("\"lenient\"".into(), "\"pod-item\"".into())),
        "{thawed:?}"
    );
    let warnings = lines_at(&velero, "warn");
    assert!(
        warnings
            .iter()
            .any(|l| l["pod"] == "lenient" && l["hookPhase"] == "pre"),
        "the lenient failure is a warning: {warnings:#?}"
    );
}
