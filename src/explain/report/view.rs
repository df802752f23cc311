//! The report as shown: the types `-o json` serializes and the text listing reads, field for
//! field the JSON shape documented in `explain/mod.rs` (`schemaVersion` [`SCHEMA_VERSION`]).
//! Plain data with small constructors; what goes into them is decided in `report.rs` and
//! `report/workload.rs`, how it is printed in `render.rs`.

use serde::Serialize;

use crate::hooks::{format_go_duration, Execution};

/// Version of the JSON shape; bumped only for incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// The result: per pod and phase, the hooks that would run, and every problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `namespace/name` of the plugin ConfigMap, if any.
    pub config_map: Option<String>,
    /// Valid rules loaded from it.
    pub rules: usize,
    /// The backup's scope.
    pub backup: BackupView,
    /// Pods that have hooks, Velero hook keys, or problems, sorted by namespace and name.
    pub pods: Vec<PodReport>,
    /// Consistency groups with a member in the backup, by namespace and name.
    pub groups: Vec<GroupReport>,
    /// Volume groups (Velero 1.17+) with a claim in the backup, by namespace and name.
    pub volume_groups: Vec<VolumeGroupReport>,
    /// Problems not tied to one pod (configuration, inputs).
    pub problems: Vec<Finding>,
    /// Notes not tied to one pod.
    pub notices: Vec<Finding>,
    /// Counts.
    pub summary: Summary,
}

/// The backup scope, as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupView {
    /// The Backup's name, `null` without `--backup-file`.
    pub name: Option<String>,
    /// Included namespaces (empty: all).
    pub included_namespaces: Vec<String>,
    /// Excluded namespaces.
    pub excluded_namespaces: Vec<String>,
    /// Label selectors, any of which selects a pod (empty: every pod).
    pub label_selectors: Vec<String>,
    /// `spec.defaultVolumesToFsBackup`.
    pub default_volumes_to_fs_backup: bool,
}

/// One pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodReport {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// Why the pod gets no hooks in this backup; `null` when it is in.
    pub skipped: Option<String>,
    /// How long it may stay frozen, e.g. `10m0s`.
    pub max_freeze: String,
    /// Claims it mounts.
    pub claims: Vec<String>,
    /// Volumes backed up by file-system backup.
    pub fs_backup_volumes: Vec<String>,
    /// Its consistency group (`quiesce.dev/group` or a rule's `group`), if any.
    pub group: Option<String>,
    /// Pre and post hooks with their moment.
    pub phases: Phases,
    /// What is wrong with this pod's hooks.
    pub problems: Vec<Finding>,
    /// What is worth knowing about it.
    pub notices: Vec<Finding>,
}

/// The two phases of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Phases {
    /// Freeze.
    pub pre: PhaseReport,
    /// Thaw.
    pub post: PhaseReport,
}

/// One phase of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhaseReport {
    /// When the hooks run, `null` for a skipped pod.
    pub moment: Option<String>,
    /// The hooks, in execution order (for a skipped pod: those it would have had).
    pub hooks: Vec<HookReport>,
}

/// One hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookReport {
    /// 1-based position in the phase.
    pub order: usize,
    /// `annotation` or `spec`.
    pub source: String,
    /// `<from-annotation>` or the rule name (Velero's `hookName`).
    pub name: String,
    /// Position in the rule's `pre`/`post` list.
    pub index: usize,
    /// Target container.
    pub container: String,
    /// argv as written: a template when it uses `{{…}}` variables.
    pub command: Vec<String>,
    /// argv with the variables substituted (for this backup, pod, container and phase);
    /// `null` when the command uses no variable or cannot be rendered (see `defect`).
    pub rendered_command: Option<Vec<String>>,
    /// The argv that runs (rendered if templated), printed like Velero's `hookCommand`.
    pub hook_command: String,
    /// `Fail` or `Continue`.
    pub on_error: String,
    /// Effective timeout, e.g. `30s`.
    pub timeout: String,
    /// Waits, retries and kill on timeout; `null` for the default (one attempt, no wait).
    pub execution: Option<ExecutionView>,
    /// Run once per owner: whether this pod runs it; `null` when the hook runs in every pod.
    pub run_once: Option<RunOnceView>,
    /// Why the hook will fail without running, if it will.
    pub defect: Option<String>,
    /// False when an earlier hook of the phase fails with on-error Fail.
    pub reached: bool,
    /// For a post hook that runs no command of its own but ends the session a pre hook holds:
    /// that pre hook, `pre[N]` (`N` its index in its rule's `pre`, 0 for the annotation hook).
    /// `command` and `container` are the session's. Absent from the JSON otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_session: Option<String>,
}

impl HookReport {
    /// Whether this pod runs the hook (false when another pod of its owner runs it).
    pub fn runs_here(&self) -> bool {
        self.run_once.as_ref().is_none_or(|r| r.runs_here)
    }
}

