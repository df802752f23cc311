//! A simulated CSI snapshot controller: external-snapshotter's common controller and CSI sidecar
//! over a driver that cuts every snapshot a fixed latency after it is asked for. Off unless
//! [`crate::FakeKubeBuilder::snapshot_latency`] (or `fake-kube --snapshot-latency`) turns it
//! on. It follows the store's changes; nothing calls it.
//!
//! - A created `VolumeSnapshot` of a claim (`spec.source.persistentVolumeClaimName`) gets, after
//!   the latency, a `VolumeSnapshotContent` `snapcontent-<snapshot uid>` with
//!   `status.snapshotHandle`, `creationTime`, `restoreSize` and `readyToUse`, and then its own
//!   status: `boundVolumeSnapshotContentName`, `creationTime`, `readyToUse`, `restoreSize`.
//!   Driver and deletion policy come from its VolumeSnapshotClass, the volume handle from the
//!   claim's PersistentVolume (`spec.csi`).
//! - A created `VolumeGroupSnapshot` gets, after the latency, for each claim of its namespace
//!   its selector matches, a `VolumeSnapshotContent` and a `VolumeSnapshot` (named
//!   `snapcontent-`/`snapshot-` and a hash of the group's UID and the volume handle, as
//!   external-snapshotter names them), the snapshot owned by the group — owner reference with
//!   the group's own `apiVersion` and UID, finalizer `…/volumesnapshot-in-group-protection` —
//!   with `status.volumeGroupSnapshotName` and the statuses above; then a bound
//!   `VolumeGroupSnapshotContent` `groupsnapcontent-<group uid>` and the group's status.
//! - A claim marked by [`crate::FakeKube::fail_snapshots`] is not cut: its snapshot (or the group
//!   holding it) gets `status.error` and `readyToUse: false`.
//!
//! Each step is a [`TimelineEventKind::Snapshot`] event; the cut is recorded before any status
//! shows it. Differences from the real controllers: nothing happens on deletion (no snapshot to
//! delete), finalizers are never waited for, a claim without a CSI volume is still cut (with a
//! made-up volume handle), and statuses are written in one step each.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;

use crate::selector::Selector;
use crate::state::State;
use crate::store::{now_rfc3339, resource_by_path, ChangeType, ResourceKind};
use crate::timeline::{SnapshotInfo, SnapshotStep, TimelineEventKind};

const SNAPSHOT_GROUP: &str = "snapshot.storage.k8s.io";
const GROUP_SNAPSHOT_GROUP: &str = "groupsnapshot.storage.k8s.io";
/// The finalizer external-snapshotter puts on the members of a group snapshot.
const IN_GROUP_FINALIZER: &str =
    "snapshot.storage.kubernetes.io/volumesnapshot-in-group-protection";
/// Driver of a snapshot whose class and volume name none.
const DEFAULT_DRIVER: &str = "fake.csi.quiesce.dev";

