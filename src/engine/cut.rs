//! Thaw at the cut: a pod frozen for CSI-snapshotted claims is released as soon as each of
//! its claims has a VolumeSnapshot of this backup whose point-in-time snapshot is cut —
//! instead of when Velero's CSI action, polling every 5 s for the snapshot handle, lets the
//! pod's own item come.
//!
//! While a pod of a namespace waits, one watch per (backup, namespace) follows the
//! VolumeSnapshots Velero labels `velero.io/backup-name=<backup>`. A snapshot counts for its
//! claim (`spec.source.persistentVolumeClaimName`) when:
//! - its `status.creationTime` is set — the snapshot controller copies it from the content's
//!   status, which the CSI sidecar writes together with the snapshot handle once the driver's
//!   CreateSnapshot returned; so it comes no earlier than what Velero itself waits for (the
//!   content's `snapshotHandle`), and for a group snapshot the same holds for each member;
//! - it has no `status.error`;
//! - it belongs to this run of the backup: created no earlier than the Backup object, and
//!   carrying its UID where Velero puts one (`velero.io/backup-uid`, on group snapshots).
//!
//! A pod is released only when *every* claim it mounts has such a snapshot, and only if it has
//! no file-system-backup volumes: a claim that Velero snapshots natively, skips or backs up
//! by file system never gets one, and the pod then thaws where it always did (its own item,
//! its PodVolumeBackups). A snapshot with an error leaves its pods to that path too. A watch
//! that cannot start (RBAC, no CRD) is one warning, then the same. The watch stops once no pod
//! of its namespace waits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use k8s_openapi::jiff::Timestamp;

use super::plan::BackupInfo;
use super::pod::{Freeze, PodEntry, ThawCause};
use super::{lock, Engine};
use crate::kube_api::{SnapshotEvent, SnapshotEvents, VolumeSnapshotState};

/// Velero's label on the VolumeSnapshots it creates for a backup.
pub const BACKUP_NAME_LABEL: &str = "velero.io/backup-name";

/// One watch: per backup and namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct WatchKey {
    backup_uid: String,
    namespace: String,
}

/// The watches of every backup this process serves.
#[derive(Default)]
pub(super) struct Watches {
    by_key: Mutex<HashMap<WatchKey, Arc<Watch>>>,
    /// Set once a watch could not start: said once, then every pod thaws at its item.
    failed_once: std::sync::atomic::AtomicBool,
}

/// What one namespace's watch has seen, and who waits on it.
#[derive(Default)]
struct Watch {
    /// Claims with a cut snapshot of this backup, and when it was cut.
    cut: Mutex<HashMap<String, Timestamp>>,
    /// Claims whose snapshot reported an error.
    failed: Mutex<HashMap<String, String>>,
    /// The frozen pods waiting for their cut, and whether the watch task still runs; one lock,
    /// so that a pod is never added to a watch that has just decided to stop.
    waiters: Mutex<Waiters>,
}

#[derive(Default)]
struct Waiters {
    pods: Vec<Arc<PodEntry>>,
    running: bool,
}

/// Velero's `label.GetValidName`: a label value of at most 63 characters — the name itself, or
/// its first 57 characters and the first 6 hex digits of its SHA-256.
pub fn valid_label_value(name: &str) -> String {
    if name.len() <= 63 {
        return name.to_owned();
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let hex: String = digest.as_ref()[..3]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{}{hex}", &name[..57])
}

/// Whether `snapshot` is one this backup's run created.
fn of_this_backup(snapshot: &VolumeSnapshotState, backup: &BackupInfo) -> bool {
    let uid_matches = snapshot
        .backup_uid
        .as_deref()
        .is_none_or(|uid| uid == backup.uid);
    let backup_created = backup
        .created
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok());
    let new_enough = match (snapshot.created, backup_created) {
        (Some(snapshot), Some(backup)) => snapshot >= backup,
        _ => true,
    };
    uid_matches && new_enough
}

