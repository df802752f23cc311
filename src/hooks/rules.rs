//! Hook rules from the plugin ConfigMap: `data["config.yaml"]` holds
//! `hooks: {resources: [...]}` with the schema of Velero's `Backup.spec.hooks.resources[]`,
//! plus the top-level `maxFreeze` and `governance` (parsed in `governance.rs`). What a problem
//! is and where it sits is `problem.rs`'s, shared with `governance.rs`.
//!
//! The YAML is walked by hand (not `deny_unknown_fields`) so that every problem carries a
//! precise field path and the rule it belongs to. A rule with an error is left out while the
//! other rules keep working; warnings keep the rule. Nothing is dropped silently.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_yaml_ng::{Mapping, Value};

use super::duration::{effective_timeout, parse_go_duration, TimeoutAdjustment};
use super::execution::{Builder, Field};
use super::glob::Glob;
use super::governance::{parse_governance, Governance};
use super::problem::{
    kind_of, list_of, mapping_of, nullable, unknown_field, Location, Problem, Severity, CONFIG_KEY,
};
use super::selector::{check_label_key, check_label_value, LabelSelector, Operator, Requirement};
use super::template;
use super::workload::RunOnce;
use super::{Execution, OnError, Phase, DEFAULT_TIMEOUT};

/// The validated hook configuration: rules in the order they were written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    rules: Vec<Rule>,
    max_freeze: Option<Duration>,
    thaw_at_snapshot_cut: Option<bool>,
    governance: Governance,
}

/// One valid entry of `hooks.resources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    name: String,
    index: usize,
    included_namespaces: Vec<Glob>,
    excluded_namespaces: Vec<Glob>,
    included_resources: Vec<ResourcePattern>,
    excluded_resources: Vec<ResourcePattern>,
    label_selector: Option<LabelSelector>,
    pre: Vec<ExecHook>,
    post: Vec<ExecHook>,
    run_once: Option<RunOnce>,
    group: Option<String>,
}

/// One `pre[]`/`post[]` entry's `exec`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecHook {
    /// Target container; `None` means the pod's first container.
    pub container: Option<String>,
    /// argv (never empty, except on a post hook that ends a held session).
    pub command: Vec<String>,
    /// Failure mode (`Fail` when omitted).
    pub on_error: OnError,
    /// Effective timeout (default 30s, at most 4h).
    pub timeout: Duration,
    /// Waits, retries, kill on timeout, stdin, the ready text of a held session.
    pub execution: Execution,
    /// A post hook with `stdin` and no `command`: it ends the session the rule's pre hook
    /// holds, writing its `stdin` to it.
    pub ends_session: bool,
}

/// An `includedResources`/`excludedResources` entry, as Velero resolves it for pods.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ResourcePattern {
    /// `*`.
    All,
    /// A name that Kubernetes discovery resolves to core `pods` (`pods`, `pod`, `po`, any case).
    Pods,
    /// Anything else, kept verbatim and glob-matched against `pods` (Velero's behaviour for
    /// names discovery does not resolve).
    Verbatim(Glob),
}

impl ResourcePattern {
    fn matches_pods(&self) -> bool {
        match self {
            ResourcePattern::All | ResourcePattern::Pods => true,
            ResourcePattern::Verbatim(glob) => glob.matches("pods"),
        }
    }
}

impl Config {
    /// Reads the rules from a ConfigMap's `data`. Only the [`CONFIG_KEY`] entry is read; other
    /// data keys are left to their owners. Returns the valid rules and every problem found.
    pub fn from_configmap_data(data: &BTreeMap<String, String>) -> (Config, Vec<Problem>) {
        match data.get(CONFIG_KEY) {
            Some(text) => Config::from_yaml(text),
            None => (
                Config::default(),
                vec![Problem::warning(
                    Location::document(),
                    format!(
                        "the plugin ConfigMap has no {CONFIG_KEY:?} key; no hook rules are loaded"
                    ),
                )],
            ),
        }
    }

    /// Reads the rules from the text of `config.yaml`.
    pub fn from_yaml(text: &str) -> (Config, Vec<Problem>) {
        let mut problems = Vec::new();
        let document = match serde_yaml_ng::from_str::<Value>(text) {
            Ok(document) => document,
            Err(error) => {
                problems.push(Problem::error(
                    Location::document(),
                    format!("is not valid YAML ({error}); no hook rules are loaded"),
                ));
                return (Config::default(), problems);
            }
        };
        let top = nullable(&document, mapping_of, |found| {
            problems.push(Problem::error(
                Location::document(),
                format!(
                    "must be a mapping with a \"hooks\" key, found {found}; no hook rules are loaded"
                ),
            ))
        });
        let config = match top {
            Some(top) => parse_top_level(top, &mut problems),
            None => Config::default(),
        };
        (config, problems)
    }

