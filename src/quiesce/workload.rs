//! The parts of the state machine that look beyond one pod: hooks that run once per owner
//! (only the chosen pod of a ReplicaSet or StatefulSet runs them) and consistency groups
//! (members frozen together before the first member's snapshot, thawed together after the
//! last member is backed up).
//!
//! Both need pods Velero has not shown us yet. A namespace's pods are listed through the API
//! once per backup, and only those with hooks are kept, shared by every group, run-once choice
//! and (Velero < 1.15) volume lookup in it. The choice of a runner never changes between a
//! pod's pre and post hooks, and a group's members are fixed when it first freezes. When the
//! listing fails, quiesce falls back to what it knows — the hook runs in every pod, as in
//! Velero; the group is the members indexed so far — and says so in a warning; the next user
//! of the namespace lists it again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::plan::{pod_in_backup, BackupInfo, PodPlan};
use super::{lock, Engine, PodEntry, ThawCause};
use crate::hooks::{self, ChoiceReason, Owner, PodRef, ResolvedHook, RunOnce};

/// Which pod of an owner runs its run-once hooks in one backup.
#[derive(Debug, Clone)]
enum Runner {
    /// This pod, for this reason.
    Pod(PodRef, ChoiceReason),
    /// Every pod (the owner's pods could not be listed, or none is a candidate).
    Every,
}

