//! What quiesce needs to know of a pod and of a Backup, read once from their JSON: the pod's
//! identity, hooks, claims, file-system-backup volumes and max-freeze; the Backup's identity
//! and the filters that decide whether a pod's item will be backed up. Pure: no I/O.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, Pod};
use serde::Deserialize;

use crate::hooks::{
    self, format_go_duration, parse_go_duration, Config, LabelSelector, NamespaceFilter, Operator,
    Owner, Phase, PodRef, Requirement, Resolution,
};

/// Annotation that sets how long a pod may stay frozen before the watchdog thaws it.
pub const MAX_FREEZE_ANNOTATION: &str = "quiesce.dev/max-freeze";
/// Max-freeze when neither annotation nor ConfigMap sets one.
pub const DEFAULT_MAX_FREEZE: Duration = Duration::from_secs(10 * 60);
/// Velero's opt-in list of volumes for file-system backup.
pub const FS_BACKUP_VOLUMES_ANNOTATION: &str = "backup.velero.io/backup-volumes";
/// Velero's opt-out list when the Backup defaults volumes to file-system backup.
pub const FS_BACKUP_EXCLUDES_ANNOTATION: &str = "backup.velero.io/backup-volumes-excludes";
/// Velero's label that keeps an item out of every backup.
pub const EXCLUDE_LABEL: &str = "velero.io/exclude-from-backup";
/// Velero's `--fs-backup-timeout` default: how long file-system backups of a Backup may take.
pub const DEFAULT_FS_BACKUP_TIMEOUT: Duration = Duration::from_secs(4 * 60 * 60);
/// The Backup annotation that overrides `--fs-backup-timeout` for one backup.
pub const POD_VOLUME_TIMEOUT_ANNOTATION: &str = "velero.io/pod-volume-timeout";

/// The parts of a `velero.io/v1` Backup that quiesce uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// `metadata.namespace` — Velero's namespace, where PodVolumeBackups live.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`, the key of the PodVolumeBackups' `velero.io/backup-uid` label.
    pub uid: String,
    /// `spec.defaultVolumesToFsBackup`.
    pub default_volumes_to_fs_backup: bool,
    /// `spec.includedNamespaces`.
    pub included_namespaces: Vec<String>,
    /// `spec.excludedNamespaces`.
    pub excluded_namespaces: Vec<String>,
    /// `status.phase`.
    pub phase: String,
    /// `spec.labelSelector` (`None`: not set).
    pub label_selector: Option<LabelSelector>,
    /// `spec.orLabelSelectors`.
    pub or_label_selectors: Vec<LabelSelector>,
    /// How long this backup's file-system backups may take: the Backup's
    /// `velero.io/pod-volume-timeout` annotation, else Velero's `--fs-backup-timeout`.
    pub fs_backup_timeout: Duration,
    /// `spec.volumeGroupSnapshotLabelKey` (Velero 1.17+ always fills it in; `None` before).
    pub volume_group_label_key: Option<String>,
    /// `metadata.creationTimestamp`, as the API server wrote it (RFC 3339).
    pub created: Option<String>,
}

