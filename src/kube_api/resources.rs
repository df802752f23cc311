//! Every API read and write besides exec: pods, claims, volumes and ConfigMaps listed, one pod
//! read, the Backup's PodVolumeBackups listed, an Event posted on a pod. Each call is bounded
//! by [`READ_TIMEOUT`], kube's own retries of 429/503/504 answers included (they back off for
//! minutes, and callers wait on these calls), and fails with a typed [`Error`].

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ConfigMap, Event, EventSource, ObjectReference, PersistentVolume, PersistentVolumeClaim, Pod,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use serde::de::DeserializeOwned;

use super::{Error, Kube, PodEvent, PodVolumeBackup};

/// The longest one call may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// `call`, or [`Error::Timeout`] once [`READ_TIMEOUT`] is over.
async fn bounded<T>(call: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    tokio::time::timeout(READ_TIMEOUT, call)
        .await
        .unwrap_or(Err(Error::Timeout(READ_TIMEOUT)))
}

/// `velero.io/v1` PodVolumeBackup, as an untyped API resource.
fn pod_volume_backup_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("velero.io", "v1", "PodVolumeBackup"),
        "podvolumebackups",
    )
}

impl Kube {
    /// Builds the client now (instead of at the first call), to report a missing or broken
    /// configuration before anything else.
    pub async fn connect(&self) -> Result<(), Error> {
        self.client().await.map(drop)
    }

    /// The shared client, or [`Error::NoClient`].
    async fn client(&self) -> Result<kube::Client, Error> {
        self.get().await.map_err(Error::NoClient)
    }

    /// `Api<K>` in `namespace`, or across all namespaces for `None`.
    async fn api<K>(&self, namespace: Option<&str>) -> Result<Api<K>, Error>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        let client = self.client().await?;
        Ok(match namespace {
            Some(namespace) => Api::namespaced(client, namespace),
            None => Api::all(client),
        })
    }

    /// The pods of `namespace` (of every namespace for `None`).
    pub async fn list_pods(&self, namespace: Option<&str>) -> Result<Vec<Pod>, Error> {
        bounded(async { list(self.api(namespace).await?, None).await }).await
    }

    /// The claims of `namespace` (of every namespace for `None`).
    pub async fn list_claims(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<PersistentVolumeClaim>, Error> {
        bounded(async { list(self.api(namespace).await?, None).await }).await
    }

    /// Every PersistentVolume.
    pub async fn list_volumes(&self) -> Result<Vec<PersistentVolume>, Error> {
        bounded(async { list(Api::all(self.client().await?), None).await }).await
    }

    /// The ConfigMaps of `namespace` matching the label selector `labels`.
    pub async fn list_config_maps(
        &self,
        namespace: &str,
        labels: &str,
    ) -> Result<Vec<ConfigMap>, Error> {
        bounded(async { list(self.api(Some(namespace)).await?, Some(labels)).await }).await
    }

    /// The PodVolumeBackups Velero created in `namespace` for the Backup with `backup_uid`
    /// (label `velero.io/backup-uid`).
    pub async fn list_pod_volume_backups(
        &self,
        namespace: &str,
        backup_uid: &str,
    ) -> Result<Vec<PodVolumeBackup>, Error> {
        bounded(async {
            let api: Api<DynamicObject> = Api::namespaced_with(
                self.client().await?,
                namespace,
                &pod_volume_backup_resource(),
            );
            let selector = format!("velero.io/backup-uid={backup_uid}");
            let objects = list(api, Some(&selector)).await?;
            Ok(objects.iter().map(read_pod_volume_backup).collect())
        })
        .await
    }

    /// One pod.
    pub async fn get_pod(&self, namespace: &str, name: &str) -> Result<Pod, Error> {
        bounded(async {
            let api: Api<Pod> = self.api(Some(namespace)).await?;
            api.get(name).await.map_err(Error::from_kube)
        })
        .await
    }

    /// Posts `event` as a Kubernetes Event on its pod.
    pub async fn post_event(&self, event: &PodEvent) -> Result<(), Error> {
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
        bounded(async {
            let api: Api<Event> = self.api(Some(&event.pod.namespace)).await?;
            api.create(&PostParams::default(), &object)
                .await
                .map(drop)
                .map_err(Error::from_kube)
        })
        .await
    }
}

/// One list call, with the label selector `labels` if given.
async fn list<K>(api: Api<K>, labels: Option<&str>) -> Result<Vec<K>, Error>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut params = ListParams::default();
    if let Some(labels) = labels {
        params = params.labels(labels);
    }
    api.list(&params)
        .await
        .map(|list| list.items)
        .map_err(Error::from_kube)
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
