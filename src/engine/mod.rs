//! The freeze/thaw engine (DESIGN §3): pre hooks just before a pod's volumes are
//! snapshotted, post hooks once its items are backed up, and a thaw that always happens.
//!
//! | Velero calls                         | the engine                                          |
//! |--------------------------------------|-----------------------------------------------------|
//! | IBA `GetRelatedItems(pod)`           | [`Engine::index_pod`]: resolve hooks, note claims    |
//! | IBA `GetRelatedItems(claim)`         | [`Engine::index_claim`]: note its volume group      |
//! | BIA `Execute(persistentvolume)`      | [`Engine::freeze_pods_of_volume`]: pre hooks        |
//! | BIA `Execute(pod)`                   | [`Engine::back_up_pod`]: pre if not yet, then post  |
//! | `Shutdown` / SIGTERM                 | [`Engine::drain`]: every pending post hook          |
//! | (timer)                              | watchdog: thaw after the pod's max-freeze           |
//!
//! Owns no I/O of its own: hooks run through an [`Executor`], cluster reads and Events go
//! through a [`Cluster`] — both traits, so the engine is tested with fakes.
//!
//! # Layout (each file calls only the ones below it, and this one)
//! - `mod.rs`: [`Engine`], its entry points above, the pod index and the plugin configuration.
//! - `cut.rs`: thaw at the cut — a pod whose claims' CSI snapshots are all cut is released
//!   then, before its item comes.
//! - `group.rs`: consistency groups; [`Engine`]'s freeze and release of a pod go through it
//!   (a group's members move together), as does the deferred thaw of fs-backup pods.
//! - `run_once.rs`: which pod of an owner runs a run-once hook (each pod's placement).
//! - `listing.rs`: a namespace's pods with hooks, listed once per backup (groups, run-once,
//!   Velero < 1.15).
//! - `pod.rs`: one pod's transitions (freeze, thaw, watchdog) and one hook's run.
//! - [`plan`]: what quiesce reads from a pod and a Backup (pure); [`report`]: Events and the
//!   summary line.

mod cut;
mod group;
mod listing;
pub mod plan;
mod pod;
pub mod report;
mod run_once;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, Pod};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::exec::Executor;
use crate::hooks::{Config, PodRef};
use crate::kube_api::{Cluster, DEFAULT_VELERO_NAMESPACE};
use plan::{claim_of_volume, pod_in_backup, BackupInfo, PodPlan};
use pod::{Freeze, PodEntry, ThawCause};
use report::{EventLimiter, Summary};

/// How often a deferred thaw looks at the pod's PodVolumeBackups.
const DEFAULT_PVB_POLL: Duration = Duration::from_secs(1);
/// How long posting one Event may take, and how long the exit waits for events in flight.
const EVENT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the engine reports back to Velero.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The item is not a readable Pod.
    #[error("the item is not a valid Pod: {0}")]
    InvalidPod(String),
    /// A pre hook with on-error Fail failed: Velero must not back up the pod.
    #[error("pre hook {hook:?} failed in container {container:?} of pod {pod}: {reason}")]
    PreHookFailed {
        /// The pod.
        pod: PodRef,
        /// The hook's name (`<from-annotation>` or the rule name).
        hook: String,
        /// The container it ran in.
        container: String,
        /// What went wrong.
        reason: String,
    },
    /// A pod mounting the volume failed to freeze (a pre hook with on-error Fail failed):
    /// Velero must not snapshot a volume whose application was never quiesced.
    #[error("volume {volume} (claim {claim}) is not snapshotted: {cause}")]
    VolumeRefused {
        /// The PersistentVolume's name.
        volume: String,
        /// Its claim, `namespace/name`.
        claim: String,
        /// Which pods failed to freeze, and how.
        cause: String,
    },
}

/// A pod of one backup, by UID (`namespace/name` when it has none).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PodKey {
    backup_uid: String,
    pod_uid: String,
}

/// A claim of one backup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClaimKey {
    backup_uid: String,
    namespace: String,
    claim: String,
}

