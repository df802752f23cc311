//! Tests of resolution: precedence, order, containers, skipped pods.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::hooks::{
    OnError, PolicyRule, RefusalCause, DEFAULT_TIMEOUT, RUN_ONCE_PER_ANNOTATION, RUN_ON_ANNOTATION,
};

/// A running pod `shop/db-0` with containers `db` and `fsfreeze`, plus `extra` merged into
/// its JSON (metadata/spec/status keys are merged one level deep).
fn pod_with(extra: Value) -> Pod {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"namespace": "shop", "name": "db-0", "labels": {"app": "db"}},
        "spec": {"containers": [{"name": "db"}, {"name": "fsfreeze"}]},
        "status": {"phase": "Running"},
    });
    if let Value::Object(extra) = extra {
        for (section, fields) in extra {
            match (pod.get_mut(&section), fields) {
                (Some(Value::Object(target)), Value::Object(fields)) => target.extend(fields),
                (_, fields) => {
                    pod[section] = fields;
                }
            }
        }
    }
    serde_json::from_value(pod).unwrap()
}

fn annotated(annotations: Value) -> Pod {
    pod_with(json!({"metadata": {"annotations": annotations}}))
}

fn config(yaml: &str) -> Config {
    let (config, problems) = Config::from_yaml(yaml);
    assert!(
        problems
            .iter()
            .all(|p| p.severity == crate::hooks::Severity::Warning),
        "{problems:#?}"
    );
    config
}

fn argv(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn shop_db() -> PodRef {
    PodRef {
        namespace: "shop".to_owned(),
        name: "db-0".to_owned(),
    }
}

/// (name, index, container, argv[0]) of each resolved hook.
fn summary(resolution: &Resolution) -> Vec<(String, usize, String, String)> {
    resolution
        .hooks
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                h.index,
                h.container.clone(),
                h.command[0].clone(),
            )
        })
        .collect()
}

fn row(
    name: &str,
    index: usize,
    container: &str,
    command: &str,
) -> (String, usize, String, String) {
    (
        name.to_owned(),
        index,
        container.to_owned(),
        command.to_owned(),
    )
}

const TWO_RULES: &str = r#"
hooks:
  resources:
  - name: first
    pre:
    - exec: {command: [a1]}
    - exec: {command: [a2], container: fsfreeze}
    post:
    - exec: {command: [a3]}
  - name: second
    pre:
    - exec: {command: [b1], onError: Continue, timeout: 10s}
"#;

#[test]
fn pod_without_annotations_or_rules_gets_no_hooks() {
    let resolution = resolve(&pod_with(json!({})), Phase::Pre, &Config::default());
    assert_eq!(resolution, Resolution::default());
}

#[test]
fn annotation_hook_resolves_with_defaults() {
    let pod = annotated(json!({
        "pre.hook.backup.quiesce.dev/command": r#"["/sbin/fsfreeze","--freeze","/data"]"#
    }));
    let resolution = resolve(&pod, Phase::Pre, &Config::default());
    assert_eq!(
        resolution.hooks,
        vec![ResolvedHook {
            phase: Phase::Pre,
            source: HookSource::Annotation,
            name: "<from-annotation>".to_owned(),
            index: 0,
            container: "db".to_owned(),
            command: argv(&["/sbin/fsfreeze", "--freeze", "/data"]),
            on_error: OnError::Fail,
            timeout: DEFAULT_TIMEOUT,
            execution: Default::default(),
            run_once: None,
            defect: None,
            ends_session: None,
        }]
    );
    assert!(resolution.warnings.is_empty());
    assert_eq!(resolution.skipped, None);
}

#[test]
fn annotation_hook_reads_all_four_keys() {
    let pod = annotated(json!({
        "post.hook.backup.quiesce.dev/command": r#"["/sbin/fsfreeze","--unfreeze","/data"]"#,
        "post.hook.backup.quiesce.dev/container": "fsfreeze",
        "post.hook.backup.quiesce.dev/on-error": "Continue",
        "post.hook.backup.quiesce.dev/timeout": "2m",
    }));
    let hook = &resolve(&pod, Phase::Post, &Config::default()).hooks[0];
    assert_eq!(hook.phase, Phase::Post);
    assert_eq!(hook.container, "fsfreeze");
    assert_eq!(hook.on_error, OnError::Continue);
    assert_eq!(hook.timeout, Duration::from_secs(120));
    assert_eq!(hook.defect, None);
}

#[test]
fn annotation_warnings_are_returned_with_the_hook() {
    let pod = annotated(json!({
        "pre.hook.backup.quiesce.dev/command": "sync",
        "pre.hook.backup.quiesce.dev/on-error": "fail",
    }));
    let resolution = resolve(&pod, Phase::Pre, &Config::default());
    assert_eq!(resolution.hooks.len(), 1);
    assert_eq!(
        resolution.warnings,
        vec![AnnotationWarning::InvalidOnError {
            pod: shop_db(),
            key: "pre.hook.backup.quiesce.dev/on-error".to_owned(),
            value: "fail".to_owned(),
        }]
    );
}

