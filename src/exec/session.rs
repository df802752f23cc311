//! Commands with stdin, over an [`ExecStream`] from [`Executor::start`]:
//! - [`exec_with_stdin`]: write the hook's `stdin`, close stdin, wait for the exit — a one-shot
//!   hook that reads its input;
//! - [`open`]: write the pre hook's `stdin` and wait for its ready text on stdout, then keep the
//!   command running with stdin open — a [`HeldSession`] — until [`HeldSession::end`] writes the
//!   post input, closes stdin and waits for the exit.
//!
//! Why a session: `FLUSH TABLES WITH READ LOCK` and `pg_backup_start` hold only while their
//! database connection is open, so the client that ran them must outlive the pre hook and be
//! ended at the thaw. A database releases what a connection held when the connection closes,
//! so ending the session — however it ends — is the thaw of last resort.
//!
//! Everything is bounded: output is captured up to [`OUTPUT_LIMIT`] per stream (the rest
//! counted), the ready text is searched in a window of its own length, every wait has a
//! deadline, and a held session whose handle is dropped ends by itself (its stdin closed, then
//! its stream) — a panic or an abandoned freeze cannot leave a lock behind in this process.
//!
//! The exec protocol: closing stdin alone needs the `v5.channel.k8s.io` close signal. On a
//! `v4.channel.k8s.io` stream ([`ExecStream::can_close_stdin`] false) stdin stays open: the
//! input must itself end the program (`\q`, `quit`), or the command runs until the deadline,
//! when the stream is closed (on a real cluster that closes its stdin too, but its output
//! and exit code are lost). Nothing here logs, except [`HeldSession`]'s early-exit callback,
//! which the caller supplies.

use std::fmt;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{
    Captured, ExecAttempt, ExecError, ExecRequest, ExecStream, Executor, StreamEvent, OUTPUT_LIMIT,
};
use crate::hooks::format_go_duration;

/// How long closing stdin may take when a session is dropped or abandoned.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Why a session did not hold, or did not end well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionFailure {
    /// The command exited before the ready text appeared on its stdout.
    ExitedBeforeReady {
        /// The text waited for.
        ready: String,
        /// Its exit code.
        exit_code: i32,
    },
    /// The ready text did not appear within the hook's timeout; the session was ended.
    NotReady {
        /// The text waited for.
        ready: String,
        /// The timeout.
        after: Duration,
    },
    /// The session ended on its own while it was held, before the thaw: what it held (a lock,
    /// a backup mode) was released then, so the snapshot may not have been covered.
    EndedEarly {
        /// How long it had been held.
        held: Duration,
        /// How it ended: `exit code N` or the stream's error.
        how: String,
    },
    /// At the thaw, the session did not exit within the timeout after its input; its stream
    /// was closed.
    DidNotExit {
        /// The timeout.
        after: Duration,
        /// Whether its stdin had been closed (false on a `v4.channel.k8s.io` stream).
        stdin_closed: bool,
    },
}

impl fmt::Display for SessionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionFailure::ExitedBeforeReady { ready, exit_code } => write!(
                f,
                "command exited with code {exit_code} before {ready:?} appeared on its stdout"
            ),
            SessionFailure::NotReady { ready, after } => write!(
                f,
                "timed out after {} waiting for {ready:?} on its stdout; the session was ended",
                format_go_duration(*after)
            ),
            SessionFailure::EndedEarly { held, how } => write!(
                f,
                "the held session ended {} into the freeze, before the thaw ({how}): what it \
                 held was released early",
                format_go_duration(round_to_millis(*held))
            ),
            SessionFailure::DidNotExit {
                after,
                stdin_closed: true,
            } => write!(
                f,
                "the held session did not exit within {} after its stdin was closed; its \
                 stream was closed",
                format_go_duration(*after)
            ),
            SessionFailure::DidNotExit {
                after,
                stdin_closed: false,
            } => write!(
                f,
                "the held session did not exit within {}; the API server speaks only \
                 v4.channel.k8s.io, which cannot close stdin without closing the stream, so end \
                 the post stdin with a command that ends the client (such as \\q); its stream \
                 was closed",
                format_go_duration(*after)
            ),
        }
    }
}

impl std::error::Error for SessionFailure {}