    /// The top-level `maxFreeze`: how long a pod may stay frozen unless its own
    /// `quiesce.dev/max-freeze` annotation says otherwise.
    pub fn max_freeze(&self) -> Option<Duration> {
        self.max_freeze
    }

    /// The top-level `thawAtSnapshotCut` (`true`/`false`), when set: whether a pod frozen for
    /// CSI snapshots thaws as soon as they are cut.
    pub fn thaw_at_snapshot_cut(&self) -> Option<bool> {
        self.thaw_at_snapshot_cut
    }

    /// The valid rules, in the order they were written.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The top-level `governance`: what annotation hooks may do (defaults when absent).
    pub fn governance(&self) -> &Governance {
        &self.governance
    }
}

impl Rule {
    /// The rule's `name` (logged as `hookName`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Position of the rule in `hooks.resources` as written (invalid rules included).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The rule's hooks for `phase`, in list order.
    pub fn hooks(&self, phase: Phase) -> &[ExecHook] {
        match phase {
            Phase::Pre => &self.pre,
            Phase::Post => &self.post,
        }
    }

    /// The pre hook that holds a session (`holdUntilOutput`), with its index: at most one.
    pub fn held_session(&self) -> Option<(usize, &ExecHook)> {
        self.pre
            .iter()
            .enumerate()
            .find(|(_, hook)| hook.execution.hold_until_output.is_some())
    }

    /// `runOncePer: owner` (with `runOn`): only one pod per owner runs the rule's hooks.
    pub fn run_once(&self) -> Option<&RunOnce> {
        self.run_once.as_ref()
    }

    /// `group`: the consistency group of the pods the rule applies to.
    pub fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }

    /// The label selector, if any (none matches every pod).
    pub fn label_selector(&self) -> Option<&LabelSelector> {
        self.label_selector.as_ref()
    }

    /// Whether the rule applies to a pod in `namespace` with `labels`: the namespace passes
    /// the include/exclude globs (excludes win, no includes = all), `pods` passes the resource
    /// filters, and the selector matches.
    pub fn applies_to(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        let namespace_excluded = self
            .excluded_namespaces
            .iter()
            .any(|g| g.matches(namespace));
        let namespace_included = self.included_namespaces.is_empty()
            || self
                .included_namespaces
                .iter()
                .any(|g| g.matches(namespace));
        namespace_included
            && !namespace_excluded
            && self.selects_pods()
            && self
                .label_selector
                .as_ref()
                .is_none_or(|selector| selector.matches(labels))
    }

    fn selects_pods(&self) -> bool {
        let excluded = self.excluded_resources.iter().any(|pattern| {
            // Velero ignores `*` among excluded resources.
            *pattern != ResourcePattern::All && pattern.matches_pods()
        });
        let included = self.included_resources.is_empty()
            || self
                .included_resources
                .iter()
                .any(ResourcePattern::matches_pods);
        included && !excluded
    }
}

fn parse_top_level(top: &Mapping, problems: &mut Vec<Problem>) -> Config {
    let mut config = Config::default();
    for (key, value) in top {
        match key.as_str() {
            Some("hooks") => config.rules = parse_hooks(value, problems),
            Some("maxFreeze") => config.max_freeze = parse_max_freeze(value, problems),
            Some("thawAtSnapshotCut") => match value {
                Value::Bool(on) => config.thaw_at_snapshot_cut = Some(*on),
                other => problems.push(Problem::error(
                    Location::at("thawAtSnapshotCut"),
                    format!(
                        "thawAtSnapshotCut must be true or false, found {}; the default (true) \
                         applies",
                        kind_of(other)
                    ),
                )),
            },
            Some("governance") => config.governance = parse_governance(value, problems),
            Some(other) => problems.push(Problem::warning(
                Location::at(other),
                format!("unknown top-level field {other:?} is ignored"),
            )),
            None => problems.push(Problem::warning(
                Location::document(),
                format!("a top-level key that is {} is ignored", kind_of(key)),
            )),
        }
    }
    config
}

