//! What can be wrong in the plugin ConfigMap's `config.yaml`, and where: [`Problem`] with its
//! [`Location`] and [`Severity`], and the small helpers that `rules.rs` (the hook rules) and
//! `governance.rs` (the `governance` section) both report with — how a YAML value is named in
//! a message, the text for an unknown field, and reading a field that may be left empty.
//!
//! Sits below both parsers and imports neither: they meet here instead of in each other.

use std::fmt;

use serde_yaml_ng::{Mapping, Sequence, Value};

/// The ConfigMap data key holding the YAML configuration.
pub const CONFIG_KEY: &str = "config.yaml";

/// How serious a configuration problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Something is ignored or adjusted; everything else still applies.
    Warning,
    /// The rule it belongs to (or the whole document) is not used.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// Where in `config.yaml` a problem is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// Field path such as `hooks.resources[2].pre[0].exec.timeout`; empty for the document.
    pub path: String,
    /// Position of the rule in `hooks.resources`, if the problem is inside a rule.
    pub rule_index: Option<usize>,
    /// The rule's `name`, if it has a usable one.
    pub rule_name: Option<String>,
}

impl Location {
    /// The whole document.
    pub(super) fn document() -> Location {
        Location::default()
    }

    /// A field outside `hooks.resources`, such as `maxFreeze` or `governance.annotationHooks`.
    pub(super) fn at(path: &str) -> Location {
        Location {
            path: path.to_owned(),
            ..Location::default()
        }
    }

    /// A field of the rule at `rule_index` in `hooks.resources`, named `rule_name` if it has
    /// a usable name.
    pub(super) fn in_rule(path: &str, rule_index: usize, rule_name: Option<String>) -> Location {
        Location {
            path: path.to_owned(),
            rule_index: Some(rule_index),
            rule_name,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(CONFIG_KEY)?;
        if !self.path.is_empty() {
            write!(f, " at {}", self.path)?;
        }
        if let Some(name) = &self.rule_name {
            write!(f, " (rule {name:?})")?;
        }
        Ok(())
    }
}

/// A validation problem in the configuration, with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Warning (applied anyway) or error (rule left out).
    pub severity: Severity,
    /// Where it is.
    pub location: Location,
    /// What is wrong, as an English sentence fragment naming the field and value.
    pub message: String,
}

impl Problem {
    /// An error at `location`: the rule it is in, or what it configures, is not used.
    pub(super) fn error(location: Location, message: String) -> Problem {
        Problem {
            severity: Severity::Error,
            location,
            message,
        }
    }

    /// A warning at `location`: something is ignored or adjusted, the rest applies.
    pub(super) fn warning(location: Location, message: String) -> Problem {
        Problem {
            severity: Severity::Warning,
            location,
            message,
        }
    }

    /// The problem as its `Display` writes it after `{location}: `: the message and, for an
    /// error inside a rule, that the rule is ignored. For callers that show the location
    /// apart, such as `explain`.
    pub fn without_location(&self) -> String {
        let mut text = self.message.clone();
        if self.severity == Severity::Error {
            match (self.location.rule_index, &self.location.rule_name) {
                (Some(_), Some(name)) => text.push_str(&format!("; rule {name:?} is ignored")),
                (Some(index), None) => text.push_str(&format!("; rule #{index} is ignored")),
                (None, _) => {}
            }
        }
        text
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.without_location())
    }
}

impl std::error::Error for Problem {}

/// How a message names what a YAML value is: `a string`, `a list`, `null`, ….
pub(super) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// `unknown field "x"; known fields here are a, b`, with a `(did you mean "X"?)` hint when
/// `field` differs from a known field only in case.
pub(super) fn unknown_field(field: &str, known: &[&str]) -> String {
    let hint = known
        .iter()
        .find(|candidate| candidate.eq_ignore_ascii_case(field))
        .map(|candidate| format!(" (did you mean {candidate:?}?)"))
        .unwrap_or_default();
    format!(
        "unknown field {field:?}{hint}; known fields here are {}",
        known.join(", ")
    )
}

