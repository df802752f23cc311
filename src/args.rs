//! The command line Velero hands every plugin: all of `velero server`'s own flags, which a
//! plugin must accept without complaint. We pick out the few we honour and ignore the rest —
//! an unknown flag or a stray positional argument is never an error (spec §2.2).

use std::ffi::OsString;

/// What quiesce takes from its command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginArgs {
    /// argv[0], verbatim: Velero stores what `ListPlugins` reports here and execs it later.
    pub command: String,
    /// `--log-level` as given (`trace`, `debug`, `info`, `warning`, `error`, `fatal`, `panic`).
    pub log_level: Option<String>,
    /// `--features`, split on commas (e.g. `EnableCSI`).
    pub features: Vec<String>,
    /// `--kubeconfig`: the kubeconfig Velero itself uses (its built-in plugins honour it too).
    pub kubeconfig: Option<String>,
    /// `--kubecontext`: the kubeconfig context Velero uses instead of the current one.
    pub kubecontext: Option<String>,
    /// `--fs-backup-timeout` as given (a Go duration), when Velero was started with it.
    pub fs_backup_timeout: Option<String>,
}

impl PluginArgs {
    /// Parses leniently: `--x=v` and `--x v` forms of the flags we know, everything else skipped.
    pub fn parse<I, T>(args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let mut args = args
            .into_iter()
            .map(|a| a.into().to_string_lossy().into_owned());
        let mut parsed = PluginArgs {
            command: args.next().unwrap_or_default(),
            ..PluginArgs::default()
        };
        while let Some(arg) = args.next() {
            let Some((flag, inline)) = split_flag(&arg) else {
                continue;
            };
            if !matches!(
                flag,
                "log-level" | "features" | "kubeconfig" | "kubecontext" | "fs-backup-timeout"
            ) {
                continue;
            }
            let Some(value) = inline.or_else(|| args.next()) else {
                break;
            };
            match flag {
                "log-level" => parsed.log_level = Some(value),
                "kubeconfig" => parsed.kubeconfig = Some(value).filter(|v| !v.is_empty()),
                "kubecontext" => parsed.kubecontext = Some(value).filter(|v| !v.is_empty()),
                "fs-backup-timeout" => parsed.fs_backup_timeout = Some(value),
                _ => {
                    parsed.features = value
                        .split(',')
                        .map(str::trim)
                        .filter(|f| !f.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
            }
        }
        parsed
    }
}

/// `--name=value` → (`name`, Some(`value`)); `--name` → (`name`, None); anything else → None.
/// A single dash is accepted too, as Go's `flag` package does.
fn split_flag(arg: &str) -> Option<(&str, Option<String>)> {
    let body = arg
        .strip_prefix("--")
        .or_else(|| arg.strip_prefix('-'))
        .filter(|b| !b.is_empty() && !b.starts_with('-'))?;
    Some(match body.split_once('=') {
        Some((name, value)) => (name, Some(value.to_owned())),
        None => (body, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> PluginArgs {
        PluginArgs::parse(args.iter().copied())
    }

    #[test]
    fn command_is_argv0_verbatim() {
        assert_eq!(
            parse(&["/plugins/velero-plugin-quiesce"]).command,
            "/plugins/velero-plugin-quiesce"
        );
        assert_eq!(parse(&["./rel/path"]).command, "./rel/path");
    }

    #[test]
    fn log_level_in_both_forms() {
        assert_eq!(
            parse(&["p", "--log-level=debug"]).log_level.as_deref(),
            Some("debug")
        );
        assert_eq!(
            parse(&["p", "--log-level", "trace"]).log_level.as_deref(),
            Some("trace")
        );
        assert_eq!(
            parse(&["p", "-log-level", "error"]).log_level.as_deref(),
            Some("error")
        );
    }

    #[test]
    fn features_in_both_forms() {
        assert_eq!(
            parse(&["p", "--features=EnableCSI,EnableAPIGroupVersions"]).features,
            ["EnableCSI", "EnableAPIGroupVersions"]
        );
        assert_eq!(
            parse(&["p", "--features", "EnableCSI"]).features,
            ["EnableCSI"]
        );
        assert!(parse(&["p", "--features="]).features.is_empty());
    }

    #[test]
    fn kubeconfig_and_context_as_velero_forwards_them() {
        let args = parse(&[
            "/plugins/p",
            "--kubeconfig=/etc/velero/kubeconfig",
            "--namespace",
            "velero",
            "--kubecontext",
            "backup",
        ]);
        assert_eq!(args.kubeconfig.as_deref(), Some("/etc/velero/kubeconfig"));
        assert_eq!(args.kubecontext.as_deref(), Some("backup"));
        // An empty value is Velero's default: not set.
        assert_eq!(parse(&["/p", "--kubeconfig="]).kubeconfig, None);
    }

    #[test]
    fn fs_backup_timeout_in_both_forms() {
        let args = parse(&["/p", "--fs-backup-timeout", "2h0m0s"]);
        assert_eq!(args.fs_backup_timeout.as_deref(), Some("2h0m0s"));
        let args = parse(&["/p", "--fs-backup-timeout=30m"]);
        assert_eq!(args.fs_backup_timeout.as_deref(), Some("30m"));
    }

    #[test]
    fn unknown_flags_and_positionals_are_ignored() {
        let args = parse(&[
            "p",
            "server",
            "--uploader-type=kopia",
            "--default-volumes-to-fs-backup",
            "--log-format",
            "json",
            "-x",
            "---weird",
            "--",
            "--log-level=warning",
            "stray",
        ]);
        assert_eq!(args.log_level.as_deref(), Some("warning"));
        assert!(args.features.is_empty());
    }

    #[test]
    fn last_occurrence_wins() {
        assert_eq!(
            parse(&["p", "--log-level=info", "--log-level", "debug"])
                .log_level
                .as_deref(),
            Some("debug")
        );
    }

    #[test]
    fn a_flag_missing_its_value_is_not_an_error() {
        assert_eq!(parse(&["p", "--log-level"]).log_level, None);
        assert_eq!(parse(&[]), PluginArgs::default());
    }
}
