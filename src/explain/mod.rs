//! `velero-plugin-quiesce explain`: a dry run that shows, per pod and phase, which hooks
//! quiesce would run — container, argv, on-error, timeout, source, order and the moment of
//! the freeze and the thaw — and every validation problem, without executing anything.
//!
//! Layout: the pure core in `report.rs` ([`explain`]: pods + configuration + backup scope →
//! [`Report`]), with `report/view.rs` for the report's serialized types (the JSON shape below)
//! and `report/workload.rs` for what spans pods (which pod runs a run-once hook, consistency
//! groups); `render.rs` turns a report into the text listing or JSON; the edges are `cli.rs`
//! (arguments) and `input.rs` (YAML files, or list calls on a cluster).
//!
//! Must not touch: exec. This module builds no executor and sends no exec request; against
//! a cluster it only lists pods, ConfigMaps, claims and volumes.
//!
//! Exit codes: [`EXIT_CLEAN`] when nothing is wrong, [`EXIT_PROBLEMS`] when the report has
//! problems (notices do not count), [`EXIT_USAGE`] for bad flags, unreadable input or an
//! unreachable cluster (message on stderr).
//!
//! # JSON shape (`-o json`, `schemaVersion` 1)
//! ```text
//! { schemaVersion, configMap: "ns/name"|null, rules,
//!   backup: { name|null, includedNamespaces[], excludedNamespaces[], labelSelectors[],
//!             defaultVolumesToFsBackup },
//!   pods: [ { namespace, name, skipped: string|null, maxFreeze, claims[], fsBackupVolumes[],
//!             group: string|null,
//!             phases: { pre: { moment|null, hooks[] }, post: { moment|null, hooks[] } },
//!             problems[], notices[] } ],
//!   groups: [ { namespace, name, members[], pre, post } ],
//!   volumeGroups: [ { namespace, name, labelKey, claims[], pods[] } ],
//!   problems[], notices[],
//!   summary: { pods, podsWithHooks, podsNotListed, hooks, problems, notices } }
//! hook:    { order, source, name, index, container,
//!            command[] (as written), renderedCommand[]|null (variables substituted),
//!            hookCommand (what runs), onError, timeout,
//!            execution: null | { wait: { for: running|ready, timeout }|null, retries,
//!                                 retryBackoff, retryDelays[], retryOnExitCodes[],
//!                                 killOnTimeout, stdin?, renderedStdin?,
//!                                 holdUntilOutput? },
//!            runOnce: null | { owner|null, runOn|null, runsHere, runner|null, reason },
//!            defect|null, reached, endsSession? }
//! finding: { kind, severity: error|warning|info, location|null, message }
//! ```
//! Keys marked `?` appear only when set: `stdin` (the text written to the command, as
//! written), `renderedStdin` (with its template variables substituted, when it uses any),
//! `holdUntilOutput` (a pre hook holding a session until the thaw), `endsSession: "pre[N]"` (a
//! post hook that ends that session instead of running a command).
//! A hook with `runOnce.runsHere: false` is skipped in that pod (another pod of its owner
//! runs it); `summary.hooks` and `podsWithHooks` count only hooks a pod runs itself.
//! Without `--backup-file`, `{{backup.name}}` renders as `<backup.name>` (with a notice).
//!
//! Problem kinds ([`FindingKind`]): `hook-defect` (an unknown template variable in an annotation command
//! included), `annotation`, `policy` (an annotation hook refused by the ConfigMap's
//! `governance`), `max-freeze`, `double-quiesce`, `config`, `config-map`, `backup`. Notice
//! kinds: `skipped`, `velero-hooks`, `pulled-in`, `late-freeze`, `no-config-map`,
//! `backup-spec-hooks`, `ignored-object`, `claims-unknown`, `template-value-unknown`,
//! `single-member-group`, `run-once-ignored`, `fs-backup-freeze`.

mod cli;
mod input;
mod render;
mod report;

use std::ffi::OsString;
use std::io::Write;

pub use cli::{parse_args, parse_selector, Command, Options, Output, Source, USAGE};
pub use input::{backup_scope, backup_scope_from_value, read_cluster, read_files};
pub use render::{render_json, render_text};
pub use report::{
    explain, BackupScope, BackupView, ExecutionView, Finding, FindingKind, FindingSeverity,
    GroupReport, HookReport, Inputs, PhaseReport, Phases, PluginConfig, PodReport, Report,
    RunOnceView, Summary, VolumeGroupReport, WaitView, SCHEMA_VERSION, VELERO_HOOK_PREFIXES,
};

/// Exit code: nothing wrong.
pub const EXIT_CLEAN: u8 = 0;
/// Exit code: the report has problems.
pub const EXIT_PROBLEMS: u8 = 1;
/// Exit code: usage error, unreadable input, unreachable cluster.
pub const EXIT_USAGE: u8 = 2;

/// Why `explain` could not produce a report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    /// The command line is wrong.
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or parsed.
    #[error("{path}: {reason}")]
    Input {
        /// The file as given (`-` for stdin).
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The cluster could not be reached or refused a read.
    #[error("{0}")]
    Cluster(String),
}

/// The binary's entry point for `velero-plugin-quiesce explain ARGS…` (`args` without the
/// program name and `explain`): writes to stdout/stderr, returns the exit code. Starts a
/// runtime only to read a cluster.
pub fn main(args: impl IntoIterator<Item = OsString>, default_namespace: String) -> u8 {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let (mut out, mut err) = (stdout.lock(), stderr.lock());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = writeln!(
                err,
                "velero-plugin-quiesce explain: cannot start the async runtime: {error}"
            );
            return EXIT_USAGE;
        }
    };
    runtime.block_on(run(args, default_namespace, &mut out, &mut err))
}

/// Runs `explain` with the arguments after `explain`; `default_namespace` stands for
/// `$VELERO_NAMESPACE` or `velero`. The report goes to `out`, errors to `err`.
pub async fn run(
    args: impl IntoIterator<Item = OsString>,
    default_namespace: String,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let options = match parse_args(args, default_namespace) {
        Ok(Command::Help) => {
            let _ = out.write_all(USAGE.as_bytes());
            return EXIT_CLEAN;
        }
        Ok(Command::Explain(options)) => options,
        Err(error) => {
            let _ = writeln!(err, "velero-plugin-quiesce explain: {error}\n\n{USAGE}");
            return EXIT_USAGE;
        }
    };
    match report_for(&options).await {
        Ok(report) => {
            let text = match options.output {
                Output::Text => render_text(&report),
                Output::Json => render_json(&report),
            };
            if let Err(error) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                let _ = writeln!(
                    err,
                    "velero-plugin-quiesce explain: cannot write the report: {error}"
                );
                return EXIT_USAGE;
            }
            if report.has_problems() {
                EXIT_PROBLEMS
            } else {
                EXIT_CLEAN
            }
        }
        Err(error) => {
            let _ = writeln!(err, "velero-plugin-quiesce explain: {error}");
            EXIT_USAGE
        }
    }
}

/// Reads the inputs `options` name and explains them.
pub async fn report_for(options: &Options) -> Result<Report, ExplainError> {
    let backup = backup_scope(options)?;
    let inputs = match &options.source {
        Source::Files(paths) => read_files(paths, &options.velero_namespace)?,
        Source::Cluster(kubeconfig) => {
            read_cluster(kubeconfig, &options.velero_namespace, &backup).await?
        }
    };
    Ok(explain(&inputs, &backup))
}