#[test]
fn missing_named_container_is_a_defect_naming_pod_and_container() {
    let pod = annotated(json!({
        "pre.hook.backup.quiesce.dev/command": "sync",
        "pre.hook.backup.quiesce.dev/container": "nope",
    }));
    let hook = &resolve(&pod, Phase::Pre, &Config::default()).hooks[0];
    assert_eq!(hook.container, "nope");
    assert_eq!(
        hook.defect,
        Some(HookDefect::NoSuchContainer {
            pod: shop_db(),
            container: "nope".to_owned(),
        })
    );
    assert_eq!(
        hook.defect.as_ref().unwrap().to_string(),
        "no such container: \"nope\" (pod shop/db-0 has no container or native sidecar of that name)"
    );
}

#[test]
fn native_sidecar_init_container_is_accepted() {
    let pod = pod_with(json!({
        "metadata": {"annotations": {
            "pre.hook.backup.quiesce.dev/command": "sync",
            "pre.hook.backup.quiesce.dev/container": "freezer",
        }},
        "spec": {"initContainers": [{"name": "freezer", "restartPolicy": "Always"}]},
    }));
    let hook = &resolve(&pod, Phase::Pre, &Config::default()).hooks[0];
    assert_eq!(hook.container, "freezer");
    assert_eq!(hook.defect, None);
}

#[test]
fn regular_init_container_is_rejected() {
    let pod = pod_with(json!({
        "metadata": {"annotations": {
            "pre.hook.backup.quiesce.dev/command": "sync",
            "pre.hook.backup.quiesce.dev/container": "setup",
        }},
        "spec": {"initContainers": [{"name": "setup"}]},
    }));
    let hook = &resolve(&pod, Phase::Pre, &Config::default()).hooks[0];
    assert_eq!(
        hook.defect,
        Some(HookDefect::InitContainerNotSidecar {
            pod: shop_db(),
            container: "setup".to_owned(),
        })
    );
}

#[test]
fn init_container_is_never_the_default() {
    let pod = pod_with(json!({
        "metadata": {"annotations": {"pre.hook.backup.quiesce.dev/command": "sync"}},
        "spec": {"initContainers": [{"name": "freezer", "restartPolicy": "Always"}]},
    }));
    assert_eq!(
        resolve(&pod, Phase::Pre, &Config::default()).hooks[0].container,
        "db"
    );
}

#[test]
fn pod_without_containers_gives_defect_for_default_container() {
    let pod = pod_with(json!({
        "metadata": {"annotations": {"pre.hook.backup.quiesce.dev/command": "sync"}},
        "spec": {"containers": []},
    }));
    let hook = &resolve(&pod, Phase::Pre, &Config::default()).hooks[0];
    assert_eq!(hook.container, "");
    assert_eq!(
        hook.defect,
        Some(HookDefect::NoContainers { pod: shop_db() })
    );
}

#[test]
fn empty_json_array_annotation_is_a_defect_hook() {
    let pod = annotated(json!({"pre.hook.backup.quiesce.dev/command": "[]"}));
    let hook = &resolve(&pod, Phase::Pre, &Config::default()).hooks[0];
    assert!(hook.command.is_empty());
    assert_eq!(
        hook.defect.as_ref().unwrap().to_string(),
        "command is required: annotation pre.hook.backup.quiesce.dev/command of pod shop/db-0 is \
         an empty JSON array"
    );
}

#[test]
fn rules_apply_in_array_order_and_hooks_in_list_order() {
    let resolution = resolve(&pod_with(json!({})), Phase::Pre, &config(TWO_RULES));
    assert_eq!(
        summary(&resolution),
        vec![
            row("first", 0, "db", "a1"),
            row("first", 1, "fsfreeze", "a2"),
            row("second", 0, "db", "b1"),
        ]
    );
}

#[test]
fn spec_hooks_carry_source_on_error_and_timeout() {
    let resolution = resolve(&pod_with(json!({})), Phase::Pre, &config(TWO_RULES));
    let last = resolution.hooks.last().unwrap();
    assert_eq!(last.source, HookSource::Spec);
    assert_eq!(last.phase, Phase::Pre);
    assert_eq!(last.on_error, OnError::Continue);
    assert_eq!(last.timeout, Duration::from_secs(10));
    assert_eq!(resolution.hooks[0].on_error, OnError::Fail);
    assert_eq!(resolution.hooks[0].timeout, DEFAULT_TIMEOUT);
}

#[test]
fn post_phase_uses_post_lists_only() {
    let resolution = resolve(&pod_with(json!({})), Phase::Post, &config(TWO_RULES));
    assert_eq!(summary(&resolution), vec![row("first", 0, "db", "a3")]);
    assert_eq!(resolution.hooks[0].phase, Phase::Post);
}

#[test]
fn annotation_hook_replaces_rule_hooks_of_the_same_phase() {
    let pod = annotated(json!({"pre.hook.backup.quiesce.dev/command": "sync"}));
    let resolution = resolve(&pod, Phase::Pre, &config(TWO_RULES));
    assert_eq!(
        summary(&resolution),
        vec![row("<from-annotation>", 0, "db", "sync")]
    );
    assert_eq!(resolution.hooks[0].source, HookSource::Annotation);
}

#[test]
fn annotation_for_one_phase_keeps_rule_hooks_of_the_other_phase() {
    let pod = annotated(json!({"pre.hook.backup.quiesce.dev/command": "sync"}));
    let resolution = resolve(&pod, Phase::Post, &config(TWO_RULES));
    assert_eq!(summary(&resolution), vec![row("first", 0, "db", "a3")]);
}

