//! Annotation hooks: the keys `pre.hook.backup.quiesce.dev/{command,container,on-error,timeout}`
//! and `post.hook.backup.quiesce.dev/{…}` (Velero's keys with the domain swapped; Velero's own
//! `*.velero.io` keys and the legacy un-prefixed keys are deliberately not read), and how
//! their values are parsed. At most one annotation hook per pod and phase.
//!
//! Held sessions: when the pre hook holds one (`pre…/hold-until-output`), the post phase ends
//! it even without a `post…/command` — `post…/stdin`, `post…/timeout` and `post…/on-error` then
//! describe the session's end, and a post `command`, if set, runs after it.
//!
//! Owns parsing of annotation values into an [`AnnotationHook`] plus warnings; container
//! resolution against the pod spec happens in `resolve.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::duration::{effective_timeout, parse_go_duration, DurationError, TimeoutAdjustment};
use super::execution::{Builder, Field};
use super::{Execution, OnError, Phase, PodRef, DEFAULT_TIMEOUT};

/// Prefix of the pre-phase annotation keys.
pub const PRE_ANNOTATION_PREFIX: &str = "pre.hook.backup.quiesce.dev/";
/// Prefix of the post-phase annotation keys.
pub const POST_ANNOTATION_PREFIX: &str = "post.hook.backup.quiesce.dev/";

const COMMAND: &str = "command";
const CONTAINER: &str = "container";
const ON_ERROR: &str = "on-error";
const TIMEOUT: &str = "timeout";
const STDIN: &str = "stdin";
const HOLD_UNTIL_OUTPUT: &str = "hold-until-output";

/// The annotation key for `field` (`command`, `container`, `on-error`, `timeout`) in `phase`,
/// e.g. `pre.hook.backup.quiesce.dev/command`.
pub fn annotation_key(phase: Phase, field: &str) -> String {
    let prefix = match phase {
        Phase::Pre => PRE_ANNOTATION_PREFIX,
        Phase::Post => POST_ANNOTATION_PREFIX,
    };
    format!("{prefix}{field}")
}

/// A `command` annotation value, parsed as Velero does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedCommand {
    /// The value is empty: the pod has no annotation hook for the phase.
    Absent,
    /// The value's first character is `[` and it decodes as a JSON array of strings.
    JsonArray(Vec<String>),
    /// Anything else: the whole value is a single argv element (no whitespace splitting,
    /// no shell). `json_error` is set when the value started with `[` but did not decode
    /// (malformed JSON, non-string elements, trailing text).
    Single {
        /// The whole value, used verbatim as argv[0].
        argv0: String,
        /// Why the JSON decoding failed, if it was attempted.
        json_error: Option<String>,
    },
}

impl ParsedCommand {
    /// argv, or `None` for [`ParsedCommand::Absent`].
    pub fn argv(&self) -> Option<Vec<String>> {
        match self {
            ParsedCommand::Absent => None,
            ParsedCommand::JsonArray(argv) => Some(argv.clone()),
            ParsedCommand::Single { argv0, .. } => Some(vec![argv0.clone()]),
        }
    }
}

/// Parses a `command` annotation value. Only a value whose very first character is `[` is
/// tried as JSON (Velero does not trim: `" [\"a\"]"` is a single argv element).
pub fn parse_command(value: &str) -> ParsedCommand {
    if value.is_empty() {
        return ParsedCommand::Absent;
    }
    if !value.starts_with('[') {
        return ParsedCommand::Single {
            argv0: value.to_owned(),
            json_error: None,
        };
    }
    // Go's json.Unmarshal leaves a `null` element as "" in a []string; do the same.
    match serde_json::from_str::<Vec<Option<String>>>(value) {
        Ok(argv) => {
            ParsedCommand::JsonArray(argv.into_iter().map(Option::unwrap_or_default).collect())
        }
        Err(error) => ParsedCommand::Single {
            argv0: value.to_owned(),
            json_error: Some(error.to_string()),
        },
    }
}

