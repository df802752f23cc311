//! Builders for the objects tests put into the fake API server or hand to the plugin as Velero
//! items: pods (labels, annotations, owners, containers, claim volumes, phase), claims,
//! persistent volumes bound to a claim (native or CSI), and the VolumeSnapshot Velero's CSI
//! action creates for a claim. They build plain JSON ([`serde_json::Value`]), the way
//! the API server and Velero pass objects around; turn one into a typed object with
//! `serde_json::from_value`.
//!
//! Only what is asked for is written: a pod starts as `apiVersion`, `kind`, name, namespace,
//! an empty container list and phase `Running`, and every method adds one thing.
//!
//! ```
//! use fake_kube::objects::{container, persistent_volume, pod};
//!
//! let db = pod("shop", "db-0")
//!     .uid("uid-db-0")
//!     .label("app", "db")
//!     .annotation("pre.hook.backup.quiesce.dev/command", r#"["sync"]"#)
//!     .owner("apps/v1", "StatefulSet", "db", "uid-db")
//!     .container(container("db").image("postgres:17"))
//!     .claims(["data-db-0"])
//!     .build();
//! assert_eq!(db["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"], "data-db-0");
//! assert_eq!(db["status"]["phase"], "Running");
//!
//! let pv = persistent_volume("pv-1", "shop", "data-db-0");
//! assert_eq!(pv["spec"]["claimRef"]["name"], "data-db-0");
//! ```

use serde_json::{json, Map, Value};

/// A pod named `name` in `namespace`: no containers yet, phase `Running`.
pub fn pod(namespace: &str, name: &str) -> PodBuilder {
    PodBuilder {
        pod: json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": []},
            "status": {"phase": "Running"},
        }),
    }
}

/// A pod under construction; [`PodBuilder::build`] gives its JSON.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until built"]
pub struct PodBuilder {
    pod: Value,
}

impl PodBuilder {
    /// Sets `metadata.uid`.
    pub fn uid(mut self, uid: impl Into<String>) -> Self {
        self.pod["metadata"]["uid"] = Value::String(uid.into());
        self
    }

    /// Sets `metadata.creationTimestamp` (RFC 3339, e.g. `2026-11-01T10:00:00Z`).
    pub fn created(mut self, timestamp: &str) -> Self {
        self.pod["metadata"]["creationTimestamp"] = json!(timestamp);
        self
    }

    /// Adds (or replaces) one label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        object_at(&mut self.pod["metadata"], "labels").insert(key.into(), json!(value));
        self
    }

    /// Adds (or replaces) one annotation.
    pub fn annotation(mut self, key: &str, value: impl Into<String>) -> Self {
        object_at(&mut self.pod["metadata"], "annotations")
            .insert(key.into(), Value::String(value.into()));
        self
    }

    /// Adds (or replaces) every annotation of a JSON object, in order; `json!({})` still
    /// writes an empty `annotations` map.
    ///
    /// # Panics
    /// When `annotations` is not a JSON object (a mistake in the test).
    pub fn annotations(mut self, annotations: Value) -> Self {
        let Value::Object(annotations) = annotations else {
            panic!("annotations must be a JSON object, not {annotations}");
        };
        object_at(&mut self.pod["metadata"], "annotations").extend(annotations);
        self
    }

    /// Adds a controller owner reference (`controller: true`), as a workload's pods carry.
    pub fn owner(mut self, api_version: &str, kind: &str, name: &str, uid: &str) -> Self {
        array_at(&mut self.pod["metadata"], "ownerReferences").push(json!({
            "apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
            "controller": true,
        }));
        self
    }

    /// Adds a container to `spec.containers`; a name alone will do (`.container("app")`).
    pub fn container(mut self, container: impl Into<Container>) -> Self {
        array_at(&mut self.pod["spec"], "containers").push(container.into().0);
        self
    }

    /// Adds a container to `spec.initContainers`; with `restart_policy("Always")` it is a
    /// native sidecar.
    pub fn init_container(mut self, container: impl Into<Container>) -> Self {
        array_at(&mut self.pod["spec"], "initContainers").push(container.into().0);
        self
    }

    /// Adds volume `name` backed by persistent volume claim `claim`.
    pub fn volume(mut self, name: &str, claim: &str) -> Self {
        array_at(&mut self.pod["spec"], "volumes").push(json!({
            "name": name, "persistentVolumeClaim": {"claimName": claim},
        }));
        self
    }

    /// Adds a volume per `(name, claim)` pair; no pairs still writes an empty `volumes` list.
    pub fn volumes<N: AsRef<str>, C: AsRef<str>>(
        mut self,
        volumes: impl IntoIterator<Item = (N, C)>,
    ) -> Self {
        array_at(&mut self.pod["spec"], "volumes");
        for (name, claim) in volumes {
            self = self.volume(name.as_ref(), claim.as_ref());
        }
        self
    }

    /// Adds a volume per claim, each named after its claim; no claims still writes an empty
    /// `volumes` list.
    pub fn claims<C: AsRef<str>>(self, claims: impl IntoIterator<Item = C>) -> Self {
        self.volumes(claims.into_iter().map(|claim| {
            let name = claim.as_ref().to_owned();
            (name, claim)
        }))
    }

    /// Sets `status.phase` (`Pending`, `Running`, `Succeeded`, `Failed`).
    pub fn phase(mut self, phase: &str) -> Self {
        object_at(&mut self.pod, "status").insert("phase".into(), json!(phase));
        self
    }

    /// Drops `status` altogether, as in a pod template or a freshly created object.
    pub fn without_status(mut self) -> Self {
        if let Value::Object(pod) = &mut self.pod {
            pod.remove("status");
        }
        self
    }

    /// Changes the JSON directly, for what no method covers (other volume kinds, odd fields).
    pub fn edit(mut self, change: impl FnOnce(&mut Value)) -> Self {
        change(&mut self.pod);
        self
    }

    /// The pod's JSON.
    pub fn build(self) -> Value {
        self.pod
    }
}