#[test]
fn empty_annotation_command_keeps_rule_hooks() {
    let pod = annotated(json!({"pre.hook.backup.quiesce.dev/command": ""}));
    let resolution = resolve(&pod, Phase::Pre, &config(TWO_RULES));
    assert_eq!(resolution.hooks.len(), 3);
    assert_eq!(resolution.hooks[0].source, HookSource::Spec);
}

#[test]
fn velero_annotation_does_not_replace_rule_hooks() {
    let pod = annotated(json!({"pre.hook.backup.velero.io/command": "sync"}));
    let resolution = resolve(&pod, Phase::Pre, &config(TWO_RULES));
    assert_eq!(resolution.hooks.len(), 3);
    assert!(resolution
        .hooks
        .iter()
        .all(|h| h.source == HookSource::Spec));
}

#[test]
fn rule_hook_naming_missing_container_keeps_its_place_with_defect() {
    let cfg = config(
        "hooks:\n  resources:\n  - name: r\n    pre:\n    - exec: {command: [a], container: ghost}\n    - exec: {command: [b]}\n",
    );
    let resolution = resolve(&pod_with(json!({})), Phase::Pre, &cfg);
    assert_eq!(
        summary(&resolution),
        vec![row("r", 0, "ghost", "a"), row("r", 1, "db", "b")]
    );
    assert!(matches!(
        resolution.hooks[0].defect,
        Some(HookDefect::NoSuchContainer { .. })
    ));
    assert_eq!(resolution.hooks[1].defect, None);
}

#[test]
fn rules_for_other_namespaces_are_skipped() {
    let cfg = config(
        "hooks:\n  resources:\n  - name: other\n    includedNamespaces: [billing]\n    pre:\n    - exec: {command: [x]}\n  - name: mine\n    includedNamespaces: [\"sh*\"]\n    pre:\n    - exec: {command: [y]}\n",
    );
    let resolution = resolve(&pod_with(json!({})), Phase::Pre, &cfg);
    assert_eq!(summary(&resolution), vec![row("mine", 0, "db", "y")]);
}

#[test]
fn rules_are_matched_against_pod_labels() {
    let cfg = config(
        "hooks:\n  resources:\n  - name: web\n    labelSelector: {matchLabels: {app: web}}\n    pre:\n    - exec: {command: [x]}\n  - name: db\n    labelSelector:\n      matchExpressions: [{key: app, operator: In, values: [db, cache]}]\n    pre:\n    - exec: {command: [y]}\n",
    );
    let resolution = resolve(&pod_with(json!({})), Phase::Pre, &cfg);
    assert_eq!(summary(&resolution), vec![row("db", 0, "db", "y")]);
}

#[test]
fn rule_excluding_pods_resource_gives_no_hooks() {
    let cfg = config(
        "hooks:\n  resources:\n  - name: r\n    excludedResources: [pods]\n    pre:\n    - exec: {command: [x]}\n",
    );
    assert!(resolve(&pod_with(json!({})), Phase::Pre, &cfg)
        .hooks
        .is_empty());
}

#[test]
fn invalid_rule_contributes_no_hooks() {
    let (cfg, problems) = Config::from_yaml(
        "hooks:\n  resources:\n  - name: bad\n    pre:\n    - exec: {command: [x], timeout: \"5\"}\n  - name: good\n    pre:\n    - exec: {command: [y]}\n",
    );
    assert_eq!(problems.len(), 1);
    let resolution = resolve(&pod_with(json!({})), Phase::Pre, &cfg);
    assert_eq!(summary(&resolution), vec![row("good", 0, "db", "y")]);
}

#[test]
fn succeeded_pod_is_skipped_with_reason() {
    let pod = pod_with(json!({
        "metadata": {"annotations": {"pre.hook.backup.quiesce.dev/command": "sync"}},
        "status": {"phase": "Succeeded"},
    }));
    let resolution = resolve(&pod, Phase::Pre, &config(TWO_RULES));
    assert!(resolution.hooks.is_empty());
    let reason = resolution.skipped.unwrap();
    assert_eq!(
        reason,
        SkipReason::Terminated {
            pod: shop_db(),
            pod_phase: "Succeeded".to_owned(),
            phase: Phase::Pre,
        }
    );
    assert_eq!(
        reason.to_string(),
        "pod shop/db-0 is in phase Succeeded, so its pre hooks are skipped"
    );
}

#[test]
fn failed_pod_is_skipped() {
    let pod = pod_with(json!({"status": {"phase": "Failed"}}));
    let resolution = resolve(&pod, Phase::Post, &config(TWO_RULES));
    assert!(resolution.hooks.is_empty());
    assert!(matches!(
        resolution.skipped,
        Some(SkipReason::Terminated { ref pod_phase, phase: Phase::Post, .. }) if pod_phase == "Failed"
    ));
}

#[test]
fn pending_pod_is_not_skipped() {
    let pod = pod_with(json!({"status": {"phase": "Pending"}}));
    let resolution = resolve(&pod, Phase::Pre, &config(TWO_RULES));
    assert_eq!(resolution.skipped, None);
    assert_eq!(resolution.hooks.len(), 3);
}

#[test]
fn pod_without_status_is_not_skipped() {
    let mut pod = pod_with(json!({}));
    pod.status = None;
    assert_eq!(resolve(&pod, Phase::Pre, &config(TWO_RULES)).hooks.len(), 3);
}

