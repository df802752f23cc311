//! Kubernetes label selectors (`matchLabels` + `matchExpressions` with `In`, `NotIn`,
//! `Exists`, `DoesNotExist`): the validated model, matching against a pod's labels, and the
//! label key/value syntax checks Kubernetes applies when it converts a selector.
//!
//! Parsing from YAML (with field paths for messages) lives in `rules.rs`.

use std::collections::BTreeMap;
use std::fmt;

/// A validated label selector. The empty selector matches every pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Each label must be present with exactly this value.
    pub match_labels: BTreeMap<String, String>,
    /// Each requirement must hold.
    pub match_expressions: Vec<Requirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// How the label is compared with `values`.
    pub operator: Operator,
    /// Non-empty for `In`/`NotIn`, empty for `Exists`/`DoesNotExist`.
    pub values: Vec<String>,
}

/// A `matchExpressions` operator (case-sensitive, as in Kubernetes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// The label is present and its value is one of `values`.
    In,
    /// The label is absent, or its value is none of `values`.
    NotIn,
    /// The label is present, whatever its value.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl Operator {
    /// Parses the exact Kubernetes spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "In" => Some(Operator::In),
            "NotIn" => Some(Operator::NotIn),
            "Exists" => Some(Operator::Exists),
            "DoesNotExist" => Some(Operator::DoesNotExist),
            _ => None,
        }
    }

    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "In",
            Operator::NotIn => "NotIn",
            Operator::Exists => "Exists",
            Operator::DoesNotExist => "DoesNotExist",
        }
    }

    /// Whether the operator takes a non-empty `values` list.
    pub fn needs_values(self) -> bool {
        matches!(self, Operator::In | Operator::NotIn)
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl LabelSelector {
    /// Whether `labels` satisfy every `matchLabels` entry and every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
            && self
                .match_expressions
                .iter()
                .all(|requirement| requirement.matches(labels))
    }
}

impl LabelSelector {
    /// Parses the text form `kubectl -l` takes: comma-separated `key=value`, `key==value`,
    /// `key!=value`, `key`, `!key`, `key in (a,b)` and `key notin (a,b)`. Keys and values are
    /// checked like Kubernetes labels. The empty text is refused (it would select everything).
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let mut selector = LabelSelector::default();
        let mut terms = Vec::new();
        let (mut depth, mut start) = (0usize, 0usize);
        for (i, c) in text.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    terms.push(&text[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        terms.push(&text[start..]);
        for term in terms.iter().map(|t| t.trim()) {
            if term.is_empty() {
                return Err(format!("{text:?} has an empty term"));
            }
            selector.push_term(term)?;
        }
        Ok(selector)
    }

    fn push_term(&mut self, term: &str) -> Result<(), String> {
        let invalid = |why: String| format!("{term:?}: {why}");
        let requirement =
            |key: &str, operator, values: Vec<String>| -> Result<Requirement, String> {
                check_label_key(key).map_err(invalid)?;
                for value in &values {
                    check_label_value(value).map_err(invalid)?;
                }
                Ok(Requirement {
                    key: key.to_owned(),
                    operator,
                    values,
                })
            };
        if let Some(key) = term.strip_prefix('!') {
            let r = requirement(key.trim(), Operator::DoesNotExist, Vec::new())?;
            self.match_expressions.push(r);
            return Ok(());
        }
        if let Some((key, value)) = term.split_once("!=") {
            let r = requirement(key.trim(), Operator::NotIn, vec![value.trim().to_owned()])?;
            self.match_expressions.push(r);
            return Ok(());
        }
        if let Some((key, value)) = term.split_once('=') {
            let value = value.strip_prefix('=').unwrap_or(value).trim();
            let key = key.trim();
            check_label_key(key).map_err(invalid)?;
            check_label_value(value).map_err(invalid)?;
            if self
                .match_labels
                .insert(key.to_owned(), value.to_owned())
                .is_some()
            {
                return Err(invalid(format!("{key} is given twice")));
            }
            return Ok(());
        }
        for (word, operator) in [(" notin ", Operator::NotIn), (" in ", Operator::In)] {
            if let Some((key, list)) = term.split_once(word) {
                let list = list.trim();
                let Some(inner) = list.strip_prefix('(').and_then(|l| l.strip_suffix(')')) else {
                    return Err(invalid(format!(
                        "the values must be in parentheses, found {list:?}"
                    )));
                };
                let values: Vec<String> = inner.split(',').map(|v| v.trim().to_owned()).collect();
                let r = requirement(key.trim(), operator, values)?;
                self.match_expressions.push(r);
                return Ok(());
            }
        }
        let r = requirement(term, Operator::Exists, Vec::new())?;
        self.match_expressions.push(r);
        Ok(())
    }
}

impl Requirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

/// Checks a label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63
/// characters of `[A-Za-z0-9_.-]` starting and ending with an alphanumeric character.
pub(crate) fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let valid_prefix = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|part| {
                !part.is_empty()
                    && part.len() <= 63
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            });
        if !valid_prefix {
            return Err(format!(
                "label key {key:?} has an invalid prefix {prefix:?} (must be a DNS subdomain such as example.com)"
            ));
        }
    }
    if name.is_empty() {
        return Err(format!("label key {key:?} has an empty name"));
    }
    check_label_name_syntax(name)
        .map_err(|reason| format!("label key {key:?} is invalid: the name {reason}"))
}