/// `maxFreeze`: a positive Go duration string; anything else is an error and is ignored.
fn parse_max_freeze(value: &Value, problems: &mut Vec<Problem>) -> Option<Duration> {
    let reason = match value {
        Value::String(text) => match parse_go_duration(text) {
            Ok(d) if !d.negative && !d.magnitude.is_zero() => return Some(d.magnitude),
            Ok(_) => format!("{text:?} is not positive"),
            Err(error) => format!("{text:?} is not a duration ({error})"),
        },
        other => format!(
            "must be a duration string such as \"10m\", found {}",
            kind_of(other)
        ),
    };
    problems.push(Problem::error(
        Location::at("maxFreeze"),
        format!("maxFreeze {reason}; the default applies"),
    ));
    None
}

fn parse_hooks(value: &Value, problems: &mut Vec<Problem>) -> Vec<Rule> {
    let Some(hooks) = nullable(value, mapping_of, |found| {
        problems.push(Problem::error(
            Location::at("hooks"),
            format!(
                "hooks must be a mapping with a \"resources\" list, found {found}; no hook rules are loaded"
            ),
        ))
    }) else {
        return Vec::new();
    };
    let mut rules = Vec::new();
    for (key, value) in hooks {
        match key.as_str() {
            Some("resources") => rules = parse_resources(value, problems),
            Some(other) => problems.push(Problem::warning(
                Location::at(&format!("hooks.{other}")),
                format!(
                    "unknown field {other:?} under hooks is ignored (only \"resources\" is read)"
                ),
            )),
            None => problems.push(Problem::warning(
                Location::at("hooks"),
                format!("a key that is {} is ignored", kind_of(key)),
            )),
        }
    }
    rules
}

fn parse_resources(value: &Value, problems: &mut Vec<Problem>) -> Vec<Rule> {
    let Some(items) = nullable(value, list_of, |found| {
        problems.push(Problem::error(
            Location::at("hooks.resources"),
            format!(
                "hooks.resources must be a list of rules, found {found}; no hook rules are loaded"
            ),
        ))
    }) else {
        return Vec::new();
    };
    let mut rules: Vec<Rule> = Vec::new();
    let mut seen_names = BTreeSet::new();
    for (index, item) in items.iter().enumerate() {
        let mut ctx = RuleContext {
            problems: &mut *problems,
            index,
            name: None,
            has_error: false,
        };
        let rule = parse_rule(&mut ctx, item);
        if let Some(rule) = rule.filter(|_| !ctx.has_error) {
            if !seen_names.insert(rule.name.clone()) {
                ctx.warning(
                    &format!("{}.name", ctx.base()),
                    format!(
                        "another rule is also named {:?}; hook logs and counters cannot tell them apart",
                        rule.name
                    ),
                );
            }
            rules.push(rule);
        }
    }
    rules
}

/// Collects problems for one rule and remembers whether any was an error.
struct RuleContext<'a> {
    problems: &'a mut Vec<Problem>,
    index: usize,
    name: Option<String>,
    has_error: bool,
}

impl RuleContext<'_> {
    fn base(&self) -> String {
        format!("hooks.resources[{}]", self.index)
    }

    fn path(&self, field: &str) -> String {
        format!("{}.{field}", self.base())
    }

    fn push(&mut self, severity: Severity, path: &str, message: String) {
        if severity == Severity::Error {
            self.has_error = true;
        }
        self.problems.push(Problem {
            severity,
            location: Location::in_rule(path, self.index, self.name.clone()),
            message,
        });
    }

    fn error(&mut self, path: &str, message: String) {
        self.push(Severity::Error, path, message);
    }

    fn warning(&mut self, path: &str, message: String) {
        self.push(Severity::Warning, path, message);
    }

    /// The entries of a mapping with string keys; other keys are errors.
    fn entries<'v>(&mut self, mapping: &'v Mapping, path: &str) -> Vec<(&'v str, &'v Value)> {
        let mut entries = Vec::new();
        for (key, value) in mapping {
            match key.as_str() {
                Some(key) => entries.push((key, value)),
                None => self.error(
                    path,
                    format!("has a key that is {}, not a field name", kind_of(key)),
                ),
            }
        }
        entries
    }

    fn unknown_field(&mut self, path: &str, field: &str, known: &[&str]) {
        let at = if path.is_empty() {
            self.base()
        } else {
            path.to_owned()
        };
        self.error(&format!("{at}.{field}"), unknown_field(field, known));
    }

    /// A required or optional string; `None` (with an error pushed) if it is another type.
    fn string<'v>(&mut self, value: &'v Value, path: &str, what: &str) -> Option<&'v str> {
        match value {
            Value::String(text) => Some(text),
            other => {
                self.error(
                    path,
                    format!("{what} must be a string, found {}", kind_of(other)),
                );
                None
            }
        }
    }

    /// A list of strings; null is an empty list.
    fn string_list(&mut self, value: &Value, path: &str, what: &str) -> Option<Vec<String>> {
        let Some(items) = nullable(value, list_of, |found| {
            self.error(
                path,
                format!("{what} must be a list of strings, found {found}"),
            )
        }) else {
            // Null reads as an empty list; anything else was reported.
            return matches!(value, Value::Null).then(Vec::new);
        };
        let mut strings = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(text) => strings.push(text.clone()),
                other => {
                    ok = false;
                    self.error(
                        &format!("{path}[{i}]"),
                        format!(
                            "{what} must contain only strings, found {} (quote it)",
                            kind_of(other)
                        ),
                    );
                }
            }
        }
        ok.then_some(strings)
    }
}

