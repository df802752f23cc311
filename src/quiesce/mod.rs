//! The freeze/thaw state machine (DESIGN §3): pre hooks just before a pod's volumes are
//! snapshotted, post hooks once its items are backed up, and a thaw that always happens.
//!
//! | Velero calls                         | the engine                                          |
//! |--------------------------------------|-----------------------------------------------------|
//! | IBA `GetRelatedItems(pod)`           | [`Engine::index_pod`]: resolve hooks, note claims    |
//! | BIA `Execute(persistentvolume)`      | [`Engine::freeze_pods_of_volume`]: pre hooks        |
//! | BIA `Execute(pod)`                   | [`Engine::back_up_pod`]: pre if not yet, then post  |
//! | `Shutdown` / SIGTERM                 | [`Engine::drain`]: every pending post hook          |
//! | (timer)                              | watchdog: thaw after the pod's max-freeze           |
//!
//! State is per pod, behind one async lock per pod: the hooks of one pod never overlap, pre
//! hooks run at most once and post hooks at most once per pod and backup, whatever the order
//! and concurrency of Velero's calls. Owns no I/O of its own: hooks run through an
//! [`Executor`], cluster reads go through a [`Cluster`].

pub mod cluster;
pub mod plan;
pub mod report;
mod workload;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, Pod};
use tokio::sync::OnceCell;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::exec::{run_hook, Executor, HookOutcome};
use crate::hooks::{template, Config, OnError, PodRef, ResolvedHook};
pub use cluster::{Cluster, PodVolumeBackup};
use plan::{claim_of_volume, pod_in_backup, BackupInfo, PodPlan};
use report::{EventLimiter, HookEvent, Summary};

/// How often a deferred thaw looks at the pod's PodVolumeBackups.
const DEFAULT_PVB_POLL: Duration = Duration::from_secs(1);
/// How long posting one Event may take, and how long the exit waits for events in flight.
const EVENT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the engine reports back to Velero.
#[derive(Debug, thiserror::Error)]
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
}

/// Where a pod stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Freeze {
    /// No pre hook has been tried.
    NotFrozen,
    /// Pre hooks done (or none): waiting for the thaw.
    Frozen,
    /// A pre hook with on-error Fail failed; `any_ran` if some pre hook may have frozen anyway.
    Failed { error: FailedHook, any_ran: bool },
    /// Post hooks done (or not needed). Final.
    Thawed,
}

/// The failed hook, kept to answer the pod's `Execute` with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FailedHook {
    hook: String,
    container: String,
    reason: String,
}

/// Why a thaw happens: decides the log line and which background task is the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ThawCause {
    /// The pod's `Execute`: its volumes are snapshotted.
    PodBackedUp,
    /// Its PodVolumeBackups are terminal.
    FsBackupDone,
    /// Its pre hooks failed; undo what may have frozen.
    PreHookFailed,
    /// Frozen longer than max-freeze.
    Watchdog,
    /// The process is stopping.
    Shutdown,
    /// The last member of the pod's consistency group was backed up.
    GroupReleased,
}

struct PodState {
    freeze: Freeze,
    first_pre_start: Option<Instant>,
    watchdog: Option<AbortHandle>,
    deferred_thaw: Option<AbortHandle>,
}

struct PodEntry {
    plan: PodPlan,
    backup: BackupInfo,
    state: tokio::sync::Mutex<PodState>,
}

/// Pods by (backup UID, pod UID), and which pods mount each claim.
#[derive(Default)]
struct Index {
    pods: HashMap<(String, String), Arc<PodEntry>>,
    by_claim: HashMap<(String, String, String), Vec<Arc<PodEntry>>>,
}

struct Inner {
    executor: Arc<dyn Executor>,
    cluster: Arc<dyn Cluster>,
    config: OnceCell<Arc<Config>>,
    index: Mutex<Index>,
    options: Options,
    summary: Mutex<Summary>,
    events: EventLimiter,
    events_in_flight: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    event_failure_logged: std::sync::atomic::AtomicBool,
    workloads: workload::Workloads,
    /// Set when the drain starts: no pod may freeze after that, or nothing would thaw it.
    stopping: std::sync::atomic::AtomicBool,
}

