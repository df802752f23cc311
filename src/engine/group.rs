//! Pods that freeze and thaw together, and when a pod is let go.
//!
//! A consistency group's members (pods of one namespace sharing `quiesce.dev/group` or a
//! rule's `group`) are frozen together before the first member's snapshot and thawed together
//! once the last member is backed up. Its members are listed through the API when it first
//! freezes (they may be in later item blocks) and fixed then; should the listing fail, the
//! group holds the members indexed so far, with a warning.
//!
//! [`Engine::freeze`] and [`Engine::release`] are what the engine's entry points call for any
//! pod: they apply the group (if any) and the run-once placement, then call the per-pod
//! transitions of `pod.rs`. A pod with file-system-backup volumes is released only once its
//! PodVolumeBackups are terminal ([`Engine::release_after_fs_backups`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::pod::{Freeze, PodEntry, ThawCause};
use super::{lock, Engine};
use crate::hooks;

/// One group: per backup, namespace and group name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    backup_uid: String,
    namespace: String,
    name: String,
}

/// The consistency groups of every backup this process serves.
#[derive(Default)]
pub(super) struct Groups {
    by_key: Mutex<HashMap<GroupKey, Arc<Group>>>,
}

/// A consistency group of one backup.
pub(super) struct Group {
    name: String,
    namespace: String,
    members: OnceCell<Vec<Arc<PodEntry>>>,
    released: Mutex<HashSet<String>>,
    first_freeze: Mutex<Option<Instant>>,
    thawed: AtomicBool,
}

impl Engine {
    /// The pod's consistency group, its members listed (and indexed) on first use.
    async fn group_of(&self, entry: &Arc<PodEntry>) -> Option<Arc<Group>> {
        let name = entry.plan.group.clone()?;
        let namespace = entry.plan.pod.namespace.clone();
        let key = GroupKey {
            backup_uid: entry.backup.uid.clone(),
            namespace: namespace.clone(),
            name: name.clone(),
        };
        let group = Arc::clone(
            lock(&self.inner.groups.by_key)
                .entry(key)
                .or_insert_with(|| {
                    Arc::new(Group {
                        name,
                        namespace,
                        members: OnceCell::new(),
                        released: Mutex::new(HashSet::new()),
                        first_freeze: Mutex::new(None),
                        thawed: AtomicBool::new(false),
                    })
                }),
        );
        group
            .members
            .get_or_init(|| self.group_members(&group, entry))
            .await;
        Some(group)
    }

    /// Every pod of the group that Velero will back up and that has hooks: listed through
    /// the API, plus those already indexed.
    async fn group_members(&self, group: &Group, entry: &Arc<PodEntry>) -> Vec<Arc<PodEntry>> {
        let mut members: Vec<Arc<PodEntry>> = Vec::new();
        let backup = &entry.backup;
        match self.hooked_pods(backup, &group.namespace).await {
            Ok(pods) => {
                let config = self.config().await;
                for pod in pods.iter() {
                    if hooks::group_of(pod, &config).as_deref() == Some(&group.name) {
                        members.push(self.entry_for(pod, backup.clone()).await);
                    }
                }
            }
            Err(error) => tracing::warn!(
                namespace = %group.namespace,
                group = %group.name,
                error = %error,
                "Cannot list the pods of a consistency group; it holds only the members seen so far"
            ),
        }
        let indexed = self.indexed_pods(|e| {
            e.backup.uid == backup.uid
                && e.plan.pod.namespace == group.namespace
                && e.plan.group.as_deref() == Some(&group.name)
        });
        for candidate in indexed.into_iter().chain([Arc::clone(entry)]) {
            if !members.iter().any(|m| Arc::ptr_eq(m, &candidate)) {
                members.push(candidate);
            }
        }
        members.retain(|m| m.plan.has_hooks());
        members.sort_by(|a, b| a.plan.pod.name.cmp(&b.plan.pod.name));
        tracing::info!(
            namespace = %group.namespace,
            group = %group.name,
            members = %members.iter().map(|m| m.plan.pod.name.as_str()).collect::<Vec<_>>().join(","),
            "Consistency group: these pods freeze together before the first member's snapshot \
             and thaw together after the last member is backed up"
        );
        members
    }

    /// Freezes one pod on its own: its hooks placed (run-once), then its pre hooks.
    async fn freeze_alone(&self, entry: &Arc<PodEntry>) -> bool {
        let placement = self.placement(entry).await;
        self.freeze_pod(entry, placement).await
    }