const RULE_FIELDS: &[&str] = &[
    "name",
    "includedNamespaces",
    "excludedNamespaces",
    "includedResources",
    "excludedResources",
    "labelSelector",
    "pre",
    "post",
    "runOncePer",
    "runOn",
    "group",
];

fn parse_rule(ctx: &mut RuleContext<'_>, item: &Value) -> Option<Rule> {
    let base = ctx.base();
    let Value::Mapping(mapping) = item else {
        ctx.error(
            &base,
            format!("a rule must be a mapping, found {}", kind_of(item)),
        );
        return None;
    };
    // Read the name first so that every later problem can name the rule.
    let name = match mapping.get("name") {
        None | Some(Value::Null) => {
            ctx.error(&ctx.path("name"), "name is required".to_owned());
            None
        }
        Some(value) => match ctx.string(value, &ctx.path("name"), "name") {
            Some("") => {
                ctx.error(&ctx.path("name"), "name must not be empty".to_owned());
                None
            }
            Some(name) => Some(name.to_owned()),
            None => None,
        },
    };
    ctx.name = name.clone();

    let mut rule = Rule {
        name: name.unwrap_or_default(),
        index: ctx.index,
        included_namespaces: Vec::new(),
        excluded_namespaces: Vec::new(),
        included_resources: Vec::new(),
        excluded_resources: Vec::new(),
        label_selector: None,
        pre: Vec::new(),
        post: Vec::new(),
        run_once: None,
        group: None,
    };
    let mut run_on = None;
    for (field, value) in ctx.entries(mapping, &base) {
        let path = ctx.path(field);
        match field {
            "name" => {}
            "includedNamespaces" => {
                rule.included_namespaces = namespace_globs(ctx, value, &path, field)
            }
            "excludedNamespaces" => {
                rule.excluded_namespaces = namespace_globs(ctx, value, &path, field)
            }
            "includedResources" => {
                rule.included_resources = resource_patterns(ctx, value, &path, field)
            }
            "excludedResources" => {
                rule.excluded_resources = resource_patterns(ctx, value, &path, field);
                for (i, pattern) in rule.excluded_resources.iter().enumerate() {
                    if *pattern == ResourcePattern::All {
                        ctx.warning(
                            &format!("{path}[{i}]"),
                            "\"*\" in excludedResources is ignored, as in Velero".to_owned(),
                        );
                    }
                }
            }
            "labelSelector" => rule.label_selector = label_selector(ctx, value, &path),
            "pre" => rule.pre = hook_list(ctx, value, &path, Phase::Pre),
            "post" => rule.post = hook_list(ctx, value, &path, Phase::Post),
            "runOncePer" => match ctx.string(value, &path, field) {
                Some("owner") => rule.run_once = Some(RunOnce::default()),
                Some(other) => ctx.error(
                    &path,
                    format!("runOncePer {other:?} is not supported; the only value is \"owner\""),
                ),
                None => {}
            },
            "runOn" => run_on = run_on_selector(ctx, value, &path),
            "group" => match ctx.string(value, &path, field) {
                Some("") => ctx.error(&path, "group must not be empty".to_owned()),
                Some(group) => rule.group = Some(group.to_owned()),
                None => {}
            },
            other => ctx.unknown_field("", other, RULE_FIELDS),
        }
    }
    match (&mut rule.run_once, run_on) {
        (Some(run_once), Some(run_on)) => *run_once = run_on,
        (None, Some(_)) => ctx.warning(
            &ctx.path("runOn"),
            "runOn has no effect without runOncePer: owner".to_owned(),
        ),
        _ => {}
    }

    check_sessions(ctx, &rule);
    if ctx.has_error {
        return None;
    }
    if rule.pre.is_empty() && rule.post.is_empty() {
        ctx.warning(
            &base,
            "the rule has no pre or post hooks, so it does nothing".to_owned(),
        );
    }
    if !rule.selects_pods() {
        ctx.warning(
            &base,
            "includedResources/excludedResources never select pods, and hooks only run in pods, \
             so the rule does nothing"
                .to_owned(),
        );
    }
    Some(rule)
}

