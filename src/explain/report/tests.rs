use serde_json::json;

use super::*;

fn pod(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).unwrap()
}

fn annotated(name: &str, annotations: serde_json::Value) -> Pod {
    pod(json!({
        "metadata": {"name": name, "namespace": "shop", "annotations": annotations},
        "spec": {"containers": [{"name": "db"}], "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": format!("data-{name}")}}
        ]},
        "status": {"phase": "Running"}
    }))
}

fn freeze() -> serde_json::Value {
    json!({
        "pre.hook.backup.quiesce.dev/command": "[\"/sbin/fsfreeze\",\"--freeze\",\"/data\"]",
        "post.hook.backup.quiesce.dev/command": "[\"/sbin/fsfreeze\",\"--unfreeze\",\"/data\"]"
    })
}

fn run(pods: Vec<Pod>) -> Report {
    explain(
        &Inputs {
            pods,
            ..Inputs::default()
        },
        &BackupScope::default(),
    )
}

#[test]
fn a_clean_annotated_pod_freezes_before_its_claims_and_has_no_problem() {
    let report = run(vec![annotated("db-0", freeze())]);
    assert!(!report.has_problems(), "{report:#?}");
    let pod = &report.pods[0];
    assert_eq!(
        pod.phases.pre.moment.as_deref(),
        Some("before the first volume snapshot of claim data-db-0")
    );
    assert_eq!(
        pod.phases.pre.hooks[0].hook_command,
        "[/sbin/fsfreeze --freeze /data]"
    );
    assert_eq!(pod.phases.pre.hooks[0].container, "db");
    assert_eq!(pod.phases.pre.hooks[0].timeout, "30s");
    assert_eq!(pod.max_freeze, "10m0s");
    assert_eq!(report.summary.hooks, 2);
}

#[test]
fn pods_without_hooks_are_counted_not_listed() {
    let report = run(vec![annotated("web", json!({}))]);
    assert!(report.pods.is_empty());
    assert_eq!(report.summary.pods_not_listed, 1);
}

#[test]
fn velero_and_quiesce_keys_together_are_a_double_quiesce_problem() {
    let mut annotations = freeze();
    annotations["pre.hook.backup.velero.io/command"] = json!("/bin/true");
    let report = run(vec![annotated("db-0", annotations)]);
    assert!(report.has_problems());
    assert_eq!(report.pods[0].problems[0].kind, "double-quiesce");
}

#[test]
fn only_velero_keys_are_a_migration_notice_not_a_problem() {
    let report = run(vec![annotated(
        "db-0",
        json!({"hook.backup.velero.io/command": "/bin/true"}),
    )]);
    assert!(!report.has_problems());
    assert_eq!(report.pods[0].notices[0].kind, "velero-hooks");
    assert!(report.pods[0].notices[0].message.contains("quiesce.dev"));
}

#[test]
fn a_hook_after_a_failing_fail_hook_is_not_reached() {
    let (config, problems) = Config::from_yaml(
        "hooks:\n  resources:\n  - name: r\n    pre:\n    - exec: {container: nosuch, command: [a]}\n    - exec: {command: [b]}\n",
    );
    assert!(problems.is_empty(), "{problems:?}");
    let inputs = Inputs {
        pods: vec![annotated("db-0", json!({}))],
        config: PluginConfig {
            origin: Some("velero/q".into()),
            config,
            problems: Vec::new(),
        },
        ..Inputs::default()
    };
    let report = explain(&inputs, &BackupScope::default());
    let hooks = &report.pods[0].phases.pre.hooks;
    assert!(hooks[0].defect.is_some() && hooks[0].reached);
    assert!(!hooks[1].reached);
    assert_eq!(report.pods[0].problems[0].kind, "hook-defect");
}

#[test]
fn an_unbound_claim_moves_the_freeze_to_the_pods_own_item() {
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "data-db-0", "namespace": "shop"}, "spec": {}
    }))
    .unwrap();
    let inputs = Inputs {
        pods: vec![annotated("db-0", freeze())],
        claims: vec![claim],
        ..Inputs::default()
    };
    let report = explain(&inputs, &BackupScope::default());
    assert_eq!(
        report.pods[0].phases.pre.moment.as_deref(),
        Some("at the pod's own item: claims not seen first, snapshots may precede the freeze")
    );
    assert_eq!(report.pods[0].notices[0].kind, "late-freeze");
}

