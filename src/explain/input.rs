//! The edge of `explain`: reading [`Inputs`] from YAML files or from a cluster, and the
//! [`BackupScope`] from a Backup file or flags. Only reads (list/get); never execs.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use serde::de::DeserializeOwned;
use serde::Deserialize as _;
use serde_json::Value;

use crate::engine::plan::BackupInfo;
use crate::hooks::{LabelSelector, Operator, Requirement};
use crate::kube_api::{self, Kube, CONFIG_LABEL_SELECTOR};

use super::cli::{parse_selector, Options};
use super::report::{BackupScope, Finding, FindingKind, FindingSeverity, Inputs, PluginConfig};
use super::ExplainError;

/// The backup scope from `--backup-file` or the filter flags. The Backup's namespace, when
/// the file does not say or there is none, is Velero's: Velero only runs Backups there.
pub fn backup_scope(options: &Options) -> Result<BackupScope, ExplainError> {
    let Some(path) = &options.backup_file else {
        let label_selectors = match &options.selector {
            Some(text) => vec![(text.clone(), parse_selector(text)?)],
            None => Vec::new(),
        };
        return Ok(BackupScope {
            info: BackupInfo {
                namespace: options.velero_namespace.clone(),
                included_namespaces: options.include_namespaces.clone(),
                excluded_namespaces: options.exclude_namespaces.clone(),
                ..BackupInfo::default()
            },
            label_selectors,
            ..BackupScope::default()
        });
    };
    let text = read_text(path)?;
    let value: Value = serde_yaml_ng::from_str(&text).map_err(|e| input(path, e.to_string()))?;
    let mut scope = backup_scope_from_value(&value).map_err(|reason| input(path, reason))?;
    if scope.info.namespace.is_empty() {
        scope.info.namespace = options.velero_namespace.clone();
    }
    Ok(scope)
}

/// Reads a `velero.io/v1` Backup object.
pub fn backup_scope_from_value(value: &Value) -> Result<BackupScope, String> {
    let api_version = value.get("apiVersion").and_then(Value::as_str);
    let kind = value.get("kind").and_then(Value::as_str);
    if api_version != Some("velero.io/v1") || kind != Some("Backup") {
        return Err(format!(
            "expected a velero.io/v1 Backup, found apiVersion {api_version:?} kind {kind:?}"
        ));
    }
    let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    let info = BackupInfo::from_json(&bytes);
    let spec = value.get("spec").cloned().unwrap_or(Value::Null);

    let mut label_selectors = Vec::new();
    if let Some(selector) = spec.get("labelSelector").filter(|v| !v.is_null()) {
        label_selectors.push(label_selector(selector, "spec.labelSelector")?);
    }
    for (i, selector) in strings_or_values(&spec, "orLabelSelectors")
        .iter()
        .enumerate()
    {
        label_selectors.push(label_selector(
            selector,
            &format!("spec.orLabelSelectors[{i}]"),
        )?);
    }

    let included = resource_list(&spec, "includedResources");
    let excluded = resource_list(&spec, "excludedResources");
    let takes = |names: &[&str]| {
        let named = |list: &[String]| {
            list.iter()
                .any(|r| names.contains(&r.to_lowercase().as_str()))
        };
        let included_ok =
            included.is_empty() || included.iter().any(|r| r == "*") || named(&included);
        included_ok && !named(&excluded)
    };
    let pods_excluded = (!takes(&["pods", "pod", "po"]))
        .then(|| "the backup's resource filters leave out pods".to_owned());
    let volumes_excluded = if spec.get("includeClusterResources") == Some(&Value::Bool(false)) {
        Some("the backup sets includeClusterResources: false".to_owned())
    } else if !takes(&["persistentvolumes", "persistentvolume", "pv"]) {
        Some("the backup's resource filters leave out persistentvolumes".to_owned())
    } else {
        None
    };
    let has_spec_hooks = spec
        .pointer("/hooks/resources")
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty());
    Ok(BackupScope {
        name: value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        info,
        label_selectors,
        pods_excluded,
        volumes_excluded,
        has_spec_hooks,
    })
}

