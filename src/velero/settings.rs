//! [`Settings`]: everything the plugin takes from its command line and its environment, read
//! once in `main.rs` — the only place the process environment is read. The rest of the crate
//! gets values, never `std::env`.
//!
//! | source | setting |
//! |---|---|
//! | `velero server`'s flags, forwarded ([`PluginArgs`]) | `--log-level`, `--features`, `--kubeconfig`, `--kubecontext`, `--fs-backup-timeout` |
//! | `VELERO_PLUGIN` (go-plugin's magic cookie) | [`Settings::cookie`] |
//! | `VELERO_NAMESPACE` (set on Velero's deployment) | [`Settings::velero_namespace`] |
//! | `QUIESCE_ITEM_BLOCK_ACTION` | [`Settings::item_block_action`] |
//! | `PLUGIN_UNIX_SOCKET_DIR`, else `TMPDIR`, else `/tmp` | [`Settings::socket_dir`] |
//! | `QUIESCE_THAW_AT_CUT` | [`Settings::thaw_at_cut`] |

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::args::PluginArgs;
use crate::engine::plan::DEFAULT_FS_BACKUP_TIMEOUT;
use crate::hooks::parse_go_duration;
use crate::kube_api::{ClientSource, DEFAULT_VELERO_NAMESPACE};

use super::HANDSHAKE;

/// The environment variable Velero sets to its namespace in its deployment.
pub const VELERO_NAMESPACE_ENV: &str = "VELERO_NAMESPACE";

/// Environment switch for Velero before 1.15, which refuses to start when a plugin lists the
/// ItemBlockAction kind: `QUIESCE_ITEM_BLOCK_ACTION=false` on the Velero deployment.
pub const ITEM_BLOCK_ACTION_ENV: &str = "QUIESCE_ITEM_BLOCK_ACTION";

/// Switch for the thaw at the cut: `QUIESCE_THAW_AT_CUT=false` thaws every pod at its own
/// item (or its PodVolumeBackups) as before.
pub const THAW_AT_CUT_ENV: &str = "QUIESCE_THAW_AT_CUT";

/// go-plugin's variable for the directory of the plugin's socket.
pub const SOCKET_DIR_ENV: &str = "PLUGIN_UNIX_SOCKET_DIR";

/// What the plugin was started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The command line Velero forwarded.
    pub args: PluginArgs,
    /// The value of go-plugin's cookie variable ([`HANDSHAKE`]'s `cookie_key`), if set.
    pub cookie: Option<String>,
    /// Velero's namespace: where the plugin ConfigMap lives.
    pub velero_namespace: String,
    /// Whether to register the ItemBlockAction (Velero 1.15+).
    pub item_block_action: bool,
    /// Where the private socket directory is created.
    pub socket_dir: PathBuf,
    /// Velero's `--fs-backup-timeout` (4h unless given): the default max-freeze of a pod with
    /// file-system-backup volumes.
    pub fs_backup_timeout: Duration,
    /// Whether a pod thaws as soon as its CSI snapshots are cut (on unless switched off).
    pub thaw_at_cut: bool,
}

