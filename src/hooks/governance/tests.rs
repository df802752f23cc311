//! Tests of `governance` parsing, validation, defaults and verdicts.

use super::*;
use crate::hooks::Config;

fn load(yaml: &str) -> (Config, Vec<Problem>) {
    Config::from_yaml(yaml)
}

fn policy(yaml: &str) -> AnnotationHookPolicy {
    let (config, problems) = load(yaml);
    assert!(problems.is_empty(), "unexpected problems: {problems:#?}");
    config.governance().annotation_hooks().clone()
}

fn errors(problems: &[Problem]) -> Vec<&str> {
    problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| p.location.path.as_str())
        .collect()
}

const EXAMPLE: &str = r#"
governance:
  annotationHooks:
    allowedNamespaces: ["shop-*", "db"]
    deniedNamespaces: ["shop-test", "kube-system"]
    deniedContainers: ["envoy*", "vault-agent"]
"#;

#[test]
fn without_governance_the_default_sidecars_are_denied_in_every_namespace() {
    let policy = Config::default().governance().annotation_hooks().clone();
    for sidecar in DEFAULT_DENIED_CONTAINERS {
        assert_eq!(
            policy.refuses("shop", sidecar),
            Some(PolicyRule::ContainerDenied {
                container: sidecar.to_owned(),
                pattern: sidecar.to_owned(),
                default: true,
            })
        );
    }
    assert_eq!(policy.refuses("kube-system", "db"), None);
    assert!(!policy.is_invalid());
}

#[test]
fn the_default_list_is_istio_linkerd_and_vault_agent() {
    assert_eq!(
        DEFAULT_DENIED_CONTAINERS,
        ["istio-proxy", "linkerd-proxy", "vault-agent"]
    );
}

#[test]
fn governance_without_denied_containers_keeps_the_defaults() {
    let policy = policy("governance:\n  annotationHooks:\n    deniedNamespaces: [kube-system]\n");
    assert_eq!(policy.denied_containers(), DEFAULT_DENIED_CONTAINERS);
    assert!(policy.refuses("shop", "istio-proxy").is_some());
}

#[test]
fn an_explicit_empty_denied_containers_removes_the_defaults() {
    let policy = policy("governance:\n  annotationHooks:\n    deniedContainers: []\n");
    assert!(policy.denied_containers().is_empty());
    assert_eq!(policy.refuses("shop", "istio-proxy"), None);
}

#[test]
fn a_null_denied_containers_keeps_the_defaults_with_a_warning() {
    let (config, problems) = load("governance:\n  annotationHooks:\n    deniedContainers:\n");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].severity, Severity::Warning);
    assert_eq!(
        problems[0].location.path,
        "governance.annotationHooks.deniedContainers"
    );
    assert!(problems[0].message.contains("write []"), "{}", problems[0]);
    let policy = config.governance().annotation_hooks();
    assert!(policy.refuses("shop", "linkerd-proxy").is_some());
    assert!(!policy.is_invalid());
}

#[test]
fn an_explicit_denied_containers_list_replaces_the_defaults_and_takes_globs() {
    let policy = policy(EXAMPLE);
    assert_eq!(policy.refuses("shop-prod", "istio-proxy"), None);
    assert_eq!(
        policy.refuses("shop-prod", "envoy-sidecar"),
        Some(PolicyRule::ContainerDenied {
            container: "envoy-sidecar".to_owned(),
            pattern: "envoy*".to_owned(),
            default: false,
        })
    );
}

#[test]
fn allowed_namespaces_are_globs_and_others_are_refused() {
    let policy = policy(EXAMPLE);
    assert_eq!(policy.refuses("shop-prod", "db"), None);
    assert_eq!(policy.refuses("db", "db"), None);
    assert_eq!(
        policy.refuses("web", "db"),
        Some(PolicyRule::NamespaceNotAllowed {
            namespace: "web".to_owned(),
            allowed: vec!["shop-*".to_owned(), "db".to_owned()],
        })
    );
}