/// (backup UID, owner UID, hook source and name, `run-on` as written).
type RunnerKey = (String, String, &'static str, String, String);
/// (backup UID, namespace, group name).
type GroupKey = (String, String, String);
/// (backup UID, namespace).
type NamespaceKey = (String, String);
/// A namespace's pods with hooks, listed once.
type HookedPods = Arc<OnceCell<Arc<Vec<Pod>>>>;

/// Shared state of run-once choices, groups and namespace listings, per backup.
#[derive(Default)]
pub(super) struct Workloads {
    runners: Mutex<HashMap<RunnerKey, Arc<OnceCell<Runner>>>>,
    groups: Mutex<HashMap<GroupKey, Arc<Group>>>,
    hooked_pods: Mutex<HashMap<NamespaceKey, HookedPods>>,
}

/// A consistency group of one backup.
pub(super) struct Group {
    name: String,
    namespace: String,
    members: OnceCell<Vec<Arc<PodEntry>>>,
    released: Mutex<HashSet<String>>,
    first_freeze: Mutex<Option<Instant>>,
    thawed: std::sync::atomic::AtomicBool,
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
    /// hooks in it: listed through the API on first use in a backup, then shared. Keeping only
    /// pods with hooks bounds the memory by what quiesce indexes anyway; a failed listing is not
    /// kept, so the next caller tries again.
    pub(super) async fn hooked_pods(
        &self,
        backup: &BackupInfo,
        namespace: &str,
    ) -> Result<Arc<Vec<Pod>>, String> {
        let key = (backup.uid.clone(), namespace.to_owned());
        let cell = Arc::clone(
            lock(&self.inner.workloads.hooked_pods)
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

    /// Whether `hook` runs in this pod: always, unless it is a run-once hook and another pod
    /// of the same owner was chosen (then an info line says which pod runs it and why).
    pub(super) async fn runs_here(&self, entry: &PodEntry, hook: &ResolvedHook) -> bool {
        let (Some(run_once), Some(owner)) = (&hook.run_once, &entry.plan.owner) else {
            return true;
        };
        let runner = self.runner(entry, owner, hook, run_once).await;
        let plan = &entry.plan;
        match runner {
            Runner::Pod(pod, reason) if pod != plan.pod => {
                tracing::info!(
                    namespace = %plan.pod.namespace,
                    pod = %plan.pod.name,
                    hookPhase = %hook.phase,
                    hookName = %hook.name,
                    owner = %owner,
                    runner = %pod.name,
                    "Hook skipped: it runs once per owner, in pod {} ({reason})",
                    pod.name
                );
                false
            }
            _ => true,
        }
    }

    async fn runner(
        &self,
        entry: &PodEntry,
        owner: &Owner,
        hook: &ResolvedHook,
        run_once: &RunOnce,
    ) -> Runner {
        let key = (
            entry.backup.uid.clone(),
            owner.uid.clone(),
            hook.source.as_str(),
            hook.name.clone(),
            run_once.run_on_text.clone().unwrap_or_default(),
        );
        let cell = Arc::clone(lock(&self.inner.workloads.runners).entry(key).or_default());
        cell.get_or_init(|| self.choose_runner(entry, owner, hook, run_once))
            .await
            .clone()
    }

    async fn choose_runner(
        &self,
        entry: &PodEntry,
        owner: &Owner,
        hook: &ResolvedHook,
        run_once: &RunOnce,
    ) -> Runner {
        let namespace = &entry.plan.pod.namespace;
        let pods = match self.hooked_pods(&entry.backup, namespace).await {
            Ok(pods) => pods,
            Err(error) => {
                tracing::warn!(
                    namespace = %namespace,
                    owner = %owner,
                    error = %error,
                    "Cannot list the pods of a workload to choose the one that runs its run-once \
                     hooks; every pod of it runs them, as in Velero"
                );
                return Runner::Every;
            }
        };
        let config = self.config().await;
        let candidates = pods.iter().filter(|pod| {
            hooks::owner_of(pod).is_some_and(|o| o.uid == owner.uid)
                && hooks::has_same_run_once_hook(pod, hook, &config)
        });
        match hooks::choose_runner(candidates, owner, run_once) {
            Some((pod, reason)) => {
                let runner = pod.name.as_str();
                let message =
                    format!("Run-once hooks of {owner} run in pod {runner} only: {reason}");
                // A run-on that matches no pod is worth a look; a normal choice is not.
                if reason == ChoiceReason::NoneMatchedRunOn {
                    tracing::warn!(namespace = %namespace, owner = %owner, runner, "{message}");
                } else {
                    tracing::info!(namespace = %namespace, owner = %owner, runner, "{message}");
                }
                Runner::Pod(pod, reason)
            }
            None => Runner::Every,
        }
    }

    /// The pod's consistency group, its members listed (and indexed) on first use.
    pub(super) async fn group_of(&self, entry: &Arc<PodEntry>) -> Option<Arc<Group>> {
        let name = entry.plan.group.clone()?;
        let namespace = entry.plan.pod.namespace.clone();
        let key = (entry.backup.uid.clone(), namespace.clone(), name.clone());
        let group = Arc::clone(
            lock(&self.inner.workloads.groups)
                .entry(key)
                .or_insert_with(|| {
                    Arc::new(Group {
                        name,
                        namespace,
                        members: OnceCell::new(),
                        released: Mutex::new(HashSet::new()),
                        first_freeze: Mutex::new(None),
                        thawed: std::sync::atomic::AtomicBool::new(false),
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
        let indexed: Vec<Arc<PodEntry>> = lock(&self.inner.index)
            .pods
            .values()
            .filter(|e| {
                e.backup.uid == backup.uid
                    && e.plan.pod.namespace == group.namespace
                    && e.plan.group.as_deref() == Some(&group.name)
            })
            .cloned()
            .collect();
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

    /// Runs the pre hooks of the pod — and of every member of its group — unless done;
    /// returns whether the pod itself froze now.
    pub(super) async fn freeze(&self, entry: &Arc<PodEntry>) -> bool {
        let Some(group) = self.group_of(entry).await else {
            return self.freeze_pod(entry).await;
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
            return self.freeze_pod(entry).await;
        }
        lock(&group.first_freeze).get_or_insert_with(Instant::now);
        let others = members
            .iter()
            .filter(|m| !Arc::ptr_eq(m, entry))
            .map(|m| self.freeze_pod(m));
        let (froze_now, _) = tokio::join!(
            self.freeze_pod(entry),
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
        use std::sync::atomic::Ordering;
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
}
