//! The examples in `plugin-manifest/` read by the plugin's own code: the example ConfigMap's
//! rules load with no problem, and the example app's pod gets exactly the seed's fsfreeze hooks
//! from its annotations. (`scripts/check-manifests.sh` checks kinds and fields of every file.)

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use quiesce::hooks::{self, Config, HookSource, OnError, Phase, DEFAULT_TIMEOUT};
use serde::Deserialize;

/// A file of `plugin-manifest/`.
fn manifest(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("plugin-manifest")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a multi-document YAML file with the given kind, as `T`.
fn documents_of_kind<T: for<'de> Deserialize<'de>>(text: &str, kind: &str) -> Vec<T> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|document| serde_yaml_ng::Value::deserialize(document).unwrap())
        .filter(|value| value.get("kind").and_then(|k| k.as_str()) == Some(kind))
        .map(|value| serde_yaml_ng::from_value(value).unwrap())
        .collect()
}

/// The one ConfigMap of `configmap.yaml`.
fn example_config_map() -> ConfigMap {
    let mut maps: Vec<ConfigMap> = documents_of_kind(&manifest("configmap.yaml"), "ConfigMap");
    assert_eq!(maps.len(), 1, "configmap.yaml holds one ConfigMap");
    maps.remove(0)
}

/// The pod the example Deployment creates, as the plugin receives it.
fn example_pod() -> Pod {
    let deployments: Vec<Deployment> =
        documents_of_kind(&manifest("example-app.yaml"), "Deployment");
    assert_eq!(
        deployments.len(),
        1,
        "example-app.yaml holds one Deployment"
    );
    let deployment = &deployments[0];
    let template = deployment.spec.clone().unwrap().template;
    let mut metadata = template.metadata.unwrap_or_default();
    metadata.namespace = deployment.metadata.namespace.clone();
    metadata.name = Some("nginx-deployment-5d8f7c9b6-x2x7q".to_owned());
    Pod {
        metadata,
        spec: template.spec,
        status: None,
    }
}

#[test]
fn the_example_config_map_is_found_by_the_plugins_labels_in_veleros_namespace() {
    let map = example_config_map();

    assert_eq!(map.metadata.name.as_deref(), Some("quiesce-pod-hooks"));
    assert_eq!(map.metadata.namespace.as_deref(), Some("velero"));
    let labels = map.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels.get("velero.io/plugin-config").map(String::as_str),
        Some("")
    );
    assert_eq!(
        labels.get("quiesce.dev/pod-hooks").map(String::as_str),
        Some("BackupItemActionV2")
    );
}

#[test]
fn the_example_rules_load_with_no_problem() {
    let data = example_config_map().data.unwrap_or_default();

    let (config, problems) = Config::from_configmap_data(&data);

    let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(problems.is_empty(), "{problems:#?}");
    let names: Vec<&str> = config.rules().iter().map(|r| r.name()).collect();
    assert_eq!(
        names,
        [
            "fsfreeze-data",
            "mysql-read-lock",
            "postgres-checkpoint",
            "orders-group",
            "postgres-dump-once"
        ]
    );
    let orders = &config.rules()[3];
    assert_eq!(orders.group(), Some("orders"));
    assert_eq!(orders.hooks(Phase::Pre)[0].execution.retries, 3);
    assert!(orders.hooks(Phase::Pre)[0].execution.kill_on_timeout);
    let dump = &config.rules()[4];
    assert_eq!(
        dump.run_once().and_then(|r| r.run_on_text.as_deref()),
        Some("role=primary")
    );
    let mysql = &config.rules()[1];
    assert_eq!(
        mysql
            .held_session()
            .unwrap()
            .1
            .execution
            .hold_until_output
            .as_deref(),
        Some("quiesce-frozen")
    );
    assert!(mysql.hooks(Phase::Post)[0].ends_session);
    let fsfreeze = &config.rules()[0];
    assert_eq!(
        fsfreeze.hooks(Phase::Pre)[0].command,
        ["/sbin/fsfreeze", "--freeze", "/data"]
    );
    assert_eq!(fsfreeze.hooks(Phase::Post)[0].on_error, OnError::Continue);
}

#[test]
fn the_example_rules_select_pods_by_namespace_and_labels() {
    let data = example_config_map().data.unwrap_or_default();
    let (config, _) = Config::from_configmap_data(&data);
    let rule = |name: &str| config.rules().iter().find(|r| r.name() == name).unwrap();
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };

    let frozen = labels(&[("quiesce.dev/fsfreeze", "true")]);
    assert!(rule("fsfreeze-data").applies_to("shop", &frozen));
    assert!(!rule("fsfreeze-data").applies_to("kube-system", &frozen));
    let primary = labels(&[("app.kubernetes.io/name", "mysql"), ("role", "primary")]);
    assert!(rule("mysql-read-lock").applies_to("shop-eu", &primary));
    let replica = labels(&[("app.kubernetes.io/name", "mysql"), ("role", "replica")]);
    assert!(!rule("mysql-read-lock").applies_to("shop-eu", &replica));
}

#[test]
fn the_example_app_freezes_and_thaws_in_its_fsfreeze_container() {
    let pod = example_pod();

    let pre = hooks::resolve(&pod, Phase::Pre, &Config::default());
    let post = hooks::resolve(&pod, Phase::Post, &Config::default());

    for (resolution, flag) in [(&pre, "--freeze"), (&post, "--unfreeze")] {
        assert!(resolution.warnings.is_empty(), "{:?}", resolution.warnings);
        assert!(resolution.skipped.is_none());
        assert_eq!(resolution.hooks.len(), 1);
        let hook = &resolution.hooks[0];
        assert_eq!(hook.source, HookSource::Annotation);
        assert_eq!(hook.container, "fsfreeze");
        assert_eq!(hook.command, ["/sbin/fsfreeze", flag, "/var/log/nginx"]);
        assert_eq!(hook.on_error, OnError::Fail);
        assert_eq!(hook.timeout, DEFAULT_TIMEOUT);
        assert!(hook.defect.is_none(), "{:?}", hook.defect);
    }
}

#[test]
fn the_example_app_mounts_the_frozen_volume_in_both_containers() {
    let pod = example_pod();
    let spec = pod.spec.unwrap();

    for name in ["nginx", "fsfreeze"] {
        let container = spec.containers.iter().find(|c| c.name == name).unwrap();
        let mounts = container.volume_mounts.clone().unwrap_or_default();
        assert!(
            mounts
                .iter()
                .any(|m| m.name == "nginx-logs" && m.mount_path == "/var/log/nginx"),
            "{name} mounts nginx-logs at /var/log/nginx"
        );
    }
    let fsfreeze = spec
        .containers
        .iter()
        .find(|c| c.name == "fsfreeze")
        .unwrap();
    let privileged = fsfreeze
        .security_context
        .as_ref()
        .and_then(|s| s.privileged);
    assert_eq!(
        privileged,
        Some(true),
        "fsfreeze needs a privileged container"
    );
}
