//! Tests of ConfigMap rule parsing, validation and matching.

use super::*;
use crate::hooks::MAX_TIMEOUT;

fn load(yaml: &str) -> (Config, Vec<Problem>) {
    Config::from_yaml(yaml)
}

/// Loads a config that must have no problems at all.
fn load_clean(yaml: &str) -> Config {
    let (config, problems) = load(yaml);
    assert!(problems.is_empty(), "unexpected problems: {problems:#?}");
    config
}

fn paths(problems: &[Problem]) -> Vec<(Severity, &str)> {
    problems
        .iter()
        .map(|p| (p.severity, p.location.path.as_str()))
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A one-rule config with `fields` (indented YAML lines) added to a valid rule.
fn rule_with(fields: &str) -> String {
    format!(
        "hooks:\n  resources:\n  - name: r\n    pre:\n    - exec:\n        command: [\"/bin/true\"]\n{fields}"
    )
}

/// A one-rule config whose single pre hook's exec has `exec_fields` (indented 8 spaces).
fn exec_with(exec_fields: &str) -> String {
    format!("hooks:\n  resources:\n  - name: r\n    pre:\n    - exec:\n{exec_fields}")
}

fn only_rule(config: &Config) -> &Rule {
    assert_eq!(config.rules().len(), 1, "{config:#?}");
    &config.rules()[0]
}

#[test]
fn full_rule_parses_with_every_field() {
    let config = load_clean(
        r#"
hooks:
  resources:
  - name: freeze-db
    includedNamespaces: [shop, "team-*"]
    excludedNamespaces: [team-test]
    includedResources: [pods]
    excludedResources: []
    labelSelector:
      matchLabels: {app: db}
      matchExpressions:
      - {key: role, operator: In, values: [primary]}
    pre:
    - exec:
        container: fsfreeze
        command: ["/sbin/fsfreeze", "--freeze", "/data"]
        onError: Continue
        timeout: 1m30s
    post:
    - exec:
        command: ["/sbin/fsfreeze", "--unfreeze", "/data"]
"#,
    );
    let rule = only_rule(&config);
    assert_eq!(rule.name(), "freeze-db");
    assert_eq!(
        rule.hooks(Phase::Pre),
        &[ExecHook {
            container: Some("fsfreeze".to_owned()),
            command: vec!["/sbin/fsfreeze".into(), "--freeze".into(), "/data".into()],
            on_error: OnError::Continue,
            timeout: Duration::from_secs(90),
            execution: Default::default(),
            ends_session: false,
        }]
    );
    assert_eq!(
        rule.hooks(Phase::Post),
        &[ExecHook {
            container: None,
            command: vec!["/sbin/fsfreeze".into(), "--unfreeze".into(), "/data".into()],
            on_error: OnError::Fail,
            timeout: DEFAULT_TIMEOUT,
            execution: Default::default(),
            ends_session: false,
        }]
    );
    let selector = rule.label_selector().unwrap();
    assert_eq!(selector.match_labels, labels(&[("app", "db")]));
    assert_eq!(
        selector.match_expressions,
        vec![Requirement {
            key: "role".to_owned(),
            operator: Operator::In,
            values: vec!["primary".to_owned()],
        }]
    );
}

// ---- document level ----

#[test]
fn configmap_without_config_yaml_key_warns_and_has_no_rules() {
    let data = BTreeMap::from([("config.yml".to_owned(), "hooks: {}".to_owned())]);
    let (config, problems) = Config::from_configmap_data(&data);
    assert_eq!(config, Config::default());
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].severity, Severity::Warning);
    assert_eq!(
        problems[0].to_string(),
        "config.yaml: the plugin ConfigMap has no \"config.yaml\" key; no hook rules are loaded"
    );
}

#[test]
fn configmap_config_yaml_key_is_read() {
    let data = BTreeMap::from([(
        "config.yaml".to_owned(),
        "hooks:\n  resources:\n  - name: a\n    pre:\n    - exec: {command: [sync]}\n".to_owned(),
    )]);
    let (config, problems) = Config::from_configmap_data(&data);
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(config.rules()[0].name(), "a");
}

#[test]
fn default_config_has_no_rules() {
    assert!(Config::default().rules().is_empty());
}

#[test]
fn empty_document_has_no_rules_and_no_problems() {
    let config = load_clean("");
    assert!(config.rules().is_empty());
}

#[test]
fn invalid_yaml_is_an_error_with_line_and_no_rules() {
    let (config, problems) = load("hooks:\n  resources: [\n");
    assert!(config.rules().is_empty());
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].severity, Severity::Error);
    let text = problems[0].to_string();
    assert!(
        text.starts_with("config.yaml: is not valid YAML ("),
        "{text}"
    );
    assert!(text.contains("line"), "{text}");
}

