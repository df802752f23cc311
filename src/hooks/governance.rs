//! Governance of annotation hooks: the ConfigMap's `governance.annotationHooks` says in which
//! namespaces a pod's own `*.hook.backup.quiesce.dev/*` annotations may make quiesce exec, and
//! which containers they may never target — so that a tenant who can annotate a pod cannot gain
//! exec into a sidecar injected by the platform (mesh proxies, secret agents). Rule hooks are
//! written by the Velero admin and are never restricted.
//!
//! ```yaml
//! governance:
//!   annotationHooks:
//!     allowedNamespaces: ["shop-*", "db"]   # globs; empty or absent: every namespace
//!     deniedNamespaces: ["kube-system"]      # globs; deny wins over allow
//!     deniedContainers: ["istio-proxy"]      # names or globs; absent: the defaults; []: none
//! ```
//!
//! Owns the policy's parsing, validation and verdicts; [`super::resolve`] applies them. A
//! policy with any error fails closed: every annotation hook is refused until it is fixed,
//! because leaving out a broken deny entry would open exactly what the admin meant to close.

use std::fmt;

use serde_yaml_ng::Value;

use super::glob::Glob;
use super::problem::{
    kind_of, list_of, mapping_of, nullable, unknown_field, Location, Problem, Severity,
};
use super::{Phase, PodRef};

/// Containers annotation hooks may not target when `deniedContainers` is not set. Each is
/// injected by the platform rather than built by the app team, and holds credentials the app
/// is not meant to read: the mesh identity (mTLS key) of Istio's and Linkerd's proxies, the
/// Vault token of HashiCorp's Vault Agent injector. Short on purpose: a longer list belongs in
/// the ConfigMap, where the admin can see it.
pub const DEFAULT_DENIED_CONTAINERS: [&str; 3] = ["istio-proxy", "linkerd-proxy", "vault-agent"];

const PATH: &str = "governance.annotationHooks";
const GOVERNANCE_FIELDS: &[&str] = &["annotationHooks"];
const POLICY_FIELDS: &[&str] = &["allowedNamespaces", "deniedNamespaces", "deniedContainers"];
const FAILS_CLOSED: &str = "every annotation hook is refused until this is fixed";

/// The validated `governance` section (defaults when it is absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Governance {
    annotation_hooks: AnnotationHookPolicy,
}

impl Governance {
    /// The policy for hooks read from pod annotations.
    pub fn annotation_hooks(&self) -> &AnnotationHookPolicy {
        &self.annotation_hooks
    }
}

/// `governance.annotationHooks`: where annotation hooks may run and into which containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationHookPolicy {
    allowed_namespaces: Vec<Glob>,
    denied_namespaces: Vec<Glob>,
    denied_containers: Vec<Glob>,
    /// `deniedContainers` was not written, so [`DEFAULT_DENIED_CONTAINERS`] apply.
    default_containers: bool,
    /// The section has an error: refuse everything (fail closed).
    invalid: bool,
}

impl Default for AnnotationHookPolicy {
    fn default() -> Self {
        AnnotationHookPolicy {
            allowed_namespaces: Vec::new(),
            denied_namespaces: Vec::new(),
            denied_containers: default_denied_containers(),
            default_containers: true,
            invalid: false,
        }
    }
}

fn default_denied_containers() -> Vec<Glob> {
    DEFAULT_DENIED_CONTAINERS
        .iter()
        .filter_map(|name| Glob::new(name).ok())
        .collect()
}

impl AnnotationHookPolicy {
    /// Which rule of the policy refuses an annotation hook of a pod in `namespace` that runs
    /// in `container`, if one does. Checked in this order: a broken policy, denied namespaces
    /// (deny wins), allowed namespaces, denied containers.
    pub fn refuses(&self, namespace: &str, container: &str) -> Option<PolicyRule> {
        if self.invalid {
            return Some(PolicyRule::PolicyInvalid);
        }
        if let Some(glob) = self.denied_namespaces.iter().find(|g| g.matches(namespace)) {
            return Some(PolicyRule::NamespaceDenied {
                namespace: namespace.to_owned(),
                pattern: glob.to_string(),
            });
        }
        if !self.allowed_namespaces.is_empty()
            && !self.allowed_namespaces.iter().any(|g| g.matches(namespace))
        {
            return Some(PolicyRule::NamespaceNotAllowed {
                namespace: namespace.to_owned(),
                allowed: self
                    .allowed_namespaces
                    .iter()
                    .map(Glob::to_string)
                    .collect(),
            });
        }
        let glob = self
            .denied_containers
            .iter()
            .find(|g| g.matches(container))?;
        Some(PolicyRule::ContainerDenied {
            container: container.to_owned(),
            pattern: glob.to_string(),
            default: self.default_containers,
        })
    }

