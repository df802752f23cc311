//! The object store: every API object the fake server knows, kept as `serde_json::Value`s keyed
//! by resource type, namespace and name, with a cluster-wide `resourceVersion` counter and a
//! change history that watches replay from. Adding a resource type is one entry in [`RESOURCES`].
//! The store knows nothing about HTTP; routing and the handle both call into it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::error::{Error, Result};
use crate::selector::Selector;

/// Static description of a resource type the server serves.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceKind {
    /// API group (`""` for core).
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// Plural resource name used in paths.
    pub plural: &'static str,
    /// Singular name for discovery.
    pub singular: &'static str,
    /// `kind` of one object.
    pub kind: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names for discovery (kubectl uses them).
    pub short_names: &'static [&'static str],
    /// Whether `status` is a subresource, as for the CSI snapshot CRDs: a create or a write of
    /// the object leaves `status` alone, and `…/status` writes only `status`.
    pub status_subresource: bool,
}

impl ResourceKind {
    /// A namespaced resource without a status subresource.
    const fn namespaced(
        group: &'static str,
        version: &'static str,
        plural: &'static str,
        kind: &'static str,
        singular: &'static str,
        short_names: &'static [&'static str],
    ) -> ResourceKind {
        ResourceKind {
            group,
            version,
            plural,
            singular,
            kind,
            namespaced: true,
            short_names,
            status_subresource: false,
        }
    }

    /// A cluster-scoped resource without a status subresource.
    const fn cluster(
        group: &'static str,
        version: &'static str,
        plural: &'static str,
        kind: &'static str,
        singular: &'static str,
        short_names: &'static [&'static str],
    ) -> ResourceKind {
        ResourceKind {
            namespaced: false,
            ..ResourceKind::namespaced(group, version, plural, kind, singular, short_names)
        }
    }

    /// The same resource with `status` as a subresource.
    const fn with_status(self) -> ResourceKind {
        ResourceKind {
            status_subresource: true,
            ..self
        }
    }

    /// `apiVersion` of objects of this kind (`v1`, `velero.io/v1`).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `kind` of a list of this resource (`PodList`).
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether `other` is this resource, maybe served in another version: both versions read
    /// and write the same objects, as with a CRD that serves several versions.
    pub fn same_resource(&self, other: &ResourceKind) -> bool {
        self.group == other.group && self.plural == other.plural
    }
}

const SNAPSHOT: &str = "snapshot.storage.k8s.io";
const GROUP_SNAPSHOT: &str = "groupsnapshot.storage.k8s.io";