#[test]
fn document_that_is_not_a_mapping_is_an_error() {
    let (config, problems) = load("- name: a\n");
    assert!(config.rules().is_empty());
    assert_eq!(
        problems[0].to_string(),
        "config.yaml: must be a mapping with a \"hooks\" key, found a list; no hook rules are loaded"
    );
}

#[test]
fn unknown_top_level_key_is_a_warning_and_rules_still_load() {
    let (config, problems) = load(
        "consistencyGroups: []\nhooks:\n  resources:\n  - name: a\n    pre:\n    - exec: {command: [sync]}\n",
    );
    assert_eq!(config.rules().len(), 1);
    assert_eq!(
        paths(&problems),
        vec![(Severity::Warning, "consistencyGroups")]
    );
    assert_eq!(
        problems[0].to_string(),
        "config.yaml at consistencyGroups: unknown top-level field \"consistencyGroups\" is ignored"
    );
}

#[test]
fn unknown_key_under_hooks_is_a_warning() {
    let (config, problems) = load("hooks:\n  resource: []\n");
    assert!(config.rules().is_empty());
    assert_eq!(
        paths(&problems),
        vec![(Severity::Warning, "hooks.resource")]
    );
}

#[test]
fn resources_that_is_not_a_list_is_an_error() {
    let (_, problems) = load("hooks:\n  resources: {name: a}\n");
    assert_eq!(paths(&problems), vec![(Severity::Error, "hooks.resources")]);
}

#[test]
fn null_hooks_and_resources_mean_no_rules() {
    assert!(load_clean("hooks:\n").rules().is_empty());
    assert!(load_clean("hooks:\n  resources:\n").rules().is_empty());
}

// ---- rule validation ----

#[test]
fn rule_without_name_is_excluded_with_located_error() {
    let (config, problems) =
        load("hooks:\n  resources:\n  - pre:\n    - exec: {command: [sync]}\n");
    assert!(config.rules().is_empty());
    assert_eq!(
        paths(&problems),
        vec![(Severity::Error, "hooks.resources[0].name")]
    );
    assert_eq!(
        problems[0].to_string(),
        "config.yaml at hooks.resources[0].name: name is required; rule #0 is ignored"
    );
}

#[test]
fn rule_with_empty_name_is_excluded() {
    let (config, problems) =
        load("hooks:\n  resources:\n  - name: \"\"\n    pre:\n    - exec: {command: [sync]}\n");
    assert!(config.rules().is_empty());
    assert_eq!(problems[0].message, "name must not be empty");
}

#[test]
fn invalid_rule_is_excluded_while_valid_rules_keep_working() {
    let (config, problems) = load(
        r#"
hooks:
  resources:
  - name: good-1
    pre:
    - exec: {command: [a]}
  - name: broken
    pre:
    - exec: {command: [b], onError: fail}
  - name: good-2
    post:
    - exec: {command: [c]}
"#,
    );
    let names: Vec<&str> = config.rules().iter().map(Rule::name).collect();
    assert_eq!(names, vec!["good-1", "good-2"]);
    assert_eq!(config.rules()[1].index(), 2);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].location.rule_index, Some(1));
    assert_eq!(problems[0].location.rule_name.as_deref(), Some("broken"));
}

#[test]
fn every_error_of_a_rule_is_reported() {
    let (_, problems) = load(
        r#"
hooks:
  resources:
  - name: many
    labelselector: {}
    pre:
    - exec: {command: [], onError: FAIL, timeout: "30"}
"#,
    );
    assert_eq!(
        paths(&problems),
        vec![
            (Severity::Error, "hooks.resources[0].labelselector"),
            (Severity::Error, "hooks.resources[0].pre[0].exec.onError"),
            (Severity::Error, "hooks.resources[0].pre[0].exec.timeout"),
            (Severity::Error, "hooks.resources[0].pre[0].exec.command"),
        ]
    );
}

#[test]
fn unknown_rule_field_is_an_error_with_suggestion() {
    let (config, problems) = load(&rule_with(
        "    labelselector:\n      matchLabels: {app: db}\n",
    ));
    assert!(config.rules().is_empty());
    assert_eq!(
        problems[0].to_string(),
        "config.yaml at hooks.resources[0].labelselector (rule \"r\"): unknown field \
         \"labelselector\" (did you mean \"labelSelector\"?); known fields here are name, \
         includedNamespaces, excludedNamespaces, includedResources, excludedResources, \
         labelSelector, pre, post, runOncePer, runOn, group; rule \"r\" is ignored"
    );
}

#[test]
fn unknown_exec_field_is_an_error_at_its_path() {
    let (config, problems) = load(&exec_with("        command: [sync]\n        args: [x]\n"));
    assert!(config.rules().is_empty());
    assert_eq!(
        paths(&problems),
        vec![(Severity::Error, "hooks.resources[0].pre[0].exec.args")]
    );
}