impl From<PodBuilder> for Value {
    fn from(pod: PodBuilder) -> Value {
        pod.build()
    }
}

/// A container named `name`, for [`PodBuilder::container`] and
/// [`PodBuilder::init_container`].
pub fn container(name: &str) -> Container {
    Container(json!({ "name": name }))
}

/// A container spec under construction.
#[derive(Debug, Clone)]
#[must_use = "a container does nothing until added to a pod"]
pub struct Container(Value);

impl Container {
    /// Sets `image`.
    pub fn image(mut self, image: &str) -> Self {
        self.0["image"] = json!(image);
        self
    }

    /// Adds an environment variable with a literal value.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        array_at(&mut self.0, "env").push(json!({"name": name, "value": value}));
        self
    }

    /// Sets `restartPolicy` (`Always` makes an init container a native sidecar).
    pub fn restart_policy(mut self, policy: &str) -> Self {
        self.0["restartPolicy"] = json!(policy);
        self
    }
}

impl From<&str> for Container {
    fn from(name: &str) -> Container {
        container(name)
    }
}

/// A cluster-scoped persistent volume named `name`, bound to claim `claim_namespace/claim`.
pub fn persistent_volume(name: &str, claim_namespace: &str, claim: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {"claimRef": {"namespace": claim_namespace, "name": claim}},
    })
}

/// The CSI driver of [`csi_persistent_volume`]s.
pub const CSI_DRIVER: &str = "disk.csi.quiesce.dev";

/// A cluster-scoped persistent volume of 1Gi named `name`, bound to claim
/// `claim_namespace/claim`, provisioned by [`CSI_DRIVER`] (`spec.csi`, volume handle
/// `vol-NAME`): a volume Velero snapshots through its CSI action, not natively.
pub fn csi_persistent_volume(name: &str, claim_namespace: &str, claim: &str) -> Value {
    let mut volume = persistent_volume(name, claim_namespace, claim);
    volume["spec"]["capacity"] = json!({"storage": "1Gi"});
    volume["spec"]["csi"] = json!({"driver": CSI_DRIVER, "volumeHandle": format!("vol-{name}")});
    volume
}

/// A claim `namespace/name` of 1Gi, storage class `csi`, bound to persistent volume `volume`.
pub fn persistent_volume_claim(namespace: &str, name: &str, volume: &str) -> ClaimBuilder {
    ClaimBuilder {
        claim: json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "csi",
                     "volumeName": volume, "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Bound"},
        }),
    }
}

/// A claim under construction; [`ClaimBuilder::build`] gives its JSON.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until built"]
pub struct ClaimBuilder {
    claim: Value,
}

impl ClaimBuilder {
    /// Adds (or replaces) one label, e.g. the volume group key `velero.io/volume-group`.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        object_at(&mut self.claim["metadata"], "labels").insert(key.into(), json!(value));
        self
    }

    /// The claim's JSON.
    pub fn build(self) -> Value {
        self.claim
    }
}

/// The VolumeSnapshot Velero's `velero.io/csi-pvc-backupper` creates for `claim` in backup
/// `backup_name`: `generateName` `velero-<claim>-`, the claim's labels plus
/// `velero.io/backup-name`, the claim as its source, class `velero-csi-snapclass`.
pub fn velero_volume_snapshot(claim: &Value, backup_name: &str) -> Value {
    let name = claim["metadata"]["name"].as_str().unwrap_or_default();
    let mut labels = match &claim["metadata"]["labels"] {
        Value::Object(labels) => labels.clone(),
        _ => Map::new(),
    };
    labels.insert("velero.io/backup-name".into(), json!(backup_name));
    json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"generateName": format!("velero-{name}-"),
                     "namespace": claim["metadata"]["namespace"], "labels": labels},
        "spec": {"source": {"persistentVolumeClaimName": name},
                 "volumeSnapshotClassName": "velero-csi-snapclass"},
    })
}

