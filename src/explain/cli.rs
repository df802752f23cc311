//! The `explain` command line: raw arguments to validated [`Options`], and `-l` selectors.
//! Strict, unlike the plugin's lenient serve-mode parsing: a human typed these.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::hooks::LabelSelector;

use super::ExplainError;

/// The synopsis printed by `--help` and on usage errors.
pub const USAGE: &str = "\
usage: velero-plugin-quiesce explain (--kubeconfig PATH | -f FILE...) [options]

Shows which hooks quiesce would run on which pod, when, and every validation problem.
Nothing is executed.

input (one of):
  --kubeconfig PATH          read pods and the plugin ConfigMap from this cluster
  -f, --filename FILE        YAML of pods (also kind: List, multi-document), the plugin
                             ConfigMap, claims and volumes; repeatable; - reads stdin
options:
  --velero-namespace NS      where the plugin ConfigMap lives [$VELERO_NAMESPACE, else velero]
  --backup-file FILE         a velero.io/v1 Backup: its namespaces, selectors, resources
  --include-namespaces A,B   backup scope without a Backup file (globs allowed)
  --exclude-namespaces A,B
  -l, --selector SELECTOR    pods' label selector: k=v, k!=v, k in (a,b), k notin (a,b), k, !k
  -o, --output text|json     output format [text]
  -h, --help

exit status: 0 nothing wrong, 1 problems found, 2 usage error or unreadable input
";

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// The human listing.
    #[default]
    Text,
    /// The JSON report.
    Json,
}

/// Where pods come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A cluster, through this kubeconfig.
    Cluster(PathBuf),
    /// YAML files (`-` for stdin).
    Files(Vec<PathBuf>),
}

/// Validated options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Cluster or files.
    pub source: Source,
    /// Velero's namespace.
    pub velero_namespace: String,
    /// `--backup-file`.
    pub backup_file: Option<PathBuf>,
    /// `--include-namespaces`.
    pub include_namespaces: Vec<String>,
    /// `--exclude-namespaces`.
    pub exclude_namespaces: Vec<String>,
    /// `-l`, as typed.
    pub selector: Option<String>,
    /// `-o`.
    pub output: Output,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Print [`USAGE`] and exit 0.
    Help,
    /// Explain.
    Explain(Options),
}

/// Parses the arguments after `explain`. `default_namespace` is `$VELERO_NAMESPACE` or
/// `velero`, passed in so that parsing reads no environment.
pub fn parse_args(
    args: impl IntoIterator<Item = OsString>,
    default_namespace: String,
) -> Result<Command, ExplainError> {
    let mut kubeconfig = None;
    let mut files = Vec::new();
    let mut velero_namespace = None;
    let mut backup_file = None;
    let mut include_namespaces = None;
    let mut exclude_namespaces = None;
    let mut selector = None;
    let mut output = None;

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = arg
            .into_string()
            .map_err(|a| usage(format!("argument {a:?} is not valid UTF-8")))?;
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, ExplainError> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args
                    .next()
                    .and_then(|v| v.into_string().ok())
                    .ok_or_else(|| usage(format!("{name} needs a value"))),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--kubeconfig" => set_once(&mut kubeconfig, "--kubeconfig", value("--kubeconfig")?)?,
            "-f" | "--filename" => files.push(PathBuf::from(value("-f")?)),
            "--velero-namespace" => set_once(
                &mut velero_namespace,
                "--velero-namespace",
                value("--velero-namespace")?,
            )?,
            "--backup-file" => {
                set_once(&mut backup_file, "--backup-file", value("--backup-file")?)?
            }
            "--include-namespaces" => set_once(
                &mut include_namespaces,
                "--include-namespaces",
                value("--include-namespaces")?,
            )?,
            "--exclude-namespaces" => set_once(
                &mut exclude_namespaces,
                "--exclude-namespaces",
                value("--exclude-namespaces")?,
            )?,
            "-l" | "--selector" => set_once(&mut selector, "-l", value("-l")?)?,
            "-o" | "--output" => set_once(&mut output, "-o", value("-o")?)?,
            other => return Err(usage(format!("unknown argument {other:?}"))),
        }
    }

    let source = match (kubeconfig, files.is_empty()) {
        (Some(_), false) => return Err(usage("give either --kubeconfig or -f, not both")),
        (Some(path), true) => Source::Cluster(PathBuf::from(path)),
        (None, false) => Source::Files(files),
        (None, true) => return Err(usage("give --kubeconfig PATH or -f FILE")),
    };
    let output = match output.as_deref() {
        None | Some("text") => Output::Text,
        Some("json") => Output::Json,
        Some(other) => return Err(usage(format!("-o {other:?}: use text or json"))),
    };
    let filters_given =
        include_namespaces.is_some() || exclude_namespaces.is_some() || selector.is_some();
    if backup_file.is_some() && filters_given {
        return Err(usage(
            "--backup-file takes its scope from the Backup; do not combine it with \
             --include-namespaces, --exclude-namespaces or -l",
        ));
    }
    if let Some(text) = &selector {
        parse_selector(text)?;
    }
    let velero_namespace = velero_namespace.unwrap_or(default_namespace);
    if velero_namespace.trim().is_empty() {
        return Err(usage("--velero-namespace must not be empty"));
    }
    Ok(Command::Explain(Options {
        source,
        velero_namespace,
        backup_file: backup_file.map(PathBuf::from),
        include_namespaces: split_list(include_namespaces),
        exclude_namespaces: split_list(exclude_namespaces),
        selector,
        output,
    }))
}