#[test]
fn unknown_hook_field_next_to_exec_is_an_error() {
    let (_, problems) = load(
        "hooks:\n  resources:\n  - name: r\n    pre:\n    - exec: {command: [a]}\n      http: {}\n",
    );
    assert_eq!(
        paths(&problems),
        vec![(Severity::Error, "hooks.resources[0].pre[0].http")]
    );
}

#[test]
fn unknown_selector_field_is_an_error() {
    let (_, problems) = load(&rule_with(
        "    labelSelector:\n      matchLabel: {app: db}\n",
    ));
    assert_eq!(
        paths(&problems),
        vec![(
            Severity::Error,
            "hooks.resources[0].labelSelector.matchLabel"
        )]
    );
}

#[test]
fn hook_without_exec_is_an_error() {
    let (_, problems) = load("hooks:\n  resources:\n  - name: r\n    pre:\n    - {}\n");
    assert_eq!(
        paths(&problems),
        vec![(Severity::Error, "hooks.resources[0].pre[0].exec")]
    );
    assert_eq!(problems[0].message, "exec is required");
}

#[test]
fn missing_command_is_an_error() {
    let (_, problems) = load(&exec_with("        container: db\n"));
    assert_eq!(
        paths(&problems),
        vec![(Severity::Error, "hooks.resources[0].pre[0].exec.command")]
    );
    assert_eq!(problems[0].message, "command is required");
}

#[test]
fn empty_command_list_is_an_error() {
    let (_, problems) = load(&exec_with("        command: []\n"));
    assert_eq!(problems[0].message, "command must not be empty");
    assert_eq!(problems[0].severity, Severity::Error);
}

#[test]
fn command_given_as_a_string_is_an_error() {
    let (_, problems) = load(&exec_with(
        "        command: /sbin/fsfreeze --freeze /data\n",
    ));
    assert_eq!(
        problems[0].message,
        "command must be a list of strings such as [\"/sbin/fsfreeze\", \"--freeze\", \"/data\"], \
         found a string"
    );
}

#[test]
fn non_string_command_element_is_an_error_at_its_index() {
    let (_, problems) = load(&exec_with("        command: [sleep, 5]\n"));
    assert_eq!(
        paths(&problems),
        vec![(Severity::Error, "hooks.resources[0].pre[0].exec.command[1]")]
    );
    assert_eq!(
        problems[0].message,
        "command must contain only strings, found a number (quote it)"
    );
}

#[test]
fn on_error_omitted_defaults_to_fail() {
    let config = load_clean(&exec_with("        command: [sync]\n"));
    assert_eq!(
        only_rule(&config).hooks(Phase::Pre)[0].on_error,
        OnError::Fail
    );
}

#[test]
fn on_error_continue_is_read() {
    let config = load_clean(&exec_with(
        "        command: [sync]\n        onError: Continue\n",
    ));
    assert_eq!(
        only_rule(&config).hooks(Phase::Pre)[0].on_error,
        OnError::Continue
    );
}

#[test]
fn on_error_wrong_case_is_an_error() {
    let (config, problems) = load(&exec_with(
        "        command: [sync]\n        onError: continue\n",
    ));
    assert!(config.rules().is_empty());
    assert_eq!(
        problems[0].to_string(),
        "config.yaml at hooks.resources[0].pre[0].exec.onError (rule \"r\"): onError \"continue\" \
         is not Fail or Continue (case-sensitive); rule \"r\" is ignored"
    );
}

#[test]
fn timeout_omitted_defaults_to_thirty_seconds() {
    let config = load_clean(&exec_with("        command: [sync]\n"));
    assert_eq!(
        only_rule(&config).hooks(Phase::Pre)[0].timeout,
        Duration::from_secs(30)
    );
}

#[test]
fn timeout_go_duration_is_read() {
    let config = load_clean(&exec_with(
        "        command: [sync]\n        timeout: 2m30s\n",
    ));
    assert_eq!(
        only_rule(&config).hooks(Phase::Pre)[0].timeout,
        Duration::from_secs(150)
    );
}

#[test]
fn zero_timeout_becomes_default_without_problem() {
    let config = load_clean(&exec_with("        command: [sync]\n        timeout: 0s\n"));
    assert_eq!(
        only_rule(&config).hooks(Phase::Pre)[0].timeout,
        DEFAULT_TIMEOUT
    );
}

#[test]
fn bare_number_string_timeout_is_an_error() {
    let (config, problems) = load(&exec_with(
        "        command: [sync]\n        timeout: \"30\"\n",
    ));
    assert!(config.rules().is_empty());
    assert_eq!(
        problems[0].message,
        "timeout \"30\" is not a duration with a unit such as 30s, 5m or 1h30m (time: missing unit \
         in duration \"30\")"
    );
}

#[test]
fn numeric_yaml_timeout_is_an_error() {
    let (_, problems) = load(&exec_with("        command: [sync]\n        timeout: 30\n"));
    assert_eq!(
        problems[0].message,
        "timeout must be a duration string such as \"30s\" or \"1m30s\", found a number"
    );
}

