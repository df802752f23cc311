//! Which failed exec attempts of a hook are tried again, and after how long
//! ([`crate::hooks::Execution`]'s `retries`, `retry_backoff`, `retry_on_exit_codes`). Pure.
//!
//! The rule: a command is never run twice unless it certainly did not start, or it ran and
//! exited with a code the hook lists as worth another try.
//! - Retried: failures where the command cannot have started and trying again may work —
//!   [`ExecError::is_transient`]: the API server unreachable, no client yet, the upgrade
//!   refused with 429 or 5xx (the kubelet's `container not found` for a container that is
//!   restarting is a 500).
//! - Not retried: a 4xx refusal (403 RBAC, 404 pod gone, 400 bad container), a command that
//!   could not be started (`executable file not found`), and everything that may have run the
//!   command: a timeout, a dropped stream (see [`ExecError::is_transient`] for why a drop before
//!   the start cannot be told apart), or a non-zero exit not listed in `retry_on_exit_codes`.
//!
//! Retry `n` (1-based) waits [`crate::hooks::Execution::backoff_before`]`(n)`: the backoff
//! doubled per retry, capped at [`crate::hooks::MAX_RETRY_BACKOFF`]. At most
//! [`crate::hooks::MAX_RETRIES`] retries are made whatever the hook asks for.

use std::time::Duration;

use crate::hooks::{Execution, MAX_RETRIES};

use super::{ExecError, ExecOutput};

/// How many attempts `execution` allows: one, plus its retries (capped at [`MAX_RETRIES`]).
pub fn max_attempts(execution: &Execution) -> u32 {
    execution.retries.min(MAX_RETRIES) + 1
}

/// Whether an attempt's result is worth another attempt, whatever the count: a transient
/// error, or a non-zero exit code listed in `retry_on_exit_codes`.
pub fn is_retryable(execution: &Execution, result: &Result<ExecOutput, ExecError>) -> bool {
    match result {
        Ok(output) => {
            output.exit_code != 0 && execution.retry_on_exit_codes.contains(&output.exit_code)
        }
        Err(error) => error.is_transient(),
    }
}

/// After attempt `attempt` (1-based) ended with `result`: `Some(delay)` to wait before the
/// next attempt, `None` when this attempt's result is final (success, not retryable, or no
/// attempts left).
pub fn next_attempt_after(
    execution: &Execution,
    attempt: u32,
    result: &Result<ExecOutput, ExecError>,
) -> Option<Duration> {
    (attempt < max_attempts(execution) && is_retryable(execution, result))
        .then(|| execution.backoff_before(attempt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Captured;
    use crate::hooks::MAX_RETRY_BACKOFF;

    fn retries(count: u32) -> Execution {
        Execution {
            retries: count,
            ..Default::default()
        }
    }

    fn exited(code: i32) -> Result<ExecOutput, ExecError> {
        Ok(ExecOutput {
            exit_code: code,
            stdout: Captured::default(),
            stderr: Captured::default(),
            duration: Duration::ZERO,
        })
    }

    fn rejected(code: u16) -> Result<ExecOutput, ExecError> {
        Err(ExecError::UpgradeRejected {
            code,
            message: "x".into(),
        })
    }

    #[test]
    fn the_default_is_a_single_attempt() {
        let execution = Execution::default();
        assert_eq!(max_attempts(&execution), 1);
        assert_eq!(next_attempt_after(&execution, 1, &rejected(503)), None);
    }

    #[test]
    fn failures_before_the_command_started_are_retried() {
        let execution = retries(3);
        for result in [
            rejected(503),
            rejected(500),
            rejected(429),
            Err(ExecError::Unreachable("refused".into())),
            Err(ExecError::NoClient("no kubeconfig".into())),
        ] {
            assert!(is_retryable(&execution, &result), "{result:?}");
        }
    }

    #[test]
    fn refusals_and_anything_that_may_have_run_are_not_retried() {
        let execution = retries(3);
        for result in [
            rejected(403),
            rejected(400),
            Err(ExecError::PodNotFound {
                namespace: "ns".into(),
                pod: "p".into(),
            }),
            Err(ExecError::RemoteFailure(
                "executable file not found in $PATH".into(),
            )),
            Err(ExecError::TimedOut(Duration::from_secs(1))),
            Err(ExecError::StreamDropped("eof".into())),
            Err(ExecError::KillNeedsShell {
                container: "db".into(),
                message: "no such file".into(),
            }),
        ] {
            assert!(!is_retryable(&execution, &result), "{result:?}");
        }
    }

    #[test]
    fn a_non_zero_exit_is_retried_only_when_listed() {
        let mut execution = retries(2);
        assert!(!is_retryable(&execution, &exited(1)));
        execution.retry_on_exit_codes = vec![75, 1];
        assert!(is_retryable(&execution, &exited(1)));
        assert!(is_retryable(&execution, &exited(75)));
        assert!(!is_retryable(&execution, &exited(2)));
        assert!(!is_retryable(&execution, &exited(0)));
    }

    #[test]
    fn success_is_final_even_when_zero_is_listed() {
        let execution = Execution {
            retries: 2,
            retry_on_exit_codes: vec![0],
            ..Default::default()
        };
        assert_eq!(next_attempt_after(&execution, 1, &exited(0)), None);
    }

    #[test]
    fn backoff_doubles_from_the_default_and_attempts_stop_at_the_count() {
        let execution = retries(3);
        let delays: Vec<_> = (1..=4)
            .map(|attempt| next_attempt_after(&execution, attempt, &rejected(503)))
            .collect();
        assert_eq!(
            delays,
            [
                Some(Duration::from_secs(1)),
                Some(Duration::from_secs(2)),
                Some(Duration::from_secs(4)),
                None
            ]
        );
    }

    #[test]
    fn backoff_starts_at_the_hooks_value_and_is_capped() {
        let execution = Execution {
            retries: 10,
            retry_backoff: Duration::from_millis(250),
            ..Default::default()
        };
        assert_eq!(
            next_attempt_after(&execution, 1, &rejected(503)),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            next_attempt_after(&execution, 3, &rejected(503)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            next_attempt_after(&execution, 10, &rejected(503)),
            Some(MAX_RETRY_BACKOFF)
        );
    }

    #[test]
    fn retries_beyond_the_maximum_are_capped() {
        assert_eq!(max_attempts(&retries(1000)), MAX_RETRIES + 1);
        assert_eq!(
            next_attempt_after(&retries(1000), MAX_RETRIES + 1, &rejected(503)),
            None
        );
    }
}