    /// Whether the section had errors, so that every annotation hook is refused.
    pub fn is_invalid(&self) -> bool {
        self.invalid
    }

    /// The `deniedContainers` patterns in effect (the defaults unless the list was written).
    pub fn denied_containers(&self) -> Vec<String> {
        self.denied_containers.iter().map(Glob::to_string).collect()
    }
}

/// The rule of `governance.annotationHooks` that refuses a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyRule {
    /// The pod's namespace matches a `deniedNamespaces` glob.
    NamespaceDenied {
        /// The pod's namespace.
        namespace: String,
        /// The first glob it matches.
        pattern: String,
    },
    /// `allowedNamespaces` is set and the pod's namespace matches none of its globs.
    NamespaceNotAllowed {
        /// The pod's namespace.
        namespace: String,
        /// The allowed globs.
        allowed: Vec<String>,
    },
    /// The hook's container (named, or the pod's first) matches a `deniedContainers` entry.
    ContainerDenied {
        /// The container the hook would run in.
        container: String,
        /// The first entry it matches.
        pattern: String,
        /// Whether the entry is one of [`DEFAULT_DENIED_CONTAINERS`] (the list was not written).
        default: bool,
    },
    /// `governance` has errors (see the configuration problems): it fails closed.
    PolicyInvalid,
}

impl fmt::Display for PolicyRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyRule::NamespaceDenied { namespace, pattern } => write!(
                f,
                "namespace {namespace:?} matches {pattern:?} of {PATH}.deniedNamespaces"
            ),
            PolicyRule::NamespaceNotAllowed { namespace, allowed } => write!(
                f,
                "namespace {namespace:?} matches none of {PATH}.allowedNamespaces ({})",
                allowed.join(", ")
            ),
            PolicyRule::ContainerDenied {
                container,
                pattern,
                default: false,
            } => write!(
                f,
                "container {container:?} matches {pattern:?} of {PATH}.deniedContainers"
            ),
            PolicyRule::ContainerDenied {
                container,
                default: true,
                ..
            } => write!(
                f,
                "container {container:?} is in the default {PATH}.deniedContainers ({})",
                DEFAULT_DENIED_CONTAINERS.join(", ")
            ),
            PolicyRule::PolicyInvalid => {
                write!(f, "governance in config.yaml has errors, so {FAILS_CLOSED}")
            }
        }
    }
}

/// Why an annotation hook is refused: by its own breach of the policy, or by its partner's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalCause {
    /// The hook itself breaks `rule`.
    Policy(PolicyRule),
    /// The pod's annotation hook of the other phase breaks `rule`. A pod's annotation pre and
    /// post hooks are refused together: a permitted freeze whose thaw is refused would leave
    /// the pod frozen until the watchdog, and a thaw whose freeze was refused runs an unfreeze
    /// nobody asked for.
    OtherPhase {
        /// The other phase.
        phase: Phase,
        /// Its `command` annotation key.
        key: String,
        /// The container it would run in.
        container: String,
        /// The rule it breaks.
        rule: PolicyRule,
    },
}

/// An annotation hook that governance refused: it does not run, and the rule hooks of its
/// phase do not run in its place. Log at warning level and count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRefusal {
    /// The pod.
    pub pod: PodRef,
    /// The phase of the refused hook.
    pub phase: Phase,
    /// Its `command` annotation key, e.g. `pre.hook.backup.quiesce.dev/command`.
    pub key: String,
    /// The container it would have run in (named, or the pod's first).
    pub container: String,
    /// Which rule refused it.
    pub cause: RefusalCause,
}

impl PolicyRefusal {
    /// The rule of the policy that was broken (by this hook or its partner).
    pub fn rule(&self) -> &PolicyRule {
        match &self.cause {
            RefusalCause::Policy(rule) | RefusalCause::OtherPhase { rule, .. } => rule,
        }
    }

    /// Why the hook does not run, without the `pod namespace/name: ` that `Display` starts
    /// with: for callers that show the pod apart, such as `explain`.
    pub fn without_pod(&self) -> String {
        let PolicyRefusal {
            pod: _,
            phase,
            key,
            container,
            cause,
        } = self;
        let why = match cause {
            RefusalCause::Policy(rule) => rule.to_string(),
            RefusalCause::OtherPhase {
                phase: other,
                key: other_key,
                container: other_container,
                rule,
            } => format!(
                "its {other} hook ({other_key}, container {other_container:?}) is refused \
                 ({rule}), and a pod's annotation pre and post hooks run together or not at all"
            ),
        };
        format!(
            "the {phase} hook of annotation {key} (container {container:?}) is refused by \
             governance: {why}; no rule hook runs in its place"
        )
    }
}

