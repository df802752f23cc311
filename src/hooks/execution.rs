//! The execution options of a hook ([`Execution`]), read from text the same way whether they
//! come from annotations (`pre.hook.backup.quiesce.dev/retries: "3"`) or from a rule's `exec`
//! (`retries: 3`): one parser, two spellings of each field name.
//!
//! | annotation suffix     | rule field        | value                                          |
//! |-----------------------|-------------------|------------------------------------------------|
//! | `wait-timeout`        | `waitTimeout`     | Go duration; `0s` turns waiting off (default)  |
//! | `wait-for`            | `waitFor`         | `running` (default) or `ready`                 |
//! | `retries`             | `retries`         | 0–10 further attempts (default 0)              |
//! | `retry-backoff`       | `retryBackoff`    | Go duration, first delay, doubled per retry    |
//! | `retry-on-exit-code`  | `retryOnExitCode` | exit codes 1–255, comma-separated or a list    |
//! | `kill-on-timeout`     | `killOnTimeout`   | `true` or `false` (default)                    |
//! | `stdin`               | `stdin`           | text written to stdin, verbatim (not trimmed)   |
//! | `hold-until-output`   | `holdUntilOutput` | pre hooks only: the ready text of a held session |

use std::time::Duration;

use super::duration::parse_go_duration;
use super::{
    format_go_duration, Execution, Phase, WaitFor, MAX_READY_TEXT, MAX_RETRIES, MAX_RETRY_BACKOFF,
    MAX_TIMEOUT,
};

/// How long to wait for the container when only `wait-for` is set.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(60);

/// One execution option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    WaitTimeout,
    WaitFor,
    Retries,
    RetryBackoff,
    RetryOnExitCode,
    KillOnTimeout,
    Stdin,
    HoldUntilOutput,
}

impl Field {
    pub(crate) const ALL: [Field; 8] = [
        Field::WaitTimeout,
        Field::WaitFor,
        Field::Retries,
        Field::RetryBackoff,
        Field::RetryOnExitCode,
        Field::KillOnTimeout,
        Field::Stdin,
        Field::HoldUntilOutput,
    ];

    /// Whether the field still means something on a post hook that only ends a held session:
    /// its input does; waits, retries and kill-on-timeout belong to the session's pre hook.
    pub(crate) fn applies_to_session_end(self) -> bool {
        self == Field::Stdin
    }

    /// The suffix of the annotation key (`pre.hook.backup.quiesce.dev/<suffix>`).
    pub(crate) fn annotation(self) -> &'static str {
        match self {
            Field::WaitTimeout => "wait-timeout",
            Field::WaitFor => "wait-for",
            Field::Retries => "retries",
            Field::RetryBackoff => "retry-backoff",
            Field::RetryOnExitCode => "retry-on-exit-code",
            Field::KillOnTimeout => "kill-on-timeout",
            Field::Stdin => "stdin",
            Field::HoldUntilOutput => "hold-until-output",
        }
    }

    /// The field name in a rule's `exec`.
    pub(crate) fn rule(self) -> &'static str {
        match self {
            Field::WaitTimeout => "waitTimeout",
            Field::WaitFor => "waitFor",
            Field::Retries => "retries",
            Field::RetryBackoff => "retryBackoff",
            Field::RetryOnExitCode => "retryOnExitCode",
            Field::KillOnTimeout => "killOnTimeout",
            Field::Stdin => "stdin",
            Field::HoldUntilOutput => "holdUntilOutput",
        }
    }

    pub(crate) fn from_rule(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.rule() == name)
    }
}

/// Execution options of one phase's hook as they are read, turned into an [`Execution`] by
/// [`Builder::build`].
#[derive(Debug)]
pub(crate) struct Builder {
    phase: Phase,
    wait_timeout: Option<Duration>,
    wait_ready: Option<bool>,
    execution: Execution,
}

/// A value that cannot be used: the field keeps its default.
pub(crate) type Invalid = String;
/// A value that was adjusted (clamped) or has no effect: applied, with this note.
pub(crate) type Note = Option<String>;

