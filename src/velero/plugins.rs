//! Which plugins this binary serves, under which kinds, and `generated.PluginLister`.

use tonic::{Request, Response, Status};

use super::error::{Error, ErrorKind};
use crate::proto::generated::{
    plugin_lister_server::PluginLister, Empty, ListPluginsResponse, PluginIdentifier,
};

/// Velero's plugin kinds, declared in the order Velero's Go framework lists its groups
/// (which is the order actions run in, spec §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PluginKind {
    /// `BackupItemAction` (v1).
    BackupItemAction,
    /// `BackupItemActionV2`: quiesce's action on pods and persistent volumes.
    BackupItemActionV2,
    /// `VolumeSnapshotter`.
    VolumeSnapshotter,
    /// `ObjectStore`.
    ObjectStore,
    /// `RestoreItemAction` (v1).
    RestoreItemAction,
    /// `RestoreItemActionV2`.
    RestoreItemActionV2,
    /// `DeleteItemAction`.
    DeleteItemAction,
    /// `ItemBlockAction` (Velero 1.15+): quiesce's indexing of pods.
    ItemBlockAction,
}

impl PluginKind {
    /// The exact kind string of `ListPlugins`.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::BackupItemAction => "BackupItemAction",
            PluginKind::BackupItemActionV2 => "BackupItemActionV2",
            PluginKind::VolumeSnapshotter => "VolumeSnapshotter",
            PluginKind::ObjectStore => "ObjectStore",
            PluginKind::RestoreItemAction => "RestoreItemAction",
            PluginKind::RestoreItemActionV2 => "RestoreItemActionV2",
            PluginKind::DeleteItemAction => "DeleteItemAction",
            PluginKind::ItemBlockAction => "ItemBlockAction",
        }
    }
}

/// One (kind, name) this binary answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Registration {
    /// The kind it is registered under.
    pub kind: PluginKind,
    /// The plugin's name, e.g. `quiesce.dev/pod-hooks`.
    pub name: &'static str,
}

/// The plugins of this process, in Velero's listing order.
#[derive(Debug, Clone)]
pub struct Plugins {
    registrations: Vec<Registration>,
}

impl Plugins {
    /// The set of `registrations`, sorted by kind group then name as Velero's framework does.
    pub fn new(mut registrations: Vec<Registration>) -> Self {
        registrations.sort();
        registrations.dedup();
        Plugins { registrations }
    }

    /// Every registration, in listing order.
    pub fn registrations(&self) -> &[Registration] {
        &self.registrations
    }

    /// Routes a request: `Ok` if `name` is served under `kind`, else an error naming both.
    #[track_caller]
    pub fn check(&self, kind: PluginKind, name: &str) -> Result<(), Error> {
        if self
            .registrations
            .iter()
            .any(|r| r.kind == kind && r.name == name)
        {
            return Ok(());
        }
        let served = self
            .registrations
            .iter()
            .find(|r| r.kind == kind)
            .map_or("nothing", |r| r.name);
        Err(ErrorKind::UnknownPlugin {
            kind: kind.as_str(),
            name: name.to_owned(),
            served,
        }
        .into())
    }
}

/// `generated.PluginLister`: tells Velero at start-up what this binary offers.
pub struct Lister {
    /// argv[0] verbatim: Velero execs exactly this later.
    pub command: String,
    /// What to list.
    pub plugins: Plugins,
}

#[tonic::async_trait]
impl PluginLister for Lister {
    async fn list_plugins(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<ListPluginsResponse>, Status> {
        let plugins = self
            .plugins
            .registrations()
            .iter()
            .map(|r| PluginIdentifier {
                command: self.command.clone(),
                kind: r.kind.as_str().to_owned(),
                name: r.name.to_owned(),
            })
            .collect();
        Ok(Response::new(ListPluginsResponse { plugins }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_are_listed_in_velero_group_order_then_by_name() {
        let plugins = Plugins::new(vec![
            Registration {
                kind: PluginKind::ItemBlockAction,
                name: "b.io/x",
            },
            Registration {
                kind: PluginKind::BackupItemActionV2,
                name: "b.io/z",
            },
            Registration {
                kind: PluginKind::BackupItemActionV2,
                name: "a.io/y",
            },
            Registration {
                kind: PluginKind::BackupItemAction,
                name: "c.io/w",
            },
        ]);
        let order: Vec<_> = plugins
            .registrations()
            .iter()
            .map(|r| (r.kind.as_str(), r.name))
            .collect();
        assert_eq!(
            order,
            [
                ("BackupItemAction", "c.io/w"),
                ("BackupItemActionV2", "a.io/y"),
                ("BackupItemActionV2", "b.io/z"),
                ("ItemBlockAction", "b.io/x"),
            ]
        );
    }

    #[test]
    fn a_name_is_served_only_under_its_kinds() {
        let plugins = Plugins::new(vec![Registration {
            kind: PluginKind::BackupItemActionV2,
            name: "q.dev/p",
        }]);
        assert!(plugins
            .check(PluginKind::BackupItemActionV2, "q.dev/p")
            .is_ok());
        let err = plugins
            .check(PluginKind::ItemBlockAction, "q.dev/p")
            .unwrap_err();
        assert_eq!(err.to_string(), "ItemBlockAction plugin \"q.dev/p\" was not found in velero-plugin-quiesce (it serves \"nothing\")");
        let err = plugins
            .check(PluginKind::BackupItemActionV2, "velero.io/pod")
            .unwrap_err();
        assert!(err.to_string().contains("(it serves \"q.dev/p\")"), "{err}");
    }
}
