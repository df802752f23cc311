//! The pure core of `explain`: [`explain`] turns pods, the plugin configuration and a backup
//! scope into a [`Report`] — which hooks would run on which pod, when, and everything wrong.
//! No I/O and no clock; nothing here runs or even prepares an exec. The report's serialized
//! types are in `report/view.rs`; what spans pods (run-once, groups) in `report/workload.rs`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};

use crate::engine::plan::{claims_of, BackupInfo, PodPlan, EXCLUDE_LABEL};
use crate::hooks::template::{self, TemplateContext};
use crate::hooks::{
    format_go_duration, resolve, Config, HookSource, LabelSelector, NamespaceFilter, OnError,
    Phase, PodRef, Problem, ResolvedHook, Severity, SkipReason, ANNOTATION_HOOK_NAME,
    POST_ANNOTATION_PREFIX, PRE_ANNOTATION_PREFIX, RUN_ONCE_PER_ANNOTATION,
};

mod view;
mod workload;

pub use view::{
    BackupView, ExecutionView, Finding, FindingKind, FindingSeverity, GroupReport, HookReport,
    PhaseReport, Phases, PodReport, Report, RunOnceView, Summary, VolumeGroupReport, WaitView,
    SCHEMA_VERSION,
};
use workload::{PodGroup, Workloads};

/// Annotation prefixes Velero itself acts on: pre, post and the legacy un-prefixed pre keys.
pub const VELERO_HOOK_PREFIXES: [&str; 3] = [
    "pre.hook.backup.velero.io/",
    "post.hook.backup.velero.io/",
    "hook.backup.velero.io/",
];

/// Everything `explain` looks at, read by the caller from files or from a cluster.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Every pod found (in or out of the backup).
    pub pods: Vec<Pod>,
    /// PersistentVolumeClaims found, if any (unknown claims are assumed bound).
    pub claims: Vec<PersistentVolumeClaim>,
    /// PersistentVolumes found, if any.
    pub volumes: Vec<PersistentVolume>,
    /// The plugin configuration.
    pub config: PluginConfig,
    /// Problems found while reading the inputs (several plugin ConfigMaps, …).
    pub problems: Vec<Finding>,
    /// Notes from reading the inputs (ignored objects, claims that could not be listed, …).
    pub notices: Vec<Finding>,
}

/// The plugin ConfigMap's rules, with where they came from and what was wrong in them.
#[derive(Debug, Clone, Default)]
pub struct PluginConfig {
    /// `namespace/name` of the ConfigMap, `None` when there is none.
    pub origin: Option<String>,
    /// The valid rules.
    pub config: Config,
    /// Every problem of its `config.yaml`.
    pub problems: Vec<Problem>,
}

impl PluginConfig {
    /// Parses a ConfigMap's `data`, as the plugin does.
    pub fn from_config_map(origin: String, data: &BTreeMap<String, String>) -> Self {
        let (config, problems) = Config::from_configmap_data(data);
        PluginConfig {
            origin: Some(origin),
            config,
            problems,
        }
    }
}

/// Which items the backup takes, as far as pods and their volumes are concerned.
#[derive(Debug, Clone, Default)]
pub struct BackupScope {
    /// `metadata.name` of the Backup, if one was given.
    pub name: Option<String>,
    /// Namespace filters and `defaultVolumesToFsBackup`.
    pub info: BackupInfo,
    /// Label selectors, any of which selects a pod (empty: every pod), with their text.
    pub label_selectors: Vec<(String, LabelSelector)>,
    /// Why the backup does not take pods at all (resource filters), if it does not.
    pub pods_excluded: Option<String>,
    /// Why the backup does not take PersistentVolumes, if it does not.
    pub volumes_excluded: Option<String>,
    /// Whether the Backup has `spec.hooks` of its own (Velero runs those itself).
    pub has_spec_hooks: bool,
}