#[test]
fn deleting_pod_is_skipped_with_reason() {
    let pod = pod_with(json!({
        "metadata": {
            "deletionTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {"pre.hook.backup.quiesce.dev/command": "sync"},
        },
    }));
    let resolution = resolve(&pod, Phase::Pre, &config(TWO_RULES));
    assert!(resolution.hooks.is_empty());
    assert_eq!(
        resolution
            .skipped
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("pod shop/db-0 is being deleted, so its pre hooks are skipped")
    );
}

#[test]
fn skipped_pod_reports_no_annotation_warnings() {
    let pod = pod_with(json!({
        "metadata": {"annotations": {
            "pre.hook.backup.quiesce.dev/command": "sync",
            "pre.hook.backup.quiesce.dev/timeout": "300",
        }},
        "status": {"phase": "Succeeded"},
    }));
    assert!(resolve(&pod, Phase::Pre, &Config::default())
        .warnings
        .is_empty());
}

#[test]
fn orphan_annotation_settings_warn_even_when_rules_apply() {
    let pod = annotated(json!({"pre.hook.backup.quiesce.dev/container": "fsfreeze"}));
    let resolution = resolve(&pod, Phase::Pre, &config(TWO_RULES));
    assert_eq!(resolution.hooks.len(), 3);
    assert!(matches!(
        resolution.warnings.as_slice(),
        [AnnotationWarning::IgnoredWithoutCommand { .. }]
    ));
}

// ----- governance -----

/// `shop/db-0` with containers `db` and `istio-proxy`, annotated.
fn meshed(annotations: Value) -> Pod {
    pod_with(json!({
        "metadata": {"annotations": annotations},
        "spec": {"containers": [{"name": "db"}, {"name": "istio-proxy"}]},
    }))
}

fn default_denied(container: &str) -> PolicyRule {
    PolicyRule::ContainerDenied {
        container: container.to_owned(),
        pattern: container.to_owned(),
        default: true,
    }
}

const PRE_KEY: &str = "pre.hook.backup.quiesce.dev/command";
const POST_KEY: &str = "post.hook.backup.quiesce.dev/command";

#[test]
fn annotation_hook_into_a_default_denied_sidecar_is_refused_not_run() {
    let pod = meshed(json!({
        PRE_KEY: "sync",
        "pre.hook.backup.quiesce.dev/container": "istio-proxy",
    }));
    let resolution = resolve(&pod, Phase::Pre, &Config::default());
    assert!(resolution.hooks.is_empty());
    assert_eq!(
        resolution.refused,
        vec![PolicyRefusal {
            pod: shop_db(),
            phase: Phase::Pre,
            key: PRE_KEY.to_owned(),
            container: "istio-proxy".to_owned(),
            cause: RefusalCause::Policy(default_denied("istio-proxy")),
        }]
    );
}

#[test]
fn annotation_hook_without_container_is_judged_by_the_pods_first_container() {
    // Istio's holdApplicationUntilProxyStarts puts the proxy first.
    let pod = pod_with(json!({
        "metadata": {"annotations": {PRE_KEY: "sync"}},
        "spec": {"containers": [{"name": "istio-proxy"}, {"name": "db"}]},
    }));
    let resolution = resolve(&pod, Phase::Pre, &Config::default());
    assert!(resolution.hooks.is_empty());
    assert_eq!(resolution.refused[0].container, "istio-proxy");
}

#[test]
fn a_denied_native_sidecar_is_refused_too() {
    let pod = pod_with(json!({
        "metadata": {"annotations": {
            PRE_KEY: "sync",
            "pre.hook.backup.quiesce.dev/container": "linkerd-proxy",
        }},
        "spec": {
            "containers": [{"name": "db"}],
            "initContainers": [{"name": "linkerd-proxy", "restartPolicy": "Always"}],
        },
    }));
    let resolution = resolve(&pod, Phase::Pre, &Config::default());
    assert!(resolution.hooks.is_empty());
    assert_eq!(
        resolution.refused[0].cause,
        RefusalCause::Policy(default_denied("linkerd-proxy"))
    );
}

#[test]
fn permitted_annotation_hooks_have_no_refusals() {
    let pod = meshed(json!({PRE_KEY: "sync", POST_KEY: "sync"}));
    for phase in [Phase::Pre, Phase::Post] {
        let resolution = resolve(&pod, phase, &Config::default());
        assert_eq!(resolution.hooks.len(), 1);
        assert!(resolution.refused.is_empty());
    }
}

#[test]
fn refused_annotation_hook_still_replaces_the_rule_hooks_of_its_phase() {
    let pod = meshed(json!({
        PRE_KEY: "sync",
        "pre.hook.backup.quiesce.dev/container": "istio-proxy",
    }));
    let resolution = resolve(&pod, Phase::Pre, &config(TWO_RULES));
    assert!(resolution.hooks.is_empty(), "{:?}", summary(&resolution));
    assert_eq!(resolution.refused.len(), 1);
    // The other phase has no annotation hook: its rule hooks run as usual.
    let post = resolve(&pod, Phase::Post, &config(TWO_RULES));
    assert_eq!(summary(&post), [row("first", 0, "db", "a3")]);
    assert!(post.refused.is_empty());
}