fn round_to_millis(duration: Duration) -> Duration {
    Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

/// Runs `request` with `stdin` written to it and then closed, capturing its output, all
/// within `request.timeout` — [`Executor::exec_keeping_partial_stderr`] for a hook with stdin.
/// On a `v4.channel.k8s.io` stream stdin cannot be closed: a command that reads to its end
/// then runs until the timeout ([`ExecError::StdinNotClosed`]).
pub async fn exec_with_stdin(
    executor: &dyn Executor,
    request: &ExecRequest,
    stdin: &[u8],
) -> ExecAttempt {
    let started = Instant::now();
    let deadline = started + request.timeout;
    let mut stdout = Captured::default();
    let mut stderr = Captured::default();
    let mut stdin_left_open = false;
    let run = async {
        let mut stream = executor.start(request).await?;
        // A write that fails means the stream ended: its end event says how.
        let _ = stream.write_stdin(stdin).await;
        if stream.can_close_stdin() {
            let _ = stream.close_stdin().await;
        } else {
            stdin_left_open = true;
        }
        until_exit(stream.as_mut(), &mut stdout, &mut stderr).await
    };
    let exit = match tokio::time::timeout_at(deadline, run).await {
        Ok(exit) => exit,
        Err(_elapsed) if stdin_left_open => Err(ExecError::StdinNotClosed(request.timeout)),
        Err(_elapsed) => Err(ExecError::TimedOut(request.timeout)),
    };
    ExecAttempt::ended(exit, stdout, stderr, started.elapsed())
}

/// Captures the stream's output until the command's end.
async fn until_exit(
    stream: &mut dyn ExecStream,
    stdout: &mut Captured,
    stderr: &mut Captured,
) -> Result<i32, ExecError> {
    loop {
        match stream.next_event().await {
            StreamEvent::Stdout(chunk) => stdout.push(&chunk, OUTPUT_LIMIT),
            StreamEvent::Stderr(chunk) => stderr.push(&chunk, OUTPUT_LIMIT),
            StreamEvent::Exited(result) => return result,
        }
    }
}

/// How opening a session went.
#[derive(Debug)]
pub enum OpenFailure {
    /// The exec failed: not started, the stream dropped, a remote failure.
    Exec(ExecError),
    /// The command exited, with this code, before its ready text.
    ExitedBeforeReady(i32),
    /// The ready text did not come within the timeout.
    NotReady,
}

/// What [`open`] came to: the session, or why not, with the output until then.
#[derive(Debug)]
pub struct Opening {
    /// The held session, or why there is none (then nothing is left running by this
    /// process: the stream was ended).
    pub result: Result<HeldSession, OpenFailure>,
    /// Stdout until the chunk that carried the ready text (or until the failure).
    pub stdout: Captured,
    /// Stderr until then.
    pub stderr: Captured,
    /// From the start of the exec to the ready text (or the failure).
    pub duration: Duration,
}

/// Called once, from the session's task, when a held session ends on its own before the
/// thaw: how long it had been held, and how it ended.
pub type EarlyExit = Box<dyn FnOnce(Duration, &Result<i32, ExecError>) + Send>;

/// Starts `request`, writes `stdin` (if any) and waits, within `request.timeout`, for `ready`
/// to appear on its stdout; the command then keeps running with stdin open, and the returned
/// [`HeldSession`] keeps reading its output until [`HeldSession::end`]. `early_exit` is called
/// if the command ends on its own before that.
pub async fn open(
    executor: &dyn Executor,
    request: &ExecRequest,
    stdin: Option<&[u8]>,
    ready: &str,
    early_exit: EarlyExit,
) -> Opening {
    let started = Instant::now();
    let deadline = started + request.timeout;
    let mut stdout = Captured::default();
    let mut stderr = Captured::default();
    let mut stream = match tokio::time::timeout_at(deadline, executor.start(request)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return failed(OpenFailure::Exec(error), stdout, stderr, started),
        Err(_) => {
            let error = ExecError::TimedOut(request.timeout);
            return failed(OpenFailure::Exec(error), stdout, stderr, started);
        }
    };
    if let Some(stdin) = stdin {
        let _ = tokio::time::timeout_at(deadline, stream.write_stdin(stdin)).await;
    }
    let mut finder = ReadyFinder::new(ready.as_bytes());
    loop {
        let event = match tokio::time::timeout_at(deadline, stream.next_event()).await {
            Ok(event) => event,
            Err(_) => {
                end_abandoned(stream).await;
                return failed(OpenFailure::NotReady, stdout, stderr, started);
            }
        };
        match event {
            StreamEvent::Stdout(chunk) => {
                stdout.push(&chunk, OUTPUT_LIMIT);
                if finder.found_in(&chunk) {
                    break;
                }
            }
            StreamEvent::Stderr(chunk) => stderr.push(&chunk, OUTPUT_LIMIT),
            StreamEvent::Exited(Ok(code)) => {
                return failed(
                    OpenFailure::ExitedBeforeReady(code),
                    stdout,
                    stderr,
                    started,
                )
            }
            StreamEvent::Exited(Err(error)) => {
                return failed(OpenFailure::Exec(error), stdout, stderr, started)
            }
        }
    }
    let duration = started.elapsed();
    Opening {
        result: Ok(HeldSession::hold(stream, early_exit)),
        stdout,
        stderr,
        duration,
    }
}

fn failed(failure: OpenFailure, stdout: Captured, stderr: Captured, started: Instant) -> Opening {
    Opening {
        result: Err(failure),
        stdout,
        stderr,
        duration: started.elapsed(),
    }
}

/// Ends a stream nobody will read: its stdin closed (the command reads end-of-file), then the
/// stream dropped (the connection closed).
async fn end_abandoned(mut stream: Box<dyn ExecStream>) {
    let _ = tokio::time::timeout(CLOSE_GRACE, stream.close_stdin()).await;
}

/// Finds a text in a byte stream that arrives in chunks, keeping only the last bytes that
/// could begin it.
struct ReadyFinder<'a> {
    text: &'a [u8],
    tail: Vec<u8>,
}