/// Explains what quiesce would do for `inputs.pods` in a backup of `backup`.
pub fn explain(inputs: &Inputs, backup: &BackupScope) -> Report {
    let mut problems = inputs.problems.clone();
    let mut notices = inputs.notices.clone();
    let origin = inputs.config.origin.as_deref();
    problems.extend(
        inputs
            .config
            .problems
            .iter()
            .map(|p| config_finding(origin, p)),
    );
    if origin.is_none() {
        notices.push(Finding::notice(
            FindingKind::NoConfigMap,
            "no plugin ConfigMap found: only annotation hooks apply",
        ));
    }
    if backup.has_spec_hooks {
        notices.push(Finding::notice(
            FindingKind::BackupSpecHooks,
            "the Backup has spec.hooks of its own: Velero runs those itself, they are not \
             shown here",
        ));
    }
    let namespaces = match NamespaceFilter::new(
        &backup.info.included_namespaces,
        &backup.info.excluded_namespaces,
    ) {
        Ok(filter) => filter,
        Err(error) => {
            problems.push(Finding::new(
                    FindingKind::Backup,
                    FindingSeverity::Error,
                    format!("the backup's namespace filters are invalid ({error}); every namespace is assumed"),
                ));
            NamespaceFilter::default()
        }
    };

    let mut pods: Vec<&Pod> = inputs.pods.iter().collect();
    pods.sort_by_key(|pod| PodRef::of(pod).to_string());
    let membership = membership(&pods, backup, &namespaces);
    let claims = ClaimIndex::new(inputs);
    let config = &inputs.config.config;
    let workloads = Workloads::new(&pods, &membership, config);
    let mut context = HookContext {
        values: TemplateValues::of(backup),
        workloads: &workloads,
        config,
        placeholders_used: BTreeSet::new(),
    };

    let mut reports = Vec::new();
    let mut not_listed = 0;
    for (pod, member) in pods.iter().zip(&membership) {
        match pod_report(pod, member, backup, &claims, &mut context) {
            Some(report) => reports.push(report),
            None => not_listed += 1,
        }
    }
    for variable in &context.placeholders_used {
        notices.push(Finding::notice(
            FindingKind::TemplateValueUnknown,
            format!(
                "templated commands use {{{{{variable}}}}}, which explain does not know here \
                 (give --backup-file): it is shown as {}",
                placeholder(variable)
            ),
        ));
    }
    let (groups, group_notices) = workloads.reports();
    notices.extend(group_notices);
    let volume_groups = volume_groups(&reports, &claims, backup);

    let summary = Summary {
        pods: pods.len(),
        pods_with_hooks: reports
            .iter()
            .filter(|p| p.skipped.is_none() && hook_count(p) > 0)
            .count(),
        pods_not_listed: not_listed,
        hooks: reports
            .iter()
            .filter(|p| p.skipped.is_none())
            .map(hook_count)
            .sum(),
        problems: problems.len() + reports.iter().map(|p| p.problems.len()).sum::<usize>(),
        notices: notices.len() + reports.iter().map(|p| p.notices.len()).sum::<usize>(),
    };
    Report {
        schema_version: SCHEMA_VERSION,
        config_map: inputs.config.origin.clone(),
        rules: inputs.config.config.rules().len(),
        backup: BackupView {
            name: backup.name.clone(),
            included_namespaces: backup.info.included_namespaces.clone(),
            excluded_namespaces: backup.info.excluded_namespaces.clone(),
            label_selectors: backup
                .label_selectors
                .iter()
                .map(|(t, _)| t.clone())
                .collect(),
            default_volumes_to_fs_backup: backup.info.default_volumes_to_fs_backup,
        },
        pods: reports,
        groups,
        volume_groups,
        problems,
        notices,
        summary,
    }
}

/// The volume groups of the claims of pods with hooks in the backup: each group's claims, and
/// its pods with hooks — all frozen before the group's one snapshot.
fn volume_groups(
    pods: &[PodReport],
    claims: &ClaimIndex,
    backup: &BackupScope,
) -> Vec<VolumeGroupReport> {
    let label_key = volume_group_label_key(backup);
    let mut groups: BTreeMap<NamespacedName, BTreeSet<String>> = BTreeMap::new();
    for pod in pods
        .iter()
        .filter(|p| p.skipped.is_none() && hook_count(p) > 0)
    {
        for claim in &pod.claims {
            if let Some(group) = claims.volume_group(&pod.namespace, claim, label_key) {
                groups
                    .entry(NamespacedName::new(&pod.namespace, &group))
                    .or_default()
                    .insert(pod.name.clone());
            }
        }
    }
    groups
        .into_iter()
        .map(|(key, pods)| VolumeGroupReport {
            claims: claims.claims_of_volume_group(&key.namespace, &key.name, label_key),
            namespace: key.namespace,
            name: key.name,
            label_key: label_key.to_owned(),
            pods: pods.into_iter().collect(),
        })
        .collect()
}

/// The hooks of a pod that it runs itself (not those another pod of its owner runs).
fn hook_count(pod: &PodReport) -> usize {
    pod.phases
        .pre
        .hooks
        .iter()
        .chain(&pod.phases.post.hooks)
        .filter(|h| h.runs_here())
        .count()
}

/// What every hook report needs beyond its pod: template values, the other pods of the
/// backup, and which unknown template values were shown as placeholders.
struct HookContext<'a> {
    values: TemplateValues,
    workloads: &'a Workloads<'a>,
    config: &'a Config,
    placeholders_used: BTreeSet<&'static str>,
}