/// Something odd in a pod's hook annotations. The hook still resolves (with a default or a
/// literal reading); the caller logs these as warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnnotationWarning {
    /// `command` starts with `[` but is not a JSON array of strings.
    CommandNotJsonArray {
        /// The pod.
        pod: PodRef,
        /// The annotation key.
        key: String,
        /// The annotation value.
        value: String,
        /// The JSON decoding error.
        reason: String,
    },
    /// `command` has whitespace before its `[`, so it is not read as JSON.
    CommandLeadingWhitespace {
        /// The pod.
        pod: PodRef,
        /// The annotation key.
        key: String,
        /// The annotation value.
        value: String,
    },
    /// `on-error` is not exactly `Fail` or `Continue`.
    InvalidOnError {
        /// The pod.
        pod: PodRef,
        /// The annotation key.
        key: String,
        /// The annotation value.
        value: String,
    },
    /// `timeout` is not a Go duration (bare numbers such as `300` included).
    InvalidTimeout {
        /// The pod.
        pod: PodRef,
        /// The annotation key.
        key: String,
        /// The annotation value.
        value: String,
        /// The parse error.
        error: DurationError,
    },
    /// `timeout` is negative.
    NegativeTimeout {
        /// The pod.
        pod: PodRef,
        /// The annotation key.
        key: String,
        /// The annotation value.
        value: String,
    },
    /// `timeout` exceeds the 4h maximum.
    TimeoutClamped {
        /// The pod.
        pod: PodRef,
        /// The annotation key.
        key: String,
        /// The annotation value.
        value: String,
    },
    /// An execution option (`retries`, `wait-timeout`, …) has an unusable value; it is ignored.
    InvalidOption {
        /// The pod.
        pod: PodRef,
        /// The annotation key.
        key: String,
        /// The annotation value.
        value: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// An execution option was adjusted (clamped) or has no effect as set.
    OptionNote {
        /// The pod.
        pod: PodRef,
        /// The annotation key.
        key: String,
        /// What was adjusted, or why it has no effect.
        note: String,
    },
    /// `container`, `on-error` or `timeout` is set for a phase without a `command`.
    IgnoredWithoutCommand {
        /// The pod.
        pod: PodRef,
        /// The ignored annotation key.
        key: String,
        /// The missing command key of the same phase.
        command_key: String,
    },
}

impl AnnotationWarning {
    /// The pod whose annotations it is about.
    pub fn pod(&self) -> &PodRef {
        self.pod_and_key().0
    }

    /// The annotation key it is about.
    pub fn key(&self) -> &str {
        self.pod_and_key().1
    }

    fn pod_and_key(&self) -> (&PodRef, &str) {
        match self {
            AnnotationWarning::CommandNotJsonArray { pod, key, .. }
            | AnnotationWarning::CommandLeadingWhitespace { pod, key, .. }
            | AnnotationWarning::InvalidOnError { pod, key, .. }
            | AnnotationWarning::InvalidTimeout { pod, key, .. }
            | AnnotationWarning::NegativeTimeout { pod, key, .. }
            | AnnotationWarning::TimeoutClamped { pod, key, .. }
            | AnnotationWarning::InvalidOption { pod, key, .. }
            | AnnotationWarning::OptionNote { pod, key, .. }
            | AnnotationWarning::IgnoredWithoutCommand { pod, key, .. } => (pod, key),
        }
    }

    /// What is odd, without the `pod namespace/name: ` that `Display` starts with: for
    /// callers that show the pod apart, such as `explain`.
    pub fn without_pod(&self) -> String {
        match self {
            AnnotationWarning::CommandNotJsonArray {
                key, value, reason, ..
            } => format!(
                "annotation {key} = {value:?} starts with '[' but is not a JSON array of \
                 strings ({reason}); it will run as a single-element command, which is likely \
                 to fail"
            ),
            AnnotationWarning::CommandLeadingWhitespace { key, value, .. } => format!(
                "annotation {key} = {value:?} has whitespace before '['; only a value whose \
                 first character is '[' is read as a JSON array, so it will run as a \
                 single-element command"
            ),
            AnnotationWarning::InvalidOnError { key, value, .. } => format!(
                "annotation {key} = {value:?} is not Fail or Continue (case-sensitive); using Fail"
            ),
            AnnotationWarning::InvalidTimeout {
                key, value, error, ..
            } => format!(
                "annotation {key} = {value:?} is not a duration with a unit such as 30s, 5m \
                 or 1h30m ({error}); using the default 30s"
            ),
            AnnotationWarning::NegativeTimeout { key, value, .. } => {
                format!("annotation {key} = {value:?} is negative; using the default 30s")
            }
            AnnotationWarning::TimeoutClamped { key, value, .. } => {
                format!("annotation {key} = {value:?} exceeds the maximum of 4h; using 4h")
            }
            AnnotationWarning::InvalidOption {
                key, value, reason, ..
            } => format!("annotation {key} = {value:?} is ignored: {reason}"),
            AnnotationWarning::OptionNote { key, note, .. } => format!("annotation {key}: {note}"),
            AnnotationWarning::IgnoredWithoutCommand {
                key, command_key, ..
            } => format!("annotation {key} is ignored because {command_key} is not set or empty"),
        }
    }
}