/// Every resource type served. Order is the order of discovery documents; of the versions of a
/// group, the first listed is the preferred one.
pub static RESOURCES: &[ResourceKind] = &[
    ResourceKind::namespaced("", "v1", "pods", "Pod", "pod", &["po"]),
    ResourceKind::namespaced("", "v1", "configmaps", "ConfigMap", "configmap", &["cm"]),
    ResourceKind::namespaced("", "v1", "events", "Event", "event", &["ev"]),
    ResourceKind::cluster("", "v1", "namespaces", "Namespace", "namespace", &["ns"]),
    ResourceKind::namespaced(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        "persistentvolumeclaim",
        &["pvc"],
    ),
    ResourceKind::cluster(
        "",
        "v1",
        "persistentvolumes",
        "PersistentVolume",
        "persistentvolume",
        &["pv"],
    ),
    ResourceKind::namespaced("events.k8s.io", "v1", "events", "Event", "event", &["ev"]),
    ResourceKind::namespaced(
        "velero.io",
        "v1",
        "podvolumebackups",
        "PodVolumeBackup",
        "podvolumebackup",
        &[],
    ),
    ResourceKind::cluster(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "StorageClass",
        "storageclass",
        &["sc"],
    ),
    // The CSI snapshot CRDs of external-snapshotter (v8.4: v1, and v1beta2 and v1beta1 of the
    // group snapshots, which Velero 1.18.1+ and 1.17/1.18.0 use respectively).
    ResourceKind::namespaced(
        SNAPSHOT,
        "v1",
        "volumesnapshots",
        "VolumeSnapshot",
        "volumesnapshot",
        &["vs"],
    )
    .with_status(),
    ResourceKind::cluster(
        SNAPSHOT,
        "v1",
        "volumesnapshotcontents",
        "VolumeSnapshotContent",
        "volumesnapshotcontent",
        &["vsc", "vscs"],
    )
    .with_status(),
    ResourceKind::cluster(
        SNAPSHOT,
        "v1",
        "volumesnapshotclasses",
        "VolumeSnapshotClass",
        "volumesnapshotclass",
        &["vsclass", "vsclasses"],
    ),
    ResourceKind::namespaced(
        GROUP_SNAPSHOT,
        "v1beta2",
        "volumegroupsnapshots",
        "VolumeGroupSnapshot",
        "volumegroupsnapshot",
        &["vgs"],
    )
    .with_status(),
    ResourceKind::cluster(
        GROUP_SNAPSHOT,
        "v1beta2",
        "volumegroupsnapshotcontents",
        "VolumeGroupSnapshotContent",
        "volumegroupsnapshotcontent",
        &["vgsc", "vgscs"],
    )
    .with_status(),
    ResourceKind::cluster(
        GROUP_SNAPSHOT,
        "v1beta2",
        "volumegroupsnapshotclasses",
        "VolumeGroupSnapshotClass",
        "volumegroupsnapshotclass",
        &["vgsclass", "vgsclasses"],
    ),
    ResourceKind::namespaced(
        GROUP_SNAPSHOT,
        "v1beta1",
        "volumegroupsnapshots",
        "VolumeGroupSnapshot",
        "volumegroupsnapshot",
        &["vgs"],
    )
    .with_status(),
    ResourceKind::cluster(
        GROUP_SNAPSHOT,
        "v1beta1",
        "volumegroupsnapshotcontents",
        "VolumeGroupSnapshotContent",
        "volumegroupsnapshotcontent",
        &["vgsc", "vgscs"],
    )
    .with_status(),
    ResourceKind::cluster(
        GROUP_SNAPSHOT,
        "v1beta1",
        "volumegroupsnapshotclasses",
        "VolumeGroupSnapshotClass",
        "volumegroupsnapshotclass",
        &["vgsclass", "vgsclasses"],
    ),
];

/// Finds a resource by group, version and plural.
pub fn resource_by_path(group: &str, version: &str, plural: &str) -> Option<&'static ResourceKind> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Finds a resource by an object's `apiVersion` and `kind`.
pub fn resource_by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceKind> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// The kind of a recorded change, as watch events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    /// Object created.
    Added,
    /// Object replaced or mutated.
    Modified,
    /// Object removed.
    Deleted,
}