/// The object at `parent[key]`, created empty when absent.
fn object_at<'a>(parent: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !parent[key].is_object() {
        parent[key] = json!({});
    }
    match &mut parent[key] {
        Value::Object(map) => map,
        _ => unreachable!("just made an object"),
    }
}

/// The array at `parent[key]`, created empty when absent.
fn array_at<'a>(parent: &'a mut Value, key: &str) -> &'a mut Vec<Value> {
    if !parent[key].is_array() {
        parent[key] = json!([]);
    }
    match &mut parent[key] {
        Value::Array(items) => items,
        _ => unreachable!("just made an array"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_pod_is_running_with_no_containers() {
        assert_eq!(
            pod("shop", "db").build(),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "db", "namespace": "shop"},
                "spec": {"containers": []},
                "status": {"phase": "Running"},
            })
        );
    }

    #[test]
    fn every_method_adds_its_field() {
        let built = pod("shop", "db-0")
            .uid("u1")
            .created("2026-11-01T10:00:00Z")
            .label("role", "primary")
            .annotation("a", "1")
            .annotations(json!({"b": "2"}))
            .owner("apps/v1", "StatefulSet", "db", "uid-db")
            .container(
                container("db")
                    .image("postgres:17")
                    .env("GREETING", "hello"),
            )
            .container("sidecar")
            .init_container(container("proxy").restart_policy("Always"))
            .volume("data", "data-db-0")
            .claims(["wal"])
            .phase("Pending")
            .build();
        assert_eq!(
            built,
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {
                    "name": "db-0", "namespace": "shop", "uid": "u1",
                    "creationTimestamp": "2026-11-01T10:00:00Z",
                    "labels": {"role": "primary"},
                    "annotations": {"a": "1", "b": "2"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                         "name": "db", "uid": "uid-db", "controller": true}],
                },
                "spec": {
                    "containers": [
                        {"name": "db", "image": "postgres:17",
                         "env": [{"name": "GREETING", "value": "hello"}]},
                        {"name": "sidecar"},
                    ],
                    "initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                    "volumes": [
                        {"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}},
                        {"name": "wal", "persistentVolumeClaim": {"claimName": "wal"}},
                    ],
                },
                "status": {"phase": "Pending"},
            })
        );
    }

    #[test]
    fn empty_annotations_and_volumes_still_write_their_fields() {
        let built = pod("shop", "db").annotations(json!({})).build();
        assert_eq!(built["metadata"]["annotations"], json!({}));
        for built in [
            pod("shop", "db").claims(Vec::<String>::new()).build(),
            pod("shop", "db")
                .volumes(Vec::<(&str, &str)>::new())
                .build(),
        ] {
            assert_eq!(built["spec"]["volumes"], json!([]));
        }
    }

    #[test]
    fn without_status_and_edit_reach_what_the_methods_do_not() {
        let built = pod("shop", "db")
            .without_status()
            .edit(|pod| pod["spec"]["volumes"] = json!([{"name": "scratch", "emptyDir": {}}]))
            .build();
        assert!(built.get("status").is_none());
        assert_eq!(built["spec"]["volumes"][0]["name"], "scratch");
    }

    #[test]
    fn velero_s_snapshot_of_a_claim_carries_its_labels_and_the_backup_name() {
        let claim = persistent_volume_claim("shop", "data", "pv-1")
            .label("velero.io/volume-group", "orders")
            .build();
        assert_eq!(claim["spec"]["volumeName"], "pv-1");
        let snapshot = velero_volume_snapshot(&claim, "nightly");
        assert_eq!(
            snapshot["metadata"],
            json!({"generateName": "velero-data-", "namespace": "shop",
                   "labels": {"velero.io/volume-group": "orders", "velero.io/backup-name": "nightly"}})
        );
        assert_eq!(
            snapshot["spec"]["source"]["persistentVolumeClaimName"],
            "data"
        );
        let volume = csi_persistent_volume("pv-1", "shop", "data");
        assert_eq!(volume["spec"]["csi"]["driver"], CSI_DRIVER);
    }

    #[test]
    fn a_persistent_volume_names_its_claim() {
        assert_eq!(
            persistent_volume("pv-1", "shop", "data"),
            json!({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": "pv-1"},
                "spec": {"claimRef": {"namespace": "shop", "name": "data"}},
            })
        );
    }
}
