//! The one Kubernetes edge: every call quiesce makes to an API server goes through here, and
//! nothing else in the crate imports kube-rs.
//!
//! - [`Kube`] ([`client`]): the lazily built, shared client — from the kubeconfig Velero
//!   names, `KUBECONFIG`, or the in-cluster service account.
//! - [`Error`] ([`error`]): how a call failed (forbidden, not found, timeout, unreachable, …),
//!   kube-rs's error as its source.
//! - `resources.rs`: pods, claims, volumes, ConfigMaps, PodVolumeBackups and Events, each call
//!   bounded in time.
//! - `exec.rs`: [`crate::exec::Executor`] for [`Kube`] over `pods/exec`, including streams with
//!   stdin for held sessions (v5 closes stdin alone, v4 cannot).
//! - [`snapshots`]: a namespace's CSI VolumeSnapshots of one backup, listed then watched.
//! - [`config`]: [`load_hook_config`], the plugin ConfigMap read and its problems logged.
//! - [`Cluster`]: what the freeze/thaw engine reads and writes besides exec, as a trait so the
//!   engine is tested without a cluster; [`Kube`] implements it.
//!
//! Uses [`crate::exec`] (whose seam it implements) and [`crate::hooks`] (the configuration
//! it parses); knows nothing of the engine, Velero's protocol or go-plugin.

pub mod client;
pub mod config;
pub mod error;
mod exec;
mod resources;
pub mod snapshots;

use k8s_openapi::api::core::v1::Pod;

pub use client::{ClientSource, Kube};
pub use config::{load_hook_config, CONFIG_LABEL_SELECTOR, DEFAULT_VELERO_NAMESPACE};
pub use error::Error;
pub use resources::READ_TIMEOUT;
pub use snapshots::{SnapshotEvent, VolumeSnapshotState};

use crate::hooks::{Config, PodRef};

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

/// A Kubernetes Event to post on a pod (`involvedObject` is the pod).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    /// The pod the event is about.
    pub pod: PodRef,
    /// `metadata.uid` of the pod (the event's `involvedObject.uid`; left out when it is not a
    /// real UID).
    pub pod_uid: String,
    /// `reason`, e.g. `QuiesceHookSucceeded`.
    pub reason: &'static str,
    /// `type`: `Normal` or `Warning`.
    pub kind: &'static str,
    /// `message`.
    pub message: String,
}

/// What the freeze/thaw engine reads from the cluster besides exec, and the Events it posts.
/// [`Kube`] implements it; the engine's tests use a fake.
#[async_trait::async_trait]
pub trait Cluster: Send + Sync {
    /// The hook configuration from the plugin ConfigMap in `velero_namespace`, problems
    /// already logged; the default (no rules) when there is none or it cannot be read.
    async fn load_config(&self, velero_namespace: &str) -> Config;

    /// The PodVolumeBackups Velero created in `velero_namespace` for the Backup with
    /// `backup_uid` so far.
    async fn pod_volume_backups(
        &self,
        velero_namespace: &str,
        backup_uid: &str,
    ) -> Result<Vec<PodVolumeBackup>, Error>;

    /// The pods of a namespace.
    async fn pods_in_namespace(&self, namespace: &str) -> Result<Vec<Pod>, Error>;

    /// Posts an Event on a pod.
    async fn record_event(&self, event: &PodEvent) -> Result<(), Error>;

    /// The VolumeSnapshots of `namespace` matching the label selector `labels`, listed then
    /// watched ([`snapshots`]).
    fn watch_volume_snapshots(&self, namespace: &str, labels: &str) -> SnapshotEvents;
}

/// A stream of [`SnapshotEvent`]s; its first item is an error when the watch cannot start.
pub type SnapshotEvents = futures_util::stream::BoxStream<'static, Result<SnapshotEvent, Error>>;

#[async_trait::async_trait]
impl Cluster for Kube {
    async fn load_config(&self, velero_namespace: &str) -> Config {
        load_hook_config(self, velero_namespace).await
    }

    async fn pod_volume_backups(
        &self,
        velero_namespace: &str,
        backup_uid: &str,
    ) -> Result<Vec<PodVolumeBackup>, Error> {
        self.list_pod_volume_backups(velero_namespace, backup_uid)
            .await
    }

    async fn pods_in_namespace(&self, namespace: &str) -> Result<Vec<Pod>, Error> {
        self.list_pods(Some(namespace)).await
    }

    async fn record_event(&self, event: &PodEvent) -> Result<(), Error> {
        self.post_event(event).await
    }

    fn watch_volume_snapshots(&self, namespace: &str, labels: &str) -> SnapshotEvents {
        Box::pin(Kube::watch_volume_snapshots(self, namespace, labels))
    }
}