fn strings_or_values(spec: &Value, key: &str) -> Vec<Value> {
    spec.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn resource_list(spec: &Value, key: &str) -> Vec<String> {
    strings_or_values(spec, key)
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// A `metav1.LabelSelector` from a Backup, with its rendering for the report.
fn label_selector(value: &Value, path: &str) -> Result<(String, LabelSelector), String> {
    let parsed: meta::LabelSelector = serde_json::from_value(value.clone())
        .map_err(|e| format!("{path} is not a label selector: {e}"))?;
    let mut selector = LabelSelector {
        match_labels: parsed.match_labels.unwrap_or_default(),
        match_expressions: Vec::new(),
    };
    let mut text: Vec<String> = selector
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for expression in parsed.match_expressions.unwrap_or_default() {
        let operator = Operator::parse(&expression.operator).ok_or_else(|| {
            format!(
                "{path}: operator {:?} is not In, NotIn, Exists or DoesNotExist",
                expression.operator
            )
        })?;
        let values = expression.values.unwrap_or_default();
        text.push(match operator {
            Operator::In => format!("{} in ({})", expression.key, values.join(",")),
            Operator::NotIn => format!("{} notin ({})", expression.key, values.join(",")),
            Operator::Exists => expression.key.clone(),
            Operator::DoesNotExist => format!("!{}", expression.key),
        });
        selector.match_expressions.push(Requirement {
            key: expression.key,
            operator,
            values,
        });
    }
    Ok((text.join(","), selector))
}

/// Reads pods, claims, volumes and the plugin ConfigMap from YAML files (`-` = stdin).
pub fn read_files(
    paths: &[impl AsRef<Path>],
    velero_namespace: &str,
) -> Result<Inputs, ExplainError> {
    let mut inputs = Inputs::default();
    let mut config_maps = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let text = read_text(path)?;
        for (n, document) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let value = Value::deserialize(document)
                .map_err(|e| input(path, format!("document {}: {e}", n + 1)))?;
            collect(path, n + 1, value, &mut inputs, &mut config_maps)?;
        }
    }
    let candidates = config_maps
        .into_iter()
        .filter(|cm| {
            let namespace = cm.metadata.namespace.as_deref().unwrap_or(velero_namespace);
            let labelled = is_plugin_config_map(cm);
            if !labelled && has_config_key(cm) {
                inputs.notices.push(Finding::notice(
                    FindingKind::IgnoredObject,
                    format!(
                        "ConfigMap {} has a config.yaml but not the labels {CONFIG_LABEL_SELECTOR}: \
                         quiesce would not read it",
                        cm.metadata.name.as_deref().unwrap_or_default()
                    ),
                ));
            } else if labelled && namespace != velero_namespace {
                inputs.notices.push(Finding::notice(
                    FindingKind::IgnoredObject,
                    format!(
                        "ConfigMap {namespace}/{} is not in Velero's namespace {velero_namespace}: \
                         quiesce would not read it",
                        cm.metadata.name.as_deref().unwrap_or_default()
                    ),
                ));
            }
            labelled && namespace == velero_namespace
        })
        .collect();
    choose_config_map(&mut inputs, candidates, velero_namespace);
    Ok(inputs)
}

fn collect(
    path: &Path,
    document: usize,
    value: Value,
    inputs: &mut Inputs,
    config_maps: &mut Vec<ConfigMap>,
) -> Result<(), ExplainError> {
    let at = |reason: String| input(path, format!("document {document}: {reason}"));
    match value {
        Value::Null => Ok(()),
        Value::Array(items) => items
            .into_iter()
            .try_for_each(|v| collect(path, document, v, inputs, config_maps)),
        object => {
            let kind = object
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let api_version = object
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            match (api_version.as_str(), kind.as_str()) {
                (_, "List")
                | (
                    "v1",
                    "PodList"
                    | "ConfigMapList"
                    | "PersistentVolumeClaimList"
                    | "PersistentVolumeList",
                ) => {
                    let items = object
                        .get("items")
                        .cloned()
                        .unwrap_or(Value::Array(Vec::new()));
                    collect(path, document, items, inputs, config_maps)
                }
                ("v1", "Pod") => {
                    let mut pod: Pod = typed(object, "Pod").map_err(at)?;
                    pod.metadata
                        .namespace
                        .get_or_insert_with(|| "default".to_owned());
                    inputs.pods.push(pod);
                    Ok(())
                }
                ("v1", "ConfigMap") => {
                    config_maps.push(typed(object, "ConfigMap").map_err(at)?);
                    Ok(())
                }
                ("v1", "PersistentVolumeClaim") => {
                    let mut claim: PersistentVolumeClaim =
                        typed(object, "PersistentVolumeClaim").map_err(at)?;
                    claim
                        .metadata
                        .namespace
                        .get_or_insert_with(|| "default".to_owned());
                    inputs.claims.push(claim);
                    Ok(())
                }
                ("v1", "PersistentVolume") => {
                    inputs
                        .volumes
                        .push(typed(object, "PersistentVolume").map_err(at)?);
                    Ok(())
                }
                ("", _) | (_, "") => Err(at("has no apiVersion or kind".to_owned())),
                _ => {
                    let name = object
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let hint = if kind == "Backup" {
                        "; pass a Backup with --backup-file"
                    } else {
                        "; explain reads Pods (the pods it creates carry the hooks)"
                    };
                    inputs.notices.push(Finding::notice(
                        FindingKind::IgnoredObject,
                        format!(
                            "{}: {api_version} {kind} {name} ignored{hint}",
                            path.display()
                        ),
                    ));
                    Ok(())
                }
            }
        }
    }
}

