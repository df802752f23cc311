//! Loading the plugin's hook rules from its ConfigMap: [`load_hook_config`].
//!
//! Velero's convention for plugin configuration (DESIGN §2): a ConfigMap in Velero's namespace
//! labelled `velero.io/plugin-config: ""` and `quiesce.dev/pod-hooks: BackupItemActionV2`. Its
//! `config.yaml` is parsed by [`Config::from_configmap_data`]; every problem is logged naming
//! the ConfigMap. Nothing here is fatal: without a readable ConfigMap the default (empty)
//! configuration applies and annotation hooks keep working.
//!
//! Meant to be called once per plugin process (the caller keeps the result).

use crate::hooks::{Config, Severity};

use super::Kube;

/// Selects the plugin ConfigMap: Velero's plugin-config label plus the plugin's name and kind.
pub const CONFIG_LABEL_SELECTOR: &str =
    "velero.io/plugin-config,quiesce.dev/pod-hooks=BackupItemActionV2";

/// Velero's default namespace, where its plugin ConfigMaps live unless `VELERO_NAMESPACE`
/// says otherwise.
pub const DEFAULT_VELERO_NAMESPACE: &str = "velero";

/// Reads the hook rules from the plugin ConfigMap in `namespace`, logging what it finds:
/// - no ConfigMap → info line, default configuration;
/// - API unreachable / no client / listing refused → error line, default configuration;
/// - several ConfigMaps → warn line, the first by name is used;
/// - each configuration problem → warn (warning) or error (error) line naming the ConfigMap.
pub async fn load_hook_config(kube: &Kube, namespace: &str) -> Config {
    let listed = kube
        .list_config_maps(namespace, CONFIG_LABEL_SELECTOR)
        .await;
    let mut config_maps = match listed {
        Ok(config_maps) => config_maps,
        Err(error) => {
            tracing::error!(
                namespace,
                labelSelector = CONFIG_LABEL_SELECTOR,
                error = %error,
                "cannot read the plugin ConfigMap; hook rules are not loaded, annotation hooks still apply"
            );
            return Config::default();
        }
    };
    config_maps.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let names: Vec<String> = config_maps
        .iter()
        .map(|cm| cm.metadata.name.clone().unwrap_or_default())
        .collect();
    let Some(chosen) = config_maps.into_iter().next() else {
        tracing::info!(
            namespace,
            labelSelector = CONFIG_LABEL_SELECTOR,
            "no plugin ConfigMap found; only annotation hooks apply"
        );
        return Config::default();
    };
    let name = names.first().cloned().unwrap_or_default();
    let config_map = format!("{namespace}/{name}");
    if names.len() > 1 {
        tracing::warn!(
            configMap = config_map.as_str(),
            candidates = names.join(", ").as_str(),
            "several ConfigMaps match {CONFIG_LABEL_SELECTOR:?}; using the first by name, {config_map}"
        );
    }

    let (config, problems) = Config::from_configmap_data(&chosen.data.unwrap_or_default());
    for problem in &problems {
        let message = format!("plugin ConfigMap {config_map}: {problem}");
        match problem.severity {
            Severity::Warning => {
                tracing::warn!(configMap = config_map.as_str(), "{}", message)
            }
            Severity::Error => {
                tracing::error!(configMap = config_map.as_str(), "{}", message)
            }
        }
    }
    tracing::info!(
        configMap = config_map.as_str(),
        rules = config.rules().len(),
        problems = problems.len(),
        "loaded hook rules from the plugin ConfigMap"
    );
    config
}