#[test]
fn timeout_above_four_hours_is_clamped_with_warning_and_rule_kept() {
    let (config, problems) = load(&exec_with("        command: [sync]\n        timeout: 6h\n"));
    assert_eq!(only_rule(&config).hooks(Phase::Pre)[0].timeout, MAX_TIMEOUT);
    assert_eq!(
        paths(&problems),
        vec![(Severity::Warning, "hooks.resources[0].pre[0].exec.timeout")]
    );
    assert_eq!(
        problems[0].to_string(),
        "config.yaml at hooks.resources[0].pre[0].exec.timeout (rule \"r\"): timeout \"6h\" \
         exceeds the maximum of 4h; using 4h"
    );
}

#[test]
fn negative_timeout_uses_default_with_warning() {
    let (config, problems) = load(&exec_with(
        "        command: [sync]\n        timeout: -5s\n",
    ));
    assert_eq!(
        only_rule(&config).hooks(Phase::Pre)[0].timeout,
        DEFAULT_TIMEOUT
    );
    assert_eq!(problems[0].severity, Severity::Warning);
}

#[test]
fn empty_container_means_first_container() {
    let config = load_clean(&exec_with(
        "        command: [sync]\n        container: \"\"\n",
    ));
    assert_eq!(only_rule(&config).hooks(Phase::Pre)[0].container, None);
}

#[test]
fn hooks_keep_list_order() {
    let config = load_clean(
        "hooks:\n  resources:\n  - name: r\n    pre:\n    - exec: {command: [first]}\n    - exec: {command: [second]}\n",
    );
    let commands: Vec<&str> = only_rule(&config)
        .hooks(Phase::Pre)
        .iter()
        .map(|h| h.command[0].as_str())
        .collect();
    assert_eq!(commands, vec!["first", "second"]);
}

#[test]
fn rule_without_hooks_is_kept_with_warning() {
    let (config, problems) = load("hooks:\n  resources:\n  - name: idle\n");
    assert_eq!(config.rules().len(), 1);
    assert_eq!(
        paths(&problems),
        vec![(Severity::Warning, "hooks.resources[0]")]
    );
    assert_eq!(
        problems[0].to_string(),
        "config.yaml at hooks.resources[0] (rule \"idle\"): the rule has no pre or post hooks, so it does nothing"
    );
}

#[test]
fn duplicate_rule_names_warn_on_the_second() {
    let (config, problems) = load(
        "hooks:\n  resources:\n  - name: a\n    pre:\n    - exec: {command: [x]}\n  - name: a\n    pre:\n    - exec: {command: [y]}\n",
    );
    assert_eq!(config.rules().len(), 2);
    assert_eq!(
        paths(&problems),
        vec![(Severity::Warning, "hooks.resources[1].name")]
    );
}

#[test]
fn rule_that_is_not_a_mapping_is_an_error() {
    let (_, problems) = load("hooks:\n  resources:\n  - freeze\n");
    assert_eq!(
        paths(&problems),
        vec![(Severity::Error, "hooks.resources[0]")]
    );
    assert_eq!(
        problems[0].to_string(),
        "config.yaml at hooks.resources[0]: a rule must be a mapping, found a string; rule #0 is ignored"
    );
}

// ---- label selector validation ----

#[test]
fn invalid_operator_is_a_located_error() {
    let (config, problems) = load(&rule_with(
        "    labelSelector:\n      matchExpressions:\n      - {key: app, operator: in, values: [db]}\n",
    ));
    assert!(config.rules().is_empty());
    assert_eq!(
        paths(&problems),
        vec![(
            Severity::Error,
            "hooks.resources[0].labelSelector.matchExpressions[0].operator"
        )]
    );
    assert_eq!(
        problems[0].message,
        "\"in\" is not a valid label selector operator (expected In, NotIn, Exists or \
         DoesNotExist, case-sensitive)"
    );
}

#[test]
fn unsupported_operator_name_is_an_error() {
    let (_, problems) = load(&rule_with(
        "    labelSelector:\n      matchExpressions:\n      - {key: app, operator: Equals, values: [db]}\n",
    ));
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].severity, Severity::Error);
}

#[test]
fn in_operator_without_values_is_an_error() {
    let (_, problems) = load(&rule_with(
        "    labelSelector:\n      matchExpressions:\n      - {key: app, operator: In}\n",
    ));
    assert_eq!(
        paths(&problems),
        vec![(
            Severity::Error,
            "hooks.resources[0].labelSelector.matchExpressions[0].values"
        )]
    );
    assert_eq!(
        problems[0].message,
        "values must not be empty for operator In (key \"app\")"
    );
}

#[test]
fn not_in_operator_without_values_is_an_error() {
    let (_, problems) = load(&rule_with(
        "    labelSelector:\n      matchExpressions:\n      - {key: app, operator: NotIn, values: []}\n",
    ));
    assert_eq!(
        problems[0].message,
        "values must not be empty for operator NotIn (key \"app\")"
    );
}