impl Default for BackupInfo {
    /// A Backup with nothing set: Velero's defaults.
    fn default() -> Self {
        BackupInfo::from_json(b"{}")
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct BackupJson {
    metadata: BackupMeta,
    spec: BackupSpec,
    status: BackupStatus,
}

#[derive(Deserialize, Default)]
#[serde(default)]
#[serde(rename_all = "camelCase")]
struct BackupMeta {
    namespace: String,
    name: String,
    uid: String,
    annotations: std::collections::BTreeMap<String, String>,
    creation_timestamp: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct BackupSpec {
    default_volumes_to_fs_backup: Option<bool>,
    included_namespaces: Option<Vec<String>>,
    excluded_namespaces: Option<Vec<String>>,
    label_selector: Option<SelectorJson>,
    or_label_selectors: Option<Vec<SelectorJson>>,
    volume_group_snapshot_label_key: Option<String>,
}

/// A `metav1.LabelSelector` as Velero sends it (already validated by Velero).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct SelectorJson {
    match_labels: std::collections::BTreeMap<String, String>,
    match_expressions: Vec<ExpressionJson>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ExpressionJson {
    key: String,
    operator: String,
    values: Vec<String>,
}

impl SelectorJson {
    /// The selector, or `None` if an operator is unknown (then it selects nothing we can
    /// predict, and the caller treats the backup as selecting every pod).
    fn into_selector(self) -> Option<LabelSelector> {
        let match_expressions = self
            .match_expressions
            .into_iter()
            .map(|e| {
                Some(Requirement {
                    operator: Operator::parse(&e.operator)?,
                    key: e.key,
                    values: e.values,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(LabelSelector {
            match_labels: self.match_labels,
            match_expressions,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BackupStatus {
    phase: Option<String>,
}

impl BackupInfo {
    /// Reads the Backup JSON Velero sends with every call. Velero's own object, so anything
    /// unreadable is treated as absent rather than failing the item. File-system backups time
    /// out after [`DEFAULT_FS_BACKUP_TIMEOUT`] unless the Backup says otherwise.
    pub fn from_json(bytes: &[u8]) -> BackupInfo {
        Self::from_json_with(bytes, DEFAULT_FS_BACKUP_TIMEOUT)
    }

    /// [`BackupInfo::from_json`], with Velero's `--fs-backup-timeout` as the plugin's command
    /// line gives it: the default when the Backup has no valid `velero.io/pod-volume-timeout`
    /// (Velero itself falls back to its flag then).
    pub fn from_json_with(bytes: &[u8], server_fs_backup_timeout: Duration) -> BackupInfo {
        let json: BackupJson = serde_json::from_slice(bytes).unwrap_or_default();
        let fs_backup_timeout = json
            .metadata
            .annotations
            .get(POD_VOLUME_TIMEOUT_ANNOTATION)
            .and_then(|value| parse_go_duration(value).ok())
            .filter(|d| !d.negative && !d.magnitude.is_zero())
            .map_or(server_fs_backup_timeout, |d| d.magnitude);
        BackupInfo {
            fs_backup_timeout,
            volume_group_label_key: json
                .spec
                .volume_group_snapshot_label_key
                .filter(|key| !key.is_empty()),
            created: json.metadata.creation_timestamp,
            namespace: json.metadata.namespace,
            name: json.metadata.name,
            uid: json.metadata.uid,
            default_volumes_to_fs_backup: json.spec.default_volumes_to_fs_backup.unwrap_or(false),
            included_namespaces: json.spec.included_namespaces.unwrap_or_default(),
            excluded_namespaces: json.spec.excluded_namespaces.unwrap_or_default(),
            phase: json.status.phase.unwrap_or_default(),
            label_selector: json
                .spec
                .label_selector
                .and_then(SelectorJson::into_selector),
            or_label_selectors: json
                .spec
                .or_label_selectors
                .unwrap_or_default()
                .into_iter()
                .filter_map(SelectorJson::into_selector)
                .collect(),
        }
    }

    /// Whether the Backup's label selectors select a pod with `labels` when Velero lists
    /// pods (pods pulled into a block through a shared claim skip this check in Velero).
    pub fn selects(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        match &self.label_selector {
            Some(selector) => selector.matches(labels),
            None if !self.or_label_selectors.is_empty() => {
                self.or_label_selectors.iter().any(|s| s.matches(labels))
            }
            None => true,
        }
    }

    /// `namespace/name`, as logged in the `backup` field.
    pub fn qualified_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether Velero is finalizing (it then re-runs actions for async operations only).
    pub fn is_finalizing(&self) -> bool {
        self.phase.starts_with("Finalizing")
    }
}

/// Everything quiesce decided about one pod when it first saw it.
#[derive(Debug, Clone)]
pub struct PodPlan {
    /// Namespace and name.
    pub pod: PodRef,
    /// `metadata.uid` (or `namespace/name` when absent).
    pub uid: String,
    /// Pre hooks, with the warnings and skip reason of their resolution.
    pub pre: Resolution,
    /// Post hooks, likewise.
    pub post: Resolution,
    /// Names of the PersistentVolumeClaims the pod mounts.
    pub claims: BTreeSet<String>,
    /// Volumes Velero backs up with file-system backup (each gets a PodVolumeBackup).
    pub fs_backup_volumes: BTreeSet<String>,
    /// How long the pod may stay frozen.
    pub max_freeze: Duration,
    /// A problem with `quiesce.dev/max-freeze`, to log at warning level.
    pub max_freeze_warning: Option<MaxFreezeWarning>,
    /// The consistency group (`quiesce.dev/group` or a rule's `group`).
    pub group: Option<String>,
    /// The pod's controlling owner, for run-once hooks.
    pub owner: Option<Owner>,
}

impl PodPlan {
    /// Resolves the pod's hooks under `config` and reads its volumes as `backup` sees them.
    pub fn new(pod: &Pod, backup: &BackupInfo, config: &Config) -> PodPlan {
        let pod_ref = PodRef::of(pod);
        let uid = pod
            .metadata
            .uid
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| pod_ref.to_string());
        let fs_backup_volumes = fs_backup_volumes(pod, backup.default_volumes_to_fs_backup);
        // A pod with file-system-backup volumes stays frozen while its files upload: as long
        // as Velero lets the upload take, unless someone chose otherwise.
        let default_max_freeze = config
            .max_freeze()
            .unwrap_or(if fs_backup_volumes.is_empty() {
                DEFAULT_MAX_FREEZE
            } else {
                backup.fs_backup_timeout
            });
        let (max_freeze, max_freeze_warning) = max_freeze(pod, &pod_ref, default_max_freeze);
        PodPlan {
            uid,
            pre: hooks::resolve(pod, Phase::Pre, config),
            post: hooks::resolve(pod, Phase::Post, config),
            claims: claims_of(pod),
            fs_backup_volumes,
            max_freeze,
            max_freeze_warning,
            group: hooks::group_of(pod, config),
            owner: hooks::owner_of(pod),
            pod: pod_ref,
        }
    }

    /// Whether the pod has any hook at all (most pods do not: they cost one lookup).
    pub fn has_hooks(&self) -> bool {
        !self.pre.hooks.is_empty() || !self.post.hooks.is_empty()
    }
}

/// Whether Velero will back up this pod's item in `backup`: the two checks Velero's per-item
/// inclusion re-applies to pods pulled into a block (DESIGN §3).
pub fn pod_in_backup(pod: &Pod, backup: &BackupInfo) -> bool {
    let excluded_by_label = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(EXCLUDE_LABEL))
        .is_some_and(|v| v == "true");
    if excluded_by_label {
        return false;
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    // Patterns Velero accepted are valid globs; should one not compile, include the pod
    // (the watchdog and Shutdown still thaw it).
    NamespaceFilter::new(&backup.included_namespaces, &backup.excluded_namespaces)
        .map_or(true, |f| f.includes(namespace))
}

/// The names of the PersistentVolumeClaims `pod` mounts.
pub fn claims_of(pod: &Pod) -> BTreeSet<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.clone())
        .collect()
}

/// The volumes Velero gives a PodVolumeBackup, decided as Velero decides it: the opt-in
/// annotation, or — when the Backup defaults to file-system backup — every volume that can
/// hold data, minus the opt-out annotation.
fn fs_backup_volumes(pod: &Pod, default_volumes_to_fs_backup: bool) -> BTreeSet<String> {
    let annotation = |key: &str| -> BTreeSet<String> {
        pod.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let volumes = pod.spec.iter().flat_map(|s| s.volumes.iter().flatten());
    if !default_volumes_to_fs_backup {
        let wanted = annotation(FS_BACKUP_VOLUMES_ANNOTATION);
        return volumes
            .filter(|v| wanted.contains(&v.name))
            .map(|v| v.name.clone())
            .collect();
    }
    let excluded = annotation(FS_BACKUP_EXCLUDES_ANNOTATION);
    volumes
        .filter(|v| !excluded.contains(&v.name))
        // Velero never file-system-backs-up these: they hold no data of the pod's own.
        .filter(|v| {
            v.host_path.is_none()
                && v.secret.is_none()
                && v.config_map.is_none()
                && v.projected.is_none()
                && v.downward_api.is_none()
                && !v.name.starts_with("default-token")
        })
        .map(|v| v.name.clone())
        .collect()
}

/// A `quiesce.dev/max-freeze` annotation that could not be used, and the default that applies
/// instead. `Display` names the pod first, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxFreezeWarning {
    /// The pod.
    pub pod: PodRef,
    /// The annotation's value, verbatim.
    pub value: String,
    /// What is wrong with it (`is not positive`, `is not a duration (…)`).
    pub problem: String,
    /// The max-freeze used instead.
    pub instead: Duration,
}

impl MaxFreezeWarning {
    /// What is wrong, without the `pod namespace/name: ` that `Display` starts with: for
    /// callers that show the pod apart, such as `explain`.
    pub fn without_pod(&self) -> String {
        format!(
            "annotation {MAX_FREEZE_ANNOTATION} = {:?} {}; using {}",
            self.value,
            self.problem,
            format_go_duration(self.instead)
        )
    }
}

impl std::fmt::Display for MaxFreezeWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pod {}: {}", self.pod, self.without_pod())
    }
}

/// The pod's max-freeze: its annotation, else `default` (the ConfigMap's `maxFreeze`, else the
/// fs-backup timeout for a pod with file-system-backup volumes, else 10m).
fn max_freeze(
    pod: &Pod,
    pod_ref: &PodRef,
    default: Duration,
) -> (Duration, Option<MaxFreezeWarning>) {
    let Some(value) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(MAX_FREEZE_ANNOTATION))
    else {
        return (default, None);
    };
    let problem = match parse_go_duration(value) {
        Ok(d) if !d.negative && !d.magnitude.is_zero() => return (d.magnitude, None),
        Ok(_) => "is not positive".to_owned(),
        Err(e) => format!("is not a duration ({e})"),
    };
    (
        default,
        Some(MaxFreezeWarning {
            pod: pod_ref.clone(),
            value: value.clone(),
            problem,
            instead: default,
        }),
    )
}

/// The claim a PersistentVolume is bound to, as (namespace, name).
pub fn claim_of_volume(pv: &PersistentVolume) -> Option<(String, String)> {
    let claim = pv.spec.as_ref()?.claim_ref.as_ref()?;
    Some((claim.namespace.clone()?, claim.name.clone()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    fn volumes_pod(annotations: serde_json::Value) -> Pod {
        pod(json!({
            "metadata": {"name": "p", "namespace": "ns", "annotations": annotations},
            "spec": {"containers": [{"name": "c"}], "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data-p"}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "x"}},
                {"name": "host", "hostPath": {"path": "/var"}},
                {"name": "token", "projected": {"sources": []}}
            ]}
        }))
    }

    fn names(set: &BTreeSet<String>) -> Vec<&str> {
        set.iter().map(String::as_str).collect()
    }

    #[test]
    fn backup_fields_are_read_and_missing_ones_default() {
        let b = BackupInfo::from_json(
            br#"{"metadata":{"name":"b","namespace":"velero","uid":"u1"},"spec":{"defaultVolumesToFsBackup":true,"excludedNamespaces":["kube-*"]},"status":{"phase":"InProgress"}}"#,
        );
        assert_eq!(b.qualified_name(), "velero/b");
        assert_eq!(b.uid, "u1");
        assert!(b.default_volumes_to_fs_backup);
        assert_eq!(b.excluded_namespaces, ["kube-*"]);
        assert!(!b.is_finalizing());
        assert_eq!(BackupInfo::from_json(b"not json"), BackupInfo::default());
        assert!(
            BackupInfo::from_json(br#"{"status":{"phase":"FinalizingPartiallyFailed"}}"#)
                .is_finalizing()
        );
    }

    #[test]
    fn claims_are_the_pvc_volumes() {
        let p = volumes_pod(json!({}));
        assert_eq!(names(&claims_of(&p)), ["data-p"]);
    }

    #[test]
    fn fs_backup_volumes_follow_the_opt_in_annotation() {
        let p = volumes_pod(json!({FS_BACKUP_VOLUMES_ANNOTATION: "scratch, data,missing"}));
        assert_eq!(names(&fs_backup_volumes(&p, false)), ["data", "scratch"]);
        assert!(fs_backup_volumes(&volumes_pod(json!({})), false).is_empty());
    }

    #[test]
    fn fs_backup_by_default_takes_data_volumes_minus_the_opt_out() {
        let p = volumes_pod(json!({FS_BACKUP_EXCLUDES_ANNOTATION: "scratch"}));
        assert_eq!(names(&fs_backup_volumes(&p, true)), ["data"]);
        let p = volumes_pod(json!({}));
        assert_eq!(names(&fs_backup_volumes(&p, true)), ["data", "scratch"]);
    }

    #[test]
    fn max_freeze_from_annotation_or_default_with_a_warning_when_bad() {
        let with = |v: &str| {
            pod(
                json!({"metadata": {"name": "p", "namespace": "ns", "annotations": {MAX_FREEZE_ANNOTATION: v}}}),
            )
        };
        let r = PodRef {
            namespace: "ns".into(),
            name: "p".into(),
        };
        assert_eq!(
            max_freeze(&with("90s"), &r, DEFAULT_MAX_FREEZE),
            (Duration::from_secs(90), None)
        );
        let (d, warning) = max_freeze(&with("soon"), &r, DEFAULT_MAX_FREEZE);
        assert_eq!(d, DEFAULT_MAX_FREEZE);
        let warning = warning.unwrap().to_string();
        assert!(warning.starts_with("pod ns/p: annotation"), "{warning}");
        assert!(warning.contains("\"soon\" is not a duration"), "{warning}");
        assert!(warning.ends_with("using 10m0s"), "{warning}");
        let (d, warning) = max_freeze(&with("-5m"), &r, DEFAULT_MAX_FREEZE);
        assert_eq!(d, DEFAULT_MAX_FREEZE);
        assert!(warning.unwrap().to_string().contains("not positive"));
    }

    #[test]
    fn the_configmap_max_freeze_is_the_default_an_annotation_overrides() {
        let with = |v: &str| {
            pod(
                json!({"metadata": {"name": "p", "namespace": "ns", "annotations": {MAX_FREEZE_ANNOTATION: v}}}),
            )
        };
        let without = pod(json!({"metadata": {"name": "p", "namespace": "ns"}}));
        let r = PodRef {
            namespace: "ns".into(),
            name: "p".into(),
        };
        let five = Duration::from_secs(300);
        assert_eq!(
            max_freeze(&without, &r, five),
            (Duration::from_secs(300), None)
        );
        assert_eq!(
            max_freeze(&with("30s"), &r, five),
            (Duration::from_secs(30), None)
        );
        let (d, warning) = max_freeze(&with("bad"), &r, five);
        assert_eq!(d, Duration::from_secs(300));
        assert!(warning.unwrap().without_pod().ends_with("using 5m0s"));
    }

    #[test]
    fn pods_excluded_by_label_or_namespace_are_not_in_the_backup() {
        let backup = BackupInfo {
            excluded_namespaces: vec!["kube-*".into()],
            ..BackupInfo::default()
        };
        let labelled = pod(
            json!({"metadata": {"name": "p", "namespace": "shop", "labels": {EXCLUDE_LABEL: "true"}}}),
        );
        let system = pod(json!({"metadata": {"name": "p", "namespace": "kube-system"}}));
        let normal = pod(
            json!({"metadata": {"name": "p", "namespace": "shop", "labels": {EXCLUDE_LABEL: "false"}}}),
        );
        assert!(!pod_in_backup(&labelled, &backup));
        assert!(!pod_in_backup(&system, &backup));
        assert!(pod_in_backup(&normal, &backup));
    }

    #[test]
    fn the_claim_of_a_volume_comes_from_claim_ref() {
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": "pv-1"},
            "spec": {"claimRef": {"namespace": "shop", "name": "data-db-0"}}
        }))
        .unwrap();
        assert_eq!(
            claim_of_volume(&pv),
            Some(("shop".into(), "data-db-0".into()))
        );
        let unbound: PersistentVolume =
            serde_json::from_value(json!({"metadata": {"name": "pv-2"}, "spec": {}})).unwrap();
        assert_eq!(claim_of_volume(&unbound), None);
    }

    #[test]
    fn an_fs_backup_pod_stays_frozen_as_long_as_velero_lets_its_upload_take() {
        let with = |annotations: serde_json::Value| volumes_pod(annotations);
        let fs = json!({FS_BACKUP_VOLUMES_ANNOTATION: "data"});
        let backup = BackupInfo::from_json(br#"{"metadata":{"name":"b"}}"#);
        assert_eq!(backup.fs_backup_timeout, DEFAULT_FS_BACKUP_TIMEOUT);
        let config = Config::default();
        assert_eq!(
            PodPlan::new(&with(fs.clone()), &backup, &config).max_freeze,
            Duration::from_secs(4 * 3600)
        );
        assert_eq!(
            PodPlan::new(&with(json!({})), &backup, &config).max_freeze,
            DEFAULT_MAX_FREEZE,
            "without fs-backup volumes the default stays 10m"
        );
        // Velero's flag as the plugin's command line gives it, and the Backup's own override.
        let server =
            BackupInfo::from_json_with(br#"{"metadata":{"name":"b"}}"#, Duration::from_secs(3600));
        assert_eq!(
            PodPlan::new(&with(fs.clone()), &server, &config).max_freeze,
            Duration::from_secs(3600)
        );
        let annotated = BackupInfo::from_json_with(
            br#"{"metadata":{"name":"b","annotations":{"velero.io/pod-volume-timeout":"90m"}}}"#,
            Duration::from_secs(3600),
        );
        assert_eq!(annotated.fs_backup_timeout, Duration::from_secs(90 * 60));
        let garbled = BackupInfo::from_json_with(
            br#"{"metadata":{"name":"b","annotations":{"velero.io/pod-volume-timeout":"soon"}}}"#,
            Duration::from_secs(3600),
        );
        assert_eq!(garbled.fs_backup_timeout, Duration::from_secs(3600));
        // An explicit max-freeze still wins.
        let mut explicit = fs.clone();
        explicit[MAX_FREEZE_ANNOTATION] = json!("20m");
        assert_eq!(
            PodPlan::new(&with(explicit), &backup, &config).max_freeze,
            Duration::from_secs(1200)
        );
        let (configured, _) = Config::from_configmap_data(&std::collections::BTreeMap::from([(
            crate::hooks::CONFIG_KEY.to_owned(),
            "maxFreeze: 5m\n".to_owned(),
        )]));
        assert_eq!(
            PodPlan::new(&with(fs), &backup, &configured).max_freeze,
            Duration::from_secs(300)
        );
    }

    #[test]
    fn the_volume_group_label_key_and_creation_time_are_read() {
        let b = BackupInfo::from_json(
            br#"{"metadata":{"name":"b","creationTimestamp":"2026-12-06T10:00:00Z"},"spec":{"volumeGroupSnapshotLabelKey":"velero.io/volume-group"}}"#,
        );
        assert_eq!(
            b.volume_group_label_key.as_deref(),
            Some("velero.io/volume-group")
        );
        assert_eq!(b.created.as_deref(), Some("2026-12-06T10:00:00Z"));
        let old = BackupInfo::from_json(
            br#"{"metadata":{"name":"b"},"spec":{"volumeGroupSnapshotLabelKey":""}}"#,
        );
        assert_eq!(old.volume_group_label_key, None);
    }
}