#[test]
fn denied_namespaces_win_over_allowed_ones() {
    let policy = policy(EXAMPLE);
    assert_eq!(
        policy.refuses("shop-test", "db"),
        Some(PolicyRule::NamespaceDenied {
            namespace: "shop-test".to_owned(),
            pattern: "shop-test".to_owned(),
        })
    );
}

#[test]
fn empty_allowed_namespaces_mean_every_namespace() {
    let policy = policy("governance:\n  annotationHooks:\n    allowedNamespaces: []\n");
    assert_eq!(policy.refuses("anything", "db"), None);
}

#[test]
fn null_governance_and_null_annotation_hooks_are_the_defaults() {
    for yaml in ["governance:\n", "governance:\n  annotationHooks:\n"] {
        assert_eq!(policy(yaml), AnnotationHookPolicy::default(), "{yaml}");
    }
}

#[test]
fn a_bad_glob_is_a_located_error_and_the_policy_fails_closed() {
    let (config, problems) =
        load("governance:\n  annotationHooks:\n    deniedNamespaces: [ok, \"kube-[\"]\n");
    assert_eq!(
        errors(&problems),
        ["governance.annotationHooks.deniedNamespaces[1]"]
    );
    assert!(
        problems[0].message.contains("unclosed '['"),
        "{}",
        problems[0]
    );
    assert!(problems[0]
        .message
        .contains("every annotation hook is refused"));
    let policy = config.governance().annotation_hooks();
    assert!(policy.is_invalid());
    assert_eq!(
        policy.refuses("shop", "db"),
        Some(PolicyRule::PolicyInvalid)
    );
}

#[test]
fn an_unknown_policy_field_is_an_error_with_a_hint_and_fails_closed() {
    let (config, problems) =
        load("governance:\n  annotationHooks:\n    deniednamespaces: [kube-system]\n");
    assert_eq!(
        errors(&problems),
        ["governance.annotationHooks.deniednamespaces"]
    );
    assert!(
        problems[0]
            .message
            .contains("did you mean \"deniedNamespaces\"?"),
        "{}",
        problems[0]
    );
    assert!(config.governance().annotation_hooks().is_invalid());
}

#[test]
fn an_unknown_governance_field_is_an_error_and_fails_closed() {
    let (config, problems) = load("governance:\n  ruleHooks: {}\n");
    assert_eq!(errors(&problems), ["governance.ruleHooks"]);
    assert!(config.governance().annotation_hooks().is_invalid());
}

#[test]
fn wrong_types_are_located_errors_and_fail_closed() {
    let cases = [
        ("governance: [a]\n", "governance"),
        (
            "governance:\n  annotationHooks: deny\n",
            "governance.annotationHooks",
        ),
        (
            "governance:\n  annotationHooks:\n    allowedNamespaces: shop\n",
            "governance.annotationHooks.allowedNamespaces",
        ),
        (
            "governance:\n  annotationHooks:\n    deniedContainers: [istio-proxy, 7]\n",
            "governance.annotationHooks.deniedContainers[1]",
        ),
    ];
    for (yaml, path) in cases {
        let (config, problems) = load(yaml);
        assert_eq!(errors(&problems), [path], "{yaml}");
        assert!(
            config.governance().annotation_hooks().is_invalid(),
            "{yaml}"
        );
    }
}

#[test]
fn a_governance_error_leaves_the_rules_loaded() {
    let (config, problems) = load(
        "governance: 3\nhooks:\n  resources:\n  - name: r\n    pre:\n    - exec: {command: [x]}\n",
    );
    assert_eq!(errors(&problems), ["governance"]);
    assert_eq!(config.rules().len(), 1);
}

