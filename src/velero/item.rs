//! The item and backup JSON that Velero sends with each call, read only as far as needed to
//! name things in logs and errors. Item bytes are never re-serialised: an unchanged item is
//! echoed verbatim (Go's JSON encoder escapes differently from serde's, spec §11.1).

use serde::Deserialize;

use super::error::ErrorKind;

/// The identity of a Kubernetes object from its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemIdentity {
    /// `kind`, never empty.
    pub kind: String,
    /// `metadata.namespace`, empty for cluster-scoped objects.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

impl ItemIdentity {
    /// Reads an item as Velero's host would accept it back: a JSON object with a non-empty `kind`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ErrorKind> {
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            None => return Err(ErrorKind::InvalidItem("the item is empty".into())),
            // serde would read a JSON array as a struct by position: only objects are items.
            Some(b'[') => {
                return Err(ErrorKind::InvalidItem(
                    "the item is not a Kubernetes object: it is a JSON array".into(),
                ))
            }
            Some(_) => {}
        }
        let head: Option<Head> = serde_json::from_slice(bytes).map_err(|e| {
            ErrorKind::InvalidItem(if e.is_data() {
                format!("the item is not a Kubernetes object: {e}")
            } else {
                format!("the item is not valid JSON: {e}")
            })
        })?;
        let head = head.ok_or_else(|| ErrorKind::InvalidItem("the item is null".into()))?;
        let kind = head.kind.filter(|k| !k.is_empty()).ok_or_else(|| {
            ErrorKind::InvalidItem("the item has no kind (Velero could not use it)".into())
        })?;
        let metadata = head.metadata.unwrap_or_default();
        Ok(ItemIdentity {
            kind,
            namespace: metadata.namespace.unwrap_or_default(),
            name: metadata.name.unwrap_or_default(),
        })
    }

    /// `namespace/name`, or `name` for cluster-scoped objects.
    pub fn qualified_name(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }
}

/// `namespace/name` of the Backup in a request, for log lines; empty when unreadable
/// (the Backup JSON is Velero's own and never decides anything here).
pub fn backup_name(bytes: &[u8]) -> String {
    ItemIdentity::from_json(bytes)
        .or_else(|_| {
            // Velero's controller may omit TypeMeta (spec §18.1): read the metadata alone.
            let head: Head = serde_json::from_slice(bytes).map_err(|_| ())?;
            let m = head.metadata.unwrap_or_default();
            Ok::<_, ()>(ItemIdentity {
                kind: String::new(),
                namespace: m.namespace.unwrap_or_default(),
                name: m.name.unwrap_or_default(),
            })
        })
        .map(|id| id.qualified_name())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(bytes: &[u8]) -> String {
        match ItemIdentity::from_json(bytes) {
            Err(ErrorKind::InvalidItem(why)) => why,
            other => panic!("expected an invalid item, got {other:?}"),
        }
    }

    #[test]
    fn reads_kind_namespace_and_name() {
        let id = ItemIdentity::from_json(
            br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"db-0","namespace":"shop","labels":{"a":"b"}},"spec":{}}"#,
        )
        .unwrap();
        assert_eq!(id.kind, "Pod");
        assert_eq!(id.qualified_name(), "shop/db-0");
    }

    #[test]
    fn cluster_scoped_items_have_no_namespace() {
        let id =
            ItemIdentity::from_json(br#"{"kind":"PersistentVolume","metadata":{"name":"pv-1"}}"#)
                .unwrap();
        assert_eq!(id.qualified_name(), "pv-1");
    }

    #[test]
    fn empty_null_and_non_objects_are_rejected_with_a_reason() {
        assert_eq!(invalid(b""), "the item is empty");
        assert_eq!(invalid(b"  \n"), "the item is empty");
        assert_eq!(invalid(b"null"), "the item is null");
        assert!(invalid(b"[1,2]").starts_with("the item is not a Kubernetes object"));
        assert!(invalid(b"\"pod\"").starts_with("the item is not a Kubernetes object"));
        assert!(invalid(br#"{"kind":5}"#).starts_with("the item is not a Kubernetes object"));
        assert!(invalid(b"{\"kind\":").starts_with("the item is not valid JSON"));
        assert!(invalid(b"{} trailing").starts_with("the item is not valid JSON"));
    }

    #[test]
    fn an_item_without_kind_is_rejected() {
        assert!(invalid(br#"{"metadata":{"name":"x"}}"#).contains("no kind"));
        assert!(invalid(br#"{"kind":"","metadata":{"name":"x"}}"#).contains("no kind"));
    }

    #[test]
    fn backup_name_works_with_and_without_type_meta() {
        assert_eq!(
            backup_name(br#"{"kind":"Backup","metadata":{"name":"b1","namespace":"velero"}}"#),
            "velero/b1"
        );
        assert_eq!(
            backup_name(br#"{"metadata":{"name":"b1","namespace":"velero"}}"#),
            "velero/b1"
        );
        assert_eq!(backup_name(b"garbage"), "");
    }
}