/// A rule holds at most one session, and ends it with at most one post hook of only `stdin`,
/// which needs a session to end.
fn check_sessions(ctx: &mut RuleContext<'_>, rule: &Rule) {
    let holding: Vec<usize> = (0..rule.pre.len())
        .filter(|&i| rule.pre[i].execution.hold_until_output.is_some())
        .collect();
    for &i in holding.iter().skip(1) {
        ctx.error(
            &ctx.path(&format!("pre[{i}].exec.holdUntilOutput")),
            format!(
                "a rule holds at most one session, and pre[{}] holds one already; write \
                 another rule for another session",
                holding[0]
            ),
        );
    }
    let ending: Vec<usize> = (0..rule.post.len())
        .filter(|&i| rule.post[i].ends_session)
        .collect();
    for (n, &i) in ending.iter().enumerate() {
        let path = ctx.path(&format!("post[{i}].exec.command"));
        if holding.is_empty() {
            ctx.error(
                &path,
                "command is required: a post hook with only stdin ends the session a pre hook \
                 of its rule holds (holdUntilOutput), and no pre hook of this rule holds one"
                    .to_owned(),
            );
        } else if n > 0 {
            ctx.error(
                &path,
                format!(
                    "command is required: post[{}] already ends the rule's held session",
                    ending[0]
                ),
            );
        }
    }
}

/// `runOn`: a selector in kubectl's text form (`role=primary`) or a `matchLabels` /
/// `matchExpressions` mapping.
fn run_on_selector(ctx: &mut RuleContext<'_>, value: &Value, path: &str) -> Option<RunOnce> {
    match value {
        Value::String(text) => match LabelSelector::parse(text) {
            Ok(selector) => Some(RunOnce {
                run_on: Some(selector),
                run_on_text: Some(text.clone()),
            }),
            Err(error) => {
                ctx.error(path, format!("runOn is not a label selector: {error}"));
                None
            }
        },
        Value::Mapping(_) => label_selector(ctx, value, path).map(|selector| RunOnce {
            run_on_text: Some(selector_text(&selector)),
            run_on: Some(selector),
        }),
        other => {
            ctx.error(
                path,
                format!(
                    "runOn must be a label selector such as \"role=primary\", found {}",
                    kind_of(other)
                ),
            );
            None
        }
    }
}

/// A selector in kubectl's text form, for messages.
fn selector_text(selector: &LabelSelector) -> String {
    let labels = selector
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"));
    let expressions = selector.match_expressions.iter().map(|r| match r.operator {
        Operator::In => format!("{} in ({})", r.key, r.values.join(",")),
        Operator::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
        Operator::Exists => r.key.clone(),
        Operator::DoesNotExist => format!("!{}", r.key),
    });
    labels.chain(expressions).collect::<Vec<_>>().join(",")
}

fn namespace_globs(ctx: &mut RuleContext<'_>, value: &Value, path: &str, what: &str) -> Vec<Glob> {
    let Some(entries) = ctx.string_list(value, path, what) else {
        return Vec::new();
    };
    let mut globs = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        match Glob::new(entry) {
            Ok(glob) => globs.push(glob),
            Err(error) => ctx.error(&format!("{path}[{i}]"), format!("{what}: {error}")),
        }
    }
    globs
}

fn resource_patterns(
    ctx: &mut RuleContext<'_>,
    value: &Value,
    path: &str,
    what: &str,
) -> Vec<ResourcePattern> {
    let Some(entries) = ctx.string_list(value, path, what) else {
        return Vec::new();
    };
    let mut patterns = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        match resource_pattern(entry) {
            Ok(pattern) => patterns.push(pattern),
            Err(error) => ctx.error(&format!("{path}[{i}]"), format!("{what}: {error}")),
        }
    }
    patterns
}