impl ChangeType {
    /// The watch event `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One change to the store, kept in history and broadcast to watchers.
#[derive(Debug, Clone)]
pub struct Change {
    /// Which resource type changed.
    pub resource: &'static ResourceKind,
    /// What happened.
    pub change_type: ChangeType,
    /// The object after the change (before it, for deletes).
    pub object: Value,
    /// The cluster resourceVersion assigned to the change.
    pub resource_version: u64,
}

type Key = (String, String);

#[derive(Default)]
struct Inner {
    objects: BTreeMap<(&'static str, &'static str), BTreeMap<Key, Value>>,
    resource_version: u64,
    history: Vec<Change>,
    uid_counter: u64,
}

/// The object store. Cheap to lock; no lock is held across an `.await`.
pub struct Store {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Change>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(1024);
        Self {
            inner: Mutex::new(Inner::default()),
            changes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates or replaces an object. `namespace_hint` is used when the object names none.
    /// Fills in `apiVersion`, `kind`, `metadata.namespace`, `uid`, `creationTimestamp`,
    /// `resourceVersion` and a name from `generateName`.
    pub fn upsert(
        &self,
        resource: &'static ResourceKind,
        object: Value,
        namespace_hint: Option<&str>,
    ) -> Result<Value> {
        self.write(resource, object, namespace_hint, false)
    }

    /// Like [`Store::upsert`], but fails with [`Error::AlreadyExists`] when the object exists.
    pub fn create(
        &self,
        resource: &'static ResourceKind,
        object: Value,
        namespace_hint: Option<&str>,
    ) -> Result<Value> {
        self.write(resource, object, namespace_hint, true)
    }

    fn write(
        &self,
        resource: &'static ResourceKind,
        mut object: Value,
        namespace_hint: Option<&str>,
        must_be_new: bool,
    ) -> Result<Value> {
        if !object.is_object() {
            return Err(Error::InvalidObject(format!(
                "a {} must be a JSON object",
                resource.kind
            )));
        }
        let mut inner = self.lock();
        object["apiVersion"] = json!(resource.api_version());
        object["kind"] = json!(resource.kind);
        if !object.get("metadata").is_some_and(Value::is_object) {
            object["metadata"] = json!({});
        }
        let namespace = if resource.namespaced {
            let namespace = object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| namespace_hint.map(str::to_string))
                .unwrap_or_else(|| "default".to_string());
            object["metadata"]["namespace"] = json!(namespace);
            namespace
        } else {
            String::new()
        };
        let name = match object.pointer("/metadata/name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => {
                let prefix = object
                    .pointer("/metadata/generateName")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        Error::InvalidObject(format!(
                            "{} needs metadata.name or metadata.generateName",
                            resource.kind
                        ))
                    })?
                    .to_string();
                inner.uid_counter += 1;
                let name = format!("{prefix}{}", short_suffix(inner.uid_counter));
                object["metadata"]["name"] = json!(name);
                name
            }
        };
        let key = (namespace, name.clone());
        let existing = inner
            .objects
            .get(&(resource.group, resource.plural))
            .and_then(|objects| objects.get(&key))
            .cloned();
        if must_be_new && existing.is_some() {
            return Err(Error::AlreadyExists {
                resource: resource.plural.to_string(),
                name,
            });
        }
        inner.resource_version += 1;
        let resource_version = inner.resource_version;
        let metadata = &mut object["metadata"];
        match existing
            .as_ref()
            .and_then(|e| e.pointer("/metadata/uid").cloned())
        {
            Some(uid) => metadata["uid"] = uid,
            None if metadata.get("uid").is_none() => {
                inner.uid_counter += 1;
                metadata["uid"] = json!(format!(
                    "00000000-0000-4000-8000-{:012x}",
                    inner.uid_counter
                ));
            }
            None => {}
        }
        if metadata.get("creationTimestamp").is_none() {
            metadata["creationTimestamp"] = json!(match &existing {
                Some(e) => e
                    .pointer("/metadata/creationTimestamp")
                    .cloned()
                    .unwrap_or_else(|| json!(now_rfc3339())),
                None => json!(now_rfc3339()),
            });
        }
        metadata["resourceVersion"] = json!(resource_version.to_string());
        inner
            .objects
            .entry((resource.group, resource.plural))
            .or_default()
            .insert(key, object.clone());
        let change_type = if existing.is_some() {
            ChangeType::Modified
        } else {
            ChangeType::Added
        };
        self.record(&mut inner, resource, change_type, object.clone());
        Ok(object)
    }

    fn record(
        &self,
        inner: &mut Inner,
        resource: &'static ResourceKind,
        change_type: ChangeType,
        object: Value,
    ) {
        let change = Change {
            resource,
            change_type,
            object,
            resource_version: inner.resource_version,
        };
        inner.history.push(change.clone());
        // No receiver is fine: nobody is watching.
        let _ = self.changes.send(change);
    }

    /// One object by namespace (ignored for cluster-scoped resources) and name.
    pub fn get(
        &self,
        resource: &'static ResourceKind,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let namespace = if resource.namespaced { namespace } else { "" };
        self.lock()
            .objects
            .get(&(resource.group, resource.plural))
            .and_then(|objects| objects.get(&(namespace.to_string(), name.to_string())))
            .cloned()
    }

    /// Objects of a resource, in one namespace or all, filtered by selectors, plus the current
    /// resourceVersion (for the list's metadata).
    pub fn list(
        &self,
        resource: &'static ResourceKind,
        namespace: Option<&str>,
        labels: &Selector,
        fields: &Selector,
    ) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .get(&(resource.group, resource.plural))
            .map(|objects| {
                objects
                    .iter()
                    .filter(|((ns, _), _)| namespace.is_none_or(|wanted| wanted == ns))
                    .filter(|(_, object)| {
                        labels.matches_labels(object) && fields.matches_fields(object)
                    })
                    .map(|(_, object)| object.clone())
                    .collect()
            })
            .unwrap_or_default();
        (items, inner.resource_version)
    }

    /// Mutates an object in place and bumps its resourceVersion. Returns the new object.
    pub fn update(
        &self,
        resource: &'static ResourceKind,
        namespace: &str,
        name: &str,
        mutate: impl FnOnce(&mut Value),
    ) -> Result<Value> {
        self.update_if(resource, namespace, name, None, mutate)
    }

    /// Like [`Store::update`], but only when the object's `resourceVersion` is still
    /// `resource_version` (when given): otherwise [`Error::Conflict`] and nothing changes, as
    /// the API server answers a write based on a stale read.
    pub fn update_if(
        &self,
        resource: &'static ResourceKind,
        namespace: &str,
        name: &str,
        resource_version: Option<&str>,
        mutate: impl FnOnce(&mut Value),
    ) -> Result<Value> {
        let namespace = if resource.namespaced { namespace } else { "" };
        let mut inner = self.lock();
        let next_version = inner.resource_version + 1;
        let object = inner
            .objects
            .get_mut(&(resource.group, resource.plural))
            .and_then(|objects| objects.get_mut(&(namespace.to_string(), name.to_string())))
            .ok_or_else(|| Error::NotFound {
                resource: resource.plural.to_string(),
                namespace: namespace.to_string(),
                name: name.to_string(),
            })?;
        if let Some(expected) = resource_version {
            let current = object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str);
            if current != Some(expected) {
                return Err(Error::Conflict {
                    resource: resource.plural.to_string(),
                    group: resource.group.to_string(),
                    name: name.to_string(),
                });
            }
        }
        mutate(object);
        if !object.get("metadata").is_some_and(Value::is_object) {
            object["metadata"] = json!({});
        }
        object["metadata"]["name"] = json!(name);
        if resource.namespaced {
            object["metadata"]["namespace"] = json!(namespace);
        }
        object["metadata"]["resourceVersion"] = json!(next_version.to_string());
        let object = object.clone();
        inner.resource_version = next_version;
        self.record(&mut inner, resource, ChangeType::Modified, object.clone());
        Ok(object)
    }

    /// Removes an object, returning it.
    pub fn delete(
        &self,
        resource: &'static ResourceKind,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let namespace = if resource.namespaced { namespace } else { "" };
        let mut inner = self.lock();
        let removed = inner
            .objects
            .get_mut(&(resource.group, resource.plural))
            .and_then(|objects| objects.remove(&(namespace.to_string(), name.to_string())))?;
        inner.resource_version += 1;
        let mut object = removed;
        object["metadata"]["resourceVersion"] = json!(inner.resource_version.to_string());
        self.record(&mut inner, resource, ChangeType::Deleted, object.clone());
        Some(object)
    }

    /// Changes after `since` (all history when `None`) plus a receiver for later ones, taken
    /// atomically so a watcher misses nothing between the two.
    pub fn subscribe(&self, since: Option<u64>) -> (Vec<Change>, broadcast::Receiver<Change>) {
        let inner = self.lock();
        let receiver = self.changes.subscribe();
        let backlog = inner
            .history
            .iter()
            .filter(|change| since.is_none_or(|since| change.resource_version > since))
            .cloned()
            .collect();
        (backlog, receiver)
    }
}