impl fmt::Display for AnnotationWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pod {}: {}", self.pod(), self.without_pod())
    }
}

impl std::error::Error for AnnotationWarning {}

/// The annotation hook of one pod and phase, values parsed, container not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AnnotationHook {
    /// The `command` key the hook came from (for messages); for a post phase that only ends
    /// the pre hook's session, its `stdin` key (or, without one, the pre hook's
    /// `hold-until-output` key).
    pub command_key: String,
    /// argv (may be empty for `[]`, which the resolver reports as a defect); `None` for a
    /// post phase without a command whose pre hook holds a session: it only ends the session.
    pub command: Option<Vec<String>>,
    /// The `container` value, `None` if absent or empty (→ first container).
    pub container: Option<String>,
    pub on_error: OnError,
    pub timeout: Duration,
    pub execution: Execution,
}

/// Reads the annotation hook of `phase`, pushing warnings about odd values.
pub(crate) fn read_annotation_hook(
    pod: &PodRef,
    annotations: &BTreeMap<String, String>,
    phase: Phase,
    warnings: &mut Vec<AnnotationWarning>,
) -> Option<AnnotationHook> {
    let mut command_key = annotation_key(phase, COMMAND);
    let parsed = parse_command(annotations.get(&command_key).map_or("", String::as_str));
    let command = parsed.argv();
    let ends_session_only =
        command.is_none() && phase == Phase::Post && pre_holds_session(annotations);
    if command.is_none() {
        let options = Field::ALL.map(Field::annotation);
        let unused = [CONTAINER, ON_ERROR, TIMEOUT]
            .iter()
            .chain(options.iter())
            .filter(|field| !ends_session_only || !ends_session_field(field));
        for field in unused {
            let key = annotation_key(phase, field);
            if annotations.contains_key(&key) {
                warnings.push(AnnotationWarning::IgnoredWithoutCommand {
                    pod: pod.clone(),
                    key,
                    command_key: command_key.clone(),
                });
            }
        }
        if !ends_session_only {
            return None;
        }
        let stdin_key = annotation_key(phase, STDIN);
        command_key = if annotations.contains_key(&stdin_key) {
            stdin_key
        } else {
            annotation_key(Phase::Pre, HOLD_UNTIL_OUTPUT)
        };
    }
    if let ParsedCommand::Single { argv0, json_error } = &parsed {
        if let Some(reason) = json_error {
            warnings.push(AnnotationWarning::CommandNotJsonArray {
                pod: pod.clone(),
                key: command_key.clone(),
                value: argv0.clone(),
                reason: reason.clone(),
            });
        } else if argv0.trim_start().starts_with('[') {
            warnings.push(AnnotationWarning::CommandLeadingWhitespace {
                pod: pod.clone(),
                key: command_key.clone(),
                value: argv0.clone(),
            });
        }
    }

    let container = annotations
        .get(&annotation_key(phase, CONTAINER))
        .filter(|name| !name.is_empty() && !ends_session_only)
        .cloned();

    let on_error_key = annotation_key(phase, ON_ERROR);
    let on_error = match annotations.get(&on_error_key) {
        None => OnError::default(),
        Some(value) => OnError::parse(value).unwrap_or_else(|| {
            warnings.push(AnnotationWarning::InvalidOnError {
                pod: pod.clone(),
                key: on_error_key.clone(),
                value: value.clone(),
            });
            OnError::default()
        }),
    };

    let timeout_key = annotation_key(phase, TIMEOUT);
    let timeout = match annotations.get(&timeout_key) {
        None => DEFAULT_TIMEOUT,
        Some(value) => annotation_timeout(pod, &timeout_key, value, warnings),
    };

    let execution = annotation_execution(pod, annotations, phase, ends_session_only, warnings);

    Some(AnnotationHook {
        command_key,
        command,
        container,
        on_error,
        timeout,
        execution,
    })
}