/// Resolves an entry as Velero does through discovery: `resource[.group]`; core pods are
/// `pods`, `pod` or `po` in any case with an empty group. Anything else stays verbatim.
fn resource_pattern(entry: &str) -> Result<ResourcePattern, super::GlobError> {
    if entry == "*" {
        return Ok(ResourcePattern::All);
    }
    let lower = entry.to_ascii_lowercase();
    let (resource, group) = lower.split_once('.').unwrap_or((lower.as_str(), ""));
    if group.is_empty() && matches!(resource, "pods" | "pod" | "po") {
        return Ok(ResourcePattern::Pods);
    }
    Glob::new(entry).map(ResourcePattern::Verbatim)
}

const SELECTOR_FIELDS: &[&str] = &["matchLabels", "matchExpressions"];
const EXPRESSION_FIELDS: &[&str] = &["key", "operator", "values"];

fn label_selector(ctx: &mut RuleContext<'_>, value: &Value, path: &str) -> Option<LabelSelector> {
    let mapping = nullable(value, mapping_of, |found| {
        ctx.error(
            path,
            format!("labelSelector must be a mapping, found {found}"),
        )
    })?;
    let mut selector = LabelSelector::default();
    for (field, value) in ctx.entries(mapping, path) {
        let field_path = format!("{path}.{field}");
        match field {
            "matchLabels" => selector.match_labels = match_labels(ctx, value, &field_path),
            "matchExpressions" => {
                selector.match_expressions = match_expressions(ctx, value, &field_path)
            }
            other => ctx.unknown_field(path, other, SELECTOR_FIELDS),
        }
    }
    Some(selector)
}

fn match_labels(ctx: &mut RuleContext<'_>, value: &Value, path: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let Some(mapping) = nullable(value, mapping_of, |found| {
        ctx.error(
            path,
            format!("matchLabels must be a mapping, found {found}"),
        )
    }) else {
        return labels;
    };
    for (key, value) in ctx.entries(mapping, path) {
        let entry_path = format!("{path}.{key}");
        if let Err(reason) = check_label_key(key) {
            ctx.error(&entry_path, reason);
        }
        match value {
            Value::String(text) => {
                if let Err(reason) = check_label_value(text) {
                    ctx.error(&entry_path, reason);
                }
                labels.insert(key.to_owned(), text.clone());
            }
            other => ctx.error(
                &entry_path,
                format!(
                    "the value of label {key:?} must be a string, found {} (quote it)",
                    kind_of(other)
                ),
            ),
        }
    }
    labels
}

fn match_expressions(ctx: &mut RuleContext<'_>, value: &Value, path: &str) -> Vec<Requirement> {
    let Some(items) = nullable(value, list_of, |found| {
        ctx.error(
            path,
            format!("matchExpressions must be a list, found {found}"),
        )
    }) else {
        return Vec::new();
    };
    let mut requirements = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        if let Some(requirement) = match_expression(ctx, item, &item_path) {
            requirements.push(requirement);
        }
    }
    requirements
}

fn match_expression(ctx: &mut RuleContext<'_>, item: &Value, path: &str) -> Option<Requirement> {
    let Value::Mapping(mapping) = item else {
        ctx.error(
            path,
            format!(
                "a match expression must be a mapping, found {}",
                kind_of(item)
            ),
        );
        return None;
    };
    let (mut key, mut operator, mut values) = (None, None, Vec::new());
    let mut ok = true;
    for (field, value) in ctx.entries(mapping, path) {
        let field_path = format!("{path}.{field}");
        match field {
            "key" => key = ctx.string(value, &field_path, "key").map(str::to_owned),
            "operator" => {
                let Some(text) = ctx.string(value, &field_path, "operator") else {
                    ok = false;
                    continue;
                };
                operator = Operator::parse(text);
                if operator.is_none() {
                    ok = false;
                    ctx.error(
                        &field_path,
                        format!(
                            "{text:?} is not a valid label selector operator (expected In, NotIn, \
                             Exists or DoesNotExist, case-sensitive)"
                        ),
                    );
                }
            }
            "values" => match ctx.string_list(value, &field_path, "values") {
                Some(list) => values = list,
                None => ok = false,
            },
            other => {
                ok = false;
                ctx.unknown_field(path, other, EXPRESSION_FIELDS);
            }
        }
    }
    if !mapping.contains_key("key") {
        ctx.error(&format!("{path}.key"), "key is required".to_owned());
        ok = false;
    }
    if let Some(reason) = key.as_deref().and_then(|k| check_label_key(k).err()) {
        ctx.error(&format!("{path}.key"), reason);
        ok = false;
    }
    if !mapping.contains_key("operator") {
        ctx.error(
            &format!("{path}.operator"),
            "operator is required".to_owned(),
        );
        ok = false;
    }
    let key_text = key.as_deref().unwrap_or_default();
    if let Some(operator) = operator {
        if operator.needs_values() && values.is_empty() {
            ctx.error(
                &format!("{path}.values"),
                format!("values must not be empty for operator {operator} (key {key_text:?})"),
            );
            ok = false;
        }
        if !operator.needs_values() && !values.is_empty() {
            ctx.error(
                &format!("{path}.values"),
                format!("values must be empty for operator {operator} (key {key_text:?})"),
            );
            ok = false;
        }
    }
    for (i, value) in values.iter().enumerate() {
        if let Err(reason) = check_label_value(value) {
            ctx.error(&format!("{path}.values[{i}]"), reason);
            ok = false;
        }
    }
    match (ok, key, operator) {
        (true, Some(key), Some(operator)) => Some(Requirement {
            key,
            operator,
            values,
        }),
        _ => None,
    }
}

