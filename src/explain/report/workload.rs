//! The parts of a report that look beyond one pod: which pod of a workload runs a
//! run-once hook, and which pods of the backup form each consistency group. Pure, like the
//! rest of the report: the candidates are the pods `explain` was given.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use crate::hooks::{
    choose_runner, group_of, has_same_run_once_hook, owner_of, resolve, Config, Owner, Phase,
    PodRef, ResolvedHook, RunOnce,
};

use super::view::{GroupReport, RunOnceView};
use super::{Finding, FindingKind, Membership, NamespacedName};

/// A pod's consistency group, with its members in the backup.
pub(super) struct PodGroup<'a> {
    /// `quiesce.dev/group`, or the `group` of the first rule that applies.
    pub(super) name: String,
    /// Names of its members in the backup (running pods with hooks), sorted.
    pub(super) members: &'a [String],
}

/// The pods of the input as run-once and groups see them.
pub(super) struct Workloads<'a> {
    /// Candidates to run a run-once hook, by [`owner_key`]: pods in the backup, in phase
    /// Running and not being deleted.
    candidates: BTreeMap<String, Vec<&'a Pod>>,
    /// Members in the backup by namespace and group name, pod names sorted: running pods with
    /// hooks, as the plugin forms groups.
    groups: BTreeMap<NamespacedName, Vec<String>>,
}

impl<'a> Workloads<'a> {
    /// Indexes `pods` (sorted by namespace and name) with their backup membership.
    pub(super) fn new(pods: &[&'a Pod], membership: &[Membership], config: &Config) -> Self {
        let mut candidates: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
        let mut groups: BTreeMap<NamespacedName, Vec<String>> = BTreeMap::new();
        for (pod, member) in pods.iter().zip(membership) {
            if matches!(member, Membership::Out(_)) {
                continue;
            }
            if is_candidate(pod) {
                if let Some(owner) = owner_of(pod) {
                    candidates
                        .entry(owner_key(pod, &owner))
                        .or_default()
                        .push(pod);
                }
            }
            // As the plugin forms a group: running members with hooks (the others have
            // nothing to freeze, and never hold the group up).
            if is_candidate(pod) && has_hooks(pod, config) {
                if let Some(group) = group_of(pod, config) {
                    let pod_ref = PodRef::of(pod);
                    groups
                        .entry(NamespacedName {
                            namespace: pod_ref.namespace,
                            name: group,
                        })
                        .or_default()
                        .push(pod_ref.name);
                }
            }
        }
        Workloads { candidates, groups }
    }

    /// Whether `pod` runs a hook marked `run_once`, and why.
    pub(super) fn run_once(
        &self,
        pod: &Pod,
        hook: &ResolvedHook,
        run_once: &RunOnce,
        config: &Config,
    ) -> RunOnceView {
        let run_on = run_once.run_on_text.clone();
        let Some(owner) = owner_of(pod) else {
            return RunOnceView {
                owner: None,
                run_on,
                runs_here: true,
                runner: None,
                reason: "the pod has no owner".to_owned(),
            };
        };
        let candidates: Vec<&Pod> = self
            .candidates
            .get(&owner_key(pod, &owner))
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .copied()
            .filter(|candidate| has_same_run_once_hook(candidate, hook, config))
            .collect();
        let this = PodRef::of(pod);
        match choose_runner(candidates.iter().copied(), &owner, run_once) {
            Some((runner, reason)) => RunOnceView {
                owner: Some(owner.to_string()),
                run_on,
                runs_here: runner == this,
                runner: Some(runner.to_string()),
                reason: reason.to_string(),
            },
            // The plugin then runs the hook in every pod of the owner, as Velero would.
            None => RunOnceView {
                owner: Some(owner.to_string()),
                run_on,
                runs_here: true,
                runner: None,
                reason: format!(
                    "no pod of {owner} is Running and in the backup to be chosen, so every pod \
                     of it runs the hook"
                ),
            },
        }
    }

    /// The pod's group and its members in the backup, if it is in one.
    pub(super) fn group(&self, pod: &Pod, config: &Config) -> Option<PodGroup<'_>> {
        let name = group_of(pod, config)?;
        let members = self
            .groups
            .get(&NamespacedName::new(&PodRef::of(pod).namespace, &name))
            .map(Vec::as_slice)
            .unwrap_or_default();
        Some(PodGroup { name, members })
    }

    /// Every group with a member in the backup, and a notice for each group of one.
    pub(super) fn reports(&self) -> (Vec<GroupReport>, Vec<Finding>) {
        let mut notices = Vec::new();
        let reports = self
            .groups
            .iter()
            .map(|(NamespacedName { namespace, name }, members)| {
                if members.len() == 1 {
                    notices.push(
                        Finding::notice(
                            FindingKind::SingleMemberGroup,
                            format!(
                                "group {namespace}/{name} has a single member in this backup \
                                 ({}): grouping has no effect",
                                members[0]
                            ),
                        )
                        .at(format!("group {namespace}/{name}")),
                    );
                }
                GroupReport {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    members: members.clone(),
                    pre: GROUP_PRE.to_owned(),
                    post: GROUP_POST.to_owned(),
                }
            })
            .collect();
        (reports, notices)
    }
}

/// When a group's pre hooks run.
const GROUP_PRE: &str = "every member's pre hooks run before the first member's volume snapshot";
/// When a group's post hooks run.
const GROUP_POST: &str = "every member's post hooks run after the last member is backed up";

/// Pods of one workload share their owner's UID; an owner reference without one (the API
/// requires it, hand-written YAML may lack it) is told apart by namespace, kind and name.
fn owner_key(pod: &Pod, owner: &Owner) -> String {
    if owner.uid.is_empty() {
        format!("{}/{owner}", PodRef::of(pod).namespace)
    } else {
        owner.uid.clone()
    }
}

/// Whether the pod gets any hook, before run-once: what makes it a group member.
fn has_hooks(pod: &Pod, config: &Config) -> bool {
    [Phase::Pre, Phase::Post]
        .into_iter()
        .any(|phase| !resolve(pod, phase, config).hooks.is_empty())
}

/// A pod that may run a run-once hook: phase Running and not being deleted.
fn is_candidate(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}
