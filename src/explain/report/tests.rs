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
    assert_eq!(report.pods[0].problems[0].kind, FindingKind::DoubleQuiesce);
}

#[test]
fn only_velero_keys_are_a_migration_notice_not_a_problem() {
    let report = run(vec![annotated(
        "db-0",
        json!({"hook.backup.velero.io/command": "/bin/true"}),
    )]);
    assert!(!report.has_problems());
    assert_eq!(report.pods[0].notices[0].kind, FindingKind::VeleroHooks);
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
    assert_eq!(report.pods[0].problems[0].kind, FindingKind::HookDefect);
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
    assert_eq!(report.pods[0].notices[0].kind, FindingKind::LateFreeze);
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
    assert_eq!(
        by_name("db-0-reader").notices[0].kind,
        FindingKind::PulledIn
    );
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
    let kinds: Vec<_> = pod.problems.iter().map(|f| (f.kind, f.severity)).collect();
    let refused = (FindingKind::Policy, FindingSeverity::Warning);
    assert_eq!(kinds, [refused, refused]);
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
    assert_eq!(report.problems[0].kind, FindingKind::Config);
    assert_eq!(report.problems[0].severity, FindingSeverity::Error);
    assert!(report.problems[0].message.contains("did you mean"));
    let pod = &report.pods[0];
    assert_eq!(pod.problems.len(), 2);
    assert!(pod.problems.iter().all(|f| f.kind == FindingKind::Policy));
    assert!(pod.problems[0]
        .message
        .contains("governance in config.yaml has errors"));
}

// ----- run once per owner, groups, templates -----

/// A pod of StatefulSet `db` with run-once annotation hooks; `labels` and `phase` vary.
fn replica(name: &str, labels: serde_json::Value, phase: &str, run_on: Option<&str>) -> Pod {
    let mut annotations = freeze();
    annotations["quiesce.dev/run-once-per"] = json!("owner");
    if let Some(selector) = run_on {
        annotations["quiesce.dev/run-on"] = json!(selector);
    }
    pod(json!({
        "metadata": {"name": name, "namespace": "shop", "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db",
                                 "uid": "uid-db", "controller": true}]},
        "spec": {"containers": [{"name": "db"}]},
        "status": {"phase": phase}
    }))
}

fn runs_here(report: &Report, name: &str) -> bool {
    let pod = report.pods.iter().find(|p| p.name == name).unwrap();
    pod.phases.pre.hooks[0].runs_here()
}

#[test]
fn a_pod_that_is_not_running_is_no_run_once_candidate() {
    let report = run(vec![
        replica("db-0", json!({}), "Pending", None),
        replica("db-1", json!({}), "Running", None),
    ]);
    assert!(!runs_here(&report, "db-0"));
    assert!(runs_here(&report, "db-1"));
    let pending = &report.pods[0].phases.pre.hooks[0];
    assert_eq!(
        pending.run_once.as_ref().unwrap().runner.as_deref(),
        Some("shop/db-1")
    );
    assert_eq!(report.summary.hooks, 2);
    assert_eq!(report.summary.pods_with_hooks, 1);
}

#[test]
fn a_primary_left_out_of_the_backup_does_not_run_and_the_fallback_says_so() {
    let report = run(vec![
        replica(
            "db-0",
            json!({"role": "primary", "velero.io/exclude-from-backup": "true"}),
            "Running",
            Some("role=primary"),
        ),
        replica(
            "db-1",
            json!({"role": "replica"}),
            "Running",
            Some("role=primary"),
        ),
    ]);
    let db1 = report.pods.iter().find(|p| p.name == "db-1").unwrap();
    let run_once = db1.phases.pre.hooks[0].run_once.as_ref().unwrap();
    assert!(run_once.runs_here);
    assert_eq!(
        run_once.reason,
        "no pod matches run-on, so the lowest ordinal or oldest pod runs instead"
    );
}

#[test]
fn a_defect_in_a_hook_another_pod_runs_counts_but_blocks_nothing_here() {
    let mut annotations = freeze();
    annotations["quiesce.dev/run-once-per"] = json!("owner");
    annotations["pre.hook.backup.quiesce.dev/command"] = json!("[\"dump\", \"{{pod.nmae}}\"]");
    let mut db0 = replica("db-0", json!({}), "Running", None);
    let mut db1 = replica("db-1", json!({}), "Running", None);
    db0.metadata.annotations = serde_json::from_value(annotations.clone()).unwrap();
    db1.metadata.annotations = serde_json::from_value(annotations).unwrap();
    let report = run(vec![db0, db1]);
    let db1 = report.pods.iter().find(|p| p.name == "db-1").unwrap();
    assert!(!db1.phases.pre.hooks[0].runs_here());
    assert!(db1.phases.pre.hooks[0].defect.is_some());
    assert_eq!(db1.problems[0].kind, FindingKind::HookDefect);
    assert!(report.has_problems());
    assert_eq!(db1.phases.pre.hooks[0].rendered_command, None);
}

#[test]
fn run_once_per_on_a_pod_with_only_rule_hooks_is_a_notice() {
    let mut pod = annotated("cache-0", json!({"quiesce.dev/run-once-per": "owner"}));
    pod.metadata.labels = Some([("app".to_owned(), "cache".to_owned())].into());
    let report = with_config(
        vec![pod],
        "hooks:\n  resources:\n  - name: r\n    labelSelector: {matchLabels: {app: cache}}\n    pre:\n    - exec: {command: [sync]}\n",
    );
    let pod = &report.pods[0];
    assert_eq!(pod.notices[0].kind, FindingKind::RunOnceIgnored);
    assert!(pod.phases.pre.hooks[0].run_once.is_none());
    assert!(!report.has_problems());
}