#[test]
fn exists_operator_with_values_is_an_error() {
    let (_, problems) = load(&rule_with(
        "    labelSelector:\n      matchExpressions:\n      - {key: app, operator: Exists, values: [db]}\n",
    ));
    assert_eq!(
        problems[0].message,
        "values must be empty for operator Exists (key \"app\")"
    );
}

#[test]
fn does_not_exist_operator_with_values_is_an_error() {
    let (_, problems) = load(&rule_with(
        "    labelSelector:\n      matchExpressions:\n      - {key: app, operator: DoesNotExist, values: [x]}\n",
    ));
    assert_eq!(problems[0].severity, Severity::Error);
}

#[test]
fn expression_without_operator_is_an_error() {
    let (_, problems) = load(&rule_with(
        "    labelSelector:\n      matchExpressions:\n      - {key: app}\n",
    ));
    assert_eq!(
        paths(&problems),
        vec![(
            Severity::Error,
            "hooks.resources[0].labelSelector.matchExpressions[0].operator"
        )]
    );
    assert_eq!(problems[0].message, "operator is required");
}

#[test]
fn expression_without_key_is_an_error() {
    let (_, problems) = load(&rule_with(
        "    labelSelector:\n      matchExpressions:\n      - {operator: Exists}\n",
    ));
    assert_eq!(
        paths(&problems),
        vec![(
            Severity::Error,
            "hooks.resources[0].labelSelector.matchExpressions[0].key"
        )]
    );
}

#[test]
fn invalid_label_key_in_match_labels_is_an_error() {
    let (_, problems) = load(&rule_with(
        "    labelSelector:\n      matchLabels: {\"bad key\": db}\n",
    ));
    assert_eq!(
        paths(&problems),
        vec![(
            Severity::Error,
            "hooks.resources[0].labelSelector.matchLabels.bad key"
        )]
    );
}

#[test]
fn non_string_label_value_is_an_error() {
    let (_, problems) = load(&rule_with(
        "    labelSelector:\n      matchLabels: {backup: true}\n",
    ));
    assert_eq!(
        problems[0].message,
        "the value of label \"backup\" must be a string, found a boolean (quote it)"
    );
}

#[test]
fn invalid_label_value_in_expression_is_an_error() {
    let (_, problems) = load(&rule_with(
        "    labelSelector:\n      matchExpressions:\n      - {key: app, operator: In, values: [\"-db\"]}\n",
    ));
    assert_eq!(
        paths(&problems),
        vec![(
            Severity::Error,
            "hooks.resources[0].labelSelector.matchExpressions[0].values[0]"
        )]
    );
}

// ---- namespace and resource filters ----

#[test]
fn invalid_namespace_glob_is_a_located_error() {
    let (_, problems) = load(&rule_with("    includedNamespaces: [\"team-[ab\"]\n"));
    assert_eq!(
        paths(&problems),
        vec![(Severity::Error, "hooks.resources[0].includedNamespaces[0]")]
    );
    assert_eq!(
        problems[0].message,
        "includedNamespaces: glob pattern \"team-[ab\" has an unclosed '['"
    );
}

#[test]
fn namespaces_given_as_a_string_is_an_error() {
    let (_, problems) = load(&rule_with("    includedNamespaces: shop\n"));
    assert_eq!(
        problems[0].message,
        "includedNamespaces must be a list of strings, found a string"
    );
}

fn rule_applies(filters: &str, namespace: &str) -> bool {
    let (config, problems) = load(&rule_with(filters));
    assert!(
        problems.iter().all(|p| p.severity == Severity::Warning),
        "{problems:#?}"
    );
    only_rule(&config).applies_to(namespace, &labels(&[]))
}

#[test]
fn empty_namespace_includes_mean_all_namespaces() {
    assert!(rule_applies("", "anything"));
}

#[test]
fn star_namespace_include_means_all_namespaces() {
    assert!(rule_applies(
        "    includedNamespaces: [\"*\"]\n",
        "anything"
    ));
}

#[test]
fn namespace_include_globs_select_namespaces() {
    let filters = "    includedNamespaces: [shop, \"team-?\"]\n";
    assert!(rule_applies(filters, "shop"));
    assert!(rule_applies(filters, "team-a"));
    assert!(!rule_applies(filters, "team-ab"));
    assert!(!rule_applies(filters, "other"));
}

#[test]
fn namespace_excludes_win_over_includes() {
    let filters = "    includedNamespaces: [\"team-*\"]\n    excludedNamespaces: [team-test]\n";
    assert!(rule_applies(filters, "team-prod"));
    assert!(!rule_applies(filters, "team-test"));
}

#[test]
fn namespace_exclude_globs_apply_without_includes() {
    let filters = "    excludedNamespaces: [\"kube-*\"]\n";
    assert!(!rule_applies(filters, "kube-system"));
    assert!(rule_applies(filters, "shop"));
}