/// Follows the store until `shutdown` flips to true, cutting what is asked for after `latency`.
/// Cuts still waiting when it stops are dropped.
pub(crate) async fn run(state: Arc<State>, latency: Duration, mut shutdown: watch::Receiver<bool>) {
    let (backlog, mut changes) = state.store.subscribe(None);
    let mut seen = BTreeSet::new();
    let mut cuts = JoinSet::new();
    for change in backlog {
        if change.change_type == ChangeType::Added {
            start(
                &state,
                latency,
                &change.object,
                change.resource,
                &mut seen,
                &mut cuts,
            );
        }
    }
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            Some(_) = cuts.join_next(), if !cuts.is_empty() => {}
            change = changes.recv() => match change {
                Ok(change) if change.change_type == ChangeType::Added => {
                    start(&state, latency, &change.object, change.resource, &mut seen, &mut cuts);
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Missed changes: look at every snapshot instead.
                    for resource in [volume_snapshots(), volume_group_snapshots()] {
                        let everything = Selector::default();
                        for object in state.store.list(resource, None, &everything, &everything).0 {
                            start(&state, latency, &object, resource, &mut seen, &mut cuts);
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Starts the cut of `object` if it is a snapshot nobody cut yet.
fn start(
    state: &Arc<State>,
    latency: Duration,
    object: &Value,
    resource: &'static ResourceKind,
    seen: &mut BTreeSet<String>,
    cuts: &mut JoinSet<()>,
) {
    let uid = text(object, "/metadata/uid")
        .unwrap_or_default()
        .to_string();
    let is_snapshot = resource.same_resource(volume_snapshots());
    let is_group = resource.same_resource(volume_group_snapshots());
    let wanted = (is_snapshot && dynamic_and_unbound(object))
        || (is_group
            && object
                .pointer("/status/boundVolumeGroupSnapshotContentName")
                .is_none());
    if !wanted || !seen.insert(uid) {
        return;
    }
    let info = SnapshotInfo {
        kind: resource.kind.to_string(),
        namespace: text(object, "/metadata/namespace")
            .unwrap_or_default()
            .to_string(),
        name: text(object, "/metadata/name")
            .unwrap_or_default()
            .to_string(),
        claims: Vec::new(),
    };
    record(state, &info, SnapshotStep::Requested);
    let state = Arc::clone(state);
    cuts.spawn(async move {
        tokio::time::sleep(latency).await;
        if is_group {
            cut_group(&state, info);
        } else {
            cut_snapshot(&state, info);
        }
    });
}

/// A VolumeSnapshot of a claim that no content is bound to yet (not a pre-provisioned one, not
/// one a group snapshot made).
fn dynamic_and_unbound(snapshot: &Value) -> bool {
    text(snapshot, "/spec/source/persistentVolumeClaimName").is_some()
        && snapshot
            .pointer("/status/boundVolumeSnapshotContentName")
            .is_none()
}

fn cut_snapshot(state: &State, mut info: SnapshotInfo) {
    let resource = volume_snapshots();
    let Some(snapshot) = state.store.get(resource, &info.namespace, &info.name) else {
        return; // deleted meanwhile
    };
    if !dynamic_and_unbound(&snapshot) {
        return;
    }
    let claim = text(&snapshot, "/spec/source/persistentVolumeClaimName")
        .unwrap_or_default()
        .to_string();
    info.claims = vec![claim.clone()];
    if let Some(message) = failure_of(state, &info.namespace, std::slice::from_ref(&claim)) {
        fail(state, resource, &info, &message);
        return;
    }
    let class = text(&snapshot, "/spec/volumeSnapshotClassName")
        .and_then(|name| state.store.get(snapshot_classes(), "", name));
    let volume = Volume::of(state, &info.namespace, &claim);
    let driver = class
        .as_ref()
        .and_then(|c| text(c, "/driver"))
        .unwrap_or(&volume.driver)
        .to_string();
    let deletion_policy = class
        .as_ref()
        .and_then(|c| text(c, "/deletionPolicy"))
        .unwrap_or("Delete")
        .to_string();
    let uid = text(&snapshot, "/metadata/uid").unwrap_or_default();
    let content_name = format!("snapcontent-{uid}");
    let now = now_rfc3339();
    record(state, &info, SnapshotStep::Cut);
    let content = json!({
        "metadata": {"name": content_name},
        "spec": {
            "deletionPolicy": deletion_policy,
            "driver": driver,
            "source": {"volumeHandle": volume.handle},
            "volumeSnapshotClassName": text(&snapshot, "/spec/volumeSnapshotClassName"),
            "volumeSnapshotRef": {
                "apiVersion": resource.api_version(), "kind": resource.kind,
                "name": info.name, "namespace": info.namespace, "uid": uid,
            },
        },
        "status": content_status(&volume, &format!("snap-{uid}"), None),
    });
    if state
        .store
        .upsert(snapshot_contents(), content, None)
        .is_err()
    {
        return;
    }
    let _ = state
        .store
        .update(resource, &info.namespace, &info.name, |snapshot| {
            snapshot["status"] = snapshot_status(&content_name, &now, &volume, None);
        });
}

fn cut_group(state: &State, mut info: SnapshotInfo) {
    let resource = volume_group_snapshots();
    let Some(group) = state.store.get(resource, &info.namespace, &info.name) else {
        return;
    };
    // The group as its creator wrote it: the version owner references must name.
    let group_api_version = text(&group, "/apiVersion")
        .map(str::to_string)
        .unwrap_or_else(|| resource.api_version());
    let group_resource = resource_by_path(
        GROUP_SNAPSHOT_GROUP,
        group_api_version.rsplit('/').next().unwrap_or_default(),
        resource.plural,
    )
    .unwrap_or(resource);
    let selector = group
        .pointer("/spec/source/selector")
        .map(selector_text)
        .and_then(|text| Selector::parse_labels(&text).ok())
        .unwrap_or_default();
    let claims: Vec<Value> = if group.pointer("/spec/source/selector").is_some() {
        state
            .store
            .list(
                claims(),
                Some(&info.namespace),
                &selector,
                &Selector::default(),
            )
            .0
    } else {
        Vec::new()
    };
    info.claims = claims
        .iter()
        .filter_map(|c| text(c, "/metadata/name"))
        .map(str::to_string)
        .collect();
    if let Some(message) = failure_of(state, &info.namespace, &info.claims) {
        fail(state, resource, &info, &message);
        return;
    }
    let group_uid = text(&group, "/metadata/uid")
        .unwrap_or_default()
        .to_string();
    let class = text(&group, "/spec/volumeGroupSnapshotClassName")
        .and_then(|name| state.store.get(group_snapshot_classes(), "", name));
    let class_text = |path: &str| class.as_ref().and_then(|c| text(c, path));
    let group_handle = format!("group-snap-{group_uid}");
    let now = now_rfc3339();
    record(state, &info, SnapshotStep::Cut);
    let mut volumes = Vec::new();
    for claim in &info.claims {
        let volume = Volume::of(state, &info.namespace, claim);
        let suffix = format!("{:016x}", fnv1a(&format!("{group_uid}{}", volume.handle)));
        let (snapshot_name, content_name) = (
            format!("snapshot-{suffix}"),
            format!("snapcontent-{suffix}"),
        );
        let snapshot_handle = format!("snap-{suffix}");
        let driver = class_text("/driver").unwrap_or(&volume.driver).to_string();
        let snapshot = json!({
            "metadata": {
                "name": snapshot_name, "namespace": info.namespace,
                "ownerReferences": [{
                    "apiVersion": group_api_version, "kind": resource.kind,
                    "name": info.name, "uid": group_uid,
                }],
                "finalizers": [IN_GROUP_FINALIZER],
            },
            "spec": {"source": {"persistentVolumeClaimName": claim}},
            "status": snapshot_status(&content_name, &now, &volume, Some(&info.name)),
        });
        let Ok(snapshot) = state.store.upsert(volume_snapshots(), snapshot, None) else {
            return;
        };
        let content = json!({
            "metadata": {
                "name": content_name,
                "annotations": {
                    "groupsnapshot.storage.k8s.io/volumeGroupSnapshotHandle": group_handle,
                },
            },
            "spec": {
                "deletionPolicy": class_text("/deletionPolicy").unwrap_or("Delete"),
                "driver": driver,
                "source": {"volumeHandle": volume.handle},
                "volumeSnapshotRef": {
                    "apiVersion": volume_snapshots().api_version(), "kind": "VolumeSnapshot",
                    "name": snapshot_name, "namespace": info.namespace,
                    "uid": text(&snapshot, "/metadata/uid"),
                },
            },
            "status": content_status(&volume, &snapshot_handle, Some(&group_handle)),
        });
        if state
            .store
            .upsert(snapshot_contents(), content, None)
            .is_err()
        {
            return;
        }
        volumes.push((volume, snapshot_handle));
    }
    let group_content_name = format!("groupsnapcontent-{group_uid}");
    let mut group_content_status = json!({
        "volumeGroupSnapshotHandle": group_handle,
        "creationTime": now,
        "readyToUse": true,
    });
    if group_resource.version == "v1beta1" {
        group_content_status["volumeSnapshotHandlePairList"] = volumes
            .iter()
            .map(|(v, handle)| json!({"volumeHandle": v.handle, "snapshotHandle": handle}))
            .collect();
    } else {
        group_content_status["volumeSnapshotInfoList"] = volumes
            .iter()
            .map(|(v, handle)| {
                json!({
                    "volumeHandle": v.handle, "snapshotHandle": handle,
                    "creationTime": unix_nanos(), "readyToUse": true,
                    "restoreSize": v.size_bytes,
                })
            })
            .collect();
    }
    let group_content = json!({
        "apiVersion": group_resource.api_version(),
        "kind": "VolumeGroupSnapshotContent",
        "metadata": {"name": group_content_name},
        "spec": {
            "deletionPolicy": class_text("/deletionPolicy").unwrap_or("Delete"),
            "driver": class_text("/driver").unwrap_or(DEFAULT_DRIVER),
            "source": {"volumeHandles": volumes.iter().map(|(v, _)| v.handle.clone()).collect::<Vec<_>>()},
            "volumeGroupSnapshotClassName": text(&group, "/spec/volumeGroupSnapshotClassName"),
            "volumeGroupSnapshotRef": {
                "apiVersion": group_api_version, "kind": resource.kind,
                "name": info.name, "namespace": info.namespace, "uid": group_uid,
            },
        },
        "status": group_content_status,
    });
    let content_resource = resource_by_path(
        GROUP_SNAPSHOT_GROUP,
        group_resource.version,
        "volumegroupsnapshotcontents",
    );
    let Some(content_resource) = content_resource else {
        return;
    };
    if state
        .store
        .upsert(content_resource, group_content, None)
        .is_err()
    {
        return;
    }
    let _ = state
        .store
        .update(resource, &info.namespace, &info.name, |group| {
            group["status"] = json!({
                "boundVolumeGroupSnapshotContentName": group_content_name,
                "creationTime": now,
                "readyToUse": true,
            });
        });
}

/// Marks a snapshot (or group) failed: an error in its status, as external-snapshotter reports a
/// driver's refusal.
fn fail(state: &State, resource: &'static ResourceKind, info: &SnapshotInfo, message: &str) {
    record(
        state,
        info,
        SnapshotStep::Failed {
            message: message.to_string(),
        },
    );
    let _ = state
        .store
        .update(resource, &info.namespace, &info.name, |object| {
            object["status"] = json!({
                "error": {"message": message, "time": now_rfc3339()},
                "readyToUse": false,
            });
        });
}

fn failure_of(state: &State, namespace: &str, claims: &[String]) -> Option<String> {
    let failures = state
        .snapshot_failures
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    claims
        .iter()
        .find_map(|claim| failures.get(&(namespace.to_string(), claim.clone())))
        .cloned()
}

fn record(state: &State, info: &SnapshotInfo, step: SnapshotStep) {
    state.timeline.push(TimelineEventKind::Snapshot {
        snapshot: info.clone(),
        step,
    });
}

/// What the controller needs of a claim's volume.
struct Volume {
    handle: String,
    driver: String,
    /// The claim's size as `metadata`'s quantity text (`1Gi`), if known.
    size: Option<String>,
    size_bytes: Option<i64>,
}

impl Volume {
    /// The PersistentVolume bound to `namespace/claim`: its CSI handle and driver, and its size.
    fn of(state: &State, namespace: &str, claim: &str) -> Volume {
        let claim_object = state.store.get(claims(), namespace, claim);
        let volume = claim_object
            .as_ref()
            .and_then(|c| text(c, "/spec/volumeName"))
            .and_then(|name| state.store.get(volumes(), "", name));
        let size = volume
            .as_ref()
            .and_then(|v| text(v, "/spec/capacity/storage"))
            .or_else(|| {
                claim_object
                    .as_ref()
                    .and_then(|c| text(c, "/spec/resources/requests/storage"))
            })
            .map(str::to_string);
        Volume {
            handle: volume
                .as_ref()
                .and_then(|v| text(v, "/spec/csi/volumeHandle"))
                .map_or_else(
                    || format!("fake-volume-{namespace}-{claim}"),
                    str::to_string,
                ),
            driver: volume
                .as_ref()
                .and_then(|v| text(v, "/spec/csi/driver"))
                .unwrap_or(DEFAULT_DRIVER)
                .to_string(),
            size_bytes: size.as_deref().and_then(quantity_bytes),
            size,
        }
    }
}

fn snapshot_status(content: &str, now: &str, volume: &Volume, group: Option<&str>) -> Value {
    let mut status = json!({
        "boundVolumeSnapshotContentName": content,
        "creationTime": now,
        "readyToUse": true,
    });
    if let Some(size) = &volume.size {
        status["restoreSize"] = json!(size);
    }
    if let Some(group) = group {
        status["volumeGroupSnapshotName"] = json!(group);
    }
    status
}

fn content_status(volume: &Volume, snapshot_handle: &str, group_handle: Option<&str>) -> Value {
    let mut status = json!({
        "snapshotHandle": snapshot_handle,
        "creationTime": unix_nanos(),
        "readyToUse": true,
    });
    if let Some(bytes) = volume.size_bytes {
        status["restoreSize"] = json!(bytes);
    }
    if let Some(group_handle) = group_handle {
        status["volumeGroupSnapshotHandle"] = json!(group_handle);
    }
    status
}

/// A `metav1.LabelSelector` as selector text: `matchLabels` as `k=v`, `matchExpressions` as
/// `k in (…)`, `k notin (…)`, `k`, `!k`.
fn selector_text(selector: &Value) -> String {
    let mut terms: Vec<String> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (key, value) in labels {
            terms.push(format!("{key}={}", value.as_str().unwrap_or_default()));
        }
    }
    for expression in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = text(expression, "/key").unwrap_or_default();
        let values: Vec<&str> = expression
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        terms.push(match text(expression, "/operator") {
            Some("In") => format!("{key} in ({})", values.join(",")),
            Some("NotIn") => format!("{key} notin ({})", values.join(",")),
            Some("DoesNotExist") => format!("!{key}"),
            _ => key.to_string(),
        });
    }
    terms.join(",")
}

/// Bytes of a Kubernetes quantity with an integer amount (`1Gi`, `500M`, `1024`).
fn quantity_bytes(quantity: &str) -> Option<i64> {
    let digits = quantity
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(quantity.len());
    let (amount, suffix) = quantity.split_at(digits);
    let factor: i64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return None,
    };
    amount.parse::<i64>().ok()?.checked_mul(factor)
}

/// 64-bit FNV-1a: a short stable hash for the names of a group's members.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Now as Unix nanoseconds, the unit of a content's `status.creationTime`.
fn unix_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn text<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str)
}

