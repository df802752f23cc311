//! What the state machine reads from the cluster besides exec: the plugin configuration, the
//! Backup's PodVolumeBackups, the pods of a namespace (groups, run-once, Velero < 1.15) and the
//! Events it posts. A trait, so the state machine is tested without a cluster. Every read is
//! bounded in time, kube's own retries included.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};

use super::plan::BackupInfo;
use super::report::HookEvent;
use crate::exec::client::ClusterClient;
use crate::exec::config::load_hook_config;
use crate::hooks::Config;

/// The longest a list call may take, kube's own retries of 429/503/504 answers included
/// (they back off for minutes): callers wait on these reads.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `future`, or an error naming `what` once [`READ_TIMEOUT`] is over.
async fn bounded<T>(
    what: &str,
    future: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(READ_TIMEOUT, future)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "{what}: no answer within {}",
                crate::hooks::format_go_duration(READ_TIMEOUT)
            ))
        })
}

/// One `velero.io/v1` PodVolumeBackup, as far as a deferred thaw needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodVolumeBackup {
    /// `spec.pod.namespace`.
    pub pod_namespace: String,
    /// `spec.pod.name`.
    pub pod_name: String,
    /// `spec.volume`.
    pub volume: String,
    /// `status.phase` (empty while new).
    pub phase: String,
}

impl PodVolumeBackup {
    /// Whether the file-system backup of this volume is over (whatever its outcome).
    pub fn is_terminal(&self) -> bool {
        matches!(self.phase.as_str(), "Completed" | "Failed" | "Canceled")
    }
}

/// Reads from the Kubernetes API on the state machine's behalf.
#[async_trait::async_trait]
pub trait Cluster: Send + Sync {
    /// The hook configuration from the plugin ConfigMap, problems already logged; the
    /// default (no rules) when there is none or it cannot be read.
    async fn load_config(&self) -> Config;

    /// The PodVolumeBackups Velero created for `backup` so far (label `velero.io/backup-uid`).
    async fn pod_volume_backups(&self, backup: &BackupInfo)
        -> Result<Vec<PodVolumeBackup>, String>;

    /// The pods of a namespace: the members of a consistency group, the pods of a run-once
    /// workload, and those mounting a claim when Velero has no ItemBlockAction to show them
    /// first (Velero before 1.15).
    async fn pods_in_namespace(&self, namespace: &str) -> Result<Vec<Pod>, String>;

    /// Posts a Kubernetes Event about a hook outcome on its pod.
    async fn record_event(&self, event: &HookEvent) -> Result<(), String>;
}

/// [`Cluster`] over the Kubernetes API, sharing the exec client.
pub struct KubeCluster {
    client: ClusterClient,
    velero_namespace: String,
}

impl KubeCluster {
    /// Reads through `client`; the plugin ConfigMap lives in `velero_namespace`.
    pub fn new(client: ClusterClient, velero_namespace: String) -> Self {
        KubeCluster {
            client,
            velero_namespace,
        }
    }
}

/// `velero.io/v1` PodVolumeBackup, as an untyped API resource.
fn pod_volume_backup_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("velero.io", "v1", "PodVolumeBackup"),
        "podvolumebackups",
    )
}

#[async_trait::async_trait]
impl Cluster for KubeCluster {
    async fn load_config(&self) -> Config {
        load_hook_config(&self.client, &self.velero_namespace).await
    }

    async fn pod_volume_backups(
        &self,
        backup: &BackupInfo,
    ) -> Result<Vec<PodVolumeBackup>, String> {
        let selector = format!("velero.io/backup-uid={}", backup.uid);
        let what = format!("listing PodVolumeBackups ({selector})");
        bounded(&what, async {
            let client = self.client.get().await?;
            let api: Api<DynamicObject> =
                Api::namespaced_with(client, &backup.namespace, &pod_volume_backup_resource());
            let list = api
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| format!("{what}: {e}"))?;
            Ok(list.items.iter().map(read_pod_volume_backup).collect())
        })
        .await
    }

    async fn record_event(&self, event: &HookEvent) -> Result<(), String> {
        let client = self.client.get().await?;
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let object = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", event.pod.name)),
                namespace: Some(event.pod.namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some(event.pod.namespace.clone()),
                name: Some(event.pod.name.clone()),
                uid: Some(event.pod_uid.clone()).filter(|u| !u.contains('/')),
                ..ObjectReference::default()
            },
            reason: Some(event.reason.into()),
            message: Some(event.message.clone()),
            type_: Some(event.kind.into()),
            source: Some(EventSource {
                component: Some("quiesce.dev/pod-hooks".into()),
                host: None,
            }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            ..Event::default()
        };
        Api::<Event>::namespaced(client, &event.pod.namespace)
            .create(&PostParams::default(), &object)
            .await
            .map(drop)
            .map_err(|e| format!("posting an Event on pod {}: {e}", event.pod))
    }

    async fn pods_in_namespace(&self, namespace: &str) -> Result<Vec<Pod>, String> {
        let what = format!("listing pods in namespace {namespace}");
        bounded(&what, async {
            let client = self.client.get().await?;
            let api: Api<Pod> = Api::namespaced(client, namespace);
            let list = api
                .list(&ListParams::default())
                .await
                .map_err(|e| format!("{what}: {e}"))?;
            Ok(list.items)
        })
        .await
    }
}

fn read_pod_volume_backup(object: &DynamicObject) -> PodVolumeBackup {
    let text = |value: &serde_json::Value, path: &[&str]| -> String {
        path.iter()
            .try_fold(value, |v, key| v.get(key))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    PodVolumeBackup {
        pod_namespace: text(&object.data, &["spec", "pod", "namespace"]),
        pod_name: text(&object.data, &["spec", "pod", "name"]),
        volume: text(&object.data, &["spec", "volume"]),
        phase: text(&object.data, &["status", "phase"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_volume_backup_is_read_from_its_spec_and_status() {
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "velero.io/v1", "kind": "PodVolumeBackup",
            "metadata": {"name": "b1-xyz", "namespace": "velero"},
            "spec": {"pod": {"kind": "Pod", "namespace": "shop", "name": "db-0", "uid": "u"}, "volume": "data"},
            "status": {"phase": "Completed"}
        }))
        .unwrap();
        let pvb = read_pod_volume_backup(&object);
        assert_eq!(
            pvb,
            PodVolumeBackup {
                pod_namespace: "shop".into(),
                pod_name: "db-0".into(),
                volume: "data".into(),
                phase: "Completed".into()
            }
        );
        assert!(pvb.is_terminal());
        for (phase, terminal) in [
            ("", false),
            ("New", false),
            ("InProgress", false),
            ("Failed", true),
            ("Canceled", true),
        ] {
            assert_eq!(
                PodVolumeBackup {
                    phase: phase.into(),
                    ..pvb.clone()
                }
                .is_terminal(),
                terminal,
                "{phase}"
            );
        }
    }
}