/// A PersistentVolume of one backup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct VolumeKey {
    backup_uid: String,
    volume: String,
}

/// A volume group of one backup: the claims of a namespace sharing a value of the Backup's
/// `volumeGroupSnapshotLabelKey`, which Velero 1.17+ snapshots together.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct VolumeGroupKey {
    backup_uid: String,
    namespace: String,
    group: String,
}

/// Every pod seen, which pods mount each claim, and the volume groups of the claims seen.
#[derive(Default)]
struct Index {
    pods: HashMap<PodKey, Arc<PodEntry>>,
    by_claim: HashMap<ClaimKey, Vec<Arc<PodEntry>>>,
    volume_group_of: HashMap<ClaimKey, String>,
    volume_groups: HashMap<VolumeGroupKey, std::collections::BTreeSet<String>>,
}

struct Inner {
    executor: Arc<dyn Executor>,
    cluster: Arc<dyn Cluster>,
    config: OnceCell<Arc<Config>>,
    index: Mutex<Index>,
    /// Volumes refused because a pod mounting them failed to freeze: every later `Execute` of
    /// one gets the same answer.
    refused_volumes: Mutex<HashMap<VolumeKey, Error>>,
    options: Options,
    summary: Mutex<Summary>,
    /// Pods frozen (or that may be) and not thawed yet, over every backup of the process.
    frozen_pods: std::sync::atomic::AtomicUsize,
    /// The summary as last logged: a line is logged whenever nothing is frozen any more and
    /// the counts changed (see [`Engine::summary_checkpoint`]).
    summary_logged: Mutex<Option<Summary>>,
    event_limiter: EventLimiter,
    /// Events being posted; the drain waits for them, bounded.
    event_tasks: TaskTracker,
    event_failure_logged: std::sync::atomic::AtomicBool,
    groups: group::Groups,
    watches: cut::Watches,
    runners: run_once::Runners,
    listings: listing::Listings,
    /// Cancelled when the drain starts: no pod may freeze after that, or nothing would thaw it.
    stopping: CancellationToken,
}

/// How the engine finds its pods and waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// How often a deferred thaw looks at the pod's PodVolumeBackups.
    pub pvb_poll: Duration,
    /// Find the pods of a volume through the API when none was indexed: for Velero before 1.15,
    /// which has no ItemBlockAction to show quiesce the pods first.
    pub discover_pods_of_volumes: bool,
    /// Velero's namespace, where the plugin ConfigMap lives.
    pub velero_namespace: String,
    /// Velero's `--fs-backup-timeout`: the default max-freeze of a pod with file-system-backup
    /// volumes (a Backup's `velero.io/pod-volume-timeout` overrides it for that backup).
    pub fs_backup_timeout: Duration,
    /// Thaw a pod as soon as the CSI snapshots of all its claims are cut, instead of at its
    /// own item.
    pub thaw_at_cut: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pvb_poll: DEFAULT_PVB_POLL,
            discover_pods_of_volumes: false,
            velero_namespace: DEFAULT_VELERO_NAMESPACE.to_owned(),
            fs_backup_timeout: plan::DEFAULT_FS_BACKUP_TIMEOUT,
            thaw_at_cut: true,
        }
    }
}