impl Builder {
    /// Nothing set yet, for a hook of `phase`.
    pub(crate) fn new(phase: Phase) -> Self {
        Builder {
            phase,
            wait_timeout: None,
            wait_ready: None,
            execution: Execution::default(),
        }
    }

    /// Reads `text` as the value of `field`. `Err` describes why the value is unusable (the
    /// field keeps its default); `Ok(Some(_))` is a warning about a value that was adjusted.
    pub(crate) fn set(&mut self, field: Field, text: &str) -> Result<Note, Invalid> {
        if field == Field::Stdin {
            // Verbatim: leading spaces and line breaks may matter to the program reading it.
            if text.is_empty() {
                return Err("\"\" is empty: give the text to write to the command".to_owned());
            }
            self.execution.stdin = Some(text.to_owned());
            return Ok(None);
        }
        let text = text.trim();
        match field {
            Field::Stdin => Ok(None), // set above
            Field::HoldUntilOutput => {
                if self.phase == Phase::Post {
                    return Err(format!(
                        "{text:?} cannot be waited for by a post hook: only a pre hook holds a \
                         session (a post hook's stdin goes to the session its pre hook holds)"
                    ));
                }
                if text.is_empty() {
                    return Err(format!(
                        "{text:?} is empty: give the text the command prints once it holds"
                    ));
                }
                if text.len() > MAX_READY_TEXT {
                    return Err(format!(
                        "a text of {} bytes is longer than the {MAX_READY_TEXT} allowed",
                        text.len()
                    ));
                }
                self.execution.hold_until_output = Some(text.to_owned());
                Ok(None)
            }
            Field::WaitTimeout => {
                let (duration, note) = positive_duration(text, MAX_TIMEOUT, true)?;
                self.wait_timeout = Some(duration);
                Ok(note)
            }
            Field::WaitFor => {
                self.wait_ready = Some(match text {
                    "running" => false,
                    "ready" => true,
                    _ => return Err(format!("{text:?} is not running or ready")),
                });
                Ok(None)
            }
            Field::Retries => {
                let retries: u32 = text
                    .parse()
                    .map_err(|_| format!("{text:?} is not a whole number of retries"))?;
                if retries > MAX_RETRIES {
                    self.execution.retries = MAX_RETRIES;
                    return Ok(Some(format!(
                        "{retries} retries exceed the maximum of {MAX_RETRIES}; using {MAX_RETRIES}"
                    )));
                }
                self.execution.retries = retries;
                Ok(None)
            }
            Field::RetryBackoff => {
                let (duration, note) = positive_duration(text, MAX_RETRY_BACKOFF, false)?;
                self.execution.retry_backoff = duration;
                Ok(note)
            }
            Field::RetryOnExitCode => {
                let mut codes = Vec::new();
                for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    match part.parse::<i32>() {
                        Ok(code) if (1..=255).contains(&code) => codes.push(code),
                        _ => return Err(format!("{part:?} is not an exit code from 1 to 255")),
                    }
                }
                if codes.is_empty() {
                    return Err("no exit code given".to_owned());
                }
                codes.sort_unstable();
                codes.dedup();
                self.execution.retry_on_exit_codes = codes;
                Ok(None)
            }
            Field::KillOnTimeout => {
                self.execution.kill_on_timeout = match text {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("{text:?} is not true or false")),
                };
                Ok(None)
            }
        }
    }

    /// The options, and notes about combinations that have no effect, each with the field
    /// it is about.
    pub(crate) fn build(mut self) -> (Execution, Vec<(Field, String)>) {
        let mut notes = Vec::new();
        self.execution.wait = match (self.wait_timeout, self.wait_ready) {
            (Some(timeout), _) if timeout.is_zero() => None,
            (Some(timeout), ready) => Some(WaitFor {
                timeout,
                ready: ready.unwrap_or(false),
            }),
            (None, Some(ready)) => Some(WaitFor {
                timeout: DEFAULT_WAIT_TIMEOUT,
                ready,
            }),
            (None, None) => None,
        };
        if self.execution.retries == 0 && !self.execution.retry_on_exit_codes.is_empty() {
            notes.push((
                Field::RetryOnExitCode,
                "exit codes to retry on have no effect without retries".to_owned(),
            ));
        }
        (self.execution, notes)
    }
}