/// Whether `pre…/hold-until-output` makes the pod's pre annotation hook hold a session: the
/// pre hook has a command and the text is usable. Its post phase then ends the session.
pub(crate) fn pre_holds_session(annotations: &BTreeMap<String, String>) -> bool {
    // An empty argv (`[]`) is a defect that never runs, so it holds nothing to end.
    let has_command = annotations
        .get(&annotation_key(Phase::Pre, COMMAND))
        .is_some_and(|value| {
            parse_command(value)
                .argv()
                .is_some_and(|argv| !argv.is_empty())
        });
    has_command
        && annotations
            .get(&annotation_key(Phase::Pre, HOLD_UNTIL_OUTPUT))
            .is_some_and(|text| {
                Builder::new(Phase::Pre)
                    .set(Field::HoldUntilOutput, text)
                    .is_ok()
            })
}

/// Whether a post key still counts when the post phase only ends a held session.
fn ends_session_field(field: &str) -> bool {
    [ON_ERROR, TIMEOUT].contains(&field)
        || Field::ALL
            .into_iter()
            .any(|f| f.annotation() == field && f.applies_to_session_end())
}

/// The execution options of `phase` (only those of a session's end when `ends_session_only`);
/// unusable values are ignored with a warning.
fn annotation_execution(
    pod: &PodRef,
    annotations: &BTreeMap<String, String>,
    phase: Phase,
    ends_session_only: bool,
    warnings: &mut Vec<AnnotationWarning>,
) -> Execution {
    let mut builder = Builder::new(phase);
    for field in Field::ALL {
        if ends_session_only && !field.applies_to_session_end() {
            continue;
        }
        let key = annotation_key(phase, field.annotation());
        let Some(value) = annotations.get(&key) else {
            continue;
        };
        match builder.set(field, value) {
            Ok(None) => {}
            Ok(Some(note)) => warnings.push(AnnotationWarning::OptionNote {
                pod: pod.clone(),
                key: key.clone(),
                note,
            }),
            Err(reason) => warnings.push(AnnotationWarning::InvalidOption {
                pod: pod.clone(),
                key: key.clone(),
                value: value.clone(),
                reason,
            }),
        }
    }
    let (execution, notes) = builder.build();
    for (field, note) in notes {
        warnings.push(AnnotationWarning::OptionNote {
            pod: pod.clone(),
            key: annotation_key(phase, field.annotation()),
            note,
        });
    }
    execution
}