impl<'a> ReadyFinder<'a> {
    fn new(text: &'a [u8]) -> Self {
        ReadyFinder {
            text,
            tail: Vec::new(),
        }
    }

    /// Whether the text ends in `chunk` (possibly begun in earlier chunks).
    fn found_in(&mut self, chunk: &[u8]) -> bool {
        if self.text.is_empty() {
            return true;
        }
        self.tail.extend_from_slice(chunk);
        if self
            .tail
            .windows(self.text.len())
            .any(|window| window == self.text)
        {
            return true;
        }
        let keep = self.text.len() - 1;
        if self.tail.len() > keep {
            self.tail.drain(..self.tail.len() - keep);
        }
        false
    }
}

/// What the thaw asks of a held session.
#[derive(Debug)]
struct EndRequest {
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

/// A command that printed its ready text and runs on with stdin open, until the thaw.
/// Its output is read meanwhile (bounded), so that it never blocks writing it.
///
/// Dropping it without [`HeldSession::end`] ends the session too: its stdin is closed, then
/// its stream.
#[derive(Debug)]
pub struct HeldSession {
    end_tx: Option<oneshot::Sender<EndRequest>>,
    task: Option<JoinHandle<SessionEnd>>,
    held_since: Instant,
    can_close_stdin: bool,
    pid: Option<u32>,
}

/// How a held session ended ([`HeldSession::end`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    /// Its exit code, or why there is none: the failure of the session, or of its stream.
    pub result: Result<i32, SessionEndError>,
    /// Its stdout since the ready text (bounded).
    pub stdout: Captured,
    /// Its stderr since the ready text (bounded).
    pub stderr: Captured,
    /// From the ready text to the end's request (or to its own end, if that came first).
    pub held: Duration,
    /// From the end's request to the exit (or to the timeout).
    pub duration: Duration,
}

/// Why a held session has no exit code to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEndError {
    /// The session failed (ended early, did not exit).
    Session(SessionFailure),
    /// Its stream failed (dropped without an exit status, a remote failure).
    Exec(ExecError),
}

impl HeldSession {
    fn hold(stream: Box<dyn ExecStream>, early_exit: EarlyExit) -> HeldSession {
        let held_since = Instant::now();
        let can_close_stdin = stream.can_close_stdin();
        let (end_tx, end_rx) = oneshot::channel();
        let task = tokio::spawn(keep(stream, end_rx, early_exit, held_since));
        HeldSession {
            end_tx: Some(end_tx),
            task: Some(task),
            held_since,
            can_close_stdin,
            pid: None,
        }
    }

    /// The PID of the session's command, when the hook learnt it (kill-on-timeout's wrapper):
    /// to stop it when it does not exit at the thaw.
    pub fn with_pid(mut self, pid: Option<u32>) -> Self {
        self.pid = pid;
        self
    }