/// A Go duration in `[0, max]` (zero only if `zero_ok`), clamped to `max` with a note.
fn positive_duration(
    text: &str,
    max: Duration,
    zero_ok: bool,
) -> Result<(Duration, Note), Invalid> {
    let parsed = parse_go_duration(text).map_err(|e| {
        format!("{text:?} is not a duration with a unit such as 30s, 5m or 1h30m ({e})")
    })?;
    if parsed.negative || (parsed.magnitude.is_zero() && !zero_ok) {
        return Err(format!("{text:?} is not a positive duration"));
    }
    if parsed.magnitude > max {
        let max_text = format_go_duration(max);
        return Ok((
            max,
            Some(format!(
                "{text:?} exceeds the maximum of {max_text}; using {max_text}"
            )),
        ));
    }
    Ok((parsed.magnitude, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(pairs: &[(Field, &str)]) -> (Execution, Vec<(Field, String)>) {
        let mut builder = Builder::new(Phase::Pre);
        for (field, text) in pairs {
            builder.set(*field, text).unwrap();
        }
        builder.build()
    }

    #[test]
    fn nothing_set_is_velero_behaviour() {
        assert_eq!(build(&[]).0, Execution::default());
    }

    #[test]
    fn wait_timeout_alone_waits_for_running() {
        let (execution, _) = build(&[(Field::WaitTimeout, "2m")]);
        assert_eq!(
            execution.wait,
            Some(WaitFor {
                timeout: Duration::from_secs(120),
                ready: false
            })
        );
    }

    #[test]
    fn wait_for_ready_alone_uses_the_default_wait_timeout() {
        let (execution, _) = build(&[(Field::WaitFor, "ready")]);
        assert_eq!(
            execution.wait,
            Some(WaitFor {
                timeout: DEFAULT_WAIT_TIMEOUT,
                ready: true
            })
        );
    }

    #[test]
    fn zero_wait_timeout_turns_waiting_off() {
        let (execution, _) = build(&[(Field::WaitTimeout, "0s"), (Field::WaitFor, "ready")]);
        assert_eq!(execution.wait, None);
    }

    #[test]
    fn invalid_values_are_refused_with_the_reason() {
        let mut builder = Builder::new(Phase::Pre);
        for (field, text, reason) in [
            (Field::WaitTimeout, "10", "is not a duration"),
            (Field::WaitTimeout, "-5s", "is not a positive duration"),
            (Field::WaitFor, "Ready", "is not running or ready"),
            (Field::Retries, "-1", "is not a whole number"),
            (Field::Retries, "three", "is not a whole number"),
            (Field::RetryBackoff, "0s", "is not a positive duration"),
            (
                Field::RetryOnExitCode,
                "0",
                "is not an exit code from 1 to 255",
            ),
            (Field::RetryOnExitCode, "1,x", "\"x\" is not an exit code"),
            (Field::RetryOnExitCode, " , ", "no exit code given"),
            (Field::KillOnTimeout, "yes", "is not true or false"),
        ] {
            let error = builder.set(field, text).unwrap_err();
            assert!(error.contains(reason), "{field:?} {text:?}: {error}");
        }
        assert_eq!(builder.build().0, Execution::default());
    }

    #[test]
    fn too_many_retries_and_too_long_durations_are_clamped_with_a_note() {
        let mut builder = Builder::new(Phase::Pre);
        let note = builder.set(Field::Retries, "50").unwrap().unwrap();
        assert!(note.contains("maximum of 10"), "{note}");
        let note = builder.set(Field::RetryBackoff, "5m").unwrap().unwrap();
        assert!(note.contains("maximum of 1m"), "{note}");
        let note = builder.set(Field::WaitTimeout, "5h").unwrap().unwrap();
        assert!(note.contains("maximum of 4h"), "{note}");
        let (execution, _) = builder.build();
        assert_eq!(execution.retries, MAX_RETRIES);
        assert_eq!(execution.retry_backoff, MAX_RETRY_BACKOFF);
        assert_eq!(execution.wait.unwrap().timeout, MAX_TIMEOUT);
    }

    #[test]
    fn exit_codes_are_sorted_and_deduplicated() {
        let (execution, notes) =
            build(&[(Field::Retries, "2"), (Field::RetryOnExitCode, "75, 1,75")]);
        assert_eq!(execution.retry_on_exit_codes, vec![1, 75]);
        assert!(notes.is_empty());
    }

    #[test]
    fn exit_codes_without_retries_get_a_note() {
        let (_, notes) = build(&[(Field::RetryOnExitCode, "1")]);
        assert_eq!(
            notes,
            vec![(
                Field::RetryOnExitCode,
                "exit codes to retry on have no effect without retries".to_owned()
            )]
        );
    }

    #[test]
    fn backoff_doubles_per_retry_and_is_capped() {
        let (execution, _) = build(&[(Field::Retries, "10"), (Field::RetryBackoff, "500ms")]);
        let delays: Vec<_> = (1..=9).map(|n| execution.backoff_before(n)).collect();
        assert_eq!(delays[0], Duration::from_millis(500));
        assert_eq!(delays[1], Duration::from_secs(1));
        assert_eq!(delays[2], Duration::from_secs(2));
        assert_eq!(delays[7], MAX_RETRY_BACKOFF);
        assert_eq!(delays[8], MAX_RETRY_BACKOFF);
        assert_eq!(
            Execution::default().backoff_before(1),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn stdin_is_kept_verbatim_and_the_ready_text_trimmed() {
        let (execution, notes) = build(&[
            (Field::Stdin, "  FLUSH TABLES WITH READ LOCK;\n"),
            (Field::HoldUntilOutput, " quiesce-frozen\n"),
        ]);
        assert_eq!(
            execution.stdin.as_deref(),
            Some("  FLUSH TABLES WITH READ LOCK;\n")
        );
        assert_eq!(
            execution.hold_until_output.as_deref(),
            Some("quiesce-frozen")
        );
        assert!(notes.is_empty());
    }

    #[test]
    fn stdin_is_written_as_a_line() {
        let (execution, _) = build(&[(Field::Stdin, "UNLOCK TABLES;")]);
        assert_eq!(execution.stdin_bytes().unwrap(), b"UNLOCK TABLES;\n");
        let (execution, _) = build(&[(Field::Stdin, "SELECT 1;\n")]);
        assert_eq!(execution.stdin_bytes().unwrap(), b"SELECT 1;\n");
        assert_eq!(Execution::default().stdin_bytes(), None);
    }

    #[test]
    fn only_a_pre_hook_holds_and_the_ready_text_is_bounded() {
        let mut post = Builder::new(Phase::Post);
        let error = post.set(Field::HoldUntilOutput, "ready").unwrap_err();
        assert!(error.contains("only a pre hook holds a session"), "{error}");
        let mut pre = Builder::new(Phase::Pre);
        for (text, reason) in [
            ("  ", "\"\" is empty"),
            (
                &"x".repeat(MAX_READY_TEXT + 1),
                "longer than the 1024 allowed",
            ),
        ] {
            let error = pre.set(Field::HoldUntilOutput, text).unwrap_err();
            assert!(error.contains(reason), "{error}");
        }
        assert!(pre
            .set(Field::Stdin, "")
            .unwrap_err()
            .contains("\"\" is empty"));
        assert_eq!(pre.build().0, Execution::default());
    }

    #[test]
    fn both_spellings_name_every_field() {
        for field in Field::ALL {
            assert_eq!(Field::from_rule(field.rule()), Some(field));
            assert!(field
                .annotation()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '-'));
        }
    }
}