/// The backup's values for `{{backup.name}}` and `{{backup.namespace}}`; `None` when the
/// input does not say (no Backup given), shown as a placeholder.
struct TemplateValues {
    backup_name: Option<String>,
    backup_namespace: Option<String>,
}

impl TemplateValues {
    fn of(backup: &BackupScope) -> Self {
        let known = |text: &str| Some(text.to_owned()).filter(|t| !t.is_empty());
        TemplateValues {
            backup_name: backup
                .name
                .as_deref()
                .and_then(known)
                .or_else(|| known(&backup.info.name)),
            backup_namespace: known(&backup.info.namespace),
        }
    }
}

/// How an unknown template value is shown.
fn placeholder(variable: &str) -> String {
    format!("<{variable}>")
}

fn config_finding(origin: Option<&str>, problem: &Problem) -> Finding {
    let location = problem.location.to_string();
    let message = problem.without_location();
    let location = match origin {
        Some(origin) => format!("ConfigMap {origin}: {location}"),
        None => location,
    };
    let severity = match problem.severity {
        Severity::Warning => FindingSeverity::Warning,
        Severity::Error => FindingSeverity::Error,
    };
    Finding::new(FindingKind::Config, severity, message).at(location)
}

/// A namespaced object's namespace and name, as a map key: a claim, a consistency group.
/// Ordered by namespace, then name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct NamespacedName {
    namespace: String,
    name: String,
}