#[test]
fn star_namespace_exclude_excludes_everything() {
    assert!(!rule_applies("    excludedNamespaces: [\"*\"]\n", "shop"));
}

#[test]
fn empty_resource_includes_select_pods() {
    assert!(rule_applies("    includedResources: []\n", "shop"));
}

#[test]
fn pods_singular_and_short_names_select_pods_in_any_case() {
    for name in ["pods", "pod", "po", "Pods", "Pod", "PO", "pods."] {
        assert!(
            rule_applies(&format!("    includedResources: [\"{name}\"]\n"), "shop"),
            "{name}"
        );
    }
}

#[test]
fn star_resource_include_selects_pods() {
    assert!(rule_applies("    includedResources: [\"*\"]\n", "shop"));
}

#[test]
fn resource_glob_matching_pods_selects_pods() {
    assert!(rule_applies("    includedResources: [\"pod*\"]\n", "shop"));
}

#[test]
fn version_or_group_qualified_pod_names_do_not_select_pods() {
    for name in ["v1/pods", "pods.v1", "pods.apps", "core/v1/pods"] {
        let (config, problems) = load(&rule_with(&format!(
            "    includedResources: [\"{name}\"]\n"
        )));
        assert!(
            !only_rule(&config).applies_to("shop", &labels(&[])),
            "{name}"
        );
        assert_eq!(problems.len(), 1, "{name}: {problems:#?}");
        assert_eq!(problems[0].severity, Severity::Warning);
    }
}

#[test]
fn workload_resource_include_never_selects_pods_and_warns() {
    let (config, problems) = load(&rule_with(
        "    includedResources: [deployments, statefulsets]\n",
    ));
    assert!(!only_rule(&config).applies_to("shop", &labels(&[])));
    assert_eq!(
        problems[0].to_string(),
        "config.yaml at hooks.resources[0] (rule \"r\"): includedResources/excludedResources never \
         select pods, and hooks only run in pods, so the rule does nothing"
    );
}

#[test]
fn excluding_pods_disables_the_rule() {
    assert!(!rule_applies("    excludedResources: [pods]\n", "shop"));
    assert!(!rule_applies("    excludedResources: [po]\n", "shop"));
}

#[test]
fn excluding_other_resources_keeps_pods() {
    assert!(rule_applies(
        "    excludedResources: [persistentvolumeclaims]\n",
        "shop"
    ));
}

#[test]
fn star_resource_exclude_is_ignored_with_warning() {
    let (config, problems) = load(&rule_with("    excludedResources: [\"*\"]\n"));
    assert!(only_rule(&config).applies_to("shop", &labels(&[])));
    assert_eq!(
        paths(&problems),
        vec![(Severity::Warning, "hooks.resources[0].excludedResources[0]")]
    );
}

#[test]
fn label_selector_from_yaml_is_applied() {
    let config = load_clean(&rule_with(
        "    labelSelector:\n      matchLabels: {app: db}\n      matchExpressions:\n      - {key: role, operator: NotIn, values: [replica]}\n",
    ));
    let rule = only_rule(&config);
    assert!(rule.applies_to("shop", &labels(&[("app", "db")])));
    assert!(rule.applies_to("shop", &labels(&[("app", "db"), ("role", "primary")])));
    assert!(!rule.applies_to("shop", &labels(&[("app", "db"), ("role", "replica")])));
    assert!(!rule.applies_to("shop", &labels(&[("app", "web")])));
}

#[test]
fn null_label_selector_matches_every_pod() {
    let config = load_clean(&rule_with("    labelSelector:\n"));
    assert!(only_rule(&config).applies_to("shop", &labels(&[("any", "thing")])));
}

#[test]
fn max_freeze_is_read_from_the_top_level() {
    let config = load_clean("maxFreeze: 5m\nhooks:\n  resources: []\n");
    assert_eq!(config.max_freeze(), Some(Duration::from_secs(300)));
    assert_eq!(load_clean("hooks: {}\n").max_freeze(), None);
}

#[test]
fn thaw_at_snapshot_cut_is_a_top_level_switch() {
    assert_eq!(
        load_clean("thawAtSnapshotCut: false\n").thaw_at_snapshot_cut(),
        Some(false)
    );
    assert_eq!(load_clean("hooks: {}\n").thaw_at_snapshot_cut(), None);
    let (config, problems) = load("thawAtSnapshotCut: \"no\"\n");
    assert_eq!(config.thaw_at_snapshot_cut(), None);
    assert_eq!(
        paths(&problems),
        vec![(Severity::Error, "thawAtSnapshotCut")]
    );
}