const HOOK_FIELDS: &[&str] = &["exec"];
const EXEC_FIELDS: &[&str] = &[
    "container",
    "command",
    "onError",
    "timeout",
    "waitTimeout",
    "waitFor",
    "retries",
    "retryBackoff",
    "retryOnExitCode",
    "killOnTimeout",
    "stdin",
    "holdUntilOutput",
];

fn hook_list(ctx: &mut RuleContext<'_>, value: &Value, path: &str, phase: Phase) -> Vec<ExecHook> {
    let Some(items) = nullable(value, list_of, |found| {
        ctx.error(
            path,
            format!("must be a list of hooks (each with an exec), found {found}"),
        )
    }) else {
        return Vec::new();
    };
    let mut hooks = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let Value::Mapping(mapping) = item else {
            ctx.error(
                &item_path,
                format!(
                    "a hook must be a mapping with an exec, found {}",
                    kind_of(item)
                ),
            );
            continue;
        };
        let mut exec = None;
        for (field, value) in ctx.entries(mapping, &item_path) {
            match field {
                "exec" => exec = Some(value),
                other => ctx.unknown_field(&item_path, other, HOOK_FIELDS),
            }
        }
        match exec {
            None | Some(Value::Null) => {
                ctx.error(&format!("{item_path}.exec"), "exec is required".to_owned())
            }
            Some(exec) => {
                if let Some(hook) = exec_hook(ctx, exec, &format!("{item_path}.exec"), phase) {
                    hooks.push(hook);
                }
            }
        }
    }
    hooks
}

