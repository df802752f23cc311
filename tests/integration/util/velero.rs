//! Velero, replayed: the plugin and a fake cluster driven in the order Velero's backup
//! controller calls a pod-hooks plugin — GetRelatedItems(pod) and GetRelatedItems(claim) while
//! item blocks are formed, then per block Execute(persistentvolume) for each of the pod's claims
//! followed by the volume snapshot, then Execute(pod), and Shutdown when the backup is done. The
//! freeze/thaw tests, the soak, the freeze-window bench and the demo all replay a backup through
//! this one host; the snapshot is a marker on the fake API server's timeline (`snapshot PV`), so
//! that tests can assert freeze < snapshot < thaw ([`Timeline`]). For a CSI volume
//! ([`Worker::csi_volume`]) the marker is where Velero's CSI action creates the claim's
//! VolumeSnapshot, which it then does: the fake cluster's simulated snapshot controller, when
//! on ([`Velero::start_with`]), cuts it later — a `Snapshot` event of the timeline.
//!
//! Also the objects of the replayed backup: pods of [`NAMESPACE`] and the PodVolumeBackups
//! Velero's node agent writes for file-system backups of [`super::backup_json`]'s backup.

use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use fake_kube::objects::{
    container, csi_persistent_volume, persistent_volume, pod, velero_volume_snapshot, PodBuilder,
};
use fake_kube::{FakeKube, FakeKubeBuilder, SnapshotStep, TimelineEvent, TimelineEventKind};
use quiesce::proto::v1::item_block_action_client::ItemBlockActionClient;
use quiesce::proto::v2::backup_item_action_client::BackupItemActionClient;
use serde_json::{json, Value};
use tonic::transport::Channel;

use super::{
    execute_request, launch_with_cluster_from, related_items_request, Plugin, BACKUP_NAME,
};

/// Generous bound for "it happens at all" waits; never a performance assertion.
const EVENTUALLY: Duration = Duration::from_secs(20);

/// The namespace the replayed backup covers (the one [`super::backup_json`] includes).
pub const NAMESPACE: &str = "shop";

/// A plugin, the fake cluster its kubeconfig points at, and Velero's connection to it.
pub struct Velero {
    pub plugin: Plugin,
    pub cluster: Arc<FakeKube>,
    worker: Worker,
}

impl Velero {
    /// Launches the plugin against a new fake cluster, as Velero does at the start of a backup.
    pub async fn start() -> Velero {
        Self::start_with_env(&[]).await
    }

    /// Like [`Velero::start`], with extra environment variables for the plugin.
    pub async fn start_with_env(env: &[(&str, &str)]) -> Velero {
        Self::start_on(fake_kube::FakeKube::builder(), env).await
    }

    /// Like [`Velero::start_with_env`], the fake cluster started from `cluster` (its simulated
    /// snapshot controller on, v4 only, say).
    pub async fn start_on(cluster: fake_kube::FakeKubeBuilder, env: &[(&str, &str)]) -> Velero {
        Self::start_with(cluster, &[], env).await
    }