/// Checks a label value: empty, or at most 63 characters of `[A-Za-z0-9_.-]` starting and
/// ending with an alphanumeric character.
pub(crate) fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    check_label_name_syntax(value)
        .map_err(|reason| format!("label value {value:?} is invalid: it {reason}"))
}

fn check_label_name_syntax(text: &str) -> Result<(), &'static str> {
    if text.len() > 63 {
        return Err("is longer than 63 characters");
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("may only contain letters, digits, '-', '_' and '.'");
    }
    let alphanumeric_ends = text
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && text
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if !alphanumeric_ends {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn requirement(key: &str, operator: Operator, values: &[&str]) -> Requirement {
        Requirement {
            key: key.to_owned(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn selector_with(requirement: Requirement) -> LabelSelector {
        LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![requirement],
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(LabelSelector::default().matches(&labels(&[])));
        assert!(LabelSelector::default().matches(&labels(&[("app", "db")])));
    }

    #[test]
    fn match_labels_requires_every_pair() {
        let selector = LabelSelector {
            match_labels: labels(&[("app", "db"), ("tier", "data")]),
            match_expressions: vec![],
        };
        assert!(selector.matches(&labels(&[("app", "db"), ("tier", "data"), ("x", "y")])));
        assert!(!selector.matches(&labels(&[("app", "db")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("tier", "data")])));
    }

    #[test]
    fn in_operator_needs_label_with_listed_value() {
        let selector = selector_with(requirement("app", Operator::In, &["db", "cache"]));
        assert!(selector.matches(&labels(&[("app", "cache")])));
        assert!(!selector.matches(&labels(&[("app", "web")])));
        assert!(!selector.matches(&labels(&[])));
    }

    #[test]
    fn not_in_operator_accepts_missing_label_or_other_value() {
        let selector = selector_with(requirement("app", Operator::NotIn, &["db"]));
        assert!(selector.matches(&labels(&[])));
        assert!(selector.matches(&labels(&[("app", "web")])));
        assert!(!selector.matches(&labels(&[("app", "db")])));
    }

    #[test]
    fn exists_operator_needs_label_with_any_value() {
        let selector = selector_with(requirement("backup", Operator::Exists, &[]));
        assert!(selector.matches(&labels(&[("backup", "")])));
        assert!(!selector.matches(&labels(&[("app", "db")])));
    }

    #[test]
    fn does_not_exist_operator_needs_label_absent() {
        let selector = selector_with(requirement("skip", Operator::DoesNotExist, &[]));
        assert!(selector.matches(&labels(&[("app", "db")])));
        assert!(!selector.matches(&labels(&[("skip", "true")])));
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        let selector = LabelSelector {
            match_labels: labels(&[("app", "db")]),
            match_expressions: vec![requirement("role", Operator::In, &["primary"])],
        };
        assert!(selector.matches(&labels(&[("app", "db"), ("role", "primary")])));
        assert!(!selector.matches(&labels(&[("app", "db"), ("role", "replica")])));
    }

    #[test]
    fn operators_are_case_sensitive() {
        assert_eq!(Operator::parse("In"), Some(Operator::In));
        assert_eq!(Operator::parse("in"), None);
        assert_eq!(Operator::parse("Notin"), None);
        assert_eq!(Operator::parse("Equals"), None);
    }

    #[test]
    fn label_keys_follow_kubernetes_syntax() {
        assert!(check_label_key("app").is_ok());
        assert!(check_label_key("app.kubernetes.io/name").is_ok());
        assert!(check_label_key("-app").is_err());
        assert!(check_label_key("a b").is_err());
        assert!(check_label_key("Example.com/app").is_err());
        assert!(check_label_key("example.com/").is_err());
        assert!(check_label_key(&"a".repeat(64)).is_err());
    }

    #[test]
    fn label_values_follow_kubernetes_syntax() {
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("v1.2_3-x").is_ok());
        assert!(check_label_value("trailing-").is_err());
        assert!(check_label_value("has space").is_err());
    }

    #[test]
    fn text_selectors_parse_every_kubectl_form() {
        let selector = LabelSelector::parse(
            "role=primary, tier==db,zone!=a,ready,!legacy,env in (prod, stage),x notin (1)",
        )
        .unwrap();
        assert_eq!(
            selector.match_labels,
            labels(&[("role", "primary"), ("tier", "db")])
        );
        let ops: Vec<_> = selector
            .match_expressions
            .iter()
            .map(|r| (r.key.as_str(), r.operator, r.values.join("|")))
            .collect();
        assert_eq!(
            ops,
            vec![
                ("zone", Operator::NotIn, "a".to_owned()),
                ("ready", Operator::Exists, String::new()),
                ("legacy", Operator::DoesNotExist, String::new()),
                ("env", Operator::In, "prod|stage".to_owned()),
                ("x", Operator::NotIn, "1".to_owned()),
            ]
        );
        assert!(selector.matches(&labels(&[
            ("role", "primary"),
            ("tier", "db"),
            ("zone", "b"),
            ("ready", ""),
            ("env", "prod"),
        ])));
    }

    #[test]
    fn text_selectors_refuse_what_kubectl_refuses() {
        for bad in [
            "",
            "a=b,",
            "a b=c",
            "env in prod",
            "role=has space",
            "=x",
            "a=1,a=2",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad:?}");
        }
    }
}
