//! The generated protobuf types and gRPC stubs, one module per proto package so that the
//! gRPC paths (`/generated.PluginLister/ListPlugins`, `/v2.BackupItemAction/Execute`, …) match
//! Velero's and go-plugin's exactly. Nothing here is written by hand.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Velero's root package: shared messages, PluginLister, BackupItemAction v1.
pub mod generated {
    tonic::include_proto!("generated");
}

/// Velero's `v2` package: BackupItemAction v2.
pub mod v2 {
    tonic::include_proto!("v2");
}

/// Velero's `v1` package: ItemBlockAction v1.
pub mod v1 {
    tonic::include_proto!("v1");
}

/// go-plugin's `plugin` package: GRPCController, GRPCStdio, GRPCBroker.
pub mod plugin {
    tonic::include_proto!("plugin");
}