/// A hook's execution options, when not the default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionView {
    /// Wait for the container before the first attempt; `null`: exec right away.
    pub wait: Option<WaitView>,
    /// Further attempts after a failed one.
    pub retries: u32,
    /// The delay before the first retry (doubled per retry, capped).
    pub retry_backoff: String,
    /// The delay before each retry, in order (as many as `retries`).
    pub retry_delays: Vec<String>,
    /// Exit codes after which the command is run again.
    pub retry_on_exit_codes: Vec<i32>,
    /// On timeout, TERM then KILL the command.
    pub kill_on_timeout: bool,
    /// Text written to the command's stdin, as written (absent from the JSON when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// The stdin with the variables substituted (absent when it uses none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rendered_stdin: Option<String>,
    /// The ready text of a held session (absent from the JSON when the hook holds none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_until_output: Option<String>,
}

/// What a hook waits for before exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaitView {
    /// `running` or `ready`.
    #[serde(rename = "for")]
    pub state: String,
    /// How long at most, e.g. `1m0s`.
    pub timeout: String,
}

impl ExecutionView {
    /// The options as shown, with the stdin's variables substituted when it uses any; `None`
    /// for the default (one attempt, no wait).
    pub(super) fn of(execution: &Execution, rendered_stdin: Option<String>) -> Option<Self> {
        if *execution == Execution::default() {
            return None;
        }
        Some(ExecutionView {
            wait: execution.wait.map(|w| WaitView {
                state: if w.ready { "ready" } else { "running" }.to_owned(),
                timeout: format_go_duration(w.timeout),
            }),
            retries: execution.retries,
            retry_backoff: format_go_duration(execution.backoff_before(1)),
            retry_delays: (1..=execution.retries)
                .map(|n| format_go_duration(execution.backoff_before(n)))
                .collect(),
            retry_on_exit_codes: execution.retry_on_exit_codes.clone(),
            kill_on_timeout: execution.kill_on_timeout,
            stdin: execution.stdin.clone(),
            rendered_stdin,
            hold_until_output: execution.hold_until_output.clone(),
        })
    }
}

/// A problem or a notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable machine-readable class, e.g. `hook-defect`, `double-quiesce`.
    pub kind: FindingKind,
    /// `error` or `warning` for problems, `info` for notices.
    pub severity: FindingSeverity,
    /// Where: an annotation key, a ConfigMap field path, a hook; `null` when not applicable.
    pub location: Option<String>,
    /// What, in English.
    pub message: String,
}

/// What a finding is about, serialized as its stable kebab-case name (`hook-defect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// Problem: a hook will fail without running (a missing container, an unknown template
    /// variable, an empty command).
    HookDefect,
    /// Problem: an odd value in the pod's hook annotations.
    Annotation,
    /// Problem: an annotation hook refused by the ConfigMap's `governance`.
    Policy,
    /// Problem: an unusable `quiesce.dev/max-freeze`.
    MaxFreeze,
    /// Problem: Velero's own hook annotations beside quiesce's hooks, so the pod is frozen
    /// twice.
    DoubleQuiesce,
    /// Problem: something wrong in the plugin ConfigMap's `config.yaml`.
    Config,
    /// Problem: which plugin ConfigMap is read (several match the label).
    ConfigMap,
    /// Problem: the backup's own settings (its namespace filters).
    Backup,
    /// Notice: the pod is not in the backup, or not running; none of its hooks run.
    Skipped,
    /// Notice: the pod has Velero's own hook annotations, which Velero runs.
    VeleroHooks,
    /// Notice: the pod is in the backup through a claim of a selected pod.
    PulledIn,
    /// Notice: the pod's claims are backed up before its pre hooks run.
    LateFreeze,
    /// Notice: no plugin ConfigMap, so only annotation hooks apply.
    NoConfigMap,
    /// Notice: the Backup has `spec.hooks`, which Velero runs itself.
    BackupSpecHooks,
    /// Notice: an input object explain does not read.
    IgnoredObject,
    /// Notice: claims could not be listed, so they are assumed bound.
    ClaimsUnknown,
    /// Notice: a template value explain does not know is shown as a placeholder.
    TemplateValueUnknown,
    /// Notice: a consistency group with a single member in the backup.
    SingleMemberGroup,
    /// Notice: `quiesce.dev/run-once-per` on a pod without annotation hooks.
    RunOnceIgnored,
    /// Notice: the pod stays frozen while its file-system-backup volumes upload.
    FsBackupFreeze,
}

/// How serious a finding is, serialized in lower case (`error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingSeverity {
    /// A problem that stops a hook or a rule (exit code 1).
    Error,
    /// A problem whose hook or rule still applies, adjusted (exit code 1 too).
    Warning,
    /// A notice: worth knowing, nothing wrong.
    Info,
}