impl Engine {
    /// Whether `entry` thaws at the cut of its snapshots rather than at its item: on unless
    /// the environment (`QUIESCE_THAW_AT_CUT`) or the ConfigMap (`thawAtSnapshotCut`) turned
    /// it off. The configuration is read by the time a pod is indexed.
    fn thaws_at_cut(&self, entry: &PodEntry) -> bool {
        let configured = self
            .inner
            .config
            .get()
            .and_then(|config| config.thaw_at_snapshot_cut());
        self.inner.options.thaw_at_cut
            && configured != Some(false)
            && !entry.plan.claims.is_empty()
            && entry.plan.fs_backup_volumes.is_empty()
            && !entry.plan.pre.hooks.is_empty()
    }

    /// After pods froze for a volume of `namespace`: make sure the namespace's snapshots are
    /// watched while any of them waits for its cut.
    pub(super) async fn watch_for_cut(
        &self,
        backup: &BackupInfo,
        namespace: &str,
        frozen: &[Arc<PodEntry>],
    ) {
        let gave_up = self
            .inner
            .watches
            .failed_once
            .load(std::sync::atomic::Ordering::SeqCst);
        if gave_up || !frozen.iter().any(|e| self.thaws_at_cut(e)) {
            return;
        }
        let key = WatchKey {
            backup_uid: backup.uid.clone(),
            namespace: namespace.to_owned(),
        };
        let waiting: Vec<Arc<PodEntry>> = frozen
            .iter()
            .filter(|e| self.thaws_at_cut(e))
            .cloned()
            .collect();
        let watch = Arc::clone(
            lock(&self.inner.watches.by_key)
                .entry(key.clone())
                .or_default(),
        );
        let start = {
            let mut waiters = lock(&watch.waiters);
            for entry in waiting {
                if !waiters.pods.iter().any(|w| Arc::ptr_eq(w, &entry)) {
                    waiters.pods.push(entry);
                }
            }
            !std::mem::replace(&mut waiters.running, true)
        };
        if !start {
            // Snapshots seen already may complete these pods.
            self.release_cut_pods(&watch).await;
            return;
        }
        let engine = self.clone();
        let backup = backup.clone();
        let labels = format!("{BACKUP_NAME_LABEL}={}", valid_label_value(&backup.name));
        let events = self
            .inner
            .cluster
            .watch_volume_snapshots(&key.namespace, &labels);
        let stopping = self.inner.stopping.clone();
        tokio::spawn(async move {
            let stopped_itself = tokio::select! {
                stopped = engine.follow_snapshots(&key, &backup, &watch, events) => stopped,
                () = stopping.cancelled() => false,
            };
            if !stopped_itself {
                lock(&watch.waiters).running = false;
            }
        });
    }

    /// Follows the snapshots until no pod waits (`true`: the watch is already marked stopped)
    /// or the stream ends (`false`).
    async fn follow_snapshots(
        &self,
        key: &WatchKey,
        backup: &BackupInfo,
        watch: &Watch,
        mut events: SnapshotEvents,
    ) -> bool {
        while let Some(event) = events.next().await {
            match event {
                Ok(SnapshotEvent::Seen(snapshot)) => {
                    let Some(claim) = snapshot.claim.clone() else {
                        continue;
                    };
                    if !of_this_backup(&snapshot, backup) {
                        continue;
                    }
                    if let Some(error) = snapshot.error {
                        tracing::info!(
                            namespace = %key.namespace,
                            claim = %claim,
                            volumeSnapshot = %snapshot.name,
                            error = %error,
                            "VolumeSnapshot reports an error: pods mounting its claim thaw at \
                             their own item"
                        );
                        lock(&watch.failed).insert(claim, error);
                    } else if let Some(cut_at) = snapshot.cut_at {
                        lock(&watch.cut).insert(claim, cut_at);
                    } else {
                        continue;
                    }
                }
                Ok(SnapshotEvent::Gone(_)) => continue,
                Err(error) => {
                    let first = !self
                        .inner
                        .watches
                        .failed_once
                        .swap(true, std::sync::atomic::Ordering::SeqCst);
                    if first {
                        tracing::warn!(
                            namespace = %key.namespace,
                            error = %error,
                            "Cannot watch VolumeSnapshots: pods are thawed at their own item, \
                             not at their snapshot's cut (grant volumesnapshots get, list and \
                             watch, or set thawAtSnapshotCut: false)"
                        );
                    }
                    return false;
                }
            }
            if !self.release_cut_pods(watch).await {
                return true; // nothing of this namespace waits any more
            }
        }
        false
    }