fn annotation_timeout(
    pod: &PodRef,
    key: &str,
    value: &str,
    warnings: &mut Vec<AnnotationWarning>,
) -> Duration {
    let requested = match parse_go_duration(value) {
        Ok(requested) => requested,
        Err(error) => {
            warnings.push(AnnotationWarning::InvalidTimeout {
                pod: pod.clone(),
                key: key.to_owned(),
                value: value.to_owned(),
                error,
            });
            return DEFAULT_TIMEOUT;
        }
    };
    let (timeout, adjustment) = effective_timeout(requested);
    let (pod, key, value) = (pod.clone(), key.to_owned(), value.to_owned());
    match adjustment {
        None => {}
        Some(TimeoutAdjustment::Negative) => {
            warnings.push(AnnotationWarning::NegativeTimeout { pod, key, value })
        }
        Some(TimeoutAdjustment::Clamped) => {
            warnings.push(AnnotationWarning::TimeoutClamped { pod, key, value })
        }
    }
    timeout
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::MAX_TIMEOUT;

    fn argv(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn pod() -> PodRef {
        PodRef {
            namespace: "shop".to_owned(),
            name: "db-0".to_owned(),
        }
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn read(
        pairs: &[(&str, &str)],
        phase: Phase,
    ) -> (Option<AnnotationHook>, Vec<AnnotationWarning>) {
        let mut warnings = Vec::new();
        let hook = read_annotation_hook(&pod(), &annotations(pairs), phase, &mut warnings);
        (hook, warnings)
    }

    fn read_pre_with(key_suffix: &str, value: &str) -> (AnnotationHook, Vec<AnnotationWarning>) {
        let key = format!("{PRE_ANNOTATION_PREFIX}{key_suffix}");
        let (hook, warnings) = read(
            &[
                ("pre.hook.backup.quiesce.dev/command", "/bin/true"),
                (key.as_str(), value),
            ],
            Phase::Pre,
        );
        (hook.unwrap(), warnings)
    }

    #[test]
    fn keys_use_the_quiesce_domain_with_phase_prefix() {
        assert_eq!(
            annotation_key(Phase::Pre, "command"),
            "pre.hook.backup.quiesce.dev/command"
        );
        assert_eq!(
            annotation_key(Phase::Post, "on-error"),
            "post.hook.backup.quiesce.dev/on-error"
        );
    }

    #[test]
    fn json_array_command_becomes_argv() {
        assert_eq!(
            parse_command(r#"["/sbin/fsfreeze", "--freeze", "/data"]"#),
            ParsedCommand::JsonArray(argv(&["/sbin/fsfreeze", "--freeze", "/data"]))
        );
    }

    #[test]
    fn json_array_with_trailing_whitespace_is_accepted() {
        assert_eq!(
            parse_command("[\"sync\"]\n"),
            ParsedCommand::JsonArray(argv(&["sync"]))
        );
    }

    #[test]
    fn plain_command_is_one_argv_element_without_splitting() {
        assert_eq!(
            parse_command("echo hello"),
            ParsedCommand::Single {
                argv0: "echo hello".to_owned(),
                json_error: None
            }
        );
    }

    #[test]
    fn malformed_json_command_is_one_argv_element() {
        let parsed = parse_command(r#"["/bin/sh", "-c""#);
        assert_eq!(parsed.argv(), Some(argv(&[r#"["/bin/sh", "-c""#])));
        assert!(matches!(
            parsed,
            ParsedCommand::Single {
                json_error: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn json_array_of_numbers_is_one_argv_element() {
        let parsed = parse_command("[1,2]");
        assert_eq!(parsed.argv(), Some(argv(&["[1,2]"])));
        assert!(matches!(
            parsed,
            ParsedCommand::Single {
                json_error: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn null_json_element_becomes_empty_string_like_go() {
        assert_eq!(
            parse_command(r#"["a", null]"#),
            ParsedCommand::JsonArray(argv(&["a", ""]))
        );
    }

    #[test]
    fn json_array_with_trailing_text_is_one_argv_element() {
        assert_eq!(
            parse_command(r#"["a"] extra"#).argv(),
            Some(argv(&[r#"["a"] extra"#]))
        );
    }

    #[test]
    fn json_object_command_is_one_argv_element_without_json_attempt() {
        assert_eq!(
            parse_command("{}"),
            ParsedCommand::Single {
                argv0: "{}".to_owned(),
                json_error: None
            }
        );
    }

    #[test]
    fn leading_space_before_bracket_is_not_json() {
        assert_eq!(
            parse_command(r#" ["sync"]"#).argv(),
            Some(argv(&[r#" ["sync"]"#]))
        );
    }

    #[test]
    fn empty_command_means_no_hook() {
        assert_eq!(parse_command(""), ParsedCommand::Absent);
        let (hook, warnings) = read(&[("pre.hook.backup.quiesce.dev/command", "")], Phase::Pre);
        assert_eq!(hook, None);
        assert!(warnings.is_empty());
    }

    #[test]
    fn empty_json_array_yields_hook_with_empty_argv() {
        assert_eq!(parse_command("[]"), ParsedCommand::JsonArray(vec![]));
        let (hook, _) = read(&[("pre.hook.backup.quiesce.dev/command", "[]")], Phase::Pre);
        assert_eq!(hook.unwrap().command, Some(Vec::<String>::new()));
    }

    #[test]
    fn malformed_json_command_warns_with_pod_key_and_value() {
        let (hook, warnings) = read(
            &[("pre.hook.backup.quiesce.dev/command", "[1,2]")],
            Phase::Pre,
        );
        assert_eq!(hook.unwrap().command, Some(argv(&["[1,2]"])));
        assert_eq!(warnings.len(), 1);
        let text = warnings[0].to_string();
        assert!(text.starts_with(
            "pod shop/db-0: annotation pre.hook.backup.quiesce.dev/command = \"[1,2]\" starts with '['"
        ), "{text}");
    }

    #[test]
    fn every_warning_is_its_pod_then_its_text_without_the_pod_and_names_its_key() {
        let (_, mut warnings) = read(
            &[
                ("pre.hook.backup.quiesce.dev/command", "[1,2]"),
                ("pre.hook.backup.quiesce.dev/on-error", "fail"),
                ("pre.hook.backup.quiesce.dev/timeout", "300"),
                ("pre.hook.backup.quiesce.dev/retries", "many"),
            ],
            Phase::Pre,
        );
        let (_, orphans) = read(
            &[("post.hook.backup.quiesce.dev/timeout", "1s")],
            Phase::Post,
        );
        warnings.extend(orphans);
        assert_eq!(warnings.len(), 5, "{warnings:#?}");
        for warning in &warnings {
            assert_eq!(warning.pod(), &pod());
            let text = warning.to_string();
            assert_eq!(text, format!("pod shop/db-0: {}", warning.without_pod()));
            assert!(
                warning
                    .without_pod()
                    .starts_with(&format!("annotation {} ", warning.key())),
                "{text}"
            );
        }
    }

    #[test]
    fn leading_whitespace_before_bracket_warns() {
        let (_, warnings) = read(
            &[("pre.hook.backup.quiesce.dev/command", " [\"sync\"]")],
            Phase::Pre,
        );
        assert!(matches!(
            warnings.as_slice(),
            [AnnotationWarning::CommandLeadingWhitespace { .. }]
        ));
    }

    #[test]
    fn pre_keys_do_not_define_a_post_hook() {
        let (hook, _) = read(
            &[("pre.hook.backup.quiesce.dev/command", "sync")],
            Phase::Post,
        );
        assert_eq!(hook, None);
    }

    #[test]
    fn velero_keys_are_not_read() {
        let (hook, warnings) = read(
            &[
                ("pre.hook.backup.velero.io/command", "[\"sync\"]"),
                ("hook.backup.velero.io/command", "[\"sync\"]"),
            ],
            Phase::Pre,
        );
        assert_eq!(hook, None);
        assert!(warnings.is_empty());
    }

    #[test]
    fn legacy_unprefixed_quiesce_key_is_not_read() {
        let (hook, _) = read(&[("hook.backup.quiesce.dev/command", "sync")], Phase::Pre);
        assert_eq!(hook, None);
    }

    #[test]
    fn defaults_apply_when_only_command_is_set() {
        let (hook, warnings) = read(
            &[("post.hook.backup.quiesce.dev/command", "sync")],
            Phase::Post,
        );
        let hook = hook.unwrap();
        assert_eq!(hook.container, None);
        assert_eq!(hook.on_error, OnError::Fail);
        assert_eq!(hook.timeout, Duration::from_secs(30));
        assert_eq!(hook.command_key, "post.hook.backup.quiesce.dev/command");
        assert!(warnings.is_empty());
    }

    #[test]
    fn container_annotation_is_read_with_same_phase_prefix() {
        let (hook, _) = read_pre_with("container", "fsfreeze");
        assert_eq!(hook.container.as_deref(), Some("fsfreeze"));
    }

    #[test]
    fn empty_container_annotation_means_default_container() {
        let (hook, warnings) = read_pre_with("container", "");
        assert_eq!(hook.container, None);
        assert!(warnings.is_empty());
    }

    #[test]
    fn container_of_other_phase_is_not_used() {
        let (hook, _) = read(
            &[
                ("pre.hook.backup.quiesce.dev/command", "sync"),
                ("post.hook.backup.quiesce.dev/container", "sidecar"),
            ],
            Phase::Pre,
        );
        assert_eq!(hook.unwrap().container, None);
    }

    #[test]
    fn on_error_continue_is_read() {
        let (hook, warnings) = read_pre_with("on-error", "Continue");
        assert_eq!(hook.on_error, OnError::Continue);
        assert!(warnings.is_empty());
    }

    #[test]
    fn on_error_fail_is_read() {
        let (hook, warnings) = read_pre_with("on-error", "Fail");
        assert_eq!(hook.on_error, OnError::Fail);
        assert!(warnings.is_empty());
    }

    #[test]
    fn on_error_wrong_case_warns_and_falls_back_to_fail() {
        let (hook, warnings) = read_pre_with("on-error", "continue");
        assert_eq!(hook.on_error, OnError::Fail);
        assert_eq!(
            warnings,
            vec![AnnotationWarning::InvalidOnError {
                pod: pod(),
                key: "pre.hook.backup.quiesce.dev/on-error".to_owned(),
                value: "continue".to_owned(),
            }]
        );
        assert_eq!(
            warnings[0].to_string(),
            "pod shop/db-0: annotation pre.hook.backup.quiesce.dev/on-error = \"continue\" is not \
             Fail or Continue (case-sensitive); using Fail"
        );
    }

    #[test]
    fn on_error_empty_value_warns_and_falls_back_to_fail() {
        let (hook, warnings) = read_pre_with("on-error", "");
        assert_eq!(hook.on_error, OnError::Fail);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn timeout_with_units_is_read() {
        let (hook, warnings) = read_pre_with("timeout", "1m30s");
        assert_eq!(hook.timeout, Duration::from_secs(90));
        assert!(warnings.is_empty());
    }

    #[test]
    fn fractional_hour_timeout_is_read() {
        let (hook, _) = read_pre_with("timeout", "1.5h");
        assert_eq!(hook.timeout, Duration::from_secs(5400));
    }

    #[test]
    fn bare_number_timeout_warns_and_uses_default() {
        let (hook, warnings) = read_pre_with("timeout", "300");
        assert_eq!(hook.timeout, DEFAULT_TIMEOUT);
        assert_eq!(
            warnings[0].to_string(),
            "pod shop/db-0: annotation pre.hook.backup.quiesce.dev/timeout = \"300\" is not a \
             duration with a unit such as 30s, 5m or 1h30m (time: missing unit in duration \
             \"300\"); using the default 30s"
        );
    }

    #[test]
    fn bare_zero_timeout_uses_default_without_warning() {
        let (hook, warnings) = read_pre_with("timeout", "0");
        assert_eq!(hook.timeout, DEFAULT_TIMEOUT);
        assert!(warnings.is_empty());
    }

    #[test]
    fn zero_seconds_timeout_uses_default_without_warning() {
        let (hook, warnings) = read_pre_with("timeout", "0s");
        assert_eq!(hook.timeout, DEFAULT_TIMEOUT);
        assert!(warnings.is_empty());
    }

    #[test]
    fn empty_timeout_warns_and_uses_default() {
        let (hook, warnings) = read_pre_with("timeout", "");
        assert_eq!(hook.timeout, DEFAULT_TIMEOUT);
        assert!(matches!(
            warnings.as_slice(),
            [AnnotationWarning::InvalidTimeout { .. }]
        ));
    }

    #[test]
    fn unparsable_timeout_warns_and_uses_default() {
        let (hook, warnings) = read_pre_with("timeout", "5 minutes");
        assert_eq!(hook.timeout, DEFAULT_TIMEOUT);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn negative_timeout_warns_and_uses_default() {
        let (hook, warnings) = read_pre_with("timeout", "-1s");
        assert_eq!(hook.timeout, DEFAULT_TIMEOUT);
        assert!(matches!(
            warnings.as_slice(),
            [AnnotationWarning::NegativeTimeout { .. }]
        ));
    }

    #[test]
    fn timeout_above_four_hours_is_clamped_with_warning() {
        let (hook, warnings) = read_pre_with("timeout", "5h");
        assert_eq!(hook.timeout, MAX_TIMEOUT);
        assert_eq!(
            warnings[0].to_string(),
            "pod shop/db-0: annotation pre.hook.backup.quiesce.dev/timeout = \"5h\" exceeds the \
             maximum of 4h; using 4h"
        );
    }

    #[test]
    fn settings_without_command_are_reported_as_ignored() {
        let (hook, warnings) = read(
            &[
                ("post.hook.backup.quiesce.dev/container", "db"),
                ("post.hook.backup.quiesce.dev/timeout", "1m"),
            ],
            Phase::Post,
        );
        assert_eq!(hook, None);
        assert_eq!(
            warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![
                "pod shop/db-0: annotation post.hook.backup.quiesce.dev/container is ignored \
                 because post.hook.backup.quiesce.dev/command is not set or empty",
                "pod shop/db-0: annotation post.hook.backup.quiesce.dev/timeout is ignored \
                 because post.hook.backup.quiesce.dev/command is not set or empty",
            ]
        );
    }

    const HELD_PRE: [(&str, &str); 3] = [
        ("pre.hook.backup.quiesce.dev/command", r#"["mysql", "-N"]"#),
        (
            "pre.hook.backup.quiesce.dev/stdin",
            "FLUSH TABLES WITH READ LOCK; SELECT 'quiesce-frozen';",
        ),
        (
            "pre.hook.backup.quiesce.dev/hold-until-output",
            "quiesce-frozen",
        ),
    ];

    #[test]
    fn a_pre_hook_reads_its_stdin_and_ready_text() {
        let (hook, warnings) = read(&HELD_PRE, Phase::Pre);
        let hook = hook.unwrap();
        assert_eq!(
            hook.execution.stdin.as_deref(),
            Some("FLUSH TABLES WITH READ LOCK; SELECT 'quiesce-frozen';")
        );
        assert_eq!(
            hook.execution.hold_until_output.as_deref(),
            Some("quiesce-frozen")
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(pre_holds_session(&annotations(&HELD_PRE)));
    }

    #[test]
    fn a_post_phase_without_command_ends_the_held_session() {
        let mut pairs = HELD_PRE.to_vec();
        pairs.extend([
            ("post.hook.backup.quiesce.dev/stdin", "UNLOCK TABLES;"),
            ("post.hook.backup.quiesce.dev/timeout", "1m"),
            ("post.hook.backup.quiesce.dev/container", "sidecar"),
            ("post.hook.backup.quiesce.dev/retries", "2"),
        ]);
        let (hook, warnings) = read(&pairs, Phase::Post);
        let hook = hook.unwrap();
        assert_eq!(hook.command, None);
        assert_eq!(hook.command_key, "post.hook.backup.quiesce.dev/stdin");
        assert_eq!(hook.execution.stdin.as_deref(), Some("UNLOCK TABLES;"));
        assert_eq!(hook.execution.retries, 0);
        assert_eq!(hook.container, None);
        assert_eq!(hook.timeout, Duration::from_secs(60));
        assert_eq!(
            warnings.iter().map(|w| w.key()).collect::<Vec<_>>(),
            [
                "post.hook.backup.quiesce.dev/container",
                "post.hook.backup.quiesce.dev/retries"
            ]
        );
    }

    #[test]
    fn without_a_held_pre_hook_post_stdin_needs_a_command() {
        let (hook, warnings) = read(
            &[
                ("pre.hook.backup.quiesce.dev/command", "sync"),
                ("post.hook.backup.quiesce.dev/stdin", "UNLOCK TABLES;"),
            ],
            Phase::Post,
        );
        assert_eq!(hook, None);
        assert_eq!(
            warnings[0].to_string(),
            "pod shop/db-0: annotation post.hook.backup.quiesce.dev/stdin is ignored because \
             post.hook.backup.quiesce.dev/command is not set or empty"
        );
    }

    #[test]
    fn a_post_hook_cannot_hold_and_a_hold_needs_its_text() {
        let (hook, warnings) = read(
            &[
                ("post.hook.backup.quiesce.dev/command", "sync"),
                ("post.hook.backup.quiesce.dev/hold-until-output", "ready"),
            ],
            Phase::Post,
        );
        assert_eq!(hook.unwrap().execution.hold_until_output, None);
        assert!(
            warnings[0]
                .to_string()
                .contains("only a pre hook holds a session"),
            "{warnings:?}"
        );
        assert!(!pre_holds_session(&annotations(&[
            ("pre.hook.backup.quiesce.dev/command", "sync"),
            ("pre.hook.backup.quiesce.dev/hold-until-output", " "),
        ])));
    }
}