impl Finding {
    /// A finding without location.
    pub fn new(kind: FindingKind, severity: FindingSeverity, message: impl Into<String>) -> Self {
        Finding {
            kind,
            severity,
            location: None,
            message: message.into(),
        }
    }

    /// An `info` notice.
    pub fn notice(kind: FindingKind, message: impl Into<String>) -> Self {
        Finding::new(kind, FindingSeverity::Info, message)
    }

    /// The finding, located at `location`.
    pub(super) fn at(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }
}

/// Counts over the whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Pods looked at.
    pub pods: usize,
    /// Pods in the backup with at least one hook they run themselves.
    pub pods_with_hooks: usize,
    /// Pods looked at but not listed (no hooks, no Velero hook keys, no problem).
    pub pods_not_listed: usize,
    /// Hooks that would run (or fail in place), over all pods in the backup; a run-once hook
    /// counts once, in the pod that runs it.
    pub hooks: usize,
    /// Problems, top-level and per pod.
    pub problems: usize,
    /// Notices, top-level and per pod.
    pub notices: usize,
}

impl Report {
    /// Whether anything is wrong (exit code 1).
    pub fn has_problems(&self) -> bool {
        self.summary.problems > 0
    }
}

/// How a run-once hook is decided for one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOnceView {
    /// The pod's owner, e.g. `StatefulSet/db`; `null` when it has none (run-once has no
    /// effect then, and the hook runs in the pod).
    pub owner: Option<String>,
    /// The `run-on` selector as written, if any.
    pub run_on: Option<String>,
    /// Whether this pod runs the hook. When false the hook is skipped here. True as well
    /// when no pod can be chosen: the plugin then runs it in every pod, as Velero does.
    pub runs_here: bool,
    /// `namespace/name` of the pod that runs it; `null` when none is chosen (or no owner).
    pub runner: Option<String>,
    /// Why, in English: the choice's reason, or why there is no choice.
    pub reason: String,
}

/// A consistency group with its members in this backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupReport {
    /// The members' namespace (a group never spans namespaces).
    pub namespace: String,
    /// `quiesce.dev/group`, or the `group` of the first rule that applies.
    pub name: String,
    /// Names of the member pods in the backup, sorted.
    pub members: Vec<String>,
    /// When the members' pre hooks run.
    pub pre: String,
    /// When the members' post hooks run.
    pub post: String,
}

/// A volume group (Velero 1.17+): claims of one namespace sharing a value of the Backup's
/// `volumeGroupSnapshotLabelKey`, snapshotted together when Velero reaches the first of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeGroupReport {
    /// The claims' namespace.
    pub namespace: String,
    /// The label value shared by its claims.
    pub name: String,
    /// The label key (the Backup's, else Velero's default `velero.io/volume-group`).
    pub label_key: String,
    /// Its claims, sorted.
    pub claims: Vec<String>,
    /// Pods in the backup that mount one of them and have hooks, sorted.
    pub pods: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names explain/mod.rs documents, which scripts match on.
    #[test]
    fn finding_kinds_and_severities_serialize_to_their_documented_names() {
        let kinds = [
            (FindingKind::HookDefect, "hook-defect"),
            (FindingKind::Annotation, "annotation"),
            (FindingKind::Policy, "policy"),
            (FindingKind::MaxFreeze, "max-freeze"),
            (FindingKind::DoubleQuiesce, "double-quiesce"),
            (FindingKind::Config, "config"),
            (FindingKind::ConfigMap, "config-map"),
            (FindingKind::Backup, "backup"),
            (FindingKind::Skipped, "skipped"),
            (FindingKind::VeleroHooks, "velero-hooks"),
            (FindingKind::PulledIn, "pulled-in"),
            (FindingKind::LateFreeze, "late-freeze"),
            (FindingKind::NoConfigMap, "no-config-map"),
            (FindingKind::BackupSpecHooks, "backup-spec-hooks"),
            (FindingKind::IgnoredObject, "ignored-object"),
            (FindingKind::ClaimsUnknown, "claims-unknown"),
            (FindingKind::TemplateValueUnknown, "template-value-unknown"),
            (FindingKind::SingleMemberGroup, "single-member-group"),
            (FindingKind::RunOnceIgnored, "run-once-ignored"),
            (FindingKind::FsBackupFreeze, "fs-backup-freeze"),
        ];
        for (kind, name) in kinds {
            assert_eq!(serde_json::to_value(kind).unwrap(), name);
        }
        let severities = [
            (FindingSeverity::Error, "error"),
            (FindingSeverity::Warning, "warning"),
            (FindingSeverity::Info, "info"),
        ];
        for (severity, name) in severities {
            assert_eq!(serde_json::to_value(severity).unwrap(), name);
        }
    }
}