fn exec_hook(
    ctx: &mut RuleContext<'_>,
    value: &Value,
    path: &str,
    phase: Phase,
) -> Option<ExecHook> {
    let Value::Mapping(mapping) = value else {
        ctx.error(
            path,
            format!("exec must be a mapping, found {}", kind_of(value)),
        );
        return None;
    };
    let mut hook = ExecHook {
        container: None,
        command: Vec::new(),
        on_error: OnError::default(),
        timeout: DEFAULT_TIMEOUT,
        execution: Execution::default(),
        ends_session: false,
    };
    let mut execution = Builder::new(phase);
    let mut ok = true;
    // Report an empty command unless the command field itself already had a type error.
    let mut command_type_error = false;
    for (field, value) in ctx.entries(mapping, path) {
        let field_path = format!("{path}.{field}");
        if matches!(value, Value::Null) && field != "command" {
            continue;
        }
        match field {
            "container" => match ctx.string(value, &field_path, "container") {
                Some(name) => hook.container = Some(name.to_owned()).filter(|n| !n.is_empty()),
                None => ok = false,
            },
            "command" => match value {
                Value::Sequence(_) => match ctx.string_list(value, &field_path, "command") {
                    Some(command) => hook.command = command,
                    None => (ok, command_type_error) = (false, true),
                },
                other => {
                    (ok, command_type_error) = (false, true);
                    ctx.error(
                        &field_path,
                        format!(
                            "command must be a list of strings such as [\"/sbin/fsfreeze\", \
                             \"--freeze\", \"/data\"], found {}",
                            kind_of(other)
                        ),
                    );
                }
            },
            "onError" => match ctx.string(value, &field_path, "onError") {
                Some(text) => match OnError::parse(text) {
                    Some(mode) => hook.on_error = mode,
                    None => {
                        ok = false;
                        ctx.error(
                            &field_path,
                            format!("onError {text:?} is not Fail or Continue (case-sensitive)"),
                        );
                    }
                },
                None => ok = false,
            },
            "timeout" => match rule_timeout(ctx, value, &field_path) {
                Some(timeout) => hook.timeout = timeout,
                None => ok = false,
            },
            other => match Field::from_rule(other) {
                Some(option) => match option_text(value) {
                    None => {
                        ok = false;
                        ctx.error(
                            &field_path,
                            format!(
                                "{other} must be a string, number or boolean, found {}",
                                kind_of(value)
                            ),
                        );
                    }
                    Some(text) => match execution.set(option, &text) {
                        Ok(None) => {}
                        Ok(Some(note)) => ctx.warning(&field_path, format!("{other} {note}")),
                        Err(reason) => {
                            ok = false;
                            ctx.error(&field_path, format!("{other} {reason}"));
                        }
                    },
                },
                None => {
                    ok = false;
                    ctx.unknown_field(path, other, EXEC_FIELDS);
                }
            },
        }
    }
    let (built, notes) = execution.build();
    hook.execution = built;
    for (field, note) in notes {
        ctx.warning(&format!("{path}.{}", field.rule()), note);
    }
    if let Err(unknown) = template::check(&hook.command) {
        ctx.error(&format!("{path}.command"), unknown.to_string());
        ok = false;
    }
    if let Some(Err(unknown)) = hook.execution.stdin.as_deref().map(template::check_stdin) {
        ctx.error(&format!("{path}.stdin"), unknown.to_string());
        ok = false;
    }
    let ends_session =
        phase == Phase::Post && !mapping.contains_key("command") && hook.execution.stdin.is_some();
    if ends_session {
        // Ends the rule's held session (checked with the whole rule): only its input counts.
        hook.ends_session = true;
        for (field, value) in ctx.entries(mapping, path) {
            let ignored = !matches!(value, Value::Null)
                && (field == "container"
                    || Field::from_rule(field).is_some_and(|f| !f.applies_to_session_end()));
            if ignored {
                ctx.warning(
                    &format!("{path}.{field}"),
                    format!(
                        "{field} has no effect on a post hook that ends a held session (it \
                         runs no command: its stdin goes to the session of the rule's pre hook)"
                    ),
                );
            }
        }
        let stdin = hook.execution.stdin.take();
        hook.execution = Execution {
            stdin,
            ..Execution::default()
        };
        hook.container = None;
    } else if hook.command.is_empty() && !command_type_error {
        let message = if mapping.contains_key("command") {
            "command must not be empty"
        } else {
            "command is required"
        };
        ctx.error(&format!("{path}.command"), message.to_owned());
        ok = false;
    }
    ok.then_some(hook)
}

fn rule_timeout(ctx: &mut RuleContext<'_>, value: &Value, path: &str) -> Option<Duration> {
    let text = match value {
        Value::String(text) => text,
        other => {
            ctx.error(
                path,
                format!(
                    "timeout must be a duration string such as \"30s\" or \"1m30s\", found {}",
                    kind_of(other)
                ),
            );
            return None;
        }
    };
    match parse_go_duration(text) {
        Err(error) => {
            ctx.error(
                path,
                format!("timeout {text:?} is not a duration with a unit such as 30s, 5m or 1h30m ({error})"),
            );
            None
        }
        Ok(requested) => {
            let (timeout, adjustment) = effective_timeout(requested);
            match adjustment {
                None => {}
                Some(TimeoutAdjustment::Negative) => ctx.warning(
                    path,
                    format!("timeout {text:?} is negative; using the default 30s"),
                ),
                Some(TimeoutAdjustment::Clamped) => ctx.warning(
                    path,
                    format!("timeout {text:?} exceeds the maximum of 4h; using 4h"),
                ),
            }
            Some(timeout)
        }
    }
}

/// An execution option's YAML value as the text an annotation would hold: scalars as
/// written, a list of exit codes joined with commas.
fn option_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Sequence(items) => items
            .iter()
            .map(|item| match item {
                Value::Number(number) => Some(number.to_string()),
                Value::String(text) => Some(text.clone()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(|codes| codes.join(",")),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
