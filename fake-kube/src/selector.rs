//! Label and field selectors as the API server parses them from `labelSelector=` and
//! `fieldSelector=`: equality (`a=b`, `a==b`, `a!=b`), set-based (`a in (x,y)`, `a notin (x)`)
//! and existence (`a`, `!a`). Pure parsing and matching; the store decides what to match against.

use serde_json::{Map, Value};

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed selector: all requirements must hold. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// Parses a label selector string. Errors carry a message suitable for a `400` Status.
    pub fn parse_labels(text: &str) -> Result<Self, String> {
        Self::parse(text, true)
    }

    /// Parses a field selector string (only `=`, `==` and `!=` are allowed, like the API server).
    pub fn parse_fields(text: &str) -> Result<Self, String> {
        Self::parse(text, false)
    }

    fn parse(text: &str, allow_sets: bool) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in split_top_level(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_term(term, allow_sets)?);
        }
        Ok(Self { requirements })
    }

    /// True when every requirement holds, looking keys up with `lookup`.
    fn matches_with(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements
            .iter()
            .all(|requirement| match requirement {
                Requirement::Equals(key, value) => lookup(key).as_deref() == Some(value.as_str()),
                Requirement::NotEquals(key, value) => {
                    lookup(key).as_deref() != Some(value.as_str())
                }
                Requirement::In(key, values) => lookup(key).is_some_and(|v| values.contains(&v)),
                Requirement::NotIn(key, values) => {
                    !lookup(key).is_some_and(|v| values.contains(&v))
                }
                Requirement::Exists(key) => lookup(key).is_some(),
                Requirement::NotExists(key) => lookup(key).is_none(),
            })
    }

    /// Matches against an object's `metadata.labels`.
    pub fn matches_labels(&self, object: &Value) -> bool {
        let empty = Map::new();
        let labels = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        self.matches_with(|key| labels.get(key).map(value_to_string))
    }

    /// Matches against dotted field paths of the object (`metadata.name`, `status.phase`, …).
    /// A missing field compares as the empty string, as it does for `spec.nodeName`.
    pub fn matches_fields(&self, object: &Value) -> bool {
        self.matches_with(|key| {
            let pointer = format!("/{}", key.replace('.', "/"));
            Some(
                object
                    .pointer(&pointer)
                    .map(value_to_string)
                    .unwrap_or_default(),
            )
        })
    }
}

fn value_to_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (index, ch) in text.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_term(term: &str, allow_sets: bool) -> Result<Requirement, String> {
    if let Some(open) = term.find('(') {
        if !allow_sets {
            return Err(format!("invalid selector: '{term}'"));
        }
        let close = term
            .rfind(')')
            .filter(|close| *close > open)
            .ok_or_else(|| format!("unable to parse requirement: missing ')' in '{term}'"))?;
        let head: Vec<&str> = term[..open].split_whitespace().collect();
        let values: Vec<String> = term[open + 1..close]
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        return match head.as_slice() {
            [key, "in"] => Ok(Requirement::In((*key).to_string(), values)),
            [key, "notin"] => Ok(Requirement::NotIn((*key).to_string(), values)),
            _ => Err(format!("unable to parse requirement: '{term}'")),
        };
    }
    if let Some((key, value)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(
            checked_key(key)?,
            value.trim().to_string(),
        ));
    }
    if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement::Equals(
            checked_key(key)?,
            value.trim().to_string(),
        ));
    }
    if !allow_sets {
        return Err(format!(
            "invalid selector: '{term}'; can't understand '{term}'"
        ));
    }
    match term.strip_prefix('!') {
        Some(key) => Ok(Requirement::NotExists(checked_key(key)?)),
        None => Ok(Requirement::Exists(checked_key(term)?)),
    }
}

fn checked_key(key: &str) -> Result<String, String> {
    let key = key.trim();
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(format!("invalid label key \"{key}\""));
    }
    Ok(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({ "metadata": { "name": "p", "labels": labels }, "status": { "phase": "Running" } })
    }

    #[test]
    fn equality_and_inequality() {
        let s = Selector::parse_labels("app=db, tier==backend,env!=prod").unwrap();
        assert!(s.matches_labels(&pod(json!({"app": "db", "tier": "backend"}))));
        assert!(!s.matches_labels(&pod(json!({"app": "db", "tier": "backend", "env": "prod"}))));
        assert!(!s.matches_labels(&pod(json!({"app": "web", "tier": "backend"}))));
    }

    #[test]
    fn set_based_and_existence() {
        let s = Selector::parse_labels("app in (db, cache),!legacy,tier").unwrap();
        assert!(s.matches_labels(&pod(json!({"app": "cache", "tier": "x"}))));
        assert!(!s.matches_labels(&pod(json!({"app": "cache"}))));
        assert!(!s.matches_labels(&pod(json!({"app": "cache", "tier": "x", "legacy": "1"}))));
        let s = Selector::parse_labels("app notin (db)").unwrap();
        assert!(s.matches_labels(&pod(json!({}))));
        assert!(!s.matches_labels(&pod(json!({"app": "db"}))));
    }

    #[test]
    fn empty_selector_matches_all() {
        assert!(Selector::parse_labels("")
            .unwrap()
            .matches_labels(&pod(json!(null))));
    }

    #[test]
    fn field_selector_uses_dotted_paths() {
        let s = Selector::parse_fields("metadata.name=p,status.phase!=Failed").unwrap();
        assert!(s.matches_fields(&pod(json!({}))));
        let s = Selector::parse_fields("spec.nodeName=").unwrap();
        assert!(s.matches_fields(&pod(json!({}))));
        assert!(Selector::parse_fields("a in (b)").is_err());
    }

    #[test]
    fn malformed_set_is_an_error() {
        assert!(Selector::parse_labels("app in (db").is_err());
        assert!(Selector::parse_labels("app foo (db)").is_err());
    }
}
