//! Hooks that run once per owner: among the running pods of a ReplicaSet or StatefulSet in
//! this backup that carry the same hook, one is chosen (`run-on`, else the lowest ordinal,
//! else the oldest) and only it runs the hook. The choice is made once per backup, so a pod's
//! pre and post hooks agree, and it decides each pod's [`Placement`] before its first freeze.
//! When the owner's pods cannot be listed, every pod runs the hook, as in Velero, with a
//! warning.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::pod::{hooks_of, Placement, PodEntry, RunsElsewhere};
use super::{lock, Engine};
use crate::hooks::{self, ChoiceReason, Owner, Phase, PodRef, ResolvedHook, RunOnce};

/// Which pod of an owner runs its run-once hooks in one backup.
#[derive(Debug, Clone)]
enum Runner {
    /// This pod, for this reason.
    Pod(PodRef, ChoiceReason),
    /// Every pod (the owner's pods could not be listed, or none is a candidate).
    Every,
}

/// One choice: per backup, owner, hook (source and name) and `run-on` as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RunnerKey {
    backup_uid: String,
    owner_uid: String,
    hook_source: &'static str,
    hook_name: String,
    run_on: String,
}

/// The run-once choices of every backup this process serves.
#[derive(Default)]
pub(super) struct Runners {
    chosen: Mutex<HashMap<RunnerKey, Arc<OnceCell<Runner>>>>,
}

impl Engine {
    /// Where each of the pod's hooks runs: here, or — for a run-once hook whose owner chose
    /// another pod — in that pod.
    pub(super) async fn placement(&self, entry: &PodEntry) -> Placement {
        let mut placement = Placement::default();
        for (phase, placed) in [
            (Phase::Pre, &mut placement.pre),
            (Phase::Post, &mut placement.post),
        ] {
            for hook in hooks_of(&entry.plan, phase) {
                placed.push(self.runs_elsewhere(entry, hook).await);
            }
        }
        placement
    }

    /// `None` when `hook` runs in this pod: always, unless it is a run-once hook and another
    /// pod of the same owner was chosen.
    async fn runs_elsewhere(&self, entry: &PodEntry, hook: &ResolvedHook) -> Option<RunsElsewhere> {
        let (Some(run_once), Some(owner)) = (&hook.run_once, &entry.plan.owner) else {
            return None;
        };
        match self.runner(entry, owner, hook, run_once).await {
            Runner::Pod(pod, reason) if pod != entry.plan.pod => Some(RunsElsewhere {
                runner: pod.name,
                owner: owner.to_string(),
                reason,
            }),
            _ => None,
        }
    }

    async fn runner(
        &self,
        entry: &PodEntry,
        owner: &Owner,
        hook: &ResolvedHook,
        run_once: &RunOnce,
    ) -> Runner {
        let key = RunnerKey {
            backup_uid: entry.backup.uid.clone(),
            owner_uid: owner.uid.clone(),
            hook_source: hook.source.as_str(),
            hook_name: hook.name.clone(),
            run_on: run_once.run_on_text.clone().unwrap_or_default(),
        };
        let cell = Arc::clone(lock(&self.inner.runners.chosen).entry(key).or_default());
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
}