#[test]
fn a_pod_sharing_a_claim_with_a_selected_pod_is_pulled_in_despite_the_selector() {
    let mut selected = annotated("db-0", freeze());
    selected.metadata.labels = Some([("app".to_owned(), "db".to_owned())].into());
    let mut other = annotated("db-0-reader", freeze());
    other.spec.as_mut().unwrap().volumes.as_mut().unwrap()[0]
        .persistent_volume_claim
        .as_mut()
        .unwrap()
        .claim_name = "data-db-0".into();
    let lonely = annotated("web", freeze());
    let backup = BackupScope {
        label_selectors: vec![(
            "app=db".into(),
            LabelSelector {
                match_labels: [("app".to_owned(), "db".to_owned())].into(),
                ..LabelSelector::default()
            },
        )],
        ..BackupScope::default()
    };
    let inputs = Inputs {
        pods: vec![selected, other, lonely],
        ..Inputs::default()
    };
    let report = explain(&inputs, &backup);
    let by_name = |n: &str| report.pods.iter().find(|p| p.name == n).unwrap();
    assert!(by_name("db-0").skipped.is_none());
    assert!(by_name("db-0-reader").skipped.is_none());
    assert_eq!(by_name("db-0-reader").notices[0].kind, "pulled-in");
    assert!(by_name("web")
        .skipped
        .as_deref()
        .unwrap()
        .contains("selector"));
}

#[test]
fn fs_backup_volumes_defer_the_thaw_to_their_pod_volume_backups() {
    let mut annotations = freeze();
    annotations["backup.velero.io/backup-volumes"] = json!("data");
    let report = run(vec![annotated("db-0", annotations)]);
    assert_eq!(
        report.pods[0].phases.post.moment.as_deref(),
        Some("after its PodVolumeBackups finish (fs-backup volumes: data)")
    );
}

// ----- governance -----

fn with_config(pods: Vec<Pod>, yaml: &str) -> Report {
    let (config, problems) = Config::from_yaml(yaml);
    let inputs = Inputs {
        pods,
        config: PluginConfig {
            origin: Some("velero/q".into()),
            config,
            problems,
        },
        ..Inputs::default()
    };
    explain(&inputs, &BackupScope::default())
}

#[test]
fn a_refused_annotation_hook_is_a_policy_warning_and_not_listed_as_a_hook() {
    let mut annotations = freeze();
    annotations["post.hook.backup.quiesce.dev/container"] = json!("istio-proxy");
    let mut pod = annotated("db-0", annotations);
    pod.spec
        .as_mut()
        .unwrap()
        .containers
        .push(serde_json::from_value(json!({"name": "istio-proxy"})).unwrap());
    let report = run(vec![pod]);
    assert!(report.has_problems());
    let pod = &report.pods[0];
    assert!(pod.phases.pre.hooks.is_empty() && pod.phases.post.hooks.is_empty());
    assert_eq!(report.summary.hooks, 0);
    let kinds: Vec<(&str, &str)> = pod
        .problems
        .iter()
        .map(|f| (f.kind.as_str(), f.severity.as_str()))
        .collect();
    assert_eq!(kinds, [("policy", "warning"), ("policy", "warning")]);
    assert_eq!(
        pod.problems[1].location.as_deref(),
        Some("post.hook.backup.quiesce.dev/command")
    );
    assert!(
        pod.problems[1]
            .message
            .starts_with("the post hook of annotation post.hook.backup.quiesce.dev/command"),
        "{}",
        pod.problems[1].message
    );
    assert!(pod.problems[0]
        .message
        .contains("run together or not at all"));
}

#[test]
fn an_invalid_governance_is_a_config_error_and_refuses_annotation_hooks() {
    let report = with_config(
        vec![annotated("db-0", freeze())],
        "governance:\n  annotationHooks:\n    deniednamespaces: [kube-system]\n",
    );
    assert_eq!(report.problems[0].kind, "config");
    assert_eq!(report.problems[0].severity, "error");
    assert!(report.problems[0].message.contains("did you mean"));
    let pod = &report.pods[0];
    assert_eq!(pod.problems.len(), 2);
    assert!(pod.problems.iter().all(|f| f.kind == "policy"));
    assert!(pod.problems[0]
        .message
        .contains("governance in config.yaml has errors"));
}
