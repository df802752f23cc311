//! Tests of commands with stdin over a scripted stream, and the scripted stream itself
//! ([`Program`], [`Programmed`]), which the hook and engine tests use too.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::*;
use crate::exec::{ExecOutput, ExecRequest};

/// A fake command over a stream: what it sends when started, in answer to each stdin write
/// (in order), and when its stdin is closed. Once its events run out it waits forever, like
/// a client holding its connection open.
#[derive(Debug, Clone, Default)]
pub(crate) struct Program {
    /// Whether the stream can close stdin alone (`v5.channel.k8s.io`).
    pub v5: bool,
    /// Sent at once.
    pub on_start: Vec<StreamEvent>,
    /// Sent after the first, second, … stdin write.
    pub on_stdin: Vec<Vec<StreamEvent>>,
    /// Sent after stdin is closed (v5 only).
    pub on_close: Vec<StreamEvent>,
}

impl Program {
    /// A `v5` program.
    pub fn v5() -> Self {
        Program {
            v5: true,
            ..Program::default()
        }
    }

    /// A `v4` program: its stdin cannot be closed.
    pub fn v4() -> Self {
        Program::default()
    }

    /// A database client holding a lock: prints `ready` after its first input, exits 0 once
    /// stdin is closed (on v4: after a second input).
    pub fn holding(ready: &str, v5: bool) -> Self {
        let mut program = Program {
            v5,
            on_stdin: vec![vec![StreamEvent::Stdout(ready.as_bytes().to_vec())]],
            ..Program::default()
        };
        if v5 {
            program.on_close = vec![StreamEvent::Exited(Ok(0))];
        } else {
            program.on_stdin.push(vec![StreamEvent::Exited(Ok(0))]);
        }
        program
    }
}

/// What a [`Programmed`] stream was sent: `stdin <text>`, `close`, `dropped`.
pub(crate) type Record = Arc<Mutex<Vec<String>>>;

/// A stream playing a [`Program`], recording what it is sent.
pub(crate) struct Programmed {
    program: Program,
    queue: VecDeque<StreamEvent>,
    writes: usize,
    ended: Option<Result<i32, ExecError>>,
    record: Record,
}

impl Programmed {
    /// Starts `program`, recording into `record`.
    pub fn start(program: Program, record: Record) -> Self {
        Programmed {
            queue: program.on_start.iter().cloned().collect(),
            program,
            writes: 0,
            ended: None,
            record,
        }
    }
}

impl Drop for Programmed {
    fn drop(&mut self) {
        self.record.lock().unwrap().push("dropped".to_owned());
    }
}

#[async_trait::async_trait]
impl ExecStream for Programmed {
    async fn write_stdin(&mut self, data: &[u8]) -> Result<(), ExecError> {
        self.record
            .lock()
            .unwrap()
            .push(format!("stdin {}", String::from_utf8_lossy(data)));
        if let Some(reply) = self.program.on_stdin.get(self.writes) {
            self.queue.extend(reply.iter().cloned());
        }
        self.writes += 1;
        Ok(())
    }

    fn can_close_stdin(&self) -> bool {
        self.program.v5
    }

    async fn close_stdin(&mut self) -> Result<(), ExecError> {
        if self.program.v5 {
            self.record.lock().unwrap().push("close".to_owned());
            self.queue.extend(self.program.on_close.iter().cloned());
        }
        Ok(())
    }

    async fn next_event(&mut self) -> StreamEvent {
        if let Some(ended) = &self.ended {
            return StreamEvent::Exited(ended.clone());
        }
        match self.queue.pop_front() {
            Some(StreamEvent::Exited(result)) => {
                self.ended = Some(result.clone());
                StreamEvent::Exited(result)
            }
            Some(event) => event,
            None => std::future::pending().await,
        }
    }
}

/// Starts every command as the same [`Program`]; answers plain execs (a kill) with `exec`.
pub(crate) struct ProgramExecutor {
    pub program: Program,
    pub record: Record,
    /// Refuse to start, with this error.
    pub refuse: Option<ExecError>,
    /// The answer to a plain exec.
    pub exec: Result<ExecOutput, ExecError>,
}

impl ProgramExecutor {
    /// Starts `program`.
    pub fn new(program: Program) -> Self {
        ProgramExecutor {
            program,
            record: Record::default(),
            refuse: None,
            exec: Err(ExecError::Request("no plain exec expected".into())),
        }
    }