/// A five-character suffix for `generateName`, like the API server's random one but
/// deterministic (derived from a counter).
fn short_suffix(counter: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = counter.wrapping_mul(2_654_435_761) % 14_348_907; // 27^5
    let mut suffix = String::with_capacity(5);
    for _ in 0..5 {
        suffix.push(char::from(ALPHABET[(n % 27) as usize]));
        n /= 27;
    }
    suffix
}

/// The current UTC time as RFC 3339 with second precision (`2025-01-02T03:04:05Z`).
pub fn now_rfc3339() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        (rest / 60) % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> &'static ResourceKind {
        resource_by_path("", "v1", "pods").unwrap()
    }

    #[test]
    fn upsert_fills_metadata_and_bumps_resource_version() {
        let store = Store::new();
        let pod = store
            .upsert(pods(), json!({"metadata": {"name": "p"}}), None)
            .unwrap();
        assert_eq!(pod["kind"], "Pod");
        assert_eq!(pod["apiVersion"], "v1");
        assert_eq!(pod["metadata"]["namespace"], "default");
        assert_eq!(pod["metadata"]["resourceVersion"], "1");
        let again = store
            .upsert(pods(), json!({"metadata": {"name": "p"}}), None)
            .unwrap();
        assert_eq!(again["metadata"]["uid"], pod["metadata"]["uid"]);
        assert_eq!(again["metadata"]["resourceVersion"], "2");
    }

    #[test]
    fn generate_name_gets_a_suffix() {
        let store = Store::new();
        let ev = store
            .create(
                pods(),
                json!({"metadata": {"generateName": "x-"}}),
                Some("ns"),
            )
            .unwrap();
        let name = ev["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("x-") && name.len() == 7, "{name}");
        assert_eq!(ev["metadata"]["namespace"], "ns");
    }

    #[test]
    fn history_replays_after_a_resource_version() {
        let store = Store::new();
        store
            .upsert(pods(), json!({"metadata": {"name": "a"}}), None)
            .unwrap();
        store
            .upsert(pods(), json!({"metadata": {"name": "b"}}), None)
            .unwrap();
        store.delete(pods(), "default", "a").unwrap();
        let (backlog, _) = store.subscribe(Some(1));
        let types: Vec<_> = backlog.iter().map(|c| c.change_type).collect();
        assert_eq!(types, vec![ChangeType::Added, ChangeType::Deleted]);
    }

    #[test]
    fn a_stale_resource_version_is_a_conflict_and_changes_nothing() {
        let store = Store::new();
        let pod = store
            .upsert(pods(), json!({"metadata": {"name": "p"}}), None)
            .unwrap();
        let read = pod["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_owned();
        store
            .update_if(pods(), "default", "p", Some(&read), |p| p["a"] = json!(1))
            .unwrap();
        let stale = store.update_if(pods(), "default", "p", Some(&read), |p| p["a"] = json!(2));
        assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");
        let current = store.get(pods(), "default", "p").unwrap();
        assert_eq!(current["a"], 1);
        assert_eq!(current["metadata"]["resourceVersion"], "2");
    }

    #[test]
    fn versions_of_one_resource_share_their_objects() {
        let v1beta1 = resource_by_path(
            "groupsnapshot.storage.k8s.io",
            "v1beta1",
            "volumegroupsnapshots",
        )
        .unwrap();
        let v1beta2 = resource_by_path(
            "groupsnapshot.storage.k8s.io",
            "v1beta2",
            "volumegroupsnapshots",
        )
        .unwrap();
        assert!(v1beta1.same_resource(v1beta2) && v1beta1 != v1beta2);
        let store = Store::new();
        store
            .upsert(v1beta1, json!({"metadata": {"name": "g"}}), Some("shop"))
            .unwrap();
        let read = store.get(v1beta2, "shop", "g").unwrap();
        assert_eq!(read["apiVersion"], "groupsnapshot.storage.k8s.io/v1beta1");
    }

    #[test]
    fn rfc3339_has_the_right_shape() {
        let now = now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'));
    }
}