    /// Runs the pre hooks of the pod — and of every member of its group — unless done;
    /// returns whether the pod itself froze now.
    pub(super) async fn freeze(&self, entry: &Arc<PodEntry>) -> bool {
        let Some(group) = self.group_of(entry).await else {
            return self.freeze_alone(entry).await;
        };
        let members = group.members.get().cloned().unwrap_or_default();
        if !members.iter().any(|m| Arc::ptr_eq(m, entry)) {
            tracing::warn!(
                namespace = %group.namespace,
                group = %group.name,
                pod = %entry.plan.pod.name,
                "Pod of a consistency group was not known when the group formed (its pods could \
                 not be listed); it is frozen and thawed on its own"
            );
            return self.freeze_alone(entry).await;
        }
        lock(&group.first_freeze).get_or_insert_with(Instant::now);
        let others = members
            .iter()
            .filter(|m| !Arc::ptr_eq(m, entry))
            .map(|m| self.freeze_alone(m));
        let (froze_now, _) = tokio::join!(
            self.freeze_alone(entry),
            futures_util::future::join_all(others)
        );
        froze_now
    }

    /// The pod's volumes are backed up (or its freeze failed): thaw it — or, in a group,
    /// once every member got here, thaw them all.
    pub(super) async fn release(&self, entry: &Arc<PodEntry>, cause: ThawCause) {
        let Some(group) = self.group_of(entry).await else {
            return self.thaw(entry, cause).await;
        };
        let members = group.members.get().cloned().unwrap_or_default();
        if !members.iter().any(|m| Arc::ptr_eq(m, entry)) {
            return self.thaw(entry, cause).await; // a late joiner, frozen on its own
        }
        let all_released = {
            let mut released = lock(&group.released);
            released.insert(entry.plan.uid.clone());
            members.iter().all(|m| released.contains(&m.plan.uid))
        };
        if !all_released {
            tracing::debug!(
                namespace = %group.namespace,
                group = %group.name,
                pod = %entry.plan.pod.name,
                "Member backed up; the group stays frozen until its last member is"
            );
            return;
        }
        if group.thawed.swap(true, Ordering::SeqCst) {
            return;
        }
        let thaws = members.iter().map(|m| {
            let cause = if Arc::ptr_eq(m, entry) {
                cause
            } else {
                ThawCause::GroupReleased
            };
            self.thaw(m, cause)
        });
        futures_util::future::join_all(thaws).await;
        let first_freeze = *lock(&group.first_freeze);
        if let Some(started) = first_freeze {
            tracing::info!(
                namespace = %group.namespace,
                group = %group.name,
                members = members.len(),
                backup = %entry.backup.qualified_name(),
                freezeWindowMs = started.elapsed().as_millis() as u64,
                "Consistency group thawed"
            );
        }
    }

    /// Releases the pod once every file-system-backup volume of it has a terminal
    /// PodVolumeBackup. Should the prediction be wrong, the watchdog and Shutdown still thaw.
    pub(super) async fn release_after_fs_backups(&self, entry: &Arc<PodEntry>) {
        let mut state = entry.state.lock().await;
        if state.is_thaw_deferred() {
            return;
        }
        if state.freeze != Freeze::Frozen {
            // Nothing to wait for (thawed already): its group must not wait for it either.
            drop(state);
            self.release(entry, ThawCause::PodBackedUp).await;
            return;
        }
        let engine = self.clone();
        let waiting = Arc::clone(entry);
        tracing::debug!(
            namespace = %entry.plan.pod.namespace,
            pod = %entry.plan.pod.name,
            volumes = %entry.plan.fs_backup_volumes.iter().cloned().collect::<Vec<_>>().join(","),
            "Thaw deferred until the pod's file-system backups are done"
        );
        let task = tokio::spawn(async move {
            engine.wait_for_fs_backups(&waiting).await;
            engine.release(&waiting, ThawCause::FsBackupDone).await;
        });
        state.defer_thaw(task.abort_handle());
    }

    async fn wait_for_fs_backups(&self, entry: &PodEntry) {
        let plan = &entry.plan;
        let mut warned = false;
        loop {
            let listed = self
                .inner
                .cluster
                .pod_volume_backups(&entry.backup.namespace, &entry.backup.uid)
                .await;
            match listed {
                Ok(pvbs) => {
                    let done = plan.fs_backup_volumes.iter().all(|volume| {
                        pvbs.iter().any(|p| {
                            p.pod_namespace == plan.pod.namespace
                                && p.pod_name == plan.pod.name
                                && &p.volume == volume
                                && p.is_terminal()
                        })
                    });
                    if done {
                        return;
                    }
                }
                Err(error) if !warned => {
                    warned = true;
                    tracing::warn!(
                        namespace = %plan.pod.namespace,
                        pod = %plan.pod.name,
                        error = %error,
                        "Cannot read PodVolumeBackups yet; still waiting to thaw"
                    );
                }
                Err(_) => {}
            }
            tokio::time::sleep(self.inner.options.pvb_poll).await;
        }
    }
}
