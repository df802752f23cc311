//! What happened, in order: the exec timeline (start and end of every exec, plus markers that
//! tests append, so they can assert `freeze < snapshot < thaw`) and the raw request log. Times
//! are offsets from the server's start on the monotonic clock. Recording only; no decisions.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::http::parse_query;

/// Identity of one exec request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecInfo {
    /// Server-assigned id, increasing in arrival order; pairs start and end events.
    pub id: u64,
    /// Namespace of the pod.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container the command ran (or would have run) in.
    pub container: String,
    /// The command, exactly as sent (`command=` query values in order).
    pub argv: Vec<String>,
}

/// How an exec ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutcome {
    /// The command ran to completion. Killed-by-signal commands report `128 + signal`.
    Exited {
        /// Exit code (0 = success).
        code: i32,
    },
    /// The command could not be started (e.g. executable not found).
    StartFailed {
        /// What the OS said.
        message: String,
    },
    /// The client went away before the command finished; its process group was killed.
    ClientDisconnected,
    /// The request was refused before any command ran (validation error or injected fault).
    Rejected {
        /// HTTP status code answered.
        code: u16,
        /// The Status message.
        message: String,
    },
    /// An injected fault closed the connection without a status.
    Dropped {
        /// Whether the command had been run before the drop.
        command_ran: bool,
    },
}

/// One entry of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEvent {
    /// Position in the timeline (0, 1, 2, …); strictly increasing.
    pub seq: u64,
    /// Time since the server started (monotonic clock).
    pub at: Duration,
    /// What happened.
    pub kind: TimelineEventKind,
}

/// The kinds of timeline entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimelineEventKind {
    /// A command was spawned (or, for a rejected exec, was about to be considered).
    ExecStarted {
        /// Which exec.
        exec: ExecInfo,
        /// Process id of the spawned command, when one was spawned.
        pid: Option<u32>,
    },
    /// An exec finished, one way or another.
    ExecFinished {
        /// Which exec.
        exec: ExecInfo,
        /// How it ended.
        outcome: ExecOutcome,
    },
    /// A marker a test added through [`crate::FakeKube::mark`].
    Marker {
        /// Free text, e.g. `snapshot pvc/data`.
        label: String,
    },
}

/// A summary of one exec built from its start and end events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRecord {
    /// Which exec.
    pub exec: ExecInfo,
    /// Process id, if a process was spawned.
    pub pid: Option<u32>,
    /// Timeline position of the start event.
    pub start_seq: u64,
    /// Time of the start event.
    pub started: Duration,
    /// Timeline position of the end event, when it has ended.
    pub end_seq: Option<u64>,
    /// Time of the end event, when it has ended.
    pub ended: Option<Duration>,
    /// How it ended, when it has ended.
    pub outcome: Option<ExecOutcome>,
}

/// The ordered event log. Appends take a short lock; waiters are woken through a watch channel.
pub(crate) struct Timeline {
    started: Instant,
    events: Mutex<Vec<TimelineEvent>>,
    changed: watch::Sender<u64>,
}

impl Timeline {
    pub(crate) fn new(started: Instant) -> Self {
        let (changed, _) = watch::channel(0);
        Self {
            started,
            events: Mutex::new(Vec::new()),
            changed,
        }
    }

    /// Appends an event and returns its sequence number.
    pub(crate) fn push(&self, kind: TimelineEventKind) -> u64 {
        let seq = {
            let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
            let seq = events.len() as u64;
            events.push(TimelineEvent {
                seq,
                at: self.started.elapsed(),
                kind,
            });
            seq
        };
        self.changed.send_replace(seq + 1);
        seq
    }

    pub(crate) fn snapshot(&self) -> Vec<TimelineEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// Pairs start and end events into one record per exec, in start order.
pub fn exec_records(events: &[TimelineEvent]) -> Vec<ExecRecord> {
    let mut records: Vec<ExecRecord> = Vec::new();
    for event in events {
        match &event.kind {
            TimelineEventKind::ExecStarted { exec, pid } => records.push(ExecRecord {
                exec: exec.clone(),
                pid: *pid,
                start_seq: event.seq,
                started: event.at,
                end_seq: None,
                ended: None,
                outcome: None,
            }),
            TimelineEventKind::ExecFinished { exec, outcome } => {
                if let Some(record) = records.iter_mut().find(|r| r.exec.id == exec.id) {
                    record.end_seq = Some(event.seq);
                    record.ended = Some(event.at);
                    record.outcome = Some(outcome.clone());
                }
            }
            TimelineEventKind::Marker { .. } => {}
        }
    }
    records
}

/// One HTTP request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// Time since the server started.
    pub at: Duration,
    /// HTTP method (`GET`, `POST`, …).
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// The raw query string, if any (still percent-encoded).
    pub query: Option<String>,
    /// All request headers, names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
}

impl RequestRecord {
    /// The first value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The query decoded into `(key, value)` pairs, in order (repeated keys kept).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        parse_query(self.query.as_deref())
    }

    /// All decoded values of one query parameter.
    pub fn query_values(&self, key: &str) -> Vec<String> {
        self.query_pairs()
            .into_iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v)
            .collect()
    }
}

/// The request log.
#[derive(Default)]
pub(crate) struct RequestLog {
    records: Mutex<Vec<RequestRecord>>,
}

impl RequestLog {
    pub(crate) fn push(&self, record: RequestRecord) {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record);
    }

    pub(crate) fn snapshot(&self) -> Vec<RequestRecord> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn clear(&self) {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_records_pair_start_and_end() {
        let timeline = Timeline::new(Instant::now());
        let exec = ExecInfo {
            id: 7,
            namespace: "ns".into(),
            pod: "p".into(),
            container: "c".into(),
            argv: vec!["true".into()],
        };
        timeline.push(TimelineEventKind::ExecStarted {
            exec: exec.clone(),
            pid: Some(1),
        });
        timeline.push(TimelineEventKind::Marker { label: "m".into() });
        timeline.push(TimelineEventKind::ExecFinished {
            exec,
            outcome: ExecOutcome::Exited { code: 0 },
        });
        let records = exec_records(&timeline.snapshot());
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].start_seq, 0);
        assert_eq!(records[0].end_seq, Some(2));
        assert_eq!(records[0].outcome, Some(ExecOutcome::Exited { code: 0 }));
    }
}
