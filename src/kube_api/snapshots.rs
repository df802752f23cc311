//! Watching the CSI VolumeSnapshots (`snapshot.storage.k8s.io/v1`) of one namespace that carry
//! a label selector — Velero's `velero.io/backup-name=<backup>` — as a stream of
//! [`SnapshotEvent`]s: list, then watch from the list's `resourceVersion`, watching again where
//! a watch ends and listing again when the server says the version is gone (410).
//!
//! The stream's first item is an error when the watch cannot start (RBAC refuses it, the CRD is
//! not installed); once started, failures are retried after [`RETRY_DELAY`], and after
//! [`MAX_FAILURES`] in a row the stream yields the error and ends. It also ends when its
//! receiver is dropped.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use k8s_openapi::jiff::Timestamp;
use kube::api::WatchParams;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, WatchEvent};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{Error, Kube, READ_TIMEOUT};

/// Delay before a failed list or watch is tried again.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);
/// Failed lists or watches in a row after which the stream gives up.
pub const MAX_FAILURES: u32 = 5;
/// How long one watch request lasts before it is renewed (the server's own bound is similar).
const WATCH_SECONDS: u32 = 240;

/// One VolumeSnapshot, as far as a thaw at the cut needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSnapshotState {
    /// `metadata.name`.
    pub name: String,
    /// `spec.source.persistentVolumeClaimName`: the claim it snapshots.
    pub claim: Option<String>,
    /// `metadata.creationTimestamp`: when the object was created (the API server's clock).
    pub created: Option<Timestamp>,
    /// `velero.io/backup-uid` label, which Velero puts on the VolumeSnapshots of a volume group.
    pub backup_uid: Option<String>,
    /// `status.creationTime`: set by the snapshot controller from the driver's answer, once the
    /// point-in-time snapshot is cut (after the content's `snapshotHandle` is set).
    pub cut_at: Option<Timestamp>,
    /// `status.error.message` (or a placeholder when the error has none).
    pub error: Option<String>,
}

/// What the watch saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotEvent {
    /// A VolumeSnapshot as it is now (listed, added or modified).
    Seen(VolumeSnapshotState),
    /// A VolumeSnapshot was deleted.
    Gone(String),
}

/// `snapshot.storage.k8s.io/v1` VolumeSnapshot, as an untyped API resource.
fn volume_snapshot_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshot"),
        "volumesnapshots",
    )
}