#[test]
fn refusing_the_post_hook_refuses_the_permitted_pre_hook_too() {
    let pod = meshed(json!({
        PRE_KEY: "sync",
        POST_KEY: "sync",
        "post.hook.backup.quiesce.dev/container": "istio-proxy",
    }));
    let pre = resolve(&pod, Phase::Pre, &Config::default());
    assert!(pre.hooks.is_empty());
    assert_eq!(
        pre.refused,
        vec![PolicyRefusal {
            pod: shop_db(),
            phase: Phase::Pre,
            key: PRE_KEY.to_owned(),
            container: "db".to_owned(),
            cause: RefusalCause::OtherPhase {
                phase: Phase::Post,
                key: POST_KEY.to_owned(),
                container: "istio-proxy".to_owned(),
                rule: default_denied("istio-proxy"),
            },
        }]
    );
    let post = resolve(&pod, Phase::Post, &Config::default());
    assert!(post.hooks.is_empty());
    assert_eq!(
        post.refused[0].cause,
        RefusalCause::Policy(default_denied("istio-proxy"))
    );
}

#[test]
fn refusing_the_pre_hook_refuses_the_permitted_post_hook_too() {
    let pod = meshed(json!({
        PRE_KEY: "sync",
        "pre.hook.backup.quiesce.dev/container": "istio-proxy",
        POST_KEY: "sync",
    }));
    let post = resolve(&pod, Phase::Post, &Config::default());
    assert!(post.hooks.is_empty());
    assert!(matches!(
        &post.refused[0].cause,
        RefusalCause::OtherPhase {
            phase: Phase::Pre,
            ..
        }
    ));
}

#[test]
fn rule_hooks_into_a_denied_container_are_never_restricted() {
    let pod = meshed(json!({}));
    let rules = "hooks:\n  resources:\n  - name: mesh\n    pre:\n    - exec: {command: [x], container: istio-proxy}\n";
    let resolution = resolve(&pod, Phase::Pre, &config(rules));
    assert_eq!(summary(&resolution), [row("mesh", 0, "istio-proxy", "x")]);
    assert!(resolution.refused.is_empty());
}

#[test]
fn rule_hooks_run_in_a_namespace_annotation_hooks_may_not_use() {
    let yaml = format!(
        "governance:\n  annotationHooks:\n    deniedNamespaces: [shop]\n{}",
        TWO_RULES.trim_start()
    );
    let pod = pod_with(json!({}));
    assert_eq!(resolve(&pod, Phase::Pre, &config(&yaml)).hooks.len(), 3);
}

#[test]
fn annotation_hooks_in_a_denied_namespace_are_refused_in_both_phases() {
    let yaml = "governance:\n  annotationHooks:\n    deniedNamespaces: [\"sh*\"]\n";
    let pod = annotated(json!({PRE_KEY: "sync", POST_KEY: "sync"}));
    for phase in [Phase::Pre, Phase::Post] {
        let resolution = resolve(&pod, phase, &config(yaml));
        assert!(resolution.hooks.is_empty());
        assert_eq!(
            resolution.refused[0].cause,
            RefusalCause::Policy(PolicyRule::NamespaceDenied {
                namespace: "shop".to_owned(),
                pattern: "sh*".to_owned(),
            })
        );
    }
}

#[test]
fn annotation_hooks_outside_the_allowed_namespaces_are_refused() {
    let yaml = "governance:\n  annotationHooks:\n    allowedNamespaces: [db]\n";
    let pod = annotated(json!({PRE_KEY: "sync"}));
    let resolution = resolve(&pod, Phase::Pre, &config(yaml));
    assert!(resolution.hooks.is_empty());
    assert!(matches!(
        resolution.refused[0].rule(),
        PolicyRule::NamespaceNotAllowed { .. }
    ));
}

#[test]
fn an_invalid_governance_refuses_every_annotation_hook_but_no_rule_hook() {
    let yaml = format!(
        "governance:\n  annotationHooks:\n    deniedNamespaces: [\"[\"]\n{}",
        TWO_RULES.trim_start()
    );
    let (config, problems) = Config::from_yaml(&yaml);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let annotated_pod = annotated(json!({PRE_KEY: "sync"}));
    let resolution = resolve(&annotated_pod, Phase::Pre, &config);
    assert!(resolution.hooks.is_empty());
    assert_eq!(resolution.refused[0].rule(), &PolicyRule::PolicyInvalid);
    assert_eq!(
        resolve(&pod_with(json!({})), Phase::Pre, &config)
            .hooks
            .len(),
        3
    );
}

#[test]
fn a_refused_hook_keeps_its_annotation_warnings() {
    let pod = meshed(json!({
        PRE_KEY: "sync",
        "pre.hook.backup.quiesce.dev/container": "istio-proxy",
        "pre.hook.backup.quiesce.dev/timeout": "300",
    }));
    let resolution = resolve(&pod, Phase::Pre, &Config::default());
    assert_eq!(resolution.refused.len(), 1);
    assert!(matches!(
        resolution.warnings.as_slice(),
        [AnnotationWarning::InvalidTimeout { .. }]
    ));
}

#[test]
fn an_explicit_empty_denied_containers_lets_annotation_hooks_into_sidecars() {
    let yaml = "governance:\n  annotationHooks:\n    deniedContainers: []\n";
    let pod = meshed(json!({
        PRE_KEY: "sync",
        "pre.hook.backup.quiesce.dev/container": "istio-proxy",
    }));
    let resolution = resolve(&pod, Phase::Pre, &config(yaml));
    assert_eq!(
        summary(&resolution),
        [row("<from-annotation>", 0, "istio-proxy", "sync")]
    );
    assert!(resolution.refused.is_empty());
}