/// How the engine finds its pods and waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// How often a deferred thaw looks at the pod's PodVolumeBackups.
    pub pvb_poll: Duration,
    /// Find the pods of a volume through the API when none was indexed: for Velero before 1.15,
    /// which has no ItemBlockAction to show quiesce the pods first.
    pub discover_pods_of_volumes: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pvb_poll: DEFAULT_PVB_POLL,
            discover_pods_of_volumes: false,
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
                options,
                summary: Mutex::new(Summary::default()),
                events: EventLimiter::new(),
                events_in_flight: Mutex::new(Vec::new()),
                event_failure_logged: std::sync::atomic::AtomicBool::new(false),
                workloads: workload::Workloads::default(),
                stopping: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// IBA `GetRelatedItems(pod)`: remember the pod and its hooks. Runs nothing.
    pub async fn index_pod(&self, pod_json: &[u8], backup_json: &[u8]) -> Result<(), Error> {
        let backup = BackupInfo::from_json(backup_json);
        if backup.is_finalizing() {
            return Ok(());
        }
        let pod = parse_pod(pod_json)?;
        self.entry_for(&pod, backup).await;
        Ok(())
    }

    /// BIA `Execute(persistentvolume)`: freeze every indexed pod that mounts the volume's
    /// claim, before Velero snapshots it. Never fails the volume: a failed freeze is reported
    /// on the pod's own `Execute`.
    pub async fn freeze_pods_of_volume(&self, pv_json: &[u8], backup_json: &[u8]) {
        let backup = BackupInfo::from_json(backup_json);
        if backup.is_finalizing() {
            return;
        }
        let Ok(pv) = serde_json::from_slice::<PersistentVolume>(pv_json) else {
            tracing::debug!("PersistentVolume item unreadable; nothing to freeze");
            return;
        };
        let Some((namespace, claim)) = claim_of_volume(&pv) else {
            return;
        };
        let mut pods: Vec<Arc<PodEntry>> = {
            let index = lock(&self.inner.index);
            index
                .by_claim
                .get(&(backup.uid.clone(), namespace.clone(), claim.clone()))
                .cloned()
                .unwrap_or_default()
        };
        if pods.is_empty() && self.inner.options.discover_pods_of_volumes {
            pods = self
                .discover_pods_of_claim(&namespace, &claim, &backup)
                .await;
        }
        let volume = pv.metadata.name.unwrap_or_default();
        let freezes = pods
            .iter()
            .filter(|e| !e.plan.pre.hooks.is_empty())
            .map(|entry| {
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
            let mounts = pod
                .spec
                .iter()
                .flat_map(|s| s.volumes.iter().flatten())
                .any(|v| {
                    v.persistent_volume_claim
                        .as_ref()
                        .is_some_and(|c| c.claim_name == claim)
                });
            if mounts {
                found.push(self.entry_for(pod, backup.clone()).await);
            }
        }
        found
    }

    /// BIA `Execute(pod)`: the pod's volumes are snapshotted. Freeze it if that has not
    /// happened yet, then thaw it — now, or once its file-system backups are over.
    pub async fn back_up_pod(&self, pod_json: &[u8], backup_json: &[u8]) -> Result<(), Error> {
        let backup = BackupInfo::from_json(backup_json);
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
        let failed = match &entry.state.lock().await.freeze {
            Freeze::Failed { error, .. } => Some(error.clone()),
            _ => None,
        };
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
            self.defer_thaw(&entry).await;
        }
        Ok(())
    }

    /// `Shutdown` or SIGTERM: thaw every pod still frozen, then return.
    /// Calls that arrive meanwhile (Velero's workers racing its Shutdown, a SIGTERM mid-backup)
    /// freeze nothing: their pods fail with "the plugin is stopping" instead of staying frozen.
    pub async fn drain(&self) {
        // Before the index is read: a pod indexed later sees the flag when it tries to freeze.
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let entries: Vec<Arc<PodEntry>> = lock(&self.inner.index).pods.values().cloned().collect();
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
        let in_flight: Vec<_> = std::mem::take(&mut *lock(&self.inner.events_in_flight));
        let _ =
            tokio::time::timeout(EVENT_TIMEOUT, futures_util::future::join_all(in_flight)).await;
        let backup = entries
            .first()
            .map(|e| e.backup.qualified_name())
            .unwrap_or_default();
        lock(&self.inner.summary).log(&backup);
    }

    /// Runs one hook (its template variables filled in), counts it and posts its Event.
    async fn run(&self, entry: &PodEntry, hook: &ResolvedHook) -> HookOutcome {
        let rendered;
        let hook = if template::uses_variables(&hook.command) && hook.defect.is_none() {
            let context = template::TemplateContext {
                backup_name: &entry.backup.name,
                backup_namespace: &entry.backup.namespace,
                pod_name: &entry.plan.pod.name,
                pod_namespace: &entry.plan.pod.namespace,
                container: &hook.container,
                phase: hook.phase,
            };
            let mut copy = hook.clone();
            match template::render(&hook.command, &context) {
                Ok(command) => copy.command = command,
                // Resolution already turned unknown variables into defects.
                Err(error) => {
                    copy.defect = Some(crate::hooks::HookDefect::UnknownVariable {
                        pod: entry.plan.pod.clone(),
                        error,
                    })
                }
            }
            rendered = copy;
            &rendered
        } else {
            hook
        };
        let outcome = run_hook(self.inner.executor.as_ref(), &entry.plan.pod, hook).await;
        lock(&self.inner.summary).count(&outcome);
        self.post_event(HookEvent::new(
            &entry.plan.pod,
            &entry.plan.uid,
            hook,
            &outcome,
        ));
        outcome
    }

    /// Posts an Event in the background, within the rate limit. Never delays or fails a hook.
    fn post_event(&self, event: HookEvent) {
        if !self.inner.events.try_acquire() {
            lock(&self.inner.summary).events_dropped += 1;
            return;
        }
        let inner = Arc::clone(&self.inner);
        let task = tokio::spawn(async move {
            let posted =
                tokio::time::timeout(EVENT_TIMEOUT, inner.cluster.record_event(&event)).await;
            let error = match posted {
                Ok(Ok(())) => return,
                Ok(Err(error)) => error,
                Err(_) => "timed out".to_owned(),
            };
            use std::sync::atomic::Ordering;
            if !inner.event_failure_logged.swap(true, Ordering::Relaxed) {
                // Info, not warn: a missing `events create` grant must not mark backups.
                tracing::info!(error = %error, "Cannot post Kubernetes Events for hooks; their results are in this log only");
            }
        });
        let mut in_flight = lock(&self.inner.events_in_flight);
        in_flight.retain(|t| !t.is_finished());
        in_flight.push(task);
    }

    async fn config(&self) -> Arc<Config> {
        let cluster = Arc::clone(&self.inner.cluster);
        Arc::clone(
            self.inner
                .config
                .get_or_init(|| async move { Arc::new(cluster.load_config().await) })
                .await,
        )
    }

    /// The pod's entry, indexing it (and logging what its hooks look like) on first sight.
    async fn entry_for(&self, pod: &Pod, backup: BackupInfo) -> Arc<PodEntry> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let pod_ref = PodRef::of(pod);
        let key = (
            backup.uid.clone(),
            if uid.is_empty() {
                pod_ref.to_string()
            } else {
                uid
            },
        );
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
        let entry = Arc::new(PodEntry {
            plan,
            backup,
            state: tokio::sync::Mutex::new(PodState {
                freeze: Freeze::NotFrozen,
                first_pre_start: None,
                watchdog: None,
                deferred_thaw: None,
            }),
        });
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
                .entry((
                    entry.backup.uid.clone(),
                    entry.plan.pod.namespace.clone(),
                    claim.clone(),
                ))
                .or_default()
                .push(Arc::clone(&entry));
        }
        entry
    }

    /// Runs this one pod's pre hooks unless that was done; returns whether it happened now.
    async fn freeze_pod(&self, entry: &Arc<PodEntry>) -> bool {
        let mut state = entry.state.lock().await;
        if state.freeze != Freeze::NotFrozen {
            return false;
        }
        if self
            .inner
            .stopping
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            if let Some(first) = entry.plan.pre.hooks.first() {
                tracing::warn!(
                    namespace = %entry.plan.pod.namespace,
                    pod = %entry.plan.pod.name,
                    "Not freezing pod: the plugin is stopping and could not thaw it"
                );
                state.freeze = Freeze::Failed {
                    error: FailedHook {
                        hook: first.name.clone(),
                        container: first.container.clone(),
                        reason: "not run: the plugin is stopping (Shutdown or SIGTERM)".to_owned(),
                    },
                    any_ran: false,
                };
                return true;
            }
        }
        let mut any_ran = false;
        for hook in &entry.plan.pre.hooks {
            if !self.runs_here(entry, hook).await {
                continue;
            }
            state.first_pre_start.get_or_insert_with(Instant::now);
            let outcome = self.run(entry, hook).await;
            any_ran |= outcome.may_have_run;
            if let Some(reason) = outcome.error_text() {
                if hook.on_error == OnError::Fail {
                    state.freeze = Freeze::Failed {
                        error: FailedHook {
                            hook: hook.name.clone(),
                            container: hook.container.clone(),
                            reason,
                        },
                        any_ran,
                    };
                    if any_ran {
                        self.start_watchdog(entry, &mut state);
                    }
                    return true;
                }
            }
        }
        state.freeze = Freeze::Frozen;
        if !entry.plan.pre.hooks.is_empty() {
            self.start_watchdog(entry, &mut state);
        }
        true
    }

    /// Runs the pod's post hooks if it is (or may be) frozen; at most once.
    async fn thaw(&self, entry: &Arc<PodEntry>, cause: ThawCause) {
        let mut state = entry.state.lock().await;
        let needed = match &state.freeze {
            Freeze::Frozen => true,
            Freeze::Failed { any_ran, .. } => *any_ran,
            Freeze::NotFrozen | Freeze::Thawed => return,
        };
        // Stop the other background task; the one calling us (if any) ends by itself.
        if let Some(watchdog) = state.watchdog.take() {
            if cause != ThawCause::Watchdog {
                watchdog.abort();
            }
        }
        if let Some(deferred) = state.deferred_thaw.take() {
            if cause != ThawCause::FsBackupDone {
                deferred.abort();
            }
        }
        state.freeze = Freeze::Thawed;
        if !needed {
            return;
        }
        let plan = &entry.plan;
        match cause {
            ThawCause::Watchdog => tracing::error!(
                namespace = %plan.pod.namespace,
                pod = %plan.pod.name,
                maxFreeze = %crate::hooks::format_go_duration(plan.max_freeze),
                "Pod frozen longer than its max-freeze: thawing it now; its snapshot may be inconsistent"
            ),
            ThawCause::Shutdown => tracing::info!(
                namespace = %plan.pod.namespace,
                pod = %plan.pod.name,
                "Thawing pod before the plugin exits"
            ),
            _ => {}
        }
        for (position, hook) in plan.post.hooks.iter().enumerate() {
            if !self.runs_here(entry, hook).await {
                continue;
            }
            let outcome = self.run(entry, hook).await;
            if !outcome.succeeded() && hook.on_error == OnError::Fail {
                let skipped = plan.post.hooks.len() - position - 1;
                if skipped > 0 {
                    tracing::warn!(
                        namespace = %plan.pod.namespace,
                        pod = %plan.pod.name,
                        skipped,
                        "Post hook failed with on-error Fail: the pod's remaining post hooks are skipped"
                    );
                }
                break;
            }
        }
        if cause == ThawCause::Watchdog {
            lock(&self.inner.summary).auto_thawed.push(plan.pod.clone());
        }
        if let Some(started) = state.first_pre_start {
            lock(&self.inner.summary).freeze_window(started.elapsed(), &plan.pod);
            tracing::info!(
                namespace = %plan.pod.namespace,
                pod = %plan.pod.name,
                backup = %entry.backup.qualified_name(),
                freezeWindowMs = started.elapsed().as_millis() as u64,
                "Pod thawed"
            );
        }
    }

    fn start_watchdog(&self, entry: &Arc<PodEntry>, state: &mut PodState) {
        let engine = self.clone();
        let watched = Arc::clone(entry);
        let max_freeze = entry.plan.max_freeze;
        let task = tokio::spawn(async move {
            tokio::time::sleep(max_freeze).await;
            engine.thaw(&watched, ThawCause::Watchdog).await;
        });
        state.watchdog = Some(task.abort_handle());
    }

    /// Thaws once every file-system-backup volume of the pod has a terminal PodVolumeBackup.
    /// Should the prediction be wrong, the watchdog and Shutdown still thaw.
    async fn defer_thaw(&self, entry: &Arc<PodEntry>) {
        let mut state = entry.state.lock().await;
        if state.deferred_thaw.is_some() {
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
        state.deferred_thaw = Some(task.abort_handle());
    }

    async fn wait_for_fs_backups(&self, entry: &PodEntry) {
        let plan = &entry.plan;
        let mut warned = false;
        loop {
            match self.inner.cluster.pod_volume_backups(&entry.backup).await {
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