fn usage(message: impl Into<String>) -> ExplainError {
    ExplainError::Usage(message.into())
}

fn set_once(slot: &mut Option<String>, name: &str, value: String) -> Result<(), ExplainError> {
    if slot.replace(value).is_some() {
        return Err(usage(format!("{name} given twice")));
    }
    Ok(())
}

fn split_list(text: Option<String>) -> Vec<String> {
    text.iter()
        .flat_map(|t| t.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses a kubectl-style label selector (`k=v`, `k!=v`, `k in (a,b)`, `!k`, …), the same
/// syntax as `quiesce.dev/run-on`.
pub fn parse_selector(text: &str) -> Result<LabelSelector, ExplainError> {
    LabelSelector::parse(text)
        .map_err(|reason| usage(format!("invalid selector {text:?}: {reason}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn parse(args: &[&str]) -> Result<Command, ExplainError> {
        parse_args(args.iter().map(OsString::from), "velero".to_owned())
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn files_and_filters_are_read_in_both_flag_spellings() {
        let Ok(Command::Explain(options)) = parse(&[
            "-f",
            "a.yaml",
            "--filename=b.yaml",
            "--include-namespaces",
            "shop, db",
            "--exclude-namespaces=kube-*",
            "-l",
            "app=db",
            "-o",
            "json",
        ]) else {
            panic!("valid arguments");
        };
        assert_eq!(
            options.source,
            Source::Files(vec!["a.yaml".into(), "b.yaml".into()])
        );
        assert_eq!(options.include_namespaces, ["shop", "db"]);
        assert_eq!(options.exclude_namespaces, ["kube-*"]);
        assert_eq!(options.selector.as_deref(), Some("app=db"));
        assert_eq!(options.output, Output::Json);
        assert_eq!(options.velero_namespace, "velero");
    }

    #[test]
    fn the_velero_namespace_flag_overrides_the_environment_default() {
        let Ok(Command::Explain(options)) =
            parse(&["--kubeconfig", "k", "--velero-namespace", "backup"])
        else {
            panic!("valid arguments");
        };
        assert_eq!(options.source, Source::Cluster("k".into()));
        assert_eq!(options.velero_namespace, "backup");
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        for (args, expected) in [
            (&["-f"][..], "-f needs a value"),
            (&["--kubeconfig", "k", "-f", "x"][..], "not both"),
            (&[][..], "give --kubeconfig PATH or -f FILE"),
            (&["-f", "x", "-o", "yaml"][..], "use text or json"),
            (&["-f", "x", "--frobnicate"][..], "unknown argument"),
            (
                &["-f", "x", "--backup-file", "b", "-l", "a=b"][..],
                "do not combine",
            ),
            (&["-f", "x", "-l", "a=b=c d"][..], "invalid selector"),
            (&["-f", "x", "-o", "json", "-o", "text"][..], "given twice"),
        ] {
            match parse(args) {
                Err(ExplainError::Usage(message)) => {
                    assert!(message.contains(expected), "{args:?}: {message}")
                }
                other => panic!("{args:?}: expected a usage error, got {other:?}"),
            }
        }
    }

    #[test]
    fn help_wins() {
        assert_eq!(parse(&["-f", "x", "--help"]).unwrap(), Command::Help);
    }

    #[test]
    fn equality_selectors_match_like_kubectl() {
        let s = parse_selector("app=db,tier==backend,env!=dev").unwrap();
        assert!(s.matches(&labels(&[("app", "db"), ("tier", "backend")])));
        assert!(!s.matches(&labels(&[
            ("app", "db"),
            ("tier", "backend"),
            ("env", "dev")
        ])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "backend")])));
    }

    #[test]
    fn set_and_existence_selectors_match_like_kubectl() {
        let s = parse_selector("app in (db, cache),env notin (dev),backup,!skip").unwrap();
        assert!(s.matches(&labels(&[("app", "cache"), ("backup", "")])));
        assert!(!s.matches(&labels(&[("app", "cache")])));
        assert!(!s.matches(&labels(&[("app", "cache"), ("backup", "y"), ("skip", "1")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("backup", "y")])));
    }

    #[test]
    fn malformed_selectors_are_usage_errors() {
        for text in ["", "a=b,", "a b", "app in db", "=x"] {
            assert!(parse_selector(text).is_err(), "{text:?}");
        }
    }
}