    /// Releases every waiting pod whose claims are all cut; forgets those thawed meanwhile or
    /// whose snapshot failed. Returns whether some pod still waits — when none does, the watch
    /// is marked stopped under the same lock, and its task ends.
    async fn release_cut_pods(&self, watch: &Watch) -> bool {
        let waiting = lock(&watch.waiters).pods.clone();
        let mut settled = Vec::new();
        for entry in waiting {
            if entry.state.lock().await.freeze != Freeze::Frozen {
                settled.push(entry);
                continue;
            }
            let (ready, hopeless) = {
                let cut = lock(&watch.cut);
                let failed = lock(&watch.failed);
                let claims = &entry.plan.claims;
                (
                    claims
                        .iter()
                        .all(|c| cut.contains_key(c) && !failed.contains_key(c)),
                    claims.iter().any(|c| failed.contains_key(c)),
                )
            };
            if ready {
                tracing::debug!(
                    namespace = %entry.plan.pod.namespace,
                    pod = %entry.plan.pod.name,
                    backup = %entry.backup.qualified_name(),
                    "Every CSI snapshot of the pod's claims is cut: thawing it now"
                );
                let engine = self.clone();
                let released = Arc::clone(&entry);
                tokio::spawn(
                    async move { engine.release(&released, ThawCause::SnapshotCut).await },
                );
            }
            if ready || hopeless {
                settled.push(entry);
            }
        }
        let mut waiters = lock(&watch.waiters);
        waiters
            .pods
            .retain(|w| !settled.iter().any(|s| Arc::ptr_eq(s, w)));
        if waiters.pods.is_empty() {
            waiters.running = false;
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_cut_to_63_characters_as_velero_does() {
        assert_eq!(valid_label_value("nightly"), "nightly");
        let long = "a".repeat(70);
        let value = valid_label_value(&long);
        assert_eq!(value.len(), 63);
        assert!(value.starts_with(&"a".repeat(57)));
        // sha256("a" * 70) = 6bd5e5…, as `printf 'a%.0s' $(seq 70) | sha256sum` prints it.
        assert_eq!(&value[57..], "6bd5e5");
    }

    #[test]
    fn only_snapshots_of_this_run_of_the_backup_count() {
        let backup = BackupInfo {
            uid: "u-now".into(),
            created: Some("2026-12-06T10:00:00Z".into()),
            ..BackupInfo::default()
        };
        let snapshot = |created: &str, uid: Option<&str>| VolumeSnapshotState {
            name: "s".into(),
            claim: Some("data".into()),
            created: created.parse().ok(),
            backup_uid: uid.map(str::to_owned),
            cut_at: None,
            error: None,
        };
        assert!(of_this_backup(
            &snapshot("2026-12-06T10:00:05Z", None),
            &backup
        ));
        assert!(of_this_backup(
            &snapshot("2026-12-06T10:00:05Z", Some("u-now")),
            &backup
        ));
        assert!(!of_this_backup(
            &snapshot("2026-12-06T10:00:05Z", Some("u-old")),
            &backup
        ));
        // A backup of the same name run yesterday left this one.
        assert!(!of_this_backup(
            &snapshot("2026-12-05T10:00:05Z", None),
            &backup
        ));
    }
}