#[test]
fn an_invalid_max_freeze_is_an_error_and_the_default_applies() {
    for bad in [
        "maxFreeze: soon",
        "maxFreeze: 0s",
        "maxFreeze: -1m",
        "maxFreeze: 300",
    ] {
        let (config, problems) = load(bad);
        assert_eq!(config.max_freeze(), None, "{bad}");
        assert_eq!(
            paths(&problems),
            vec![(Severity::Error, "maxFreeze")],
            "{bad}"
        );
        assert!(
            problems[0].message.contains("the default applies"),
            "{bad}: {}",
            problems[0]
        );
    }
}

#[test]
fn exec_options_parse_into_the_hook_execution() {
    let config = load_clean(&exec_with(
        "        command: [\"/bin/freeze\"]\n        waitTimeout: 2m\n        waitFor: ready\n        \
         retries: 3\n        retryBackoff: 500ms\n        retryOnExitCode: [75, 1]\n        \
         killOnTimeout: true\n",
    ));
    let execution = &only_rule(&config).hooks(Phase::Pre)[0].execution;
    assert_eq!(
        execution,
        &Execution {
            wait: Some(crate::hooks::WaitFor {
                timeout: Duration::from_secs(120),
                ready: true
            }),
            retries: 3,
            retry_backoff: Duration::from_millis(500),
            retry_on_exit_codes: vec![1, 75],
            kill_on_timeout: true,
            ..Execution::default()
        }
    );
}

#[test]
fn invalid_exec_option_is_an_error_that_leaves_the_rule_out() {
    let (config, problems) = load(&exec_with(
        "        command: [\"/bin/freeze\"]\n        retries: lots\n        killOnTimeout: yes\n",
    ));
    assert!(config.rules().is_empty());
    assert_eq!(
        paths(&problems),
        vec![
            (Severity::Error, "hooks.resources[0].pre[0].exec.retries"),
            (
                Severity::Error,
                "hooks.resources[0].pre[0].exec.killOnTimeout"
            ),
        ]
    );
    assert!(problems[0]
        .message
        .contains("retries \"lots\" is not a whole number of retries"));
}

#[test]
fn clamped_exec_option_is_a_warning() {
    let (config, problems) = load(&exec_with(
        "        command: [\"/bin/freeze\"]\n        retries: 99\n",
    ));
    assert_eq!(
        only_rule(&config).hooks(Phase::Pre)[0].execution.retries,
        10
    );
    assert_eq!(
        paths(&problems),
        vec![(Severity::Warning, "hooks.resources[0].pre[0].exec.retries")]
    );
}

#[test]
fn unknown_template_variable_in_a_rule_command_is_an_error() {
    let (config, problems) = load(&exec_with(
        "        command: [\"/dump\", \"--to=/backup/{{backup.nmae}}\"]\n",
    ));
    assert!(config.rules().is_empty());
    assert_eq!(
        paths(&problems),
        vec![(Severity::Error, "hooks.resources[0].pre[0].exec.command")]
    );
    assert!(problems[0]
        .message
        .starts_with("unknown template variable {{backup.nmae}} in command element 1"));
}

#[test]
fn run_once_per_owner_and_group_are_rule_fields() {
    let config = load_clean(&rule_with(
        "    runOncePer: owner\n    runOn: role=primary\n    group: shop\n",
    ));
    let rule = only_rule(&config);
    let run_once = rule.run_once().unwrap();
    assert_eq!(run_once.run_on_text.as_deref(), Some("role=primary"));
    assert!(run_once
        .run_on
        .as_ref()
        .unwrap()
        .matches(&labels(&[("role", "primary")])));
    assert_eq!(rule.group(), Some("shop"));
}

#[test]
fn run_on_may_be_a_selector_mapping() {
    let config = load_clean(&rule_with(
        "    runOncePer: owner\n    runOn:\n      matchExpressions:\n      - {key: role, operator: In, values: [primary, leader]}\n",
    ));
    let run_once = only_rule(&config).run_once().unwrap();
    assert_eq!(
        run_once.run_on_text.as_deref(),
        Some("role in (primary,leader)")
    );
}

#[test]
fn run_once_per_anything_but_owner_is_an_error_and_run_on_alone_a_warning() {
    let (config, problems) = load(&rule_with("    runOncePer: namespace\n"));
    assert!(config.rules().is_empty());
    assert_eq!(
        paths(&problems),
        vec![(Severity::Error, "hooks.resources[0].runOncePer")]
    );
    let (config, problems) = load(&rule_with("    runOn: role=primary\n"));
    assert_eq!(only_rule(&config).run_once(), None);
    assert_eq!(
        paths(&problems),
        vec![(Severity::Warning, "hooks.resources[0].runOn")]
    );
    let (config, problems) = load(&rule_with(
        "    runOncePer: owner\n    runOn: \"role in primary\"\n",
    ));
    assert!(config.rules().is_empty());
    assert_eq!(
        paths(&problems),
        vec![(Severity::Error, "hooks.resources[0].runOn")]
    );
}

// Held sessions.