impl fmt::Display for PolicyRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pod {}: {}", self.pod, self.without_pod())
    }
}

/// Reads `governance` from `config.yaml`; every problem is pushed with its field path.
pub(super) fn parse_governance(value: &Value, problems: &mut Vec<Problem>) -> Governance {
    let mut governance = Governance::default();
    let Some(mapping) = nullable(value, mapping_of, |found| {
        governance.annotation_hooks.invalid = true;
        problems.push(Problem::error(
            Location::at("governance"),
            format!(
                "governance must be a mapping with an \"annotationHooks\" key, found {found}; \
                 {FAILS_CLOSED}"
            ),
        ));
    }) else {
        return governance;
    };
    let mut invalid = false;
    for (key, value) in mapping {
        match key.as_str() {
            Some("annotationHooks") => {
                governance.annotation_hooks = parse_policy(value, problems);
            }
            Some(other) => {
                invalid = true;
                problems.push(unknown_policy_field("governance", other, GOVERNANCE_FIELDS));
            }
            None => {
                invalid = true;
                problems.push(Problem::error(
                    Location::at("governance"),
                    format!(
                        "has a key that is {}, not a field name; {FAILS_CLOSED}",
                        kind_of(key)
                    ),
                ));
            }
        }
    }
    governance.annotation_hooks.invalid |= invalid;
    governance
}

fn parse_policy(value: &Value, problems: &mut Vec<Problem>) -> AnnotationHookPolicy {
    let mut policy = AnnotationHookPolicy::default();
    let Some(mapping) = nullable(value, mapping_of, |found| {
        policy.invalid = true;
        problems.push(Problem::error(
            Location::at(PATH),
            format!("annotationHooks must be a mapping, found {found}; {FAILS_CLOSED}"),
        ));
    }) else {
        return policy;
    };
    let errors_before = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    for (key, value) in mapping {
        let Some(field) = key.as_str() else {
            problems.push(Problem::error(
                Location::at(PATH),
                format!(
                    "has a key that is {}, not a field name; {FAILS_CLOSED}",
                    kind_of(key)
                ),
            ));
            continue;
        };
        let path = format!("{PATH}.{field}");
        match field {
            "allowedNamespaces" => policy.allowed_namespaces = globs(value, &path, problems),
            "deniedNamespaces" => policy.denied_namespaces = globs(value, &path, problems),
            "deniedContainers" => {
                if matches!(value, Value::Null) {
                    // An empty `deniedContainers:` reads as null: keep the safe defaults
                    // rather than guess that the admin meant to allow every sidecar.
                    problems.push(Problem::warning(
                        Location::at(&path),
                        format!(
                            "deniedContainers is empty (null), so the defaults apply ({}); \
                             write [] to deny no container",
                            DEFAULT_DENIED_CONTAINERS.join(", ")
                        ),
                    ));
                    continue;
                }
                policy.denied_containers = globs(value, &path, problems);
                policy.default_containers = false;
            }
            other => problems.push(unknown_policy_field(PATH, other, POLICY_FIELDS)),
        }
    }
    let errors_after = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    policy.invalid = errors_after > errors_before;
    policy
}

/// A list of glob strings; null is an empty list. Problems are errors (the policy fails closed).
fn globs(value: &Value, path: &str, problems: &mut Vec<Problem>) -> Vec<Glob> {
    let Some(items) = nullable(value, list_of, |found| {
        problems.push(Problem::error(
            Location::at(path),
            format!("must be a list of strings (names or globs), found {found}; {FAILS_CLOSED}"),
        ))
    }) else {
        return Vec::new();
    };
    let mut globs = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        match item {
            Value::String(text) => match Glob::new(text) {
                Ok(glob) => globs.push(glob),
                Err(reason) => problems.push(Problem::error(
                    Location::at(&item_path),
                    format!("{reason}; {FAILS_CLOSED}"),
                )),
            },
            other => problems.push(Problem::error(
                Location::at(&item_path),
                format!(
                    "must be a string, found {} (quote it); {FAILS_CLOSED}",
                    kind_of(other)
                ),
            )),
        }
    }
    globs
}

fn unknown_policy_field(path: &str, field: &str, known: &[&str]) -> Problem {
    Problem::error(
        Location::at(&format!("{path}.{field}")),
        format!("{}; {FAILS_CLOSED}", unknown_field(field, known)),
    )
}

#[cfg(test)]
mod tests;