#[test]
fn a_group_counts_only_its_members_in_the_backup() {
    let mut grouped = freeze();
    grouped["quiesce.dev/group"] = json!("orders");
    let mut out = annotated("db-1", grouped.clone());
    out.metadata.labels = Some(
        [(
            "velero.io/exclude-from-backup".to_owned(),
            "true".to_owned(),
        )]
        .into(),
    );
    let report = run(vec![annotated("db-0", grouped), out]);
    assert_eq!(report.groups.len(), 1);
    assert_eq!(report.groups[0].members, ["db-0"]);
    assert_eq!(
        report.notices.last().unwrap().kind,
        FindingKind::SingleMemberGroup
    );
    // A group of one changes nothing about the pod's own moments.
    assert_eq!(
        report.pods[0].phases.pre.moment.as_deref(),
        Some("before the first volume snapshot of claim data-db-0")
    );
}

#[test]
fn a_templated_stdin_is_shown_as_written_and_rendered() {
    let mut annotations = freeze();
    annotations["pre.hook.backup.quiesce.dev/stdin"] =
        json!("SELECT pg_backup_start('{{backup.name}}', true);");
    let inputs = Inputs {
        pods: vec![annotated("db-0", annotations)],
        ..Inputs::default()
    };
    let named = BackupScope {
        name: Some("nightly".into()),
        ..BackupScope::default()
    };
    let report = explain(&inputs, &named);
    let hook = &report.pods[0].phases.pre.hooks[0];
    assert_eq!(hook.rendered_command, None, "the command uses no variable");
    let execution = hook
        .execution
        .as_ref()
        .expect("stdin is an execution option");
    assert_eq!(
        execution.stdin.as_deref(),
        Some("SELECT pg_backup_start('{{backup.name}}', true);")
    );
    assert_eq!(
        execution.rendered_stdin.as_deref(),
        Some("SELECT pg_backup_start('nightly', true);")
    );
    let text = crate::explain::render::render_text(&report);
    assert!(
        text.contains("stdin: \"SELECT pg_backup_start('nightly', true);\"")
            && text.contains(
                "templated, as written: \"SELECT pg_backup_start('{{backup.name}}', true);\""
            ),
        "{text}"
    );

    let report = explain(&inputs, &BackupScope::default());
    let execution = report.pods[0].phases.pre.hooks[0]
        .execution
        .clone()
        .unwrap();
    assert_eq!(
        execution.rendered_stdin.as_deref(),
        Some("SELECT pg_backup_start('<backup.name>', true);")
    );
}

#[test]
fn templated_commands_render_with_the_backup_and_unknown_values_get_a_placeholder() {
    let mut annotations = freeze();
    annotations["pre.hook.backup.quiesce.dev/command"] =
        json!("[\"dump\", \"{{backup.namespace}}/{{backup.name}}/{{pod.name}}/{{phase}}\"]");
    let pods = vec![annotated("db-0", annotations)];
    let named = BackupScope {
        name: Some("nightly".into()),
        info: BackupInfo {
            namespace: "velero".into(),
            ..BackupInfo::default()
        },
        ..BackupScope::default()
    };
    let inputs = Inputs {
        pods,
        ..Inputs::default()
    };
    let report = explain(&inputs, &named);
    let hook = &report.pods[0].phases.pre.hooks[0];
    assert_eq!(
        hook.rendered_command.as_deref(),
        Some(&["dump".to_owned(), "velero/nightly/db-0/pre".to_owned()][..])
    );
    assert_eq!(hook.hook_command, "[dump velero/nightly/db-0/pre]");

    let report = explain(&inputs, &BackupScope::default());
    let hook = &report.pods[0].phases.pre.hooks[0];
    assert_eq!(
        hook.rendered_command.as_ref().unwrap()[1],
        "<backup.namespace>/<backup.name>/db-0/pre"
    );
    let kinds: Vec<FindingKind> = report.notices.iter().map(|n| n.kind).collect();
    assert_eq!(
        kinds,
        [
            FindingKind::NoConfigMap,
            FindingKind::TemplateValueUnknown,
            FindingKind::TemplateValueUnknown
        ]
    );
}

#[test]
fn with_no_candidate_every_pod_runs_the_run_once_hook_as_the_plugin_does() {
    let report = run(vec![
        replica("db-0", json!({}), "Pending", None),
        replica("db-1", json!({}), "Pending", None),
    ]);
    assert!(runs_here(&report, "db-0") && runs_here(&report, "db-1"));
    let run_once = report.pods[0].phases.pre.hooks[0]
        .run_once
        .as_ref()
        .unwrap();
    assert_eq!(run_once.runner, None);
    assert!(run_once.reason.contains("every pod of it runs the hook"));
    assert_eq!(report.summary.hooks, 4);
}

#[test]
fn a_pod_without_hooks_is_no_group_member() {
    let mut grouped = freeze();
    grouped["quiesce.dev/group"] = json!("orders");
    let report = run(vec![
        annotated("db-0", grouped),
        annotated("db-1", json!({"quiesce.dev/group": "orders"})),
    ]);
    assert_eq!(report.groups[0].members, ["db-0"]);
}