const HOLDING_RULE: &str = r#"
hooks:
  resources:
  - name: mariadb
    pre:
    - exec:
        container: db
        command: ["mysql", "-uroot", "--unbuffered", "-N"]
        stdin: "FLUSH TABLES WITH READ LOCK; SELECT 'quiesce-frozen';"
        holdUntilOutput: quiesce-frozen
        killOnTimeout: true
    post:
    - exec:
        stdin: "UNLOCK TABLES;"
        timeout: 1m
    - exec:
        command: ["/bin/echo", "thawed"]
"#;

#[test]
fn a_rule_holds_a_session_and_ends_it_with_a_post_hook_of_only_stdin() {
    let config = load_clean(HOLDING_RULE);
    let rule = only_rule(&config);
    let (index, pre) = rule.held_session().unwrap();
    assert_eq!(index, 0);
    assert_eq!(
        pre.execution.hold_until_output.as_deref(),
        Some("quiesce-frozen")
    );
    assert_eq!(
        pre.execution.stdin.as_deref(),
        Some("FLUSH TABLES WITH READ LOCK; SELECT 'quiesce-frozen';")
    );
    let post = rule.hooks(Phase::Post);
    assert!(post[0].ends_session && !post[1].ends_session);
    assert!(post[0].command.is_empty());
    assert_eq!(post[0].execution.stdin.as_deref(), Some("UNLOCK TABLES;"));
    assert_eq!(post[0].timeout, Duration::from_secs(60));
}

#[test]
fn stdin_may_use_template_variables_and_an_unknown_one_is_a_rule_error() {
    let templated = HOLDING_RULE.replace(
        "SELECT 'quiesce-frozen';",
        "DO '{{backup.name}}'; SELECT 'quiesce-frozen';",
    );
    load_clean(&templated);
    let (_, problems) =
        load(&HOLDING_RULE.replace("UNLOCK TABLES;", "UNLOCK TABLES; -- {{backup.nmae}}"));
    assert_eq!(
        paths(&problems),
        [(Severity::Error, "hooks.resources[0].post[0].exec.stdin")]
    );
    assert!(problems[0]
        .message
        .starts_with("unknown template variable {{backup.nmae}} in stdin; known: "));
}

#[test]
fn a_session_end_ignores_what_only_a_command_would_use() {
    let (config, problems) = load(&HOLDING_RULE.replace(
        "        stdin: \"UNLOCK TABLES;\"\n",
        "        stdin: \"UNLOCK TABLES;\"\n        container: other\n        retries: 2\n",
    ));
    assert_eq!(
        paths(&problems),
        [
            (
                Severity::Warning,
                "hooks.resources[0].post[0].exec.container"
            ),
            (Severity::Warning, "hooks.resources[0].post[0].exec.retries"),
        ]
    );
    let post = &only_rule(&config).hooks(Phase::Post)[0];
    assert_eq!(post.container, None);
    assert_eq!(post.execution.retries, 0);
}

#[test]
fn session_mistakes_are_errors_at_their_fields() {
    for (yaml, path, message) in [
        (
            exec_with("        command: [\"sync\"]\n    post:\n    - exec:\n        stdin: x\n"),
            "hooks.resources[0].post[0].exec.command",
            "no pre hook of this rule holds one",
        ),
        (
            "hooks:\n  resources:\n  - name: r\n    post:\n    - exec:\n        command: [\"sync\"]\n        holdUntilOutput: ready\n".to_owned(),
            "hooks.resources[0].post[0].exec.holdUntilOutput",
            "holdUntilOutput \"ready\" cannot be waited for by a post hook",
        ),
        (
            exec_with("        command: [\"a\"]\n        holdUntilOutput: one\n    - exec:\n        command: [\"b\"]\n        holdUntilOutput: two\n"),
            "hooks.resources[0].pre[1].exec.holdUntilOutput",
            "a rule holds at most one session",
        ),
        (
            HOLDING_RULE.replace("    - exec:\n        command: [\"/bin/echo\", \"thawed\"]\n", "    - exec:\n        stdin: again\n"),
            "hooks.resources[0].post[1].exec.command",
            "post[0] already ends the rule's held session",
        ),
        (
            exec_with("        stdin: \"x\"\n"),
            "hooks.resources[0].pre[0].exec.command",
            "command is required",
        ),
        (
            exec_with("        command: [\"a\"]\n        holdUntilOutput: \"\"\n"),
            "hooks.resources[0].pre[0].exec.holdUntilOutput",
            "holdUntilOutput \"\" is empty",
        ),
    ] {
        let (config, problems) = load(&yaml);
        assert!(config.rules().is_empty(), "{yaml}");
        let problem = problems
            .iter()
            .find(|p| p.location.path == path)
            .unwrap_or_else(|| panic!("no problem at {path}: {problems:#?}"));
        assert_eq!(problem.severity, Severity::Error);
        assert!(problem.message.contains(message), "{}", problem.message);
    }
}