/// The per-process freeze/thaw state machine. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// An engine running hooks through `executor` and reading the cluster through `cluster`.
    pub fn new(executor: Arc<dyn Executor>, cluster: Arc<dyn Cluster>, options: Options) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                executor,
                cluster,
                config: OnceCell::new(),
                index: Mutex::new(Index::default()),
                refused_volumes: Mutex::new(HashMap::new()),
                options,
                summary: Mutex::new(Summary::default()),
                frozen_pods: std::sync::atomic::AtomicUsize::new(0),
                summary_logged: Mutex::new(None),
                event_limiter: EventLimiter::new(),
                event_tasks: TaskTracker::new(),
                event_failure_logged: std::sync::atomic::AtomicBool::new(false),
                groups: group::Groups::default(),
                watches: cut::Watches::default(),
                runners: run_once::Runners::default(),
                listings: listing::Listings::default(),
                stopping: CancellationToken::new(),
            }),
        }
    }

    /// IBA `GetRelatedItems(pod)`: remember the pod and its hooks. Runs nothing.
    pub async fn index_pod(&self, pod_json: &[u8], backup_json: &[u8]) -> Result<(), Error> {
        let backup = self.backup(backup_json);
        if backup.is_finalizing() {
            return Ok(());
        }
        let pod = parse_pod(pod_json)?;
        self.entry_for(&pod, backup).await;
        Ok(())
    }

    /// IBA `GetRelatedItems(persistentvolumeclaim)`: remember the claim's volume group, if the
    /// Backup names a `volumeGroupSnapshotLabelKey` (Velero 1.17+) and the claim carries a value
    /// of it. Velero's own claim action puts every claim of a group, and every pod mounting
    /// one, into the same item block, so all of them are indexed before any is backed up.
    /// Costs no API call.
    pub async fn index_claim(&self, claim_json: &[u8], backup_json: &[u8]) {
        let backup = self.backup(backup_json);
        let Some(key) = backup.volume_group_label_key.as_deref() else {
            return;
        };
        if backup.is_finalizing() {
            return;
        }
        let Ok(claim) =
            serde_json::from_slice::<k8s_openapi::api::core::v1::PersistentVolumeClaim>(claim_json)
        else {
            return;
        };
        let Some(group) = claim
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(key))
            .filter(|value| !value.is_empty())
        else {
            return;
        };
        let (Some(namespace), Some(name)) = (claim.metadata.namespace, claim.metadata.name) else {
            return;
        };
        let mut index = lock(&self.inner.index);
        index
            .volume_groups
            .entry(VolumeGroupKey {
                backup_uid: backup.uid.clone(),
                namespace: namespace.clone(),
                group: group.clone(),
            })
            .or_default()
            .insert(name.clone());
        index.volume_group_of.insert(
            ClaimKey {
                backup_uid: backup.uid,
                namespace,
                claim: name,
            },
            group.clone(),
        );
    }

    /// The indexed pods to freeze before `claim`'s volume is snapshotted: those mounting it —
    /// or, when it belongs to a volume group, those mounting any claim of the group, since
    /// Velero snapshots the whole group at the first of its claims.
    fn pods_of_claim(&self, claim: &ClaimKey) -> Vec<Arc<PodEntry>> {
        let index = lock(&self.inner.index);
        let mut claims = vec![claim.claim.clone()];
        if let Some(group) = index.volume_group_of.get(claim) {
            let key = VolumeGroupKey {
                backup_uid: claim.backup_uid.clone(),
                namespace: claim.namespace.clone(),
                group: group.clone(),
            };
            claims = index
                .volume_groups
                .get(&key)
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            tracing::debug!(
                namespace = %claim.namespace,
                volumeGroup = %group,
                claims = %claims.join(","),
                "Claim of a volume group: the pods of every claim of the group freeze before its snapshot"
            );
        }
        let mut pods: Vec<Arc<PodEntry>> = Vec::new();
        for name in claims {
            let key = ClaimKey {
                claim: name,
                ..claim.clone()
            };
            for entry in index.by_claim.get(&key).into_iter().flatten() {
                if !pods.iter().any(|p| Arc::ptr_eq(p, entry)) {
                    pods.push(Arc::clone(entry));
                }
            }
        }
        pods
    }

    /// BIA `Execute(persistentvolume)`: freeze every indexed pod that mounts the volume's
    /// claim (or any claim of its volume group), before Velero snapshots it.
    ///
    /// When one of them fails to freeze (a pre hook with on-error Fail fails), the volume is
    /// refused: Velero then takes neither its native nor its CSI snapshot and drops the pod
    /// whose item led to it. Every pod frozen for the volume is thawed at once (Velero will
    /// never send the failed pod's own `Execute`), and later `Execute`s of the volume get the
    /// same answer.
    pub async fn freeze_pods_of_volume(
        &self,
        pv_json: &[u8],
        backup_json: &[u8],
    ) -> Result<(), Error> {
        let backup = self.backup(backup_json);
        if backup.is_finalizing() {
            return Ok(());
        }
        let Ok(pv) = serde_json::from_slice::<PersistentVolume>(pv_json) else {
            tracing::debug!("PersistentVolume item unreadable; nothing to freeze");
            return Ok(());
        };
        let Some((namespace, claim)) = claim_of_volume(&pv) else {
            return Ok(());
        };
        // Only a CSI volume gets a VolumeSnapshot whose cut a thaw can follow.
        let csi = pv.spec.as_ref().is_some_and(|spec| spec.csi.is_some());
        let volume = pv.metadata.name.unwrap_or_default();
        let volume_key = VolumeKey {
            backup_uid: backup.uid.clone(),
            volume: volume.clone(),
        };
        if let Some(refusal) = lock(&self.inner.refused_volumes).get(&volume_key) {
            return Err(refusal.clone());
        }
        let mut pods = self.pods_of_claim(&ClaimKey {
            backup_uid: backup.uid.clone(),
            namespace: namespace.clone(),
            claim: claim.clone(),
        });
        if pods.is_empty() && self.inner.options.discover_pods_of_volumes {
            pods = self
                .discover_pods_of_claim(&namespace, &claim, &backup)
                .await;
        }
        pods.retain(|e| !e.plan.pre.hooks.is_empty());
        let freezes = pods.iter().map(|entry| {
            tracing::debug!(
                namespace = %entry.plan.pod.namespace,
                pod = %entry.plan.pod.name,
                persistentVolume = %volume,
                claim = %claim,
                "Freezing pod before its volume is snapshotted"
            );
            self.freeze(entry)
        });
        futures_util::future::join_all(freezes).await;

        let mut failures = Vec::new();
        for entry in &pods {
            if let Some(error) = &entry.state.lock().await.failure {
                failures.push(format!(
                    "pre hook {:?} failed in container {:?} of pod {}: {}",
                    error.hook, error.container, entry.plan.pod, error.reason
                ));
            }
        }
        if failures.is_empty() {
            if csi {
                self.watch_for_cut(&backup, &namespace, &pods).await;
            }
            return Ok(());
        }
        let refusal = Error::VolumeRefused {
            volume: volume.clone(),
            claim: format!("{namespace}/{claim}"),
            cause: failures.join("; "),
        };
        lock(&self.inner.refused_volumes).insert(volume_key, refusal.clone());
        lock(&self.inner.summary).volumes_refused += 1;
        tracing::warn!(
            namespace = %namespace,
            claim = %claim,
            persistentVolume = %volume,
            pods = %pods.iter().map(|e| e.plan.pod.name.as_str()).collect::<Vec<_>>().join(","),
            "Volume not snapshotted: a pod mounting it failed to freeze; the pods frozen for it \
             are thawed now"
        );
        let thaws = pods.iter().map(|entry| async move {
            self.thaw(entry, ThawCause::PreHookFailed).await;
            self.release(entry, ThawCause::PreHookFailed).await;
        });
        futures_util::future::join_all(thaws).await;
        Err(refusal)
    }

    /// The pods of `namespace` with hooks in this backup that mount `claim`, indexed on the way
    /// (Velero < 1.15).
    async fn discover_pods_of_claim(
        &self,
        namespace: &str,
        claim: &str,
        backup: &BackupInfo,
    ) -> Vec<Arc<PodEntry>> {
        let pods = match self.hooked_pods(backup, namespace).await {
            Ok(pods) => pods,
            Err(error) => {
                tracing::warn!(
                    namespace,
                    claim,
                    error = %error,
                    "Cannot list the pods mounting a volume; they are frozen at their own item instead"
                );
                return Vec::new();
            }
        };
        let mut found = Vec::new();
        for pod in pods.iter() {
            if plan::claims_of(pod).contains(claim) {
                found.push(self.entry_for(pod, backup.clone()).await);
            }
        }
        found
    }

    /// BIA `Execute(pod)`: the pod's volumes are snapshotted. Freeze it if that has not
    /// happened yet, then thaw it — now, or once its file-system backups are over.
    pub async fn back_up_pod(&self, pod_json: &[u8], backup_json: &[u8]) -> Result<(), Error> {
        let backup = self.backup(backup_json);
        if backup.is_finalizing() {
            return Ok(());
        }
        let pod = parse_pod(pod_json)?;
        let entry = self.entry_for(&pod, backup).await;
        if !entry.plan.has_hooks() {
            return Ok(());
        }
        let froze_now = self.freeze(&entry).await;
        let plan = &entry.plan;
        if froze_now && !plan.claims.is_empty() && !plan.pre.hooks.is_empty() {
            tracing::warn!(
                namespace = %plan.pod.namespace,
                pod = %plan.pod.name,
                claims = %plan.claims.iter().cloned().collect::<Vec<_>>().join(","),
                "Pod frozen only when its own item was backed up: its volume snapshots may have \
                 preceded the freeze (its volumes were excluded, unbound, or backed up earlier)"
            );
        }
        let failed = entry.state.lock().await.failure.clone();
        if let Some(failed) = failed {
            self.thaw(&entry, ThawCause::PreHookFailed).await;
            self.release(&entry, ThawCause::PreHookFailed).await;
            return Err(Error::PreHookFailed {
                pod: plan.pod.clone(),
                hook: failed.hook,
                container: failed.container,
                reason: failed.reason,
            });
        }
        if plan.fs_backup_volumes.is_empty() {
            self.release(&entry, ThawCause::PodBackedUp).await;
        } else {
            self.release_after_fs_backups(&entry).await;
        }
        Ok(())
    }

    /// `Shutdown` or SIGTERM: thaw every pod still frozen, then return.
    /// Calls that arrive meanwhile (Velero's workers racing its Shutdown, a SIGTERM mid-backup)
    /// freeze nothing: their pods fail with "the plugin is stopping" instead of staying frozen.
    pub async fn drain(&self) {
        // Before the index is read: a pod indexed later sees it when it tries to freeze.
        self.inner.stopping.cancel();
        let entries = self.indexed_pods(|_| true);
        let mut pending = 0;
        for entry in &entries {
            if matches!(
                entry.state.lock().await.freeze,
                Freeze::Frozen | Freeze::Failed { .. }
            ) {
                pending += 1;
            }
        }
        if pending > 0 {
            tracing::info!(
                pods = pending,
                "Thawing pods still frozen before the plugin exits"
            );
        }
        let thaws = entries.iter().map(|e| self.thaw(e, ThawCause::Shutdown));
        futures_util::future::join_all(thaws).await;
        self.inner.event_tasks.close();
        let _ = tokio::time::timeout(EVENT_TIMEOUT, self.inner.event_tasks.wait()).await;
        let backup = entries
            .first()
            .map(|e| e.backup.qualified_name())
            .unwrap_or_default();
        // The last word, for the server's log; in the backup's own log (closed before Velero
        // stops its plugins) the last checkpoint line has the same counts.
        self.log_summary(&backup);
    }

    /// After a thaw: when no pod is frozen any more, log the summary line so far, before the
    /// thaw returns. It must be in the backup's log, which Velero closes as soon as its last
    /// item is done and before it stops its plugins (so the line the drain logs reaches only
    /// the server's log); a line delayed by even a second is lost when the backup ends sooner,
    /// and the log would then show counts that are not the backup's. One line per time the
    /// frozen set empties (with a sequential backup, one per hooked pod); the last one has the
    /// totals.
    pub(crate) fn summary_checkpoint(&self, backup: &str) {
        use std::sync::atomic::Ordering;
        if self.inner.frozen_pods.load(Ordering::SeqCst) == 0 {
            self.log_summary(backup);
        }
    }

    /// Logs the summary line, unless it would say nothing new since the last one.
    fn log_summary(&self, backup: &str) {
        let summary = lock(&self.inner.summary).clone();
        let mut logged = lock(&self.inner.summary_logged);
        if logged.as_ref() == Some(&summary) {
            return;
        }
        summary.log(backup);
        *logged = Some(summary);
    }

    /// The Backup Velero sent with a call.
    fn backup(&self, json: &[u8]) -> BackupInfo {
        BackupInfo::from_json_with(json, self.inner.options.fs_backup_timeout)
    }

    /// The plugin configuration, read from the cluster once per process.
    async fn config(&self) -> Arc<Config> {
        let inner = &self.inner;
        Arc::clone(
            inner
                .config
                .get_or_init(|| async {
                    Arc::new(
                        inner
                            .cluster
                            .load_config(&inner.options.velero_namespace)
                            .await,
                    )
                })
                .await,
        )
    }

    /// The indexed pods `keep` accepts.
    fn indexed_pods(&self, keep: impl Fn(&PodEntry) -> bool) -> Vec<Arc<PodEntry>> {
        lock(&self.inner.index)
            .pods
            .values()
            .filter(|e| keep(e))
            .cloned()
            .collect()
    }

    /// The pod's entry, indexing it (and logging what its hooks look like) on first sight.
    async fn entry_for(&self, pod: &Pod, backup: BackupInfo) -> Arc<PodEntry> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let pod_ref = PodRef::of(pod);
        let key = PodKey {
            backup_uid: backup.uid.clone(),
            pod_uid: if uid.is_empty() {
                pod_ref.to_string()
            } else {
                uid
            },
        };
        if let Some(entry) = lock(&self.inner.index).pods.get(&key) {
            return Arc::clone(entry);
        }
        let in_backup = pod_in_backup(pod, &backup);
        let config = self.config().await;
        let mut plan = PodPlan::new(pod, &backup, &config);
        if !in_backup {
            // Velero will not back its item up, so its Execute never comes: no hooks.
            tracing::debug!(namespace = %pod_ref.namespace, pod = %pod_ref.name, "Pod excluded from the backup; no hooks");
            plan.pre.hooks.clear();
            plan.post.hooks.clear();
            plan.claims.clear();
        }
        let entry = Arc::new(PodEntry::new(plan, backup));
        let mut index = lock(&self.inner.index);
        if let Some(existing) = index.pods.get(&key) {
            return Arc::clone(existing); // another call indexed it meanwhile
        }
        log_plan(&entry.plan);
        {
            let mut summary = lock(&self.inner.summary);
            if entry.plan.has_hooks() {
                summary.pods_with_hooks += 1;
            }
            summary.refused_by_policy +=
                (entry.plan.pre.refused.len() + entry.plan.post.refused.len()) as u64;
        }
        index.pods.insert(key, Arc::clone(&entry));
        for claim in &entry.plan.claims {
            index
                .by_claim
                .entry(ClaimKey {
                    backup_uid: entry.backup.uid.clone(),
                    namespace: entry.plan.pod.namespace.clone(),
                    claim: claim.clone(),
                })
                .or_default()
                .push(Arc::clone(&entry));
        }
        entry
    }
}

fn parse_pod(bytes: &[u8]) -> Result<Pod, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::InvalidPod(e.to_string()))
}

fn log_plan(plan: &PodPlan) {
    for resolution in [&plan.pre, &plan.post] {
        if let Some(skipped) = &resolution.skipped {
            tracing::info!(namespace = %plan.pod.namespace, pod = %plan.pod.name, "{skipped}");
        }
        for warning in &resolution.warnings {
            tracing::warn!(namespace = %plan.pod.namespace, pod = %plan.pod.name, "{warning}");
        }
        for refusal in &resolution.refused {
            tracing::warn!(
                namespace = %plan.pod.namespace,
                pod = %plan.pod.name,
                hookPhase = %refusal.phase,
                hookContainer = %refusal.container,
                "{refusal}"
            );
        }
    }
    if let Some(warning) = &plan.max_freeze_warning {
        tracing::warn!(namespace = %plan.pod.namespace, pod = %plan.pod.name, "{warning}");
    }
}

/// Locks a std mutex, recovering the data if a panicking thread poisoned it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