#[test]
fn annotation_execution_options_are_read_per_phase() {
    let pod = annotated(json!({
        "pre.hook.backup.quiesce.dev/command": "/bin/freeze",
        "pre.hook.backup.quiesce.dev/retries": "2",
        "pre.hook.backup.quiesce.dev/retry-on-exit-code": "75",
        "pre.hook.backup.quiesce.dev/wait-timeout": "90s",
        "pre.hook.backup.quiesce.dev/kill-on-timeout": "true",
        "post.hook.backup.quiesce.dev/command": "/bin/thaw",
    }));
    let pre = resolve(&pod, Phase::Pre, &Config::default());
    assert!(pre.warnings.is_empty(), "{:?}", pre.warnings);
    let execution = &pre.hooks[0].execution;
    assert_eq!(execution.retries, 2);
    assert_eq!(execution.retry_on_exit_codes, vec![75]);
    assert_eq!(
        execution.wait,
        Some(crate::hooks::WaitFor {
            timeout: Duration::from_secs(90),
            ready: false
        })
    );
    assert!(execution.kill_on_timeout);
    let post = resolve(&pod, Phase::Post, &Config::default());
    assert_eq!(post.hooks[0].execution, crate::hooks::Execution::default());
}

#[test]
fn invalid_annotation_option_is_a_warning_and_keeps_the_default() {
    let pod = annotated(json!({
        "pre.hook.backup.quiesce.dev/command": "/bin/freeze",
        "pre.hook.backup.quiesce.dev/retries": "many",
    }));
    let pre = resolve(&pod, Phase::Pre, &Config::default());
    assert_eq!(pre.hooks[0].execution.retries, 0);
    assert_eq!(
        pre.warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec![
            "pod shop/db-0: annotation pre.hook.backup.quiesce.dev/retries = \"many\" is ignored: \
             \"many\" is not a whole number of retries"
        ]
    );
}

#[test]
fn option_without_command_is_reported_as_ignored() {
    let pod = annotated(json!({"pre.hook.backup.quiesce.dev/retries": "2"}));
    let pre = resolve(&pod, Phase::Pre, &Config::default());
    assert!(pre.hooks.is_empty());
    assert!(matches!(
        pre.warnings.as_slice(),
        [AnnotationWarning::IgnoredWithoutCommand { key, .. }] if key == "pre.hook.backup.quiesce.dev/retries"
    ));
}

#[test]
fn unknown_template_variable_in_an_annotation_is_a_defect_in_place() {
    let pod = annotated(json!({
        "pre.hook.backup.quiesce.dev/command": "[\"/dump\", \"{{pod.nam}}\"]",
    }));
    let pre = resolve(&pod, Phase::Pre, &Config::default());
    let defect = pre.hooks[0].defect.as_ref().unwrap();
    assert_eq!(
        defect.to_string(),
        "invalid command: unknown template variable {{pod.nam}} in command element 1; known: \
         {{backup.name}}, {{backup.namespace}}, {{pod.name}}, {{pod.namespace}}, {{container}}, {{phase}}"
    );
}

#[test]
fn run_once_annotations_apply_to_the_annotation_hooks() {
    let pod = annotated(json!({
        "pre.hook.backup.quiesce.dev/command": "/bin/freeze",
        "quiesce.dev/run-once-per": "owner",
        "quiesce.dev/run-on": "role=primary",
    }));
    let pre = resolve(&pod, Phase::Pre, &Config::default());
    let run_once = pre.hooks[0].run_once.as_ref().unwrap();
    assert_eq!(
        run_once.to_string(),
        "run once per owner (run-on role=primary)"
    );
}

#[test]
fn run_once_annotation_problems_are_warnings() {
    let pod = annotated(json!({
        "pre.hook.backup.quiesce.dev/command": "/bin/freeze",
        "quiesce.dev/run-once-per": "replica",
    }));
    let pre = resolve(&pod, Phase::Pre, &Config::default());
    assert_eq!(pre.hooks[0].run_once, None);
    assert_eq!(pre.warnings.len(), 1);
    let pod = annotated(json!({
        "pre.hook.backup.quiesce.dev/command": "/bin/freeze",
        "quiesce.dev/run-once-per": "owner",
        "quiesce.dev/run-on": "role in primary",
    }));
    let pre = resolve(&pod, Phase::Pre, &Config::default());
    assert_eq!(
        pre.hooks[0].run_once,
        Some(crate::hooks::RunOnce::default())
    );
    assert!(pre.warnings[0].to_string().contains("not a label selector"));
}

#[test]
fn rule_run_once_applies_to_that_rules_hooks_only() {
    let config = config(
        "hooks:\n  resources:\n  - name: once\n    runOncePer: owner\n    pre:\n    - exec:\n        command: [a]\n  \
         - name: every\n    pre:\n    - exec:\n        command: [b]\n",
    );
    let pre = resolve(&pod_with(json!({})), Phase::Pre, &config);
    assert!(pre.hooks[0].run_once.is_some());
    assert_eq!(pre.hooks[1].run_once, None);
}