impl Kube {
    /// The VolumeSnapshots of `namespace` matching `labels`, listed then watched.
    pub fn watch_volume_snapshots(
        &self,
        namespace: &str,
        labels: &str,
    ) -> impl Stream<Item = Result<SnapshotEvent, Error>> + Send + 'static {
        let (sender, receiver) = mpsc::channel(64);
        let kube = self.clone();
        let (namespace, labels) = (namespace.to_owned(), labels.to_owned());
        tokio::spawn(async move {
            if let Err(error) = kube.feed_snapshots(&namespace, &labels, &sender).await {
                let _ = sender.send(Err(error)).await;
            }
        });
        ReceiverStream::new(receiver)
    }

    /// Lists and watches until the receiver is gone (`Ok`) or failures pile up (`Err`).
    async fn feed_snapshots(
        &self,
        namespace: &str,
        labels: &str,
        sender: &mpsc::Sender<Result<SnapshotEvent, Error>>,
    ) -> Result<(), Error> {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.get().await.map_err(Error::NoClient)?,
            namespace,
            &volume_snapshot_resource(),
        );
        let mut failures = 0;
        let mut started = false;
        'list: loop {
            let listed = tokio::time::timeout(
                READ_TIMEOUT,
                api.list(&ListParams::default().labels(labels)),
            )
            .await
            .map_or(Err(Error::Timeout(READ_TIMEOUT)), |r| {
                r.map_err(Error::from_kube)
            });
            let list = match listed {
                Ok(list) => list,
                Err(error) => {
                    // A refusal or a missing CRD will not change by trying again.
                    if !started || failures + 1 >= MAX_FAILURES {
                        return Err(error);
                    }
                    failures += 1;
                    tokio::time::sleep(RETRY_DELAY).await;
                    continue 'list;
                }
            };
            started = true;
            for object in &list.items {
                if sender
                    .send(Ok(SnapshotEvent::Seen(read(object))))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            let mut version = list.metadata.resource_version.unwrap_or_default();
            loop {
                let params = WatchParams::default()
                    .labels(labels)
                    .timeout(WATCH_SECONDS)
                    .disable_bookmarks();
                let mut events = match api.watch(&params, &version).await {
                    Ok(events) => events.boxed(),
                    Err(error) => {
                        failures += 1;
                        if failures >= MAX_FAILURES {
                            return Err(Error::from_kube(error));
                        }
                        tokio::time::sleep(RETRY_DELAY).await;
                        continue 'list;
                    }
                };
                while let Some(event) = events.next().await {
                    let sent = match event {
                        Ok(WatchEvent::Added(object)) | Ok(WatchEvent::Modified(object)) => {
                            failures = 0;
                            if let Some(v) = object.metadata.resource_version.clone() {
                                version = v;
                            }
                            sender.send(Ok(SnapshotEvent::Seen(read(&object)))).await
                        }
                        Ok(WatchEvent::Deleted(object)) => {
                            if let Some(v) = object.metadata.resource_version.clone() {
                                version = v;
                            }
                            let name = object.metadata.name.unwrap_or_default();
                            sender.send(Ok(SnapshotEvent::Gone(name))).await
                        }
                        Ok(WatchEvent::Bookmark(bookmark)) => {
                            version = bookmark.metadata.resource_version;
                            Ok(())
                        }
                        // 410 Gone (the version is too old) or another error status: list again.
                        Ok(WatchEvent::Error(_)) | Err(_) => {
                            tokio::time::sleep(RETRY_DELAY).await;
                            continue 'list;
                        }
                    };
                    if sent.is_err() {
                        return Ok(());
                    }
                }
                if sender.is_closed() {
                    return Ok(());
                }
            }
        }
    }
}

/// The parts of a VolumeSnapshot a thaw at the cut reads.
fn read(object: &DynamicObject) -> VolumeSnapshotState {
    let text = |path: &[&str]| -> Option<String> {
        path.iter()
            .try_fold(&object.data, |v, key| v.get(key))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let error = object
        .data
        .get("status")
        .and_then(|s| s.get("error"))
        .map(|error| {
            error
                .get("message")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("error without a message")
                .to_owned()
        });
    VolumeSnapshotState {
        name: object.metadata.name.clone().unwrap_or_default(),
        claim: text(&["spec", "source", "persistentVolumeClaimName"]),
        created: object.metadata.creation_timestamp.as_ref().map(|t| t.0),
        backup_uid: object
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get("velero.io/backup-uid"))
            .cloned(),
        cut_at: text(&["status", "creationTime"]).and_then(|t| t.parse().ok()),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_snapshot_is_read_from_its_metadata_spec_and_status() {
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
            "metadata": {"name": "velero-data-db-0-x7k2p", "namespace": "shop",
                         "creationTimestamp": "2026-12-06T10:00:01Z",
                         "labels": {"velero.io/backup-name": "nightly"}},
            "spec": {"source": {"persistentVolumeClaimName": "data-db-0"}},
            "status": {"boundVolumeSnapshotContentName": "snapcontent-1",
                       "creationTime": "2026-12-06T10:00:02Z", "readyToUse": false}
        }))
        .unwrap();
        let state = read(&object);
        assert_eq!(state.claim.as_deref(), Some("data-db-0"));
        assert_eq!(state.backup_uid, None);
        assert_eq!(
            state.cut_at,
            Some("2026-12-06T10:00:02Z".parse::<Timestamp>().unwrap())
        );
        assert!(state.created < state.cut_at);
        assert_eq!(state.error, None);

        let failed: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
            "metadata": {"name": "s"},
            "spec": {"source": {"persistentVolumeClaimName": "c"}},
            "status": {"error": {"message": "driver: quota exceeded"}}
        }))
        .unwrap();
        let state = read(&failed);
        assert_eq!(state.error.as_deref(), Some("driver: quota exceeded"));
        assert_eq!(state.cut_at, None);
    }
}
