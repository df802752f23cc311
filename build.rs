//! Generates the gRPC types and stubs from `proto/` with a vendored protoc (no system protoc).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC from the environment.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let well_known = protoc_bin_vendored::include_path()?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos(
            &[
                "proto/velero/Shared.proto",
                "proto/velero/PluginLister.proto",
                "proto/velero/BackupItemAction.proto",
                "proto/velero/backupitemaction/v2/BackupItemAction.proto",
                "proto/velero/itemblockaction/v1/ItemBlockAction.proto",
                "proto/goplugin/plugin.proto",
            ]
            .map(PathBuf::from),
            &[
                PathBuf::from("proto/velero"),
                PathBuf::from("proto/goplugin"),
                well_known,
            ],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
