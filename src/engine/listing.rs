//! A namespace's pods with hooks, listed once per backup: what consistency groups, run-once
//! choices and (Velero < 1.15) the pods of a volume are found among, before Velero shows
//! those pods to quiesce. Only pods whose containers run, that the backup includes and that
//! have hooks are kept, which bounds the memory by what quiesce indexes anyway. A listing that
//! failed is not kept: the next caller tries again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::OnceCell;

use super::plan::{pod_in_backup, BackupInfo, PodPlan};
use super::{lock, Engine};
use crate::kube_api;

/// Which listing: one per namespace and backup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ListingKey {
    backup_uid: String,
    namespace: String,
}

/// A namespace's pods with hooks, listed once.
type HookedPods = Arc<OnceCell<Arc<Vec<Pod>>>>;

/// The listings of every backup this process serves.
#[derive(Default)]
pub(super) struct Listings {
    hooked_pods: Mutex<HashMap<ListingKey, HookedPods>>,
}

/// Whether `pod` is one Velero will back up and whose containers run: a candidate to run a
/// workload's hooks or to be a group member.
fn live_in_backup(pod: &Pod, backup: &BackupInfo) -> bool {
    let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    let no_labels = std::collections::BTreeMap::new();
    running
        && pod.metadata.deletion_timestamp.is_none()
        && pod_in_backup(pod, backup)
        && backup.selects(pod.metadata.labels.as_ref().unwrap_or(&no_labels))
}

impl Engine {
    /// The pods of `namespace` whose containers run, that the backup includes and that have
    /// hooks in it: listed through the API on first use in a backup, then shared.
    pub(super) async fn hooked_pods(
        &self,
        backup: &BackupInfo,
        namespace: &str,
    ) -> Result<Arc<Vec<Pod>>, kube_api::Error> {
        let key = ListingKey {
            backup_uid: backup.uid.clone(),
            namespace: namespace.to_owned(),
        };
        let cell = Arc::clone(
            lock(&self.inner.listings.hooked_pods)
                .entry(key)
                .or_default(),
        );
        cell.get_or_try_init(|| async {
            let pods = self.inner.cluster.pods_in_namespace(namespace).await?;
            let config = self.config().await;
            let hooked = pods
                .into_iter()
                .filter(|pod| {
                    live_in_backup(pod, backup) && PodPlan::new(pod, backup, &config).has_hooks()
                })
                .collect();
            Ok(Arc::new(hooked))
        })
        .await
        .cloned()
    }
}