    /// What the streams were sent, and the execs made (`exec <argv[0]>`).
    pub fn record(&self) -> Vec<String> {
        self.record.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Executor for ProgramExecutor {
    async fn exec(&self, request: &ExecRequest) -> Result<ExecOutput, ExecError> {
        self.record
            .lock()
            .unwrap()
            .push(format!("exec {}", request.command.join(" ")));
        self.exec.clone()
    }

    async fn start(&self, request: &ExecRequest) -> Result<Box<dyn ExecStream>, ExecError> {
        if let Some(error) = &self.refuse {
            return Err(error.clone());
        }
        self.record
            .lock()
            .unwrap()
            .push(format!("start {}", request.command.join(" ")));
        Ok(Box::new(Programmed::start(
            self.program.clone(),
            Arc::clone(&self.record),
        )))
    }
}

fn request(timeout: Duration) -> ExecRequest {
    ExecRequest {
        namespace: "ns".into(),
        pod: "db-0".into(),
        container: "db".into(),
        command: vec!["mysql".into()],
        timeout,
    }
}

fn no_early_exit() -> EarlyExit {
    Box::new(|_, _| panic!("the session did not end early"))
}

#[tokio::test]
async fn stdin_is_written_then_closed_and_the_exit_collected() {
    let executor = ProgramExecutor::new(Program {
        on_stdin: vec![vec![StreamEvent::Stdout(b"1 row\n".to_vec())]],
        on_close: vec![
            StreamEvent::Stderr(b"bye\n".to_vec()),
            StreamEvent::Exited(Ok(3)),
        ],
        ..Program::v5()
    });
    let attempt =
        exec_with_stdin(&executor, &request(Duration::from_secs(5)), b"SELECT 1;\n").await;
    let output = attempt.result.unwrap();
    assert_eq!(output.exit_code, 3);
    assert_eq!(output.stdout.text(), "1 row\n");
    assert_eq!(output.stderr.text(), "bye\n");
    assert_eq!(
        executor.record(),
        ["start mysql", "stdin SELECT 1;\n", "close", "dropped"]
    );
}

#[tokio::test(start_paused = true)]
async fn on_v4_stdin_stays_open_and_the_timeout_says_why() {
    let executor = ProgramExecutor::new(Program::v4());
    let attempt =
        exec_with_stdin(&executor, &request(Duration::from_secs(5)), b"SELECT 1;\n").await;
    let error = attempt.result.unwrap_err();
    assert_eq!(error, ExecError::StdinNotClosed(Duration::from_secs(5)));
    assert!(error.to_string().contains("v4.channel.k8s.io"), "{error}");
    assert!(error.may_have_run() && !error.is_transient());
    assert_eq!(
        executor.record(),
        ["start mysql", "stdin SELECT 1;\n", "dropped"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_program_that_ends_itself_on_v4_succeeds() {
    let executor = ProgramExecutor::new(Program {
        on_stdin: vec![vec![StreamEvent::Exited(Ok(0))]],
        ..Program::v4()
    });
    let attempt = exec_with_stdin(&executor, &request(Duration::from_secs(5)), b"\\q\n").await;
    assert_eq!(attempt.result.unwrap().exit_code, 0);
}

#[tokio::test]
async fn a_start_that_fails_is_the_exec_error() {
    let mut executor = ProgramExecutor::new(Program::v5());
    executor.refuse = Some(ExecError::Unreachable("refused".into()));
    let attempt = exec_with_stdin(&executor, &request(Duration::from_secs(5)), b"x\n").await;
    assert_eq!(
        attempt.result,
        Err(ExecError::Unreachable("refused".into()))
    );
}

#[test]
fn the_ready_text_is_found_across_chunks_with_a_bounded_tail() {
    let mut finder = ReadyFinder::new(b"quiesce-frozen");
    assert!(!finder.found_in(b"+-----+\nquiesce-fr"));
    assert!(finder.tail.len() < b"quiesce-frozen".len());
    assert!(finder.found_in(b"ozen\n"));
    let mut finder = ReadyFinder::new(b"ready");
    for _ in 0..1000 {
        assert!(!finder.found_in(b"not yet, not yet\n"));
    }
    assert!(finder.tail.len() < 5);
    assert!(!finder.found_in(b"rea"));
    assert!(finder.found_in(b"dy"));
}

#[tokio::test]
async fn a_session_holds_at_its_ready_text_and_ends_at_the_thaw() {
    let executor = ProgramExecutor::new(Program {
        on_stdin: vec![
            vec![
                StreamEvent::Stdout(b"quiesce-".to_vec()),
                StreamEvent::Stdout(b"frozen\n".to_vec()),
            ],
            vec![StreamEvent::Stdout(b"0/2000100|LABEL: quiesce\n".to_vec())],
        ],
        on_close: vec![StreamEvent::Exited(Ok(0))],
        ..Program::v5()
    });
    let opening = open(
        &executor,
        &request(Duration::from_secs(5)),
        Some(b"SELECT pg_backup_start('q');\n"),
        "quiesce-frozen",
        no_early_exit(),
    )
    .await;
    assert_eq!(opening.stdout.text(), "quiesce-frozen\n");
    let session = opening.result.unwrap();
    assert!(session.can_close_stdin());
    assert_eq!(
        executor.record(),
        ["start mysql", "stdin SELECT pg_backup_start('q');\n"]
    );

    let end = session
        .end(
            Some(b"SELECT * FROM pg_backup_stop();\n".to_vec()),
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(end.result, Ok(0));
    assert_eq!(end.stdout.text(), "0/2000100|LABEL: quiesce\n");
    assert_eq!(
        executor.record()[2..],
        [
            "stdin SELECT * FROM pg_backup_stop();\n",
            "close",
            "dropped"
        ]
    );
}

#[tokio::test]
async fn a_session_that_exits_before_its_ready_text_holds_nothing() {
    let executor = ProgramExecutor::new(Program {
        on_stdin: vec![vec![
            StreamEvent::Stderr(b"ERROR 1045: Access denied\n".to_vec()),
            StreamEvent::Exited(Ok(1)),
        ]],
        ..Program::v5()
    });
    let opening = open(
        &executor,
        &request(Duration::from_secs(5)),
        Some(b"FLUSH TABLES WITH READ LOCK;\n"),
        "quiesce-frozen",
        no_early_exit(),
    )
    .await;
    assert!(matches!(
        opening.result,
        Err(OpenFailure::ExitedBeforeReady(1))
    ));
    assert_eq!(opening.stderr.text(), "ERROR 1045: Access denied\n");
    assert_eq!(executor.record().last().unwrap(), "dropped");
}

#[tokio::test(start_paused = true)]
async fn a_session_without_its_ready_text_is_ended_at_the_timeout() {
    let executor = ProgramExecutor::new(Program {
        on_stdin: vec![vec![StreamEvent::Stdout(b"something else\n".to_vec())]],
        ..Program::v5()
    });
    let started = Instant::now();
    let opening = open(
        &executor,
        &request(Duration::from_secs(3)),
        Some(b"FLUSH TABLES WITH READ LOCK;\n"),
        "quiesce-frozen",
        no_early_exit(),
    )
    .await;
    assert!(matches!(opening.result, Err(OpenFailure::NotReady)));
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(opening.stdout.text(), "something else\n");
    // Its stdin closed (the client exits and lets go of its lock), then its stream.
    assert_eq!(executor.record()[2..], ["close", "dropped"]);
}

#[tokio::test(start_paused = true)]
async fn a_session_that_does_not_exit_at_the_thaw_is_ended() {
    let executor = ProgramExecutor::new(Program {
        on_stdin: vec![vec![StreamEvent::Stdout(b"ready\n".to_vec())]],
        ..Program::v5()
    });
    let opening = open(
        &executor,
        &request(Duration::from_secs(3)),
        None,
        "ready",
        no_early_exit(),
    )
    .await;
    // Nothing was written: the ready text never comes.
    assert!(matches!(opening.result, Err(OpenFailure::NotReady)));

    let executor = ProgramExecutor::new(Program {
        on_start: vec![StreamEvent::Stdout(b"ready\n".to_vec())],
        ..Program::v5()
    });
    let session = open(
        &executor,
        &request(Duration::from_secs(3)),
        None,
        "ready",
        no_early_exit(),
    )
    .await
    .result
    .unwrap();
    let end = session.end(None, Duration::from_secs(2)).await;
    assert_eq!(
        end.result,
        Err(SessionEndError::Session(SessionFailure::DidNotExit {
            after: Duration::from_secs(2),
            stdin_closed: true
        }))
    );
    assert_eq!(end.duration, Duration::from_secs(2));
    assert_eq!(executor.record()[1..], ["close", "dropped"]);
}

#[tokio::test(start_paused = true)]
async fn on_v4_the_post_input_must_end_the_session() {
    for (post_stdin, exits) in [
        (Some(b"UNLOCK TABLES; \\q\n".to_vec()), true),
        (None, false),
    ] {
        let executor = ProgramExecutor::new(Program::holding("quiesce-frozen", false));
        let session = open(
            &executor,
            &request(Duration::from_secs(3)),
            Some(b"FLUSH TABLES WITH READ LOCK; SELECT 'quiesce-frozen';\n"),
            "quiesce-frozen",
            no_early_exit(),
        )
        .await
        .result
        .unwrap();
        assert!(!session.can_close_stdin());
        let end = session.end(post_stdin, Duration::from_secs(2)).await;
        if exits {
            assert_eq!(end.result, Ok(0));
        } else {
            let failure = SessionFailure::DidNotExit {
                after: Duration::from_secs(2),
                stdin_closed: false,
            };
            assert!(
                failure.to_string().contains("v4.channel.k8s.io"),
                "{failure}"
            );
            assert_eq!(end.result, Err(SessionEndError::Session(failure)));
        }
        assert!(!executor.record().contains(&"close".to_owned()));
    }
}

#[tokio::test(start_paused = true)]
async fn a_session_that_ends_while_held_is_reported_at_once_and_at_the_thaw() {
    let executor = ProgramExecutor::new(Program {
        on_stdin: vec![vec![
            StreamEvent::Stdout(b"quiesce-frozen\n".to_vec()),
            StreamEvent::Stderr(b"Lost connection to server\n".to_vec()),
            StreamEvent::Exited(Ok(1)),
        ]],
        ..Program::v5()
    });
    let reported: Arc<Mutex<Vec<String>>> = Arc::default();
    let report = Arc::clone(&reported);
    let session = open(
        &executor,
        &request(Duration::from_secs(3)),
        Some(b"FLUSH TABLES WITH READ LOCK; SELECT 'quiesce-frozen';\n"),
        "quiesce-frozen",
        Box::new(move |_, result| report.lock().unwrap().push(format!("{result:?}"))),
    )
    .await
    .result
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(*reported.lock().unwrap(), ["Ok(1)"]);
    let end = session
        .end(Some(b"UNLOCK TABLES;\n".to_vec()), Duration::from_secs(2))
        .await;
    let Err(SessionEndError::Session(failure @ SessionFailure::EndedEarly { .. })) = &end.result
    else {
        panic!("{:?}", end.result);
    };
    assert!(
        failure
            .to_string()
            .starts_with("the held session ended 0s into the freeze"),
        "{failure}"
    );
    assert_eq!(end.stderr.text(), "Lost connection to server\n");
    // Nothing is written to a session that is gone.
    assert!(!executor
        .record()
        .iter()
        .any(|r| r.starts_with("stdin UNLOCK")));
}

#[tokio::test]
async fn a_dropped_session_closes_its_stdin_and_its_stream() {
    let executor = ProgramExecutor::new(Program::holding("ready", true));
    let session = open(
        &executor,
        &request(Duration::from_secs(3)),
        Some(b"go\n"),
        "ready",
        no_early_exit(),
    )
    .await
    .result
    .unwrap();
    drop(session);
    for _ in 0..100 {
        if executor.record().last().map(String::as_str) == Some("dropped") {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(executor.record()[2..], ["close", "dropped"]);
}

#[tokio::test]
async fn a_held_session_printing_without_end_keeps_bounded_output() {
    let mut flood = vec![StreamEvent::Stdout(b"quiesce-frozen\n".to_vec())];
    flood.extend((0..200).map(|_| StreamEvent::Stdout(vec![b'x'; 4096])));
    flood.extend((0..200).map(|_| StreamEvent::Stderr(vec![b'e'; 4096])));
    let executor = ProgramExecutor::new(Program {
        on_stdin: vec![flood],
        on_close: vec![StreamEvent::Exited(Ok(0))],
        ..Program::v5()
    });
    let session = open(
        &executor,
        &request(Duration::from_secs(3)),
        Some(b"go\n"),
        "quiesce-frozen",
        no_early_exit(),
    )
    .await
    .result
    .unwrap();
    let end = session.end(None, Duration::from_secs(3)).await;
    assert_eq!(end.result, Ok(0));
    for captured in [&end.stdout, &end.stderr] {
        assert_eq!(captured.bytes.len(), OUTPUT_LIMIT);
        assert_eq!(captured.total(), 200 * 4096);
    }
}
