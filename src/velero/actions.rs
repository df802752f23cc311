//! quiesce's actions as Velero calls them: `v2.BackupItemAction` on pods and persistent
//! volumes, `v1.ItemBlockAction` on pods and claims, each handing the item to the freeze/thaw
//! [`Engine`]. Every item goes back to Velero byte-for-byte unchanged, with no additional
//! items: quiesce only acts beside the backup, never on it.

use tonic::{Request, Response, Status};

use super::error::Error;
use super::item::{backup_name, ItemIdentity};
use super::plugins::{PluginKind, Plugins};
use crate::engine::Engine;
use crate::proto::generated::{OperationProgress, ResourceSelector};
use crate::proto::v1::{
    item_block_action_server::ItemBlockAction, ItemBlockActionAppliesToRequest,
    ItemBlockActionAppliesToResponse, ItemBlockActionGetRelatedItemsRequest,
    ItemBlockActionGetRelatedItemsResponse,
};
use crate::proto::v2::{
    backup_item_action_server::BackupItemAction, BackupItemActionAppliesToRequest,
    BackupItemActionAppliesToResponse, BackupItemActionCancelRequest,
    BackupItemActionProgressRequest, BackupItemActionProgressResponse, ExecuteRequest,
    ExecuteResponse,
};

/// Go's zero `time.Time` as a protobuf Timestamp: "not started", as a Go plugin would send it.
const GO_ZERO_TIME: prost_types::Timestamp = prost_types::Timestamp {
    seconds: -62_135_596_800,
    nanos: 0,
};

fn selector(resources: &[&str]) -> Option<ResourceSelector> {
    Some(ResourceSelector {
        included_resources: resources.iter().map(|r| (*r).to_owned()).collect(),
        ..ResourceSelector::default()
    })
}

/// `quiesce.dev/pod-hooks` as a BackupItemAction v2: on a persistent volume, freezes the
/// pods mounting it before Velero snapshots it; on a pod, thaws it once its volumes are
/// snapshotted (freezing first if no volume did).
pub struct PodHooksBackupAction {
    /// What this process serves, to check the plugin name of each call.
    pub plugins: Plugins,
    /// Where items go.
    pub engine: Engine,
}

impl PodHooksBackupAction {
    /// Routes the item to the engine; `?` here records where an error was raised.
    async fn execute_item(&self, request: &ExecuteRequest) -> Result<(), Error> {
        self.plugins
            .check(PluginKind::BackupItemActionV2, &request.plugin)?;
        let item = ItemIdentity::from_json(&request.item)?;
        tracing::debug!(
            kind = %item.kind,
            item = %item.qualified_name(),
            backup = %backup_name(&request.backup),
            "Executing quiesce.dev/pod-hooks"
        );
        match item.kind.as_str() {
            "PersistentVolume" => {
                self.engine
                    .freeze_pods_of_volume(&request.item, &request.backup)
                    .await?
            }
            "Pod" => {
                self.engine
                    .back_up_pod(&request.item, &request.backup)
                    .await?
            }
            _ => {}
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl BackupItemAction for PodHooksBackupAction {
    async fn applies_to(
        &self,
        request: Request<BackupItemActionAppliesToRequest>,
    ) -> Result<Response<BackupItemActionAppliesToResponse>, Status> {
        self.plugins
            .check(PluginKind::BackupItemActionV2, &request.get_ref().plugin)?;
        Ok(Response::new(BackupItemActionAppliesToResponse {
            resource_selector: selector(&["pods", "persistentvolumes"]),
        }))
    }

    async fn execute(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<ExecuteResponse>, Status> {
        let request = request.into_inner();
        self.execute_item(&request).await?;
        Ok(Response::new(ExecuteResponse {
            item: request.item,
            ..ExecuteResponse::default()
        }))
    }

    async fn progress(
        &self,
        request: Request<BackupItemActionProgressRequest>,
    ) -> Result<Response<BackupItemActionProgressResponse>, Status> {
        let request = request.into_inner();
        self.plugins
            .check(PluginKind::BackupItemActionV2, &request.plugin)?;
        // quiesce never returns an operation ID, so Velero has nothing to poll. Should it ask
        // anyway, end that operation at once rather than leave it waiting for its timeout.
        Ok(Response::new(BackupItemActionProgressResponse {
            progress: Some(OperationProgress {
                completed: true,
                err: format!(
                    "quiesce.dev/pod-hooks starts no asynchronous operations; unknown operation ID {:?}",
                    request.operation_id
                ),
                started: Some(GO_ZERO_TIME),
                updated: Some(GO_ZERO_TIME),
                ..OperationProgress::default()
            }),
        }))
    }

    async fn cancel(
        &self,
        request: Request<BackupItemActionCancelRequest>,
    ) -> Result<Response<()>, Status> {
        self.plugins
            .check(PluginKind::BackupItemActionV2, &request.get_ref().plugin)?;
        Ok(Response::new(()))
    }
}

/// `quiesce.dev/pod-hooks` as an ItemBlockAction: sees every pod and claim while Velero forms
/// item blocks, before any of the block is backed up — pods for their hooks, claims for their
/// volume group (Velero 1.17+). Adds no related items (Velero's own actions already group a
/// pod with its claims, and a group's claims and pods into one block).
pub struct PodHooksItemBlockAction {
    /// What this process serves, to check the plugin name of each call.
    pub plugins: Plugins,
    /// Where pods are indexed.
    pub engine: Engine,
}

#[tonic::async_trait]
impl ItemBlockAction for PodHooksItemBlockAction {
    async fn applies_to(
        &self,
        request: Request<ItemBlockActionAppliesToRequest>,
    ) -> Result<Response<ItemBlockActionAppliesToResponse>, Status> {
        self.plugins
            .check(PluginKind::ItemBlockAction, &request.get_ref().plugin)?;
        Ok(Response::new(ItemBlockActionAppliesToResponse {
            resource_selector: selector(&["pods", "persistentvolumeclaims"]),
        }))
    }

    async fn get_related_items(
        &self,
        request: Request<ItemBlockActionGetRelatedItemsRequest>,
    ) -> Result<Response<ItemBlockActionGetRelatedItemsResponse>, Status> {
        self.index_item(&request.into_inner()).await?;
        Ok(Response::new(
            ItemBlockActionGetRelatedItemsResponse::default(),
        ))
    }
}

impl PodHooksItemBlockAction {
    /// Hands a pod to the engine's index; `?` here records where an error was raised.
    async fn index_item(
        &self,
        request: &ItemBlockActionGetRelatedItemsRequest,
    ) -> Result<(), Error> {
        self.plugins
            .check(PluginKind::ItemBlockAction, &request.plugin)?;
        let item = ItemIdentity::from_json(&request.item)?;
        tracing::debug!(
            kind = %item.kind,
            item = %item.qualified_name(),
            backup = %backup_name(&request.backup),
            "Indexing for quiesce.dev/pod-hooks"
        );
        match item.kind.as_str() {
            "Pod" => {
                self.engine
                    .index_pod(&request.item, &request.backup)
                    .await?
            }
            "PersistentVolumeClaim" => {
                self.engine
                    .index_claim(&request.item, &request.backup)
                    .await
            }
            _ => {}
        }
        Ok(())
    }
}