#[test]
fn group_comes_from_the_annotation_else_the_first_rule_that_sets_one() {
    let config = config(
        "hooks:\n  resources:\n  - name: r\n    group: from-rule\n    pre:\n    - exec:\n        command: [a]\n",
    );
    assert_eq!(
        group_of(&pod_with(json!({})), &config).as_deref(),
        Some("from-rule")
    );
    let pod = annotated(json!({"quiesce.dev/group": "shop"}));
    assert_eq!(group_of(&pod, &config).as_deref(), Some("shop"));
    assert_eq!(group_of(&pod_with(json!({})), &Config::default()), None);
}

#[test]
fn an_option_note_names_the_key_it_is_about() {
    let pod = annotated(json!({
        "pre.hook.backup.quiesce.dev/command": "/bin/freeze",
        "pre.hook.backup.quiesce.dev/retry-on-exit-code": "75",
        "pre.hook.backup.quiesce.dev/kill-on-timeout": "true",
    }));
    let pre = resolve(&pod, Phase::Pre, &Config::default());
    assert!(
        matches!(
            pre.warnings.as_slice(),
            [AnnotationWarning::OptionNote { key, .. }] if key == "pre.hook.backup.quiesce.dev/retry-on-exit-code"
        ),
        "{:?}",
        pre.warnings
    );
}

#[test]
fn a_bad_run_once_annotation_is_reported_by_one_phase_only() {
    let pod = annotated(json!({
        "pre.hook.backup.quiesce.dev/command": "/bin/freeze",
        "post.hook.backup.quiesce.dev/command": "/bin/thaw",
        "quiesce.dev/run-once-per": "replica",
    }));
    let pre = resolve(&pod, Phase::Pre, &Config::default());
    let post = resolve(&pod, Phase::Post, &Config::default());
    assert_eq!(pre.warnings.len() + post.warnings.len(), 1);
    let post_only = annotated(json!({
        "post.hook.backup.quiesce.dev/command": "/bin/thaw",
        "quiesce.dev/run-once-per": "replica",
    }));
    assert_eq!(
        resolve(&post_only, Phase::Post, &Config::default())
            .warnings
            .len(),
        1
    );
}

/// A running pod `shop/<name>` with `labels`, controlled by the `owner_kind` named `db`.
fn replica(name: &str, labels: Value, owner_kind: &str) -> Pod {
    pod_with(json!({"metadata": {
        "name": name, "labels": labels,
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind, "name": "db",
                             "uid": "owner-uid", "controller": true}]
    }}))
}

#[test]
fn only_replicas_with_the_same_run_once_hook_are_candidates() {
    let (config, _) = Config::from_yaml(
        "hooks:\n  resources:\n  - name: dump\n    runOncePer: owner\n    labelSelector:\n      \
         matchLabels: {backup: \"yes\"}\n    pre:\n    - exec:\n        command: [dump]\n",
    );
    let with_label = replica("db-1", json!({"backup": "yes"}), "StatefulSet");
    let without = replica("db-0", json!({}), "StatefulSet");
    let hook = crate::hooks::resolve(&with_label, Phase::Pre, &config).hooks[0].clone();
    assert!(has_same_run_once_hook(&with_label, &hook, &config));
    assert!(!has_same_run_once_hook(&without, &hook, &config));

    let annotated = |name: &str, run_on: Option<&str>| {
        let mut pod = replica(name, json!({}), "ReplicaSet");
        let mut annotations = BTreeMap::from([
            (
                "pre.hook.backup.quiesce.dev/command".to_owned(),
                "x".to_owned(),
            ),
            (RUN_ONCE_PER_ANNOTATION.to_owned(), "owner".to_owned()),
        ]);
        if let Some(run_on) = run_on {
            annotations.insert(RUN_ON_ANNOTATION.to_owned(), run_on.to_owned());
        }
        pod.metadata.annotations = Some(annotations);
        pod
    };
    let mine = annotated("a", Some("role=primary"));
    let hook = crate::hooks::resolve(&mine, Phase::Pre, &Config::default()).hooks[0].clone();
    assert!(has_same_run_once_hook(
        &annotated("b", Some("role=primary")),
        &hook,
        &Config::default()
    ));
    assert!(!has_same_run_once_hook(
        &annotated("c", None),
        &hook,
        &Config::default()
    ));
}

// ----- held sessions -----

/// `shop/db-0` (containers `db`, `fsfreeze`) whose pre annotation hook holds a mysql session
/// in `fsfreeze`, plus `extra` annotations.
fn holding(extra: &[(&str, &str)]) -> Pod {
    let mut annotations = json!({
        PRE_KEY: r#"["mysql", "-N"]"#,
        "pre.hook.backup.quiesce.dev/container": "fsfreeze",
        "pre.hook.backup.quiesce.dev/stdin": "FLUSH TABLES WITH READ LOCK; SELECT 'quiesce-frozen';",
        "pre.hook.backup.quiesce.dev/hold-until-output": "quiesce-frozen",
    });
    for (key, value) in extra {
        annotations[key] = json!(value);
    }
    annotated(annotations)
}