#[test]
fn policy_rule_texts_name_the_field_and_the_entry() {
    let rules = [
        (
            PolicyRule::NamespaceDenied {
                namespace: "kube-system".to_owned(),
                pattern: "kube-*".to_owned(),
            },
            "namespace \"kube-system\" matches \"kube-*\" of governance.annotationHooks.deniedNamespaces",
        ),
        (
            PolicyRule::NamespaceNotAllowed {
                namespace: "web".to_owned(),
                allowed: vec!["shop-*".to_owned(), "db".to_owned()],
            },
            "namespace \"web\" matches none of governance.annotationHooks.allowedNamespaces (shop-*, db)",
        ),
        (
            PolicyRule::ContainerDenied {
                container: "envoy".to_owned(),
                pattern: "env*".to_owned(),
                default: false,
            },
            "container \"envoy\" matches \"env*\" of governance.annotationHooks.deniedContainers",
        ),
        (
            PolicyRule::ContainerDenied {
                container: "istio-proxy".to_owned(),
                pattern: "istio-proxy".to_owned(),
                default: true,
            },
            "container \"istio-proxy\" is in the default governance.annotationHooks.deniedContainers \
             (istio-proxy, linkerd-proxy, vault-agent)",
        ),
        (
            PolicyRule::PolicyInvalid,
            "governance in config.yaml has errors, so every annotation hook is refused until this is fixed",
        ),
    ];
    for (rule, text) in rules {
        assert_eq!(rule.to_string(), text);
    }
}

#[test]
fn a_refusal_names_pod_phase_key_container_and_rule() {
    let refusal = PolicyRefusal {
        pod: PodRef {
            namespace: "shop".to_owned(),
            name: "db-0".to_owned(),
        },
        phase: Phase::Pre,
        key: "pre.hook.backup.quiesce.dev/command".to_owned(),
        container: "istio-proxy".to_owned(),
        cause: RefusalCause::Policy(PolicyRule::ContainerDenied {
            container: "istio-proxy".to_owned(),
            pattern: "istio-proxy".to_owned(),
            default: false,
        }),
    };
    assert_eq!(
        refusal.to_string(),
        "pod shop/db-0: the pre hook of annotation pre.hook.backup.quiesce.dev/command \
         (container \"istio-proxy\") is refused by governance: container \"istio-proxy\" matches \
         \"istio-proxy\" of governance.annotationHooks.deniedContainers; no rule hook runs in its \
         place"
    );
    assert_eq!(
        refusal.without_pod(),
        refusal
            .to_string()
            .strip_prefix("pod shop/db-0: ")
            .unwrap_or_default()
    );
}

#[test]
fn a_refusal_because_of_the_other_phase_says_so() {
    let rule = PolicyRule::ContainerDenied {
        container: "istio-proxy".to_owned(),
        pattern: "istio-proxy".to_owned(),
        default: false,
    };
    let refusal = PolicyRefusal {
        pod: PodRef {
            namespace: "shop".to_owned(),
            name: "db-0".to_owned(),
        },
        phase: Phase::Pre,
        key: "pre.hook.backup.quiesce.dev/command".to_owned(),
        container: "db".to_owned(),
        cause: RefusalCause::OtherPhase {
            phase: Phase::Post,
            key: "post.hook.backup.quiesce.dev/command".to_owned(),
            container: "istio-proxy".to_owned(),
            rule: rule.clone(),
        },
    };
    assert_eq!(refusal.rule(), &rule);
    assert_eq!(
        refusal.to_string(),
        "pod shop/db-0: the pre hook of annotation pre.hook.backup.quiesce.dev/command \
         (container \"db\") is refused by governance: its post hook \
         (post.hook.backup.quiesce.dev/command, container \"istio-proxy\") is refused (container \
         \"istio-proxy\" matches \"istio-proxy\" of governance.annotationHooks.deniedContainers), \
         and a pod's annotation pre and post hooks run together or not at all; no rule hook runs in its \
         place"
    );
}