    /// Like [`Velero::start_on`], with extra `velero server` flags for the plugin.
    pub async fn start_with(
        cluster: FakeKubeBuilder,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Velero {
        let (plugin, cluster) = launch_with_cluster_from(cluster, args, env).await;
        let cluster = Arc::new(cluster);
        let worker = Worker {
            cluster: Arc::clone(&cluster),
            bia: plugin.backup_action().await,
            iba: plugin.item_block_action().await,
        };
        Velero {
            plugin,
            cluster,
            worker,
        }
    }

    /// Another of Velero's item-block workers, calling concurrently on the same connections.
    pub fn worker(&self) -> Worker {
        self.worker.clone()
    }

    /// Adds the pod to the cluster and has Velero see it while forming item blocks.
    pub async fn index(&mut self, pod: &Value) {
        self.cluster.add_pod(pod.clone()).unwrap();
        self.worker.related_items(pod).await;
    }

    /// GetRelatedItems(claim): see [`Worker::related_claim`].
    pub async fn related_claim(&mut self, claim: &Value) {
        self.worker.related_claim(claim).await
    }

    /// Execute(persistentvolume) in the claim's chain, then the snapshot: see
    /// [`Worker::volume`].
    pub async fn volume(&mut self, pv: &str, claim: &str) -> Result<(), tonic::Status> {
        self.worker.volume(pv, claim).await
    }

    /// Execute(persistentvolume) of a CSI volume, then its VolumeSnapshot: see
    /// [`Worker::csi_volume`].
    pub async fn csi_volume(&mut self, pv: &str, claim: &Value) -> Result<(), tonic::Status> {
        self.worker.csi_volume(pv, claim).await
    }

    /// Execute(pod): see [`Worker::pod`].
    pub async fn pod(&mut self, pod: &Value) -> Result<(), tonic::Status> {
        self.worker.pod(pod).await
    }

    /// Adds the pod to the cluster and backs it up with its volumes (`(pv, claim)` pairs)
    /// in Velero's order: [`Velero::index`], then [`Worker::back_up`]'s volumes and pod.
    pub async fn back_up(
        &mut self,
        pod: &Value,
        volumes: &[(&str, &str)],
    ) -> Result<(), tonic::Status> {
        self.cluster.add_pod(pod.clone()).unwrap();
        self.worker.back_up(pod, volumes).await
    }

    /// Shutdown at the end of the backup, as go-plugin's `Kill` sends it (the answer is
    /// ignored), then waits up to `within` for the process to exit.
    pub async fn stop(&mut self, within: Duration) -> Option<ExitStatus> {
        self.plugin.shutdown().await;
        self.plugin.wait_exit(within)
    }

    /// The fake API server's timeline so far.
    pub fn timeline(&self) -> Timeline {
        Timeline(self.cluster.timeline())
    }

    /// Waits until the timeline holds `count` finished execs of `verb` on `pod`.
    pub async fn wait_for(&self, verb: &str, pod: &str, count: usize) -> bool {
        let (verb, pod) = (verb.to_owned(), pod.to_owned());
        self.cluster
            .wait_for_timeline(EVENTUALLY, move |events| {
                Timeline(events.to_vec()).finished(&verb, &pod) >= count
            })
            .await
    }

    /// The plugin's stderr lines that are JSON log lines, parsed.
    pub fn stderr(&self) -> Vec<Value> {
        self.plugin
            .stderr_lines()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// One of Velero's item-block workers: the calls for the pods of its blocks, in Velero's
/// order. Clones share the plugin connections, as Velero's concurrent workers do.
#[derive(Clone)]
pub struct Worker {
    cluster: Arc<FakeKube>,
    bia: BackupItemActionClient<Channel>,
    iba: ItemBlockActionClient<Channel>,
}

impl Worker {
    /// GetRelatedItems(pod), as Velero asks while it forms item blocks.
    pub async fn related_items(&mut self, pod: &Value) {
        let item = serde_json::to_vec(pod).unwrap();
        self.iba
            .get_related_items(related_items_request(item))
            .await
            .unwrap();
    }

    /// GetRelatedItems(claim), as Velero asks for each claim of a block while forming it (its
    /// claim action pulls in the claims of the same volume group and the pods mounting them).
    pub async fn related_claim(&mut self, claim: &Value) {
        let item = serde_json::to_vec(claim).unwrap();
        self.iba
            .get_related_items(related_items_request(item))
            .await
            .unwrap();
    }

    /// Execute(persistentvolume `pv`) of a CSI volume bound to `claim` in the claim's chain; then,
    /// as Velero's `velero.io/csi-pvc-backupper`, the claim's VolumeSnapshot: the claim and the
    /// volume are put in the fake cluster (its snapshot controller needs them), the marker
    /// `snapshot PV` is added and the VolumeSnapshot created. When the plugin refuses the volume,
    /// none of that happens and the chain fails: the error.
    pub async fn csi_volume(&mut self, pv: &str, claim: &Value) -> Result<(), tonic::Status> {
        let name = claim["metadata"]["name"].as_str().unwrap();
        let volume = csi_persistent_volume(pv, NAMESPACE, name);
        self.execute_volume(&volume).await?;
        self.cluster.add_object(claim.clone()).unwrap();
        self.cluster.add_object(volume).unwrap();
        self.cluster.mark(format!("snapshot {pv}"));
        self.cluster
            .add_object(velero_volume_snapshot(claim, BACKUP_NAME))
            .unwrap();
        Ok(())
    }

    /// Execute(persistentvolume) of `volume`; it must come back unchanged.
    async fn execute_volume(&mut self, volume: &Value) -> Result<(), tonic::Status> {
        let item = serde_json::to_vec(volume).unwrap();
        let answer = self
            .bia
            .execute(execute_request(item.clone()))
            .await?
            .into_inner();
        assert_eq!(answer.item, item, "the PV goes back unchanged");
        Ok(())
    }

    /// Execute(persistentvolume `pv`, bound to `claim` in [`NAMESPACE`]) in the claim's chain,
    /// then the snapshot Velero cuts after it: the marker `snapshot PV` on the timeline. When
    /// the plugin refuses the volume, Velero takes no snapshot and the chain fails: the error.
    pub async fn volume(&mut self, pv: &str, claim: &str) -> Result<(), tonic::Status> {
        self.execute_volume(&persistent_volume(pv, NAMESPACE, claim))
            .await?;
        self.cluster.mark(format!("snapshot {pv}"));
        Ok(())
    }

    /// Execute(pod), after its additional items (claims and volumes) were backed up.
    pub async fn pod(&mut self, pod: &Value) -> Result<(), tonic::Status> {
        let item = serde_json::to_vec(pod).unwrap();
        let answer = self
            .bia
            .execute(execute_request(item.clone()))
            .await?
            .into_inner();
        assert_eq!(answer.item, item, "the pod goes back unchanged");
        Ok(())
    }

    /// A pod and its volumes (`(pv, claim)` pairs), the whole of Velero's order:
    /// GetRelatedItems(pod), each volume and its snapshot, Execute(pod) — or, as in Velero,
    /// the first volume's error, after which the pod's chain goes no further.
    pub async fn back_up(
        &mut self,
        pod: &Value,
        volumes: &[(&str, &str)],
    ) -> Result<(), tonic::Status> {
        self.related_items(pod).await;
        for (pv, claim) in volumes {
            self.volume(pv, claim).await?;
        }
        self.pod(pod).await
    }
}

/// The fake API server's timeline, read by hook verb and pod; a hook's verb is its argv[1],
/// as in the `["echo","freeze"]` hooks of the replays.
pub struct Timeline(Vec<TimelineEvent>);

impl Timeline {
    /// The timeline of these events (a snapshot of [`FakeKube::timeline`], or what
    /// [`FakeKube::wait_for_timeline`] hands its predicate).
    pub fn of(events: &[TimelineEvent]) -> Timeline {
        Timeline(events.to_vec())
    }

    /// Timeline position where `verb` (argv[1]) started on `pod`.
    pub fn started(&self, verb: &str, pod: &str) -> u64 {
        self.find(|k| matches!(k, TimelineEventKind::ExecStarted { exec, .. } if exec.pod == pod && exec.argv.get(1).map(String::as_str) == Some(verb)))
            .unwrap_or_else(|| panic!("no {verb} started on {pod}: {:#?}", self.0))
    }

    /// Timeline position where `verb` ended on `pod`.
    pub fn ended(&self, verb: &str, pod: &str) -> u64 {
        self.find(|k| matches!(k, TimelineEventKind::ExecFinished { exec, .. } if exec.pod == pod && exec.argv.get(1).map(String::as_str) == Some(verb)))
            .unwrap_or_else(|| panic!("no {verb} ended on {pod}: {:#?}", self.0))
    }

    /// Timeline position of the marker `label`.
    pub fn marker(&self, label: &str) -> u64 {
        self.find(|k| matches!(k, TimelineEventKind::Marker { label: l } if l == label))
            .unwrap_or_else(|| panic!("no marker {label}"))
    }

    /// Timeline position where the simulated snapshot controller cut a snapshot of `claim`.
    pub fn cut(&self, claim: &str) -> u64 {
        self.snapshot_step(claim, |step| *step == SnapshotStep::Cut)
            .unwrap_or_else(|| panic!("no snapshot of {claim} cut: {:#?}", self.0))
    }

    /// Position of the first snapshot event of `claim` whose step `matches`.
    pub fn snapshot_step(
        &self,
        claim: &str,
        matches: impl Fn(&SnapshotStep) -> bool,
    ) -> Option<u64> {
        self.find(|k| matches!(k, TimelineEventKind::Snapshot { snapshot, step } if snapshot.claims.iter().any(|c| c == claim) && matches(step)))
    }

    /// How many execs of `verb` on `pod` have finished.
    pub fn finished(&self, verb: &str, pod: &str) -> usize {
        self.0
            .iter()
            .filter(|e| matches!(&e.kind, TimelineEventKind::ExecFinished { exec, .. } if exec.pod == pod && exec.argv.get(1).map(String::as_str) == Some(verb)))
            .count()
    }

    /// Position of the first event whose kind matches.
    fn find(&self, predicate: impl Fn(&TimelineEventKind) -> bool) -> Option<u64> {
        self.0.iter().find(|e| predicate(&e.kind)).map(|e| e.seq)
    }

    /// `pod`'s freeze ends before the marker `snapshot`, its thaw starts after it.
    pub fn assert_frozen_around(&self, pod: &str, snapshot: &str) {
        let snapshot = self.marker(snapshot);
        assert!(
            self.ended("freeze", pod) < snapshot,
            "{pod}: freeze must end before {snapshot}"
        );
        assert!(
            self.started("thaw", pod) > snapshot,
            "{pod}: thaw must start after {snapshot}"
        );
    }
}

/// A [`shop_pod`] whose hooks `echo freeze` and `echo thaw` in container `app`, with a volume
/// for each of `claims`: [`Timeline`] reads hooks by their verb.
pub fn hooked_pod(name: &str, claims: &[&str]) -> PodBuilder {
    shop_pod(name)
        .annotation(
            "pre.hook.backup.quiesce.dev/command",
            r#"["echo","freeze"]"#,
        )
        .annotation("post.hook.backup.quiesce.dev/command", r#"["echo","thaw"]"#)
        .claims(claims)
}

/// A running pod of [`NAMESPACE`] as the replays use it: uid `uid-NAME`, one container
/// `app` (image `app:1`); add hooks, claims and labels to it.
pub fn shop_pod(name: &str) -> PodBuilder {
    pod(NAMESPACE, name)
        .uid(format!("uid-{name}"))
        .container(container("app").image("app:1"))
}

/// The PodVolumeBackup `nightly-1-SUFFIX` of [`super::backup_json`]'s backup, for volume
/// `data` of pod `NAMESPACE/POD` (uid `uid-POD`, as [`shop_pod`] gives it), in `phase`.
pub fn pod_volume_backup(suffix: &str, pod: &str, phase: &str) -> Value {
    json!({
        "apiVersion": "velero.io/v1", "kind": "PodVolumeBackup",
        "metadata": {"name": format!("nightly-1-{suffix}"), "namespace": "velero",
                     "labels": {"velero.io/backup-uid": "b-uid", "velero.io/backup-name": "nightly-1"}},
        "spec": {"pod": {"kind": "Pod", "namespace": NAMESPACE, "name": pod,
                         "uid": format!("uid-{pod}")}, "volume": "data"},
        "status": {"phase": phase}
    })
}