fn kind(group: &str, version: &str, plural: &str) -> &'static ResourceKind {
    resource_by_path(group, version, plural)
        .unwrap_or_else(|| unreachable!("{group}/{version} {plural} is in RESOURCES"))
}

fn claims() -> &'static ResourceKind {
    kind("", "v1", "persistentvolumeclaims")
}

fn volumes() -> &'static ResourceKind {
    kind("", "v1", "persistentvolumes")
}

fn volume_snapshots() -> &'static ResourceKind {
    kind(SNAPSHOT_GROUP, "v1", "volumesnapshots")
}

fn snapshot_contents() -> &'static ResourceKind {
    kind(SNAPSHOT_GROUP, "v1", "volumesnapshotcontents")
}

fn snapshot_classes() -> &'static ResourceKind {
    kind(SNAPSHOT_GROUP, "v1", "volumesnapshotclasses")
}

fn volume_group_snapshots() -> &'static ResourceKind {
    kind(GROUP_SNAPSHOT_GROUP, "v1beta2", "volumegroupsnapshots")
}

fn group_snapshot_classes() -> &'static ResourceKind {
    kind(
        GROUP_SNAPSHOT_GROUP,
        "v1beta2",
        "volumegroupsnapshotclasses",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors_become_selector_text() {
        let selector = json!({
            "matchLabels": {"velero.io/volume-group": "orders"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["db", "cache"]},
                {"key": "skip", "operator": "DoesNotExist"},
            ],
        });
        assert_eq!(
            selector_text(&selector),
            "velero.io/volume-group=orders,tier in (db,cache),!skip"
        );
    }

    #[test]
    fn quantities_with_integer_amounts_are_read() {
        assert_eq!(quantity_bytes("1Gi"), Some(1 << 30));
        assert_eq!(quantity_bytes("500M"), Some(500_000_000));
        assert_eq!(quantity_bytes("1024"), Some(1024));
        assert_eq!(quantity_bytes("1.5Gi"), None);
    }
}
