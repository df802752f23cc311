//! Velero's plugin protocol on top of [`crate::goplugin`]: the handshake values, the plugin
//! list, quiesce's BackupItemAction v2 and ItemBlockAction services, errors as gRPC status,
//! and Velero's log format (spec §1, §6–§13).

pub mod actions;
pub mod error;
pub mod item;
pub mod log;
pub mod plugins;
pub mod settings;

use std::sync::Arc;

use tonic::service::Routes;

use crate::engine::{Engine, Options};
use crate::goplugin::{self, Handshake, PrivateSocket};
use crate::kube_api::Kube;
use crate::proto::generated::plugin_lister_server::PluginListerServer;
use crate::proto::v1::item_block_action_server::ItemBlockActionServer;
use crate::proto::v2::backup_item_action_server::BackupItemActionServer;
use plugins::{PluginKind, Plugins, Registration};
pub use settings::Settings;

/// The one plugin name quiesce registers, under two kinds.
pub const PLUGIN_NAME: &str = "quiesce.dev/pod-hooks";

/// Velero's go-plugin handshake (Velero `pkg/plugin/framework/handshake.go`, spec §3.1).
pub const HANDSHAKE: Handshake = Handshake {
    cookie_key: "VELERO_PLUGIN",
    cookie_value: "hello",
    app_protocol_version: 2,
};

/// Largest request or response message, each way. Velero sends up to 2 GiB; items with the
/// Backup JSON are far smaller, and this bounds what one call can make us hold.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The plugins this binary registers: the BackupItemAction v2 always, the ItemBlockAction
/// unless switched off.
pub fn plugins(item_block_action: bool) -> Plugins {
    let mut registrations = vec![Registration {
        kind: PluginKind::BackupItemActionV2,
        name: PLUGIN_NAME,
    }];
    if item_block_action {
        registrations.push(Registration {
            kind: PluginKind::ItemBlockAction,
            name: PLUGIN_NAME,
        });
    }
    Plugins::new(registrations)
}

/// The gRPC routes of Velero's services for `plugins`, reporting `command` in `ListPlugins`
/// and handing items to `engine`.
pub fn routes(command: String, plugins: Plugins, engine: Engine) -> Routes {
    let lister = PluginListerServer::new(plugins::Lister {
        command,
        plugins: plugins.clone(),
    });
    let backup_action = BackupItemActionServer::new(actions::PodHooksBackupAction {
        plugins: plugins.clone(),
        engine: engine.clone(),
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let item_block_action =
        ItemBlockActionServer::new(actions::PodHooksItemBlockAction { plugins, engine })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
    Routes::new(lister)
        .add_service(backup_action)
        .add_service(item_block_action)
}

/// Runs the plugin as Velero launched it, until Velero stops it. The cookie was checked.
pub async fn serve(settings: Settings) -> Result<(), goplugin::Error> {
    let args = &settings.args;
    let level = args
        .log_level
        .as_deref()
        .map(|l| (l, log::level_from_flag(l)));
    log::init(match level {
        Some((_, Some(filter))) => filter,
        _ => tracing_subscriber::filter::LevelFilter::INFO,
    });
    if let Some((given, None)) = level {
        tracing::warn!(logLevel = given, "Unknown --log-level, using info");
    }
    tracing::debug!(features = %args.features.join(","), "Starting velero-plugin-quiesce");
    // The client is built on first use, after the handshake: start-up never waits for the
    // API server, and discovery (which only lists plugins) never touches it.
    let kube = Arc::new(Kube::new(settings.client_source()));
    let engine = Engine::new(
        kube.clone(),
        kube,
        Options {
            discover_pods_of_volumes: !settings.item_block_action,
            velero_namespace: settings.velero_namespace.clone(),
            fs_backup_timeout: settings.fs_backup_timeout,
            thaw_at_cut: settings.thaw_at_cut,
            ..Options::default()
        },
    );
    let routes = routes(
        args.command.clone(),
        plugins(settings.item_block_action),
        engine.clone(),
    );
    let drain = async move { engine.drain().await };
    let listener = PrivateSocket::bind_in(&settings.socket_dir)?;
    let shutdown = goplugin::sigterm()?;
    goplugin::serve(
        &HANDSHAKE,
        listener,
        routes,
        drain,
        shutdown,
        goplugin::ProcessStdout,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_item_block_action_is_listed_unless_switched_off() {
        let kinds = |p: Plugins| p.registrations().iter().map(|r| r.kind).collect::<Vec<_>>();
        assert_eq!(
            kinds(plugins(true)),
            [PluginKind::BackupItemActionV2, PluginKind::ItemBlockAction]
        );
        assert_eq!(kinds(plugins(false)), [PluginKind::BackupItemActionV2]);
    }
}
