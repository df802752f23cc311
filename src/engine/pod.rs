//! One pod's transitions — freeze (its pre hooks), thaw (its post hooks), the max-freeze
//! watchdog and the deferred thaw's bookkeeping — and the running of one hook with its count
//! and Event. Everything that looks beyond one pod (groups, run-once choices, listings) sits
//! above this file and calls into it; nothing here calls back up.
//!
//! Every transition takes the pod's own async lock, so the hooks of one pod never overlap, pre
//! hooks run at most once and post hooks at most once per pod and backup, whatever the order
//! and concurrency of Velero's calls.
//!
//! Held sessions: a pre hook that holds one leaves it in [`PodState`] until the thaw, where the
//! post hook that names it ends it ([`crate::hooks::ResolvedHook::ends_session`]). Every thaw
//! — the pod's item, the cut, a failed freeze, the watchdog, Shutdown and SIGTERM — goes
//! through [`Engine::thaw`], which ends whatever session the post hooks did not (one skipped
//! after a failed `Fail` post hook, say). A session whose handle is dropped ends too.

use std::borrow::Cow;
use std::sync::Arc;

use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::plan::{BackupInfo, PodPlan};
use super::report::hook_event;
use super::{lock, Engine, EVENT_TIMEOUT};
use crate::exec::{end_held_session, run_hook_holding_session, HeldSession, HookOutcome};
use crate::hooks::{template, ChoiceReason, HeldBy, HookDefect, OnError, Phase, ResolvedHook};

/// Where a pod stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Freeze {
    /// No pre hook has been tried.
    NotFrozen,
    /// Pre hooks done (or none): waiting for the thaw.
    Frozen,
    /// A pre hook with on-error Fail failed ([`PodState::failure`] says which); `any_ran` if
    /// some pre hook may have frozen anyway.
    Failed { any_ran: bool },
    /// Post hooks done (or not needed). Final.
    Thawed,
}

/// The failed hook, kept to answer the pod's `Execute` with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FailedHook {
    pub hook: String,
    pub container: String,
    pub reason: String,
}

/// Why a thaw happens: decides the log line and which background task is the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ThawCause {
    /// Every CSI snapshot of the pod's claims is cut (thaw at the cut).
    SnapshotCut,
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

impl ThawCause {
    /// The `thawedBy` field of the `Pod thawed` line.
    pub fn as_str(self) -> &'static str {
        match self {
            ThawCause::SnapshotCut => "snapshot-cut",
            ThawCause::PodBackedUp => "pod-item",
            ThawCause::FsBackupDone => "fs-backup",
            ThawCause::PreHookFailed => "pre-hook-failed",
            ThawCause::Watchdog => "max-freeze",
            ThawCause::Shutdown => "shutdown",
            ThawCause::GroupReleased => "group",
        }
    }
}

/// A run-once hook that another pod of the same owner runs, and why that pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RunsElsewhere {
    /// The pod that runs it.
    pub runner: String,
    /// The owner, as logged (`StatefulSet/db`).
    pub owner: String,
    /// Why that pod was chosen.
    pub reason: ChoiceReason,
}

/// For each of a pod's pre and post hooks, by position: `None` when it runs in this pod.
/// Decided once, before the pod's first freeze, so pre and post hooks agree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Placement {
    pub pre: Vec<Option<RunsElsewhere>>,
    pub post: Vec<Option<RunsElsewhere>>,
}

pub(super) struct PodState {
    pub freeze: Freeze,
    /// The pre hook that failed the freeze, kept after the thaw: the pod's own `Execute`
    /// answers with it whenever it comes.
    pub failure: Option<FailedHook>,
    /// When the pod's last pre hook ended: the application is frozen from then on.
    frozen_at: Option<Instant>,
    placement: Placement,
    watchdog: Option<AbortHandle>,
    deferred_thaw: Option<AbortHandle>,
    /// Sessions held by pre hooks, until the thaw ends them.
    sessions: Vec<(HeldBy, HeldSession)>,
}

/// A pod quiesce has seen in one backup: what it decided about it, and where it stands.
pub(super) struct PodEntry {
    pub plan: PodPlan,
    pub backup: BackupInfo,
    pub state: tokio::sync::Mutex<PodState>,
}