fn typed<T: DeserializeOwned>(value: Value, kind: &str) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| format!("not a valid {kind}: {e}"))
}

fn is_plugin_config_map(cm: &ConfigMap) -> bool {
    let labels = cm.metadata.labels.clone().unwrap_or_default();
    labels.contains_key("velero.io/plugin-config")
        && labels.get("quiesce.dev/pod-hooks").map(String::as_str) == Some("BackupItemActionV2")
}

fn has_config_key(cm: &ConfigMap) -> bool {
    cm.data
        .as_ref()
        .is_some_and(|d| d.contains_key(crate::hooks::CONFIG_KEY))
}

/// The first plugin ConfigMap by name, as the plugin picks it; several are a problem.
fn choose_config_map(inputs: &mut Inputs, mut config_maps: Vec<ConfigMap>, namespace: &str) {
    config_maps.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let names: Vec<String> = config_maps
        .iter()
        .map(|cm| {
            format!(
                "{namespace}/{}",
                cm.metadata.name.as_deref().unwrap_or_default()
            )
        })
        .collect();
    let Some(chosen) = config_maps.into_iter().next() else {
        return;
    };
    if names.len() > 1 {
        inputs.problems.push(Finding::new(
            FindingKind::ConfigMap,
            FindingSeverity::Warning,
            format!(
                "several ConfigMaps match {CONFIG_LABEL_SELECTOR:?} ({}); quiesce uses the first \
                 by name, {}",
                names.join(", "),
                names[0]
            ),
        ));
    }
    let data: BTreeMap<String, String> = chosen.data.unwrap_or_default();
    inputs.config = PluginConfig::from_config_map(names[0].clone(), &data);
}

fn read_text(path: &Path) -> Result<String, ExplainError> {
    let mut text = String::new();
    let result = if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    result.map_err(|e| input(path, e.to_string()))?;
    Ok(text)
}

fn input(path: &Path, reason: String) -> ExplainError {
    ExplainError::Input {
        path: path.display().to_string(),
        reason,
    }
}

/// Reads pods (of the backup's literal namespaces, else all), claims, volumes and the plugin
/// ConfigMap from the cluster of `kubeconfig`. Only list calls, each bounded by
/// [`kube_api::READ_TIMEOUT`].
pub async fn read_cluster(
    kubeconfig: &Path,
    velero_namespace: &str,
    backup: &BackupScope,
) -> Result<Inputs, ExplainError> {
    let kube = Kube::from_kubeconfig_file(kubeconfig);
    kube.connect().await.map_err(|error| match error {
        kube_api::Error::NoClient(reason) => ExplainError::Cluster(reason),
        other => ExplainError::Cluster(other.to_string()),
    })?;
    let namespaces = literal_namespaces(&backup.info.included_namespaces);
    let mut inputs = Inputs::default();

    for namespace in &namespaces {
        let namespace = namespace.as_deref();
        let pods = kube.list_pods(namespace).await;
        inputs.pods.extend(listed(pods, "pods", namespace)?);
    }

    let config_maps = kube
        .list_config_maps(velero_namespace, CONFIG_LABEL_SELECTOR)
        .await;
    let config_maps = listed(config_maps, "ConfigMaps", Some(velero_namespace))?;
    choose_config_map(&mut inputs, config_maps, velero_namespace);

    // Claims and volumes only refine the freeze moment: without them claims count as bound.
    for namespace in &namespaces {
        let namespace = namespace.as_deref();
        let claims = kube.list_claims(namespace).await;
        match listed(claims, "persistentvolumeclaims", namespace) {
            Ok(claims) => inputs.claims.extend(claims),
            Err(error) => optional_list_failed(&mut inputs, error),
        }
    }
    match listed(kube.list_volumes().await, "persistentvolumes", None) {
        Ok(volumes) => inputs.volumes = volumes,
        Err(error) => optional_list_failed(&mut inputs, error),
    }
    Ok(inputs)
}