impl Settings {
    /// Settings from `args` and the environment variables `env` looks up.
    pub fn new(args: PluginArgs, env: impl Fn(&str) -> Option<OsString>) -> Settings {
        let text = |key: &str| {
            env(key)
                .map(|value| value.to_string_lossy().into_owned())
                .filter(|value| !value.trim().is_empty())
        };
        Settings {
            cookie: env(HANDSHAKE.cookie_key).map(|v| v.to_string_lossy().into_owned()),
            velero_namespace: text(VELERO_NAMESPACE_ENV)
                .unwrap_or_else(|| DEFAULT_VELERO_NAMESPACE.to_owned()),
            item_block_action: switched_on(text(ITEM_BLOCK_ACTION_ENV).as_deref()),
            thaw_at_cut: switched_on(text(THAW_AT_CUT_ENV).as_deref()),
            socket_dir: env(SOCKET_DIR_ENV)
                .filter(|dir| !dir.is_empty())
                .or_else(|| env("TMPDIR").filter(|dir| !dir.is_empty()))
                .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from),
            // Velero refuses to start with a value it cannot parse, so one that reaches us is
            // valid; should it not be, Velero's default is what Velero would use.
            fs_backup_timeout: args
                .fs_backup_timeout
                .as_deref()
                .and_then(|value| parse_go_duration(value).ok())
                .filter(|d| !d.negative && !d.magnitude.is_zero())
                .map_or(DEFAULT_FS_BACKUP_TIMEOUT, |d| d.magnitude),
            args,
        }
    }

    /// Where the Kubernetes client's configuration comes from: Velero's `--kubeconfig` and
    /// `--kubecontext`, else `$KUBECONFIG` or `~/.kube/config`, else in-cluster — the order of
    /// Velero's own client factory.
    pub fn client_source(&self) -> ClientSource {
        ClientSource {
            kubeconfig: self.args.kubeconfig.as_ref().map(PathBuf::from),
            context: self.args.kubecontext.clone(),
        }
    }

    /// Settings from this process's command line and environment.
    pub fn from_process() -> Settings {
        Settings::new(PluginArgs::parse(std::env::args_os()), |key| {
            std::env::var_os(key)
        })
    }
}

/// Whether a switch that is on by default is on: anything but `false`, `0`, `no` or `off`.
pub fn switched_on(value: Option<&str>) -> bool {
    !matches!(
        value.map(|v| v.trim().to_ascii_lowercase()).as_deref(),
        Some("false" | "0" | "no" | "off")
    )
}

/// Velero's namespace as the environment gives it, for `explain`'s default.
pub fn velero_namespace_from_env() -> String {
    Settings::new(PluginArgs::default(), |key| std::env::var_os(key)).velero_namespace
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(env: &[(&str, &str)]) -> Settings {
        let env: HashMap<String, OsString> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Settings::new(PluginArgs::default(), |key| env.get(key).cloned())
    }

    #[test]
    fn defaults_without_environment() {
        let s = settings(&[]);
        assert_eq!(s.cookie, None);
        assert_eq!(s.velero_namespace, "velero");
        assert!(s.item_block_action);
        assert!(s.thaw_at_cut);
        assert_eq!(s.socket_dir, PathBuf::from("/tmp"));
        assert_eq!(s.fs_backup_timeout, Duration::from_secs(4 * 3600));
    }

    #[test]
    fn velero_s_fs_backup_timeout_is_taken_from_its_flags() {
        let args = PluginArgs::parse(["/p", "--fs-backup-timeout=1h30m0s"]);
        let s = Settings::new(args, |_| None);
        assert_eq!(s.fs_backup_timeout, Duration::from_secs(90 * 60));
    }

    #[test]
    fn each_variable_is_read() {
        let s = settings(&[
            ("VELERO_PLUGIN", "hello"),
            ("VELERO_NAMESPACE", "backup"),
            ("QUIESCE_ITEM_BLOCK_ACTION", "false"),
            ("TMPDIR", "/var/tmp"),
        ]);
        assert_eq!(s.cookie.as_deref(), Some("hello"));
        assert_eq!(s.velero_namespace, "backup");
        assert!(!s.item_block_action);
        assert_eq!(s.socket_dir, PathBuf::from("/var/tmp"));
        let s = settings(&[("PLUGIN_UNIX_SOCKET_DIR", "/run/p"), ("TMPDIR", "/var/tmp")]);
        assert_eq!(s.socket_dir, PathBuf::from("/run/p"));
        let s = settings(&[("VELERO_NAMESPACE", "  ")]);
        assert_eq!(s.velero_namespace, "velero");
    }

    #[test]
    fn switches_are_on_unless_switched_off() {
        assert!(switched_on(None));
        assert!(switched_on(Some("true")));
        assert!(switched_on(Some("")));
        for off in ["false", "FALSE", " 0 ", "no", "off"] {
            assert!(!switched_on(Some(off)), "{off}");
        }
        let s = settings(&[("QUIESCE_THAW_AT_CUT", "false")]);
        assert!(!s.thaw_at_cut && s.item_block_action);
    }
}