impl PodEntry {
    /// A pod not frozen yet.
    pub fn new(plan: PodPlan, backup: BackupInfo) -> PodEntry {
        PodEntry {
            plan,
            backup,
            state: tokio::sync::Mutex::new(PodState {
                freeze: Freeze::NotFrozen,
                failure: None,
                frozen_at: None,
                placement: Placement::default(),
                watchdog: None,
                deferred_thaw: None,
                sessions: Vec::new(),
            }),
        }
    }
}

impl PodState {
    /// Whether a deferred thaw is already waiting for this pod's file-system backups.
    pub fn is_thaw_deferred(&self) -> bool {
        self.deferred_thaw.is_some()
    }

    /// Keeps the task that will thaw the pod once its file-system backups are done, so that
    /// any other thaw stops it.
    pub fn defer_thaw(&mut self, task: AbortHandle) {
        self.deferred_thaw = Some(task);
    }
}

impl Engine {
    /// Runs this one pod's pre hooks unless that was done — only those `placement` puts in
    /// this pod — and returns whether it happened now.
    pub(super) async fn freeze_pod(&self, entry: &Arc<PodEntry>, placement: Placement) -> bool {
        let mut state = entry.state.lock().await;
        if state.freeze != Freeze::NotFrozen {
            return false;
        }
        if self.inner.stopping.is_cancelled() {
            if let Some(first) = entry.plan.pre.hooks.first() {
                tracing::warn!(
                    namespace = %entry.plan.pod.namespace,
                    pod = %entry.plan.pod.name,
                    "Not freezing pod: the plugin is stopping and could not thaw it"
                );
                state.failure = Some(FailedHook {
                    hook: first.name.clone(),
                    container: first.container.clone(),
                    reason: "not run: the plugin is stopping (Shutdown or SIGTERM)".to_owned(),
                });
                state.freeze = Freeze::Failed { any_ran: false };
                return true;
            }
        }
        state.placement = placement;
        let mut any_ran = false;
        for (position, hook) in entry.plan.pre.hooks.iter().enumerate() {
            if let Some(elsewhere) = &state.placement.pre.get(position).cloned().flatten() {
                log_runs_elsewhere(entry, hook, elsewhere);
                continue;
            }
            // A pre hook still running when the plugin must stop is abandoned, so that the
            // drain can thaw the pod (it waits for this lock) before Velero gives up on us.
            let stopping = self.inner.stopping.clone();
            // An abandoned session's stream is dropped with it, which ends the session.
            let ran = tokio::select! {
                ran = self.run(entry, hook) => Some(ran),
                () = stopping.cancelled() => None,
            };
            let Some((outcome, session)) = ran else {
                tracing::warn!(
                    namespace = %entry.plan.pod.namespace,
                    pod = %entry.plan.pod.name,
                    hookName = %hook.name,
                    hookContainer = %hook.container,
                    "The plugin is stopping while a pre hook runs: its exec is abandoned and the \
                     pod thawed now"
                );
                state.failure = Some(FailedHook {
                    hook: hook.name.clone(),
                    container: hook.container.clone(),
                    reason: "interrupted: the plugin is stopping (Shutdown or SIGTERM)".to_owned(),
                });
                state.frozen_at = Some(Instant::now());
                state.freeze = Freeze::Failed { any_ran: true };
                self.count_frozen(1);
                return true;
            };
            if let (Some(session), Some(key)) = (session, hook.holds()) {
                state.sessions.push((key, session));
            }
            any_ran |= outcome.may_have_run;
            if any_ran {
                state.frozen_at = Some(Instant::now());
            }
            if let Some(reason) = outcome.error_text() {
                if hook.on_error == OnError::Fail {
                    state.failure = Some(FailedHook {
                        hook: hook.name.clone(),
                        container: hook.container.clone(),
                        reason,
                    });
                    state.freeze = Freeze::Failed { any_ran };
                    if any_ran {
                        self.count_frozen(1);
                        self.start_watchdog(entry, &mut state);
                    }
                    return true;
                }
            }
        }
        state.freeze = Freeze::Frozen;
        self.count_frozen(1);
        if !entry.plan.pre.hooks.is_empty() {
            self.start_watchdog(entry, &mut state);
            log_long_freeze(&entry.plan);
        }
        true
    }