    /// The PID given by [`HeldSession::with_pid`].
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Whether the session's stdin can be closed at the thaw (a `v5.channel.k8s.io` stream).
    pub fn can_close_stdin(&self) -> bool {
        self.can_close_stdin
    }

    /// How long it has been held so far.
    pub fn held(&self) -> Duration {
        self.held_since.elapsed()
    }

    /// The thaw: writes `stdin` (if any), closes stdin, and waits up to `timeout` for the
    /// command to exit. If it does not, its stream is closed and the failure says so.
    pub async fn end(mut self, stdin: Option<Vec<u8>>, timeout: Duration) -> SessionEnd {
        let held = self.held_since.elapsed();
        let (Some(end_tx), Some(task)) = (self.end_tx.take(), self.task.take()) else {
            return stream_failed(held, "the session was already ended".to_owned());
        };
        // If the task is gone (it cannot be: it waits for this), its result says why.
        let _ = end_tx.send(EndRequest { stdin, timeout });
        match task.await {
            Ok(end) => end,
            Err(error) => stream_failed(held, format!("the session's task failed: {error}")),
        }
    }
}

impl Drop for HeldSession {
    fn drop(&mut self) {
        // Dropping the sender tells the task to close stdin and the stream; it ends by itself.
        self.end_tx.take();
    }
}

fn stream_failed(held: Duration, reason: String) -> SessionEnd {
    SessionEnd {
        result: Err(SessionEndError::Exec(ExecError::StreamDropped(reason))),
        stdout: Captured::default(),
        stderr: Captured::default(),
        held,
        duration: Duration::ZERO,
    }
}

/// The session's task: reads its output until the end is asked for (or its handle dropped),
/// then ends it.
async fn keep(
    mut stream: Box<dyn ExecStream>,
    mut end_rx: oneshot::Receiver<EndRequest>,
    early_exit: EarlyExit,
    held_since: Instant,
) -> SessionEnd {
    let mut stdout = Captured::default();
    let mut stderr = Captured::default();
    let mut early_exit = Some(early_exit);
    let mut ended: Option<(Duration, Result<i32, ExecError>)> = None;
    let request = loop {
        tokio::select! {
            request = &mut end_rx => break request.ok(),
            event = stream.next_event(), if ended.is_none() => match event {
                StreamEvent::Stdout(chunk) => stdout.push(&chunk, OUTPUT_LIMIT),
                StreamEvent::Stderr(chunk) => stderr.push(&chunk, OUTPUT_LIMIT),
                StreamEvent::Exited(result) => {
                    let held = held_since.elapsed();
                    if let Some(report) = early_exit.take() {
                        report(held, &result);
                    }
                    ended = Some((held, result));
                }
            },
        }
    };
    let Some(request) = request else {
        // The handle was dropped: end the session.
        if ended.is_none() {
            end_abandoned(stream).await;
        }
        return stream_failed(held_since.elapsed(), "the session was dropped".to_owned());
    };
    let held = held_since.elapsed();
    if let Some((held, result)) = ended {
        let how = match &result {
            Ok(code) => format!("exit code {code}"),
            Err(error) => error.to_string(),
        };
        return SessionEnd {
            result: Err(SessionEndError::Session(SessionFailure::EndedEarly {
                held,
                how,
            })),
            stdout,
            stderr,
            held,
            duration: Duration::ZERO,
        };
    }
    let started = Instant::now();
    let deadline = started + request.timeout;
    let stdin_closed = stream.can_close_stdin();
    let finish = async {
        if let Some(stdin) = &request.stdin {
            let _ = stream.write_stdin(stdin).await;
        }
        if stdin_closed {
            let _ = stream.close_stdin().await;
        }
        until_exit(stream.as_mut(), &mut stdout, &mut stderr).await
    };
    let result = match tokio::time::timeout_at(deadline, finish).await {
        Ok(Ok(code)) => Ok(code),
        Ok(Err(error)) => Err(SessionEndError::Exec(error)),
        Err(_) => Err(SessionEndError::Session(SessionFailure::DidNotExit {
            after: request.timeout,
            stdin_closed,
        })),
    };
    // The stream is dropped here: on a timeout that closes the connection.
    SessionEnd {
        result,
        stdout,
        stderr,
        held,
        duration: started.elapsed(),
    }
}

#[cfg(test)]
pub(crate) mod tests;