/// Reads a field that must hold a mapping or a list, as `shape` ([`mapping_of`] or [`list_of`])
/// takes it. `None` when there is nothing to read: the field is null — written with nothing
/// after its colon, which reads as empty — or it holds something else, which is handed to
/// `wrong` as [`kind_of`] names it, for the caller to report.
pub(super) fn nullable<'v, T>(
    value: &'v Value,
    shape: fn(&'v Value) -> Option<&'v T>,
    wrong: impl FnOnce(&'static str),
) -> Option<&'v T> {
    if matches!(value, Value::Null) {
        return None;
    }
    let found = shape(value);
    if found.is_none() {
        wrong(kind_of(value));
    }
    found
}

/// The value if it is a mapping. Unlike [`Value::as_mapping`], a tagged mapping is not one.
pub(super) fn mapping_of(value: &Value) -> Option<&Mapping> {
    match value {
        Value::Mapping(mapping) => Some(mapping),
        _ => None,
    }
}

/// The value if it is a list. Unlike [`Value::as_sequence`], a tagged list is not one.
pub(super) fn list_of(value: &Value) -> Option<&Sequence> {
    match value {
        Value::Sequence(items) => Some(items),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn a_null_field_reads_as_nothing_and_is_not_reported() {
        let mut reported = Vec::new();
        assert_eq!(
            nullable(&yaml("~"), mapping_of, |found| reported.push(found)),
            None
        );
        assert!(reported.is_empty());
    }

    #[test]
    fn a_field_of_another_kind_is_reported_by_its_kind() {
        let mut reported = Vec::new();
        assert_eq!(
            nullable(&yaml("[a]"), mapping_of, |found| reported.push(found)),
            None
        );
        assert_eq!(
            nullable(&yaml("{a: b}"), list_of, |found| reported.push(found)),
            None
        );
        assert_eq!(reported, ["a list", "a mapping"]);
    }

    #[test]
    fn a_tagged_mapping_or_list_is_a_tagged_value_not_a_mapping_or_list() {
        let mut reported = Vec::new();
        assert_eq!(
            nullable(&yaml("!x {a: b}"), mapping_of, |found| reported.push(found)),
            None
        );
        assert_eq!(
            nullable(&yaml("!x [a]"), list_of, |found| reported.push(found)),
            None
        );
        assert_eq!(reported, ["a tagged value", "a tagged value"]);
    }

    #[test]
    fn the_expected_shape_is_read() {
        let value = yaml("[a, b]");
        let items = nullable(&value, list_of, |_| panic!("not reported")).unwrap();
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn an_error_in_a_rule_says_the_rule_is_ignored_after_the_location() {
        let named = Problem::error(
            Location::in_rule("hooks.resources[0].pre", 0, Some("db".to_owned())),
            "must be a list".to_owned(),
        );
        assert_eq!(
            named.without_location(),
            "must be a list; rule \"db\" is ignored"
        );
        assert_eq!(
            named.to_string(),
            "config.yaml at hooks.resources[0].pre (rule \"db\"): must be a list; rule \"db\" is \
             ignored"
        );
        let unnamed = Problem::error(
            Location::in_rule("hooks.resources[3]", 3, None),
            "name is required".to_owned(),
        );
        assert_eq!(
            unnamed.without_location(),
            "name is required; rule #3 is ignored"
        );
        let warning = Problem::warning(Location::at("maxFreeze"), "odd".to_owned());
        assert_eq!(warning.to_string(), "config.yaml at maxFreeze: odd");
    }

    #[test]
    fn an_unknown_field_hints_at_a_known_one_that_differs_only_in_case() {
        assert_eq!(
            unknown_field("onerror", &["onError", "timeout"]),
            "unknown field \"onerror\" (did you mean \"onError\"?); known fields here are \
             onError, timeout"
        );
        assert_eq!(
            unknown_field("x", &["a", "b"]),
            "unknown field \"x\"; known fields here are a, b"
        );
    }
}