    /// Counts pods entering (`1`) or leaving (`-1`) a freeze that a thaw must undo.
    fn count_frozen(&self, change: isize) {
        use std::sync::atomic::Ordering;
        if change > 0 {
            self.inner.frozen_pods.fetch_add(1, Ordering::SeqCst);
        } else {
            self.inner.frozen_pods.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Runs the pod's post hooks if it is (or may be) frozen; at most once.
    pub(super) async fn thaw(&self, entry: &Arc<PodEntry>, cause: ThawCause) {
        let mut state = entry.state.lock().await;
        let needed = match &state.freeze {
            Freeze::Frozen => true,
            Freeze::Failed { any_ran } => *any_ran,
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
        self.count_frozen(-1);
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
        let thaw_started = Instant::now();
        for (position, hook) in plan.post.hooks.iter().enumerate() {
            if let Some(elsewhere) = &state.placement.post.get(position).cloned().flatten() {
                log_runs_elsewhere(entry, hook, elsewhere);
                continue;
            }
            let outcome = match &hook.ends_session {
                Some(key) => match take_session(&mut state.sessions, key) {
                    Some(session) => self.end_session(entry, hook, session, cause).await,
                    // Its pre hook did not hold one (it failed, or runs in another pod).
                    None => continue,
                },
                None => self.run(entry, hook).await.0,
            };
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
        // Sessions no post hook ended (a failed `Fail` post hook stopped the list): ended here,
        // with no input, so that nothing stays held.
        for (key, session) in std::mem::take(&mut state.sessions) {
            let Some(pre) = plan
                .pre
                .hooks
                .iter()
                .find(|h| h.holds().as_ref() == Some(&key))
            else {
                continue; // cannot be: only the pod's own pre hooks hold its sessions
            };
            let hook = ResolvedHook::implicit_session_end(pre);
            self.end_session(entry, &hook, session, cause).await;
        }
        if cause == ThawCause::Watchdog {
            lock(&self.inner.summary).auto_thawed.push(plan.pod.clone());
        }
        if let Some(frozen_at) = state.frozen_at {
            // What the application felt: from its freeze being done to its thaw beginning.
            let window = thaw_started.saturating_duration_since(frozen_at);
            lock(&self.inner.summary).freeze_window(window, &plan.pod);
            tracing::info!(
                namespace = %plan.pod.namespace,
                pod = %plan.pod.name,
                backup = %entry.backup.qualified_name(),
                freezeWindowMs = window.as_millis() as u64,
                thawedBy = cause.as_str(),
                "Pod thawed"
            );
        }
        drop(state);
        if cause != ThawCause::Shutdown {
            self.summary_checkpoint(&entry.backup.qualified_name());
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

    /// Ends a session held by one of the pod's pre hooks with its post hook `hook`, counts it
    /// and posts its Event.
    async fn end_session(
        &self,
        entry: &PodEntry,
        hook: &ResolvedHook,
        session: HeldSession,
        cause: ThawCause,
    ) -> HookOutcome {
        let executor = self.inner.executor.as_ref();
        let hook = with_variables(entry, hook);
        let outcome =
            end_held_session(executor, &entry.plan.pod, &hook, session, cause.as_str()).await;
        lock(&self.inner.summary).count(&outcome);
        self.post_event(hook_event(
            &entry.plan.pod,
            &entry.plan.uid,
            &hook,
            &outcome,
        ));
        outcome
    }

    /// Runs one hook (its template variables filled in), counts it and posts its Event; a pre
    /// hook that holds a session hands it back.
    async fn run(
        &self,
        entry: &PodEntry,
        hook: &ResolvedHook,
    ) -> (HookOutcome, Option<HeldSession>) {
        let hook = with_variables(entry, hook);
        let (outcome, session) =
            run_hook_holding_session(self.inner.executor.as_ref(), &entry.plan.pod, &hook).await;
        lock(&self.inner.summary).count(&outcome);
        self.post_event(hook_event(
            &entry.plan.pod,
            &entry.plan.uid,
            &hook,
            &outcome,
        ));
        (outcome, session)
    }

    /// Posts an Event in the background, within the rate limit. Never delays or fails a hook;
    /// the drain waits a bounded time for the ones still in flight.
    fn post_event(&self, event: crate::kube_api::PodEvent) {
        if !self.inner.event_limiter.try_acquire() {
            lock(&self.inner.summary).events_dropped += 1;
            return;
        }
        let inner = Arc::clone(&self.inner);
        self.inner.event_tasks.spawn(async move {
            let posted =
                tokio::time::timeout(EVENT_TIMEOUT, inner.cluster.record_event(&event)).await;
            let error = match posted {
                Ok(Ok(())) => return,
                Ok(Err(error)) => error.to_string(),
                Err(_) => "timed out".to_owned(),
            };
            use std::sync::atomic::Ordering;
            if !inner.event_failure_logged.swap(true, Ordering::Relaxed) {
                // Info, not warn: a missing `events create` grant must not mark backups.
                tracing::info!(error = %error, "Cannot post Kubernetes Events for hooks; their results are in this log only");
            }
        });
    }
}

/// The info line of a freeze that lasts as long as an upload: a pod with file-system-backup
/// volumes is thawed once Velero has copied their files, which takes minutes to hours.
fn log_long_freeze(plan: &PodPlan) {
    if plan.fs_backup_volumes.is_empty() {
        return;
    }
    tracing::info!(
        namespace = %plan.pod.namespace,
        pod = %plan.pod.name,
        volumes = %plan.fs_backup_volumes.iter().cloned().collect::<Vec<_>>().join(","),
        maxFreeze = %crate::hooks::format_go_duration(plan.max_freeze),
        "Pod stays frozen while the files of its file-system-backup volumes are uploaded (up to \
         its max-freeze); CSI snapshots of these volumes would hold the freeze only until the \
         snapshot is cut"
    );
}

/// The info line for a run-once hook this pod leaves to another pod of its owner.
fn log_runs_elsewhere(entry: &PodEntry, hook: &ResolvedHook, elsewhere: &RunsElsewhere) {
    let plan = &entry.plan;
    tracing::info!(
        namespace = %plan.pod.namespace,
        pod = %plan.pod.name,
        hookPhase = %hook.phase,
        hookName = %hook.name,
        owner = %elsewhere.owner,
        runner = %elsewhere.runner,
        "Hook skipped: it runs once per owner, in pod {} ({})",
        elsewhere.runner,
        elsewhere.reason
    );
}

/// Takes the session held by the pre hook `key` out of `sessions`.
fn take_session(sessions: &mut Vec<(HeldBy, HeldSession)>, key: &HeldBy) -> Option<HeldSession> {
    let position = sessions.iter().position(|(held_by, _)| held_by == key)?;
    Some(sessions.remove(position).1)
}

/// Which phase's list a position refers to (for callers building a [`Placement`]).
pub(super) fn hooks_of(plan: &PodPlan, phase: Phase) -> &[ResolvedHook] {
    match phase {
        Phase::Pre => &plan.pre.hooks,
        Phase::Post => &plan.post.hooks,
    }
}

/// The hook with its template variables filled in (command and stdin) for this backup and
/// pod; as it is when it uses none or already has a defect. A variable resolution missed
/// becomes the hook's defect here: it fails in place, never runs with an empty value.
fn with_variables<'h>(entry: &PodEntry, hook: &'h ResolvedHook) -> Cow<'h, ResolvedHook> {
    let stdin = hook.execution.stdin.as_deref();
    let uses =
        template::uses_variables(&hook.command) || stdin.is_some_and(template::text_uses_variables);
    if !uses || hook.defect.is_some() {
        return Cow::Borrowed(hook);
    }
    let context = template::TemplateContext {
        backup_name: &entry.backup.name,
        backup_namespace: &entry.backup.namespace,
        pod_name: &entry.plan.pod.name,
        pod_namespace: &entry.plan.pod.namespace,
        container: &hook.container,
        phase: hook.phase,
    };
    let mut rendered = hook.clone();
    let result = template::render(&hook.command, &context).and_then(|command| {
        let stdin = stdin
            .map(|text| template::render_stdin(text, &context))
            .transpose()?;
        Ok((command, stdin))
    });
    match result {
        Ok((command, stdin)) => {
            rendered.command = command;
            rendered.execution.stdin = stdin;
        }
        Err(error) => {
            rendered.defect = Some(HookDefect::UnknownVariable {
                pod: entry.plan.pod.clone(),
                error,
            })
        }
    }
    Cow::Owned(rendered)
}