impl NamespacedName {
    fn new(namespace: &str, name: &str) -> Self {
        NamespacedName {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// Whether Velero backs up a pod's item, and why not, or what pulled it in.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Membership {
    In,
    PulledIn { claim: String, by: String },
    Out(String),
}

/// Velero's per-item checks: the exclude label, the namespace filters, the resource filters
/// and the label selectors — the selectors not for a pod that mounts a claim of a selected
/// running pod, which Velero's claim grouping pulls into the block anyway (DESIGN §3).
fn membership(
    pods: &[&Pod],
    backup: &BackupScope,
    namespaces: &NamespaceFilter,
) -> Vec<Membership> {
    let first = pods
        .iter()
        .map(|pod| {
            let pod_ref = PodRef::of(pod);
            if let Some(reason) = &backup.pods_excluded {
                return Membership::Out(format!("not in the backup: {reason}"));
            }
            if labels(pod).get(EXCLUDE_LABEL).is_some_and(|v| v == "true") {
                return Membership::Out(format!(
                    "not in the backup: labelled {EXCLUDE_LABEL}=true"
                ));
            }
            if !namespaces.includes(&pod_ref.namespace) {
                return Membership::Out(format!(
                    "not in the backup: namespace {} is not included",
                    pod_ref.namespace
                ));
            }
            let selected = backup.label_selectors.is_empty()
                || backup
                    .label_selectors
                    .iter()
                    .any(|(_, selector)| selector.matches(&labels(pod)));
            if selected {
                Membership::In
            } else {
                let texts: Vec<&str> = backup
                    .label_selectors
                    .iter()
                    .map(|(t, _)| t.as_str())
                    .collect();
                Membership::Out(format!(
                    "not in the backup: its labels do not match the selector {}",
                    texts.join(" or ")
                ))
            }
        })
        .collect::<Vec<_>>();

    // Claims of selected running pods, to find the unselected pods that share them.
    let mut selected_claims: BTreeMap<NamespacedName, String> = BTreeMap::new();
    for (pod, member) in pods.iter().zip(&first) {
        if *member == Membership::In && is_running(pod) {
            let pod_ref = PodRef::of(pod);
            for claim in claims_of(pod) {
                selected_claims
                    .entry(NamespacedName::new(&pod_ref.namespace, &claim))
                    .or_insert_with(|| pod_ref.to_string());
            }
        }
    }
    pods.iter()
        .zip(first)
        .map(|(pod, member)| {
            let Membership::Out(reason) = &member else {
                return member;
            };
            if !reason.contains("selector") || !is_running(pod) {
                return member;
            }
            let namespace = PodRef::of(pod).namespace;
            claims_of(pod)
                .into_iter()
                .find_map(|claim| {
                    let by = selected_claims.get(&NamespacedName::new(&namespace, &claim))?;
                    Some(Membership::PulledIn {
                        claim,
                        by: by.clone(),
                    })
                })
                .unwrap_or(member)
        })
        .collect()
}

fn labels(pod: &Pod) -> BTreeMap<String, String> {
    pod.metadata.labels.clone().unwrap_or_default()
}

fn is_running(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

/// What is known of claims and volumes, to tell whether Velero reaches a claim's volume
/// before the pod's own item.
struct ClaimIndex<'a> {
    claims: BTreeMap<NamespacedName, &'a PersistentVolumeClaim>,
    volumes: BTreeMap<String, &'a PersistentVolume>,
}

impl<'a> ClaimIndex<'a> {
    fn new(inputs: &'a Inputs) -> Self {
        ClaimIndex {
            claims: inputs
                .claims
                .iter()
                .map(|c| {
                    let key = NamespacedName {
                        namespace: c.metadata.namespace.clone().unwrap_or_default(),
                        name: c.metadata.name.clone().unwrap_or_default(),
                    };
                    (key, c)
                })
                .collect(),
            volumes: inputs
                .volumes
                .iter()
                .map(|v| (v.metadata.name.clone().unwrap_or_default(), v))
                .collect(),
        }
    }

    /// The volume group of `claim` (Velero 1.17+): its value of `label_key`, if it has one.
    fn volume_group(&self, namespace: &str, claim: &str, label_key: &str) -> Option<String> {
        self.claims
            .get(&NamespacedName::new(namespace, claim))?
            .metadata
            .labels
            .as_ref()?
            .get(label_key)
            .filter(|value| !value.is_empty())
            .cloned()
    }

    /// The claims of `namespace` with `group` as their value of `label_key`, sorted.
    fn claims_of_volume_group(&self, namespace: &str, group: &str, label_key: &str) -> Vec<String> {
        self.claims
            .keys()
            .filter(|key| key.namespace == namespace)
            .filter(|key| {
                self.volume_group(namespace, &key.name, label_key)
                    .as_deref()
                    == Some(group)
            })
            .map(|key| key.name.clone())
            .collect()
    }

    /// Whether every one of `claims` is bound to a known CSI volume (one Velero's CSI action
    /// snapshots with a VolumeSnapshot).
    fn all_csi(&self, namespace: &str, claims: &BTreeSet<String>) -> bool {
        !claims.is_empty()
            && claims.iter().all(|claim| {
                self.claims
                    .get(&NamespacedName::new(namespace, claim))
                    .and_then(|pvc| pvc.spec.as_ref()?.volume_name.as_deref())
                    .and_then(|name| self.volumes.get(name))
                    .is_some_and(|pv| pv.spec.as_ref().is_some_and(|s| s.csi.is_some()))
            })
    }

    /// Why quiesce does not see `claim`'s volume before the pod's item, if it does not.
    /// Unknown claims and volumes are assumed bound and backed up.
    fn not_seen_first(&self, namespace: &str, claim: &str, backup: &BackupScope) -> Option<String> {
        let volume_name = match self.claims.get(&NamespacedName::new(namespace, claim)) {
            None => None,
            Some(pvc) => match pvc.spec.as_ref().and_then(|s| s.volume_name.as_deref()) {
                Some(name) if !name.is_empty() => Some(name),
                _ => return Some("not bound".to_owned()),
            },
        };
        if let Some(reason) = &backup.volumes_excluded {
            return Some(reason.clone());
        }
        let volume = volume_name.and_then(|name| self.volumes.get(name))?;
        let excluded = volume
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(EXCLUDE_LABEL))
            .is_some_and(|v| v == "true");
        excluded.then(|| {
            format!(
                "its volume {} is labelled {EXCLUDE_LABEL}=true",
                volume.metadata.name.as_deref().unwrap_or_default()
            )
        })
    }
}

/// One pod's report: for a pod that is skipped, the hooks it would have had; for the others
/// their problems and notices, and when their hooks run. `None` when there is nothing to show.
fn pod_report(
    pod: &Pod,
    member: &Membership,
    backup: &BackupScope,
    claim_index: &ClaimIndex,
    context: &mut HookContext,
) -> Option<PodReport> {
    let config = context.config;
    let pod_ref = PodRef::of(pod);
    let group = context.workloads.group(pod, config);
    let plan = PodPlan::new(pod, &backup.info, config);
    let skipped = match member {
        Membership::Out(reason) => Some(reason.clone()),
        _ => plan.pre.skipped.as_ref().map(skip_text),
    };
    let velero_keys = velero_hook_keys(pod);
    let (phases, problems, notices) = match &skipped {
        Some(reason) => {
            let (phases, notices) = skipped_pod_phases(pod, reason, &velero_keys, context)?;
            (phases, Vec::new(), notices)
        }
        None => {
            let (problems, mut notices) = pod_findings(pod, member, &plan, &velero_keys);
            if !plan.has_hooks() && problems.is_empty() && notices.is_empty() {
                return None;
            }
            let mut phases = Phases {
                pre: PhaseReport {
                    moment: None,
                    hooks: hook_reports(pod, &plan.pre.hooks, context),
                },
                post: PhaseReport {
                    moment: None,
                    hooks: hook_reports(pod, &plan.post.hooks, context),
                },
            };
            let thaw_at_cut = config.thaw_at_snapshot_cut() != Some(false);
            let moments = PhaseMoments::of(
                &plan,
                &phases,
                group.as_ref(),
                claim_index,
                backup,
                thaw_at_cut,
            );
            phases.pre.moment = Some(moments.pre);
            phases.post.moment = Some(moments.post);
            notices.extend(moments.late_freeze);
            notices.extend(moments.fs_backup_freeze);
            (phases, problems, notices)
        }
    };
    Some(PodReport {
        namespace: pod_ref.namespace,
        name: pod_ref.name,
        skipped,
        max_freeze: format_go_duration(plan.max_freeze),
        claims: plan.claims.iter().cloned().collect(),
        fs_backup_volumes: plan.fs_backup_volumes.iter().cloned().collect(),
        group: group.map(|group| group.name),
        phases,
        problems,
        notices,
    })
}

/// Why a pod in the backup gets no hooks, as shown after "skipped: ".
fn skip_text(reason: &SkipReason) -> String {
    match reason {
        SkipReason::Terminated { pod_phase, .. } => {
            format!("in phase {pod_phase}: its containers no longer run")
        }
        SkipReason::Deleting { .. } => "being deleted: Velero does not back it up".to_owned(),
    }
}

/// A skipped pod's phases: the hooks it would have had if it ran (no moments, nothing runs),
/// with the notice saying why it is skipped. `None` when it would have had no hook and has no
/// Velero hook keys either: nothing worth showing.
fn skipped_pod_phases(
    pod: &Pod,
    reason: &str,
    velero_keys: &[String],
    context: &mut HookContext,
) -> Option<(Phases, Vec<Finding>)> {
    // Resolve as if it ran, only to say what it would have had.
    let mut running = pod.clone();
    running.metadata.deletion_timestamp = None;
    if let Some(status) = running.status.as_mut() {
        status.phase = None;
    }
    let pre = resolve(&running, Phase::Pre, context.config).hooks;
    let post = resolve(&running, Phase::Post, context.config).hooks;
    if pre.is_empty() && post.is_empty() && velero_keys.is_empty() {
        return None;
    }
    let mut notices = vec![Finding::notice(
        FindingKind::Skipped,
        format!("skipped: {reason}; quiesce runs none of its hooks"),
    )];
    if !velero_keys.is_empty() {
        notices.push(velero_only_notice(velero_keys));
    }
    let phases = Phases {
        pre: PhaseReport {
            moment: None,
            hooks: hook_reports(pod, &pre, context),
        },
        post: PhaseReport {
            moment: None,
            hooks: hook_reports(pod, &post, context),
        },
    };
    Some((phases, notices))
}

/// The problems and the notices of a pod in the backup: what its annotations, the
/// governance policy and its hooks' defects say, its max-freeze, how it got into the backup,
/// and Velero's own hook keys on it.
fn pod_findings(
    pod: &Pod,
    member: &Membership,
    plan: &PodPlan,
    velero_keys: &[String],
) -> (Vec<Finding>, Vec<Finding>) {
    let mut problems = Vec::new();
    let mut notices = Vec::new();
    for resolution in [&plan.pre, &plan.post] {
        for warning in &resolution.warnings {
            problems.push(
                Finding::new(
                    FindingKind::Annotation,
                    FindingSeverity::Warning,
                    warning.without_pod(),
                )
                .at(warning.key()),
            );
        }
        // A warning, as the plugin logs it; it still counts as a problem (exit 1), like every
        // other warning here: an app team's CI should learn that its hook will not run.
        for refusal in &resolution.refused {
            problems.push(
                Finding::new(
                    FindingKind::Policy,
                    FindingSeverity::Warning,
                    refusal.without_pod(),
                )
                .at(refusal.key.clone()),
            );
        }
        for (order, hook) in resolution.hooks.iter().enumerate() {
            if let Some(defect) = &hook.defect {
                problems.push(
                    Finding::new(
                        FindingKind::HookDefect,
                        FindingSeverity::Error,
                        defect.to_string(),
                    )
                    .at(hook_location(hook, order + 1)),
                );
            }
        }
    }
    // Pod-wide keys (run-on, run-once-per) are read, and warned about, once per phase.
    dedup(&mut problems);
    if let Some(warning) = &plan.max_freeze_warning {
        let message = warning.without_pod();
        problems.push(
            Finding::new(FindingKind::MaxFreeze, FindingSeverity::Warning, message)
                .at(crate::engine::plan::MAX_FREEZE_ANNOTATION),
        );
    }
    if let Membership::PulledIn { claim, by } = member {
        notices.push(Finding::notice(
            FindingKind::PulledIn,
            format!(
                "not selected by the backup's label selector, but it mounts claim {claim} of \
                 pod {by}: Velero backs it up with that claim, and quiesce runs its hooks"
            ),
        ));
    }
    if let Some(notice) = run_once_without_annotation_hooks(pod, plan) {
        notices.push(notice);
    }
    if !velero_keys.is_empty() {
        if plan.has_hooks() {
            problems.push(double_quiesce(
                velero_keys,
                &plan.pre.hooks,
                &plan.post.hooks,
            ));
        } else {
            notices.push(velero_only_notice(velero_keys));
        }
    }
    (problems, notices)
}

/// When a pod's pre and post hooks run, in words, and a notice when its claims are all
/// backed up before its pre hooks run (their snapshots may precede the freeze).
struct PhaseMoments {
    pre: String,
    post: String,
    late_freeze: Option<Finding>,
    fs_backup_freeze: Option<Finding>,
}

/// Velero's default `--volume-group-snapshot-label-key` (1.17+), which it fills into every
/// Backup that does not name one.
pub const DEFAULT_VOLUME_GROUP_LABEL_KEY: &str = "velero.io/volume-group";

/// The label key of volume groups for `backup`.
fn volume_group_label_key(backup: &BackupScope) -> &str {
    backup
        .info
        .volume_group_label_key
        .as_deref()
        .unwrap_or(DEFAULT_VOLUME_GROUP_LABEL_KEY)
}

impl PhaseMoments {
    /// The moments of a pod in the backup with `phases` (their hooks): at its claims' first
    /// snapshot or its own item, after its volumes or PodVolumeBackups, with its group's
    /// members when it has more than one, or nowhere when another pod runs all its hooks.
    fn of(
        plan: &PodPlan,
        phases: &Phases,
        group: Option<&PodGroup>,
        claim_index: &ClaimIndex,
        backup: &BackupScope,
        thaw_at_cut: bool,
    ) -> PhaseMoments {
        let (pre_hooks, post_hooks) = (&phases.pre.hooks, &phases.post.hooks);
        let unseen: BTreeMap<&str, String> = plan
            .claims
            .iter()
            .filter_map(|c| {
                let reason = claim_index.not_seen_first(&plan.pod.namespace, c, backup)?;
                Some((c.as_str(), reason))
            })
            .collect();
        let mut pre = pre_moment(&plan.claims, &unseen);
        let label_key = volume_group_label_key(backup);
        let namespace = &plan.pod.namespace;
        let volume_group = plan
            .claims
            .iter()
            .find_map(|claim| claim_index.volume_group(namespace, claim, label_key));
        if let Some(name) = &volume_group {
            let claims = claim_index.claims_of_volume_group(namespace, name, label_key);
            pre = format!(
                "with volume group {name} (claims {}): before the group's snapshot, at its \
                 first claim",
                claims.join(", ")
            );
        }
        let late_freeze = (pre_hooks.iter().any(HookReport::runs_here)
            && !plan.claims.is_empty()
            && unseen.len() == plan.claims.len())
        .then(|| {
            Finding::notice(
                FindingKind::LateFreeze,
                format!(
                    "its pre hooks run at the pod's own item, after its claims were backed up \
                     ({}): their snapshots may precede the freeze",
                    describe_unseen(&unseen)
                ),
            )
        });
        let fs_backup_volumes: Vec<&str> =
            plan.fs_backup_volumes.iter().map(String::as_str).collect();
        let mut post = if !fs_backup_volumes.is_empty() {
            format!(
                "after its PodVolumeBackups finish (fs-backup volumes: {})",
                fs_backup_volumes.join(", ")
            )
        } else if thaw_at_cut && claim_index.all_csi(namespace, &plan.claims) {
            "once the CSI snapshots of its claims are cut (thaw at the cut), at the latest \
             after the pod's volumes are backed up"
                .to_owned()
        } else {
            "after the pod's volumes are backed up".to_owned()
        };
        let fs_backup_freeze = (!fs_backup_volumes.is_empty()
            && pre_hooks.iter().any(HookReport::runs_here))
        .then(|| {
            Finding::notice(
                FindingKind::FsBackupFreeze,
                format!(
                    "it stays frozen while the files of its file-system-backup volumes are \
                     uploaded ({}), up to its max-freeze {}; CSI snapshots of these volumes \
                     would hold the freeze only until the snapshot is cut",
                    fs_backup_volumes.join(", "),
                    format_go_duration(plan.max_freeze)
                ),
            )
        });
        if let Some(PodGroup { name, members }) = group {
            if members.len() > 1 {
                let others = members.len() - 1;
                let with = format!(
                    "with group {name} ({others} other {})",
                    if others == 1 { "member" } else { "members" }
                );
                pre = format!("{with}: before the first member's volume snapshot");
                post = if fs_backup_volumes.is_empty() {
                    format!("{with}: after the last member is backed up")
                } else {
                    format!(
                        "{with}: after the last member is backed up, its PodVolumeBackups \
                         included (fs-backup volumes: {})",
                        fs_backup_volumes.join(", ")
                    )
                };
            }
        }
        for (moment, hooks) in [(&mut pre, pre_hooks), (&mut post, post_hooks)] {
            if !hooks.is_empty() && !hooks.iter().any(HookReport::runs_here) {
                *moment = "none of its hooks run here (run once per owner)".to_owned();
            }
        }
        PhaseMoments {
            pre,
            post,
            late_freeze,
            fs_backup_freeze,
        }
    }
}

fn pre_moment(claims: &BTreeSet<String>, unseen: &BTreeMap<&str, String>) -> String {
    if claims.is_empty() {
        return "at the pod's own item: no claims".to_owned();
    }
    if unseen.len() == claims.len() {
        return "at the pod's own item: claims not seen first, snapshots may precede the freeze"
            .to_owned();
    }
    let seen: Vec<&str> = claims
        .iter()
        .map(String::as_str)
        .filter(|c| !unseen.contains_key(c))
        .collect();
    let mut moment = format!(
        "before the first volume snapshot of {} {}",
        if seen.len() == 1 { "claim" } else { "claims" },
        seen.join(", ")
    );
    if !unseen.is_empty() {
        moment.push_str(&format!(" (not seen first: {})", describe_unseen(unseen)));
    }
    moment
}

fn describe_unseen(unseen: &BTreeMap<&str, String>) -> String {
    unseen
        .iter()
        .map(|(claim, reason)| format!("{claim}: {reason}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn hook_reports(pod: &Pod, hooks: &[ResolvedHook], context: &mut HookContext) -> Vec<HookReport> {
    let mut blocked = false;
    hooks
        .iter()
        .enumerate()
        .map(|(i, hook)| {
            let reached = !blocked;
            let run_once = hook.run_once.as_ref().map(|run_once| {
                context
                    .workloads
                    .run_once(pod, hook, run_once, context.config)
            });
            let runs_here = run_once.as_ref().is_none_or(|r| r.runs_here);
            // A hook another pod runs cannot fail here, so it blocks nothing here.
            if runs_here && hook.defect.is_some() && hook.on_error == OnError::Fail {
                blocked = true;
            }
            let Rendered {
                command: rendered_command,
                stdin: rendered_stdin,
            } = rendered(pod, hook, context).unwrap_or_default();
            let execution = ExecutionView::of(&hook.execution, rendered_stdin);
            HookReport {
                order: i + 1,
                source: hook.source.as_str().to_owned(),
                name: hook.name.clone(),
                index: hook.index,
                container: hook.container.clone(),
                command: hook.command.clone(),
                hook_command: crate::hooks::render_command(
                    rendered_command.as_deref().unwrap_or(&hook.command),
                ),
                rendered_command,
                on_error: hook.on_error.as_str().to_owned(),
                timeout: format_go_duration(hook.timeout),
                execution,
                run_once,
                defect: hook.defect.as_ref().map(ToString::to_string),
                reached,
                ends_session: hook
                    .ends_session
                    .as_ref()
                    .map(|held_by| format!("pre[{}]", held_by.index)),
            }
        })
        .collect()
}

/// A templated hook's command and stdin with the variables substituted; each `None` when it
/// uses no variable.
#[derive(Default)]
struct Rendered {
    command: Option<Vec<String>>,
    stdin: Option<String>,
}

/// The hook's argv and stdin with their template variables substituted, `None` when they use
/// none or the hook has a defect (an unknown variable, a missing container: like the plugin,
/// nothing is rendered for a hook that fails without running). Values explain does not know
/// are shown as placeholders, and remembered for a notice.
fn rendered(pod: &Pod, hook: &ResolvedHook, context: &mut HookContext) -> Option<Rendered> {
    let stdin = hook
        .execution
        .stdin
        .as_ref()
        .filter(|text| template::text_uses_variables(text));
    if (!template::uses_variables(&hook.command) && stdin.is_none()) || hook.defect.is_some() {
        return None;
    }
    // The stdin rendered as one more element: the same values, the same placeholders.
    let texts: Vec<String> = hook.command.iter().chain(stdin).cloned().collect();
    let pod_ref = PodRef::of(pod);
    let name_placeholder = placeholder("backup.name");
    let namespace_placeholder = placeholder("backup.namespace");
    let values = &context.values;
    let with = |backup_name: &str, backup_namespace: &str| {
        template::render(
            &texts,
            &TemplateContext {
                backup_name,
                backup_namespace,
                pod_name: &pod_ref.name,
                pod_namespace: &pod_ref.namespace,
                container: &hook.container,
                phase: hook.phase,
            },
        )
        .ok()
    };
    let rendered = with(
        values.backup_name.as_deref().unwrap_or(&name_placeholder),
        values
            .backup_namespace
            .as_deref()
            .unwrap_or(&namespace_placeholder),
    )?;
    // Which unknown values the hook uses: rendering with other values changes it.
    if values.backup_name.is_none()
        && with("", &namespace_placeholder) != with("x", &namespace_placeholder)
    {
        context.placeholders_used.insert("backup.name");
    }
    if values.backup_namespace.is_none()
        && with(&name_placeholder, "") != with(&name_placeholder, "x")
    {
        context.placeholders_used.insert("backup.namespace");
    }
    let mut command = rendered;
    let stdin = stdin.and_then(|_| command.pop());
    let command = template::uses_variables(&hook.command).then_some(command);
    Some(Rendered { command, stdin })
}

/// A notice for a pod asking to run its hooks once per owner when none of its hooks come
/// from its annotations: the annotation only governs annotation hooks.
fn run_once_without_annotation_hooks(pod: &Pod, plan: &PodPlan) -> Option<Finding> {
    let annotations = pod.metadata.annotations.as_ref()?;
    annotations.get(RUN_ONCE_PER_ANNOTATION)?;
    let annotation_hooks = plan
        .pre
        .hooks
        .iter()
        .chain(&plan.post.hooks)
        .any(|h| h.source == HookSource::Annotation);
    if annotation_hooks || !plan.pre.refused.is_empty() || !plan.post.refused.is_empty() {
        return None;
    }
    Some(
        Finding::notice(
            FindingKind::RunOnceIgnored,
            format!(
                "{RUN_ONCE_PER_ANNOTATION} only applies to the pod's annotation hooks, and it \
                 has none: its rule hooks run as their rule says"
            ),
        )
        .at(RUN_ONCE_PER_ANNOTATION),
    )
}

/// Removes repeated findings, keeping the first of each.
fn dedup(findings: &mut Vec<Finding>) {
    let mut seen = Vec::new();
    findings.retain(|f| {
        if seen.contains(f) {
            return false;
        }
        seen.push(f.clone());
        true
    });
}

fn hook_location(hook: &ResolvedHook, order: usize) -> String {
    match hook.source {
        HookSource::Annotation => format!("{} hook {order} ({ANNOTATION_HOOK_NAME})", hook.phase),
        HookSource::Spec => format!(
            "{} hook {order} (rule {:?}, {}[{}])",
            hook.phase, hook.name, hook.phase, hook.index
        ),
    }
}

/// Velero's own backup hook annotation keys on the pod, sorted.
fn velero_hook_keys(pod: &Pod) -> Vec<String> {
    pod.metadata
        .annotations
        .iter()
        .flat_map(|a| a.keys())
        .filter(|key| VELERO_HOOK_PREFIXES.iter().any(|p| key.starts_with(p)))
        .cloned()
        .collect()
}

fn double_quiesce(keys: &[String], pre: &[ResolvedHook], post: &[ResolvedHook]) -> Finding {
    let mut sources: Vec<String> = pre
        .iter()
        .chain(post)
        .map(|h| match h.source {
            HookSource::Annotation => "its quiesce.dev annotations".to_owned(),
            HookSource::Spec => format!("rule {:?}", h.name),
        })
        .collect();
    sources.dedup();
    Finding::new(
        FindingKind::DoubleQuiesce,
        FindingSeverity::Error,
        format!(
            "double quiesce: Velero runs the hooks of {} itself, and quiesce runs those of {}: \
             the pod is frozen twice (a second fsfreeze --freeze fails with EBUSY); keep one set \
             — to keep quiesce's, remove the velero.io keys",
            keys.join(", "),
            sources.join(" and ")
        ),
    )
    .at(keys.join(", "))
}

fn velero_only_notice(keys: &[String]) -> Finding {
    Finding::notice(
        FindingKind::VeleroHooks,
        format!(
            "has Velero's own hook annotations ({}): Velero runs them, not quiesce; to have \
             quiesce run them just in time, rename the domain to quiesce.dev ({PRE_ANNOTATION_PREFIX}…, \
             {POST_ANNOTATION_PREFIX}…)",
            keys.join(", ")
        ),
    )
    .at(keys.join(", "))
}

#[cfg(test)]
mod tests;