/// `[Some(ns)…]` when every included namespace is a literal name, else `[None]` (all).
fn literal_namespaces(included: &[String]) -> Vec<Option<String>> {
    let literal = !included.is_empty()
        && included
            .iter()
            .all(|ns| !ns.contains(['*', '?', '[', '{', '\\']));
    if literal {
        let mut names: Vec<String> = included.to_vec();
        names.sort();
        names.dedup();
        names.into_iter().map(Some).collect()
    } else {
        vec![None]
    }
}

/// A claim or volume list that failed: a 404 means the API does not serve it (say
/// nothing); anything else is worth a notice.
fn optional_list_failed(inputs: &mut Inputs, error: ListError) {
    if error.code == Some(404) {
        return;
    }
    inputs.notices.push(Finding::notice(
        FindingKind::ClaimsUnknown,
        format!(
            "{}; claims are assumed bound and their volumes backed up",
            error.message
        ),
    ));
}

/// A failed list call: the API's status code, if it answered, and the message.
struct ListError {
    code: Option<u16>,
    message: String,
}

impl From<ListError> for ExplainError {
    fn from(error: ListError) -> Self {
        ExplainError::Cluster(error.message)
    }
}

/// A list call's items, or a [`ListError`] naming `what` was listed where.
fn listed<K>(
    result: Result<Vec<K>, kube_api::Error>,
    what: &str,
    namespace: Option<&str>,
) -> Result<Vec<K>, ListError> {
    result.map_err(|error| {
        let place = match namespace {
            Some(ns) => format!("in namespace {ns}"),
            None => "in all namespaces".to_owned(),
        };
        ListError {
            code: error.code(),
            message: format!("cannot list {what} {place}: {error}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn backup(spec: Value) -> BackupScope {
        backup_scope_from_value(&json!({
            "apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": "b", "namespace": "velero"}, "spec": spec
        }))
        .unwrap()
    }

    #[test]
    fn a_backup_without_cluster_resources_leaves_volumes_out() {
        let scope = backup(json!({"includeClusterResources": false}));
        assert!(scope
            .volumes_excluded
            .unwrap()
            .contains("includeClusterResources"));
        assert!(backup(json!({})).volumes_excluded.is_none());
        assert!(backup(json!({"excludedResources": ["PersistentVolumes"]}))
            .volumes_excluded
            .is_some());
    }

    #[test]
    fn resource_filters_can_leave_pods_out() {
        assert!(backup(json!({"includedResources": ["deployments"]}))
            .pods_excluded
            .is_some());
        assert!(backup(json!({"includedResources": ["*"]}))
            .pods_excluded
            .is_none());
        assert!(backup(json!({"excludedResources": ["pods"]}))
            .pods_excluded
            .is_some());
    }

    #[test]
    fn label_selectors_and_or_selectors_are_read_and_rendered() {
        let scope = backup(json!({
            "labelSelector": {"matchLabels": {"app": "db"}},
            "orLabelSelectors": [{"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}],
            "hooks": {"resources": [{"name": "x"}]}
        }));
        let texts: Vec<&str> = scope
            .label_selectors
            .iter()
            .map(|(t, _)| t.as_str())
            .collect();
        assert_eq!(texts, ["app=db", "tier in (a,b)"]);
        assert!(scope.has_spec_hooks);
        assert_eq!(scope.name.as_deref(), Some("b"));
    }

    #[test]
    fn anything_but_a_backup_is_refused() {
        let error = backup_scope_from_value(&json!({"apiVersion": "v1", "kind": "Pod"}));
        assert!(error
            .unwrap_err()
            .contains("expected a velero.io/v1 Backup"));
    }

    #[test]
    fn literal_namespaces_are_listed_one_by_one_and_globs_need_all() {
        assert_eq!(
            literal_namespaces(&["shop".into(), "db".into()]),
            [Some("db".to_owned()), Some("shop".to_owned())]
        );
        assert_eq!(literal_namespaces(&["shop-*".into()]), [None]);
        assert_eq!(literal_namespaces(&[]), [None]);
    }
}