#[test]
fn the_post_phase_of_a_held_annotation_session_ends_it_then_runs_its_command() {
    let pod = holding(&[
        ("post.hook.backup.quiesce.dev/stdin", "UNLOCK TABLES;"),
        ("post.hook.backup.quiesce.dev/timeout", "1m"),
        (POST_KEY, r#"["/bin/echo", "thawed"]"#),
    ]);
    let pre = resolve(&pod, Phase::Pre, &Config::default());
    assert_eq!(
        pre.hooks[0].execution.hold_until_output.as_deref(),
        Some("quiesce-frozen")
    );
    let post = resolve(&pod, Phase::Post, &Config::default());
    assert!(post.warnings.is_empty(), "{:?}", post.warnings);
    let [end, command] = post.hooks.as_slice() else {
        panic!("{:#?}", post.hooks);
    };
    assert_eq!(end.ends_session, pre.hooks[0].holds());
    assert_eq!(end.container, "fsfreeze", "the session's container");
    assert_eq!(end.command, argv(&["mysql", "-N"]));
    assert_eq!(end.execution.stdin.as_deref(), Some("UNLOCK TABLES;"));
    assert_eq!(end.timeout, Duration::from_secs(60));
    assert_eq!(command.ends_session, None);
    assert_eq!(command.command, argv(&["/bin/echo", "thawed"]));
    assert_eq!(command.container, "db");
    assert_eq!(
        command.execution.stdin, None,
        "the post stdin went to the session"
    );
}

#[test]
fn an_unknown_variable_in_stdin_fails_the_hook_in_place_the_session_end_included() {
    let pod = holding(&[
        (
            "pre.hook.backup.quiesce.dev/stdin",
            "SELECT '{{backup.nmae}}';",
        ),
        (
            "post.hook.backup.quiesce.dev/stdin",
            "UNLOCK TABLES; -- {{pod.nmae}}",
        ),
    ]);
    let pre = resolve(&pod, Phase::Pre, &Config::default());
    let defect = pre.hooks[0].defect.as_ref().expect("a defect").to_string();
    assert!(
        defect.starts_with("invalid stdin: unknown template variable {{backup.nmae}} in stdin; "),
        "{defect}"
    );
    let post = resolve(&pod, Phase::Post, &Config::default());
    let defect = post.hooks[0].defect.as_ref().expect("a defect").to_string();
    assert!(defect.contains("{{pod.nmae}} in stdin"), "{defect}");

    let known = holding(&[("post.hook.backup.quiesce.dev/stdin", "-- {{backup.name}}")]);
    let post = resolve(&known, Phase::Post, &Config::default());
    assert_eq!(post.hooks[0].defect, None);
}

#[test]
fn a_held_annotation_session_ends_at_the_thaw_without_any_post_key() {
    let post = resolve(&holding(&[]), Phase::Post, &Config::default());
    let [end] = post.hooks.as_slice() else {
        panic!("{:#?}", post.hooks);
    };
    assert!(end.ends_session.is_some());
    assert_eq!(end.execution, Execution::default());
    assert_eq!(
        (end.on_error, end.timeout),
        (OnError::Fail, DEFAULT_TIMEOUT)
    );
}

#[test]
fn a_session_in_a_denied_container_is_refused_with_its_end() {
    let pod = meshed(json!({
        PRE_KEY: "mysql",
        "pre.hook.backup.quiesce.dev/container": "istio-proxy",
        "pre.hook.backup.quiesce.dev/hold-until-output": "ready",
        "post.hook.backup.quiesce.dev/stdin": "UNLOCK TABLES;",
    }));
    for phase in [Phase::Pre, Phase::Post] {
        let resolution = resolve(&pod, phase, &Config::default());
        assert!(resolution.hooks.is_empty(), "{phase}");
        assert_eq!(resolution.refused[0].container, "istio-proxy");
    }
    let post = resolve(&pod, Phase::Post, &Config::default());
    assert_eq!(post.refused[0].key, "post.hook.backup.quiesce.dev/stdin");
}

#[test]
fn a_rule_session_ends_where_its_post_hook_stands_or_first() {
    let explicit = config(
        "hooks:\n  resources:\n  - name: db\n    pre:\n    - exec:\n        command: [mysql]\n        \
         container: fsfreeze\n        holdUntilOutput: ready\n    post:\n    - exec:\n        \
         command: [/bin/echo, thawed]\n    - exec:\n        stdin: UNLOCK TABLES;\n",
    );
    let post = resolve(&pod_with(json!({})), Phase::Post, &explicit);
    let ends: Vec<_> = post
        .hooks
        .iter()
        .map(|h| (h.index, h.ends_session.is_some()))
        .collect();
    assert_eq!(ends, [(0, false), (1, true)]);
    assert_eq!(post.hooks[1].container, "fsfreeze");
    assert_eq!(post.hooks[1].command, argv(&["mysql"]));
    assert_eq!(
        post.hooks[1].execution.stdin.as_deref(),
        Some("UNLOCK TABLES;")
    );

    let implicit = config(
        "hooks:\n  resources:\n  - name: db\n    pre:\n    - exec:\n        command: [mysql]\n        \
         holdUntilOutput: ready\n    post:\n    - exec:\n        command: [/bin/echo, thawed]\n",
    );
    let post = resolve(&pod_with(json!({})), Phase::Post, &implicit);
    let ends: Vec<_> = post
        .hooks
        .iter()
        .map(|h| h.ends_session.is_some())
        .collect();
    assert_eq!(ends, [true, false]);
    assert_eq!(
        post.hooks[0].ends_session,
        resolve(&pod_with(json!({})), Phase::Pre, &implicit).hooks[0].holds()
    );
}
