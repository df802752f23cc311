//! `pods/{name}/exec`: validation the way the API server and kubelet do it, the WebSocket
//! upgrade (`v5.channel.k8s.io`, else `v4.channel.k8s.io`), and the session that runs the
//! command as a local child process in the container's working directory and streams it over the
//! channel protocol (0 stdin, 1 stdout, 2 stderr, 3 status; v5 `[0xFF, 0]` closes stdin).
//!
//! Like the kubelet, an exec into a container that is not running is refused with 500
//! `container not found ("NAME")`: when the pod's phase is set and not `Running`, or when the
//! pod's status lists this container with a state other than `running`.
//!
//! Deliberate deviations from a real cluster, all documented on [`crate::FakeKube`]:
//! the command runs on the host, not in a container; `tty=true` gets no pty (stderr is merged
//! into stdout); and by default a client that disconnects mid-command gets the command's whole
//! process group killed (the kubelet would leave it running), because that is how callers
//! cancel hooks. With `keep_processes_on_disconnect` the command is left running like under a
//! kubelet (its output read and dropped, its exit reaped) and recorded in [`crate::state::KeptProcesses`],
//! which the server handle kills when it drops.

use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::faults::{Fault, RequestFacts};
use crate::http::{is_true, parse_query, query_value, status_response, text_response, Body};
use crate::state::State;
use crate::status;
use crate::store::resource_by_path;
use crate::timeline::{ExecInfo, ExecOutcome, TimelineEventKind};

/// Subprotocols served, in order of preference.
const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const CLOSE_CHANNEL: u8 = 0xFF;

/// How long to wait for the client's close frame after ours.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Size of one read from the child's stdout/stderr (and so the largest data frame).
const READ_CHUNK: usize = 32 * 1024;

/// Which streams the client asked for (`stdin=`, `stdout=`, `stderr=`, `tty=`).
#[derive(Debug, Clone, Copy)]
struct Streams {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

/// Everything the session needs once the upgrade is accepted.
struct Session {
    state: Arc<State>,
    exec: ExecInfo,
    streams: Streams,
    is_v5: bool,
    drop_fault: Option<Fault>,
    workdir: PathBuf,
    env: Vec<(String, String)>,
}

/// Validates an exec request, applies faults, and upgrades it to a WebSocket session.
pub(crate) async fn handle(
    state: Arc<State>,
    mut request: Request<Incoming>,
    namespace: String,
    pod_name: String,
) -> Response<Body> {
    let pairs = parse_query(request.uri().query());
    let value = |key: &str| query_value(&pairs, key);
    let argv: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let streams = Streams {
        stdin: is_true(value("stdin")),
        stdout: is_true(value("stdout")),
        stderr: is_true(value("stderr")),
        tty: is_true(value("tty")),
    };
    let requested_container = value("container").filter(|c| !c.is_empty());
    let pods = resource_by_path("", "v1", "pods");
    let pod = pods.and_then(|pods| state.store.get(pods, &namespace, &pod_name));
    let container = match &pod {
        Some(pod) => resolve_container(pod, &pod_name, requested_container),
        None => Err(status::not_found("pods", &pod_name)),
    };
    let exec = ExecInfo {
        id: state.next_exec_id(),
        namespace: namespace.clone(),
        pod: pod_name.clone(),
        container: match &container {
            Ok(name) => name.clone(),
            Err(_) => requested_container.unwrap_or_default().to_string(),
        },
        argv: argv.clone(),
    };

    // Validation, in the order the API server and then the kubelet check. The pod and container
    // come first for every method, so kubectl's SPDY fallback (POST) reports them as a real
    // server would.
    let container = match container {
        Ok(container) => container,
        Err(error_status) => return reject(&state, exec, &error_status),
    };
    // SPDY (POST) is not spoken here. Refuse it before the fault rules so it never uses up a
    // counted fault meant for the WebSocket attempt.
    if request.method() != Method::GET {
        return reject(
            &state,
            exec,
            &status::bad_request(
                "fake-kube serves exec only as a WebSocket upgrade (GET); SPDY is not supported",
            ),
        );
    }

    let path = request.uri().path().to_string();
    let fault = state
        .apply_fault_rules(&RequestFacts {
            path: &path,
            is_exec: true,
            namespace: Some(&namespace),
            pod: Some(&pod_name),
            container: Some(&exec.container),
            argv: &argv,
        })
        .await;

    let pod = pod.unwrap_or(Value::Null);
    if argv.is_empty() {
        return reject(
            &state,
            exec,
            &status::bad_request("you must specify at least one command for the container"),
        );
    }
    match fault {
        Some(Fault::Reject { code }) => {
            let message = format!(
                "fake-kube: injected fault: exec upgrade rejected for pod {namespace}/{pod_name}"
            );
            return reject(&state, exec, &status::for_code(code, &message));
        }
        Some(Fault::ServerError) => {
            return reject(
                &state,
                exec,
                &status::internal_error("fake-kube: injected fault: server error"),
            );
        }
        _ => {}
    }
    if !is_websocket_upgrade(&request) {
        return reject(
            &state,
            exec,
            &status::bad_request("Upgrade request required"),
        );
    }
    if !(streams.stdin || streams.stdout || streams.stderr) {
        return reject(
            &state,
            exec,
            &status::bad_request("you must specify at least 1 of stdin, stdout, stderr"),
        );
    }
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    if phase.is_some_and(|phase| phase != "Running") || status_says_not_running(&pod, &container) {
        // What the kubelet answers when the container is not running, passed through as is.
        let message = format!("container not found (\"{container}\")");
        record_rejected(&state, exec, 500, &message);
        return text_response(StatusCode::INTERNAL_SERVER_ERROR, &message);
    }
    let offered = offered_protocols(&request);
    let supported: &[&'static str] = if state.v4_only { &[V4] } else { &[V5, V4] };
    let protocol = if let Some(protocol) = supported
        .iter()
        .find(|supported| offered.iter().any(|p| p == *supported))
    {
        *protocol
    } else {
        let message = format!(
            "requested protocol(s) are not supported: [{}]; supports [{}]",
            offered.join(" "),
            supported.join(" ")
        );
        return reject(&state, exec, &status::bad_request(&message));
    };
    let Some(key) = request.headers().get(SEC_WEBSOCKET_KEY) else {
        return reject(
            &state,
            exec,
            &status::bad_request("Upgrade request required"),
        );
    };
    let accept = derive_accept_key(key.as_bytes());

    let workdir = match crate::container_dir_in(&state.work_root, &namespace, &pod_name, &container)
    {
        Ok(dir) => dir,
        Err(error) => {
            return reject(
                &state,
                exec,
                &status::internal_error(&format!("cannot create working directory: {error}")),
            )
        }
    };
    let session = Session {
        env: container_env(&pod, &namespace, &pod_name, &container),
        state: state.clone(),
        exec,
        streams,
        is_v5: protocol == V5,
        drop_fault: fault,
        workdir,
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                session.run(ws).await;
            }
            Err(_) => {
                let Session { state, exec, .. } = session;
                record_finished(&state, exec, ExecOutcome::ClientDisconnected);
            }
        }
    });

    let mut response = Response::new(http_body_util::BodyExt::boxed(http_body_util::Empty::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// Picks the container like the API server's `validateContainer`: the named one must exist
/// among containers, init containers or ephemeral containers; with no name, a pod with exactly
/// one container uses it.
fn resolve_container(
    pod: &Value,
    pod_name: &str,
    requested: Option<&str>,
) -> Result<String, Value> {
    let names: Vec<&str> = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|field| {
            pod.pointer(&format!("/spec/{field}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let regular = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(Vec::len)
        .unwrap_or(0);
    match requested {
        Some(name) if names.contains(&name) => Ok(name.to_string()),
        Some(name) => Err(status::bad_request(&format!(
            "container {name} is not valid for pod {pod_name}"
        ))),
        None if regular == 1 => Ok(names[0].to_string()),
        None if regular == 0 => Err(status::bad_request(&format!(
            "a container name must be specified for pod {pod_name}"
        ))),
        None => Err(status::bad_request(&format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

/// The pod spec field a container is declared in, and the status field that reports it.
const CONTAINER_KINDS: [(&str, &str); 3] = [
    ("containers", "containerStatuses"),
    ("initContainers", "initContainerStatuses"),
    ("ephemeralContainers", "ephemeralContainerStatuses"),
];

/// The status field (`containerStatuses`, `initContainerStatuses` — native sidecars — or
/// `ephemeralContainerStatuses`) that reports `container`, by where the spec declares it.
pub(crate) fn status_field_of(pod: &Value, container: &str) -> Option<&'static str> {
    CONTAINER_KINDS
        .iter()
        .find_map(|(spec_field, status_field)| {
            pod.pointer(&format!("/spec/{spec_field}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| c.get("name").and_then(Value::as_str) == Some(container))
                .then_some(*status_field)
        })
}

/// Whether the pod's status says `container` is not running: the status list for its kind
/// has an entry for it whose `state` is not `running`. A container the status does not list
/// is taken as running (fixtures often set only the phase, or only some containers' states).
fn status_says_not_running(pod: &Value, container: &str) -> bool {
    let Some(field) = status_field_of(pod, container) else {
        return false;
    };
    pod.pointer(&format!("/status/{field}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|s| s.get("name").and_then(Value::as_str) == Some(container))
        .is_some_and(|entry| entry.pointer("/state/running").is_none())
}

fn is_websocket_upgrade(request: &Request<Incoming>) -> bool {
    let header_has = |name, token: &str| {
        request.headers().get_all(name).iter().any(|value| {
            value
                .to_str()
                .unwrap_or("")
                .split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    };
    header_has(UPGRADE, "websocket")
        && header_has(CONNECTION, "upgrade")
        && header_has(SEC_WEBSOCKET_VERSION, "13")
}

/// All offered subprotocols: kubectl sends one per header, kube-rs one comma-separated header.
fn offered_protocols(request: &Request<Incoming>) -> Vec<String> {
    request
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Environment of the command: the server's own, the container's literal `env` values, and
/// `HOSTNAME` plus `FAKE_KUBE_{NAMESPACE,POD,CONTAINER}` so scripts can tell where they run.
fn container_env(
    pod: &Value,
    namespace: &str,
    pod_name: &str,
    container: &str,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("HOSTNAME".to_string(), pod_name.to_string()),
        ("FAKE_KUBE_NAMESPACE".to_string(), namespace.to_string()),
        ("FAKE_KUBE_POD".to_string(), pod_name.to_string()),
        ("FAKE_KUBE_CONTAINER".to_string(), container.to_string()),
    ];
    let spec_env = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .filter_map(|field| {
            pod.pointer(&format!("/spec/{field}"))
                .and_then(Value::as_array)
        })
        .flatten()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(container))
        .and_then(|c| c.get("env"))
        .and_then(Value::as_array);
    for var in spec_env.into_iter().flatten() {
        if let (Some(name), Some(value)) = (
            var.get("name").and_then(Value::as_str),
            var.get("value").and_then(Value::as_str),
        ) {
            env.push((name.to_string(), value.to_string()));
        }
    }
    env
}

fn reject(state: &State, exec: ExecInfo, error_status: &Value) -> Response<Body> {
    let code = error_status
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(500);
    let message = error_status
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    record_rejected(state, exec, code, &message);
    status_response(error_status)
}

fn record_rejected(state: &State, exec: ExecInfo, code: u16, message: &str) {
    state.timeline.push(TimelineEventKind::ExecStarted {
        exec: exec.clone(),
        pid: None,
    });
    record_finished(
        state,
        exec,
        ExecOutcome::Rejected {
            code,
            message: message.to_string(),
        },
    );
}

fn record_finished(state: &State, exec: ExecInfo, outcome: ExecOutcome) {
    state
        .timeline
        .push(TimelineEventKind::ExecFinished { exec, outcome });
}

/// Kills a process group when dropped, unless disarmed. Covers every way a session can end
/// early, including the task being dropped when the runtime shuts down.
struct ProcessGroupGuard {
    pgid: Option<i32>,
}

impl ProcessGroupGuard {
    fn kill_now(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for ProcessGroupGuard {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// Why the streaming loop ended.
enum LoopEnd {
    Completed(ExitStatus),
    ClientGone,
}

type WsStream = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

impl Session {
    async fn run(self, ws: WsStream) {
        let (mut sink, mut incoming) = ws.split();
        let mut opening = Vec::new();
        if self.streams.stdout {
            opening.push(STDOUT);
        }
        if self.streams.stderr && !self.streams.tty {
            opening.push(STDERR);
        }
        opening.push(ERROR);
        for channel in opening {
            if sink
                .send(Message::Binary(Bytes::from(vec![channel])))
                .await
                .is_err()
            {
                self.start(None);
                self.finish(ExecOutcome::ClientDisconnected);
                return;
            }
        }
        if self.drop_fault == Some(Fault::DropStream) {
            self.start(None);
            self.finish(ExecOutcome::Dropped { command_ran: false });
            return; // dropping both halves closes the TCP connection
        }

        let mut command = tokio::process::Command::new(&self.exec.argv[0]);
        command
            .args(&self.exec.argv[1..])
            .current_dir(&self.workdir)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(if self.streams.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(if self.streams.stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(if self.streams.stderr || self.streams.tty {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                self.start(None);
                let message = start_failure_message(self.exec.id, &self.exec.argv[0], &error);
                self.finish(ExecOutcome::StartFailed {
                    message: message.clone(),
                });
                let status = status::exec_start_failed(&message);
                let _ = send_status_and_close(&mut sink, &mut incoming, &status).await;
                return;
            }
        };
        let pid = child.id();
        let mut guard = ProcessGroupGuard {
            pgid: pid.and_then(|p| i32::try_from(p).ok()),
        };
        self.start(pid);

        let (output_tx, mut output_rx) = mpsc::channel::<(u8, Bytes)>(16);
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(pump(stdout, STDOUT, output_tx.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            let channel = if self.streams.tty { STDOUT } else { STDERR };
            tokio::spawn(pump(stderr, channel, output_tx.clone()));
        }
        drop(output_tx);
        let mut stdin_tx = child.stdin.take().map(|mut stdin| {
            let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
            tokio::spawn(async move {
                while let Some(data) = rx.recv().await {
                    if stdin.write_all(&data).await.is_err() {
                        return;
                    }
                }
                // Sender dropped: the client closed stdin (or the session ended). Dropping
                // `stdin` closes the pipe so the command sees EOF.
            });
            tx
        });

        let mut outputs_open = true;
        let mut exit_status: Option<ExitStatus> = None;
        let end = loop {
            if let (false, Some(status)) = (outputs_open, exit_status) {
                break LoopEnd::Completed(status);
            }
            tokio::select! {
                chunk = output_rx.recv(), if outputs_open => match chunk {
                    Some((channel, data)) => {
                        let mut frame = Vec::with_capacity(data.len() + 1);
                        frame.push(channel);
                        frame.extend_from_slice(&data);
                        if sink.send(Message::Binary(Bytes::from(frame))).await.is_err() {
                            break LoopEnd::ClientGone;
                        }
                    }
                    None => outputs_open = false,
                },
                waited = child.wait(), if exit_status.is_none() => match waited {
                    Ok(status) => exit_status = Some(status),
                    // Cannot wait: report it as killed rather than spin.
                    Err(_) => exit_status = Some(ExitStatus::from_raw(libc::SIGKILL)),
                },
                message = incoming.next() => match message {
                    Some(Ok(Message::Binary(data))) => {
                        self.client_frame(&data, &mut stdin_tx);
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break LoopEnd::ClientGone,
                    Some(Ok(_)) => {} // text, ping, pong: nothing to do
                },
            }
        };

        match end {
            LoopEnd::ClientGone if self.state.keep_processes_on_disconnect => {
                // Like the kubelet: the command goes on without its client. Its output is
                // still read (so it does not die of a broken pipe) and dropped; its exit is
                // reaped so that `kill -0` stops finding it.
                guard.pgid = None;
                drop(stdin_tx);
                self.finish(ExecOutcome::ClientDisconnected);
                tokio::spawn(async move { while output_rx.recv().await.is_some() {} });
                let Some(pid) = pid else { return };
                let state = self.state.clone();
                // Removed right after the reap: the moment in between is far too short for the
                // PID to be reused by the time `kill_all` signals it.
                state.kept_processes.lock().insert(pid);
                tokio::spawn(async move {
                    let _ = child.wait().await;
                    state.kept_processes.lock().remove(&pid);
                });
            }
            LoopEnd::ClientGone => {
                guard.kill_now();
                let _ = child.wait().await;
                self.finish(ExecOutcome::ClientDisconnected);
            }
            LoopEnd::Completed(exit) => {
                // Leftover background processes that let go of stdout/stderr keep running,
                // as they would in a container.
                guard.pgid = None;
                drop(stdin_tx);
                let code = exit
                    .code()
                    .unwrap_or_else(|| 128 + exit.signal().unwrap_or(0));
                if self.drop_fault == Some(Fault::DropStreamAfterOutput) {
                    self.finish(ExecOutcome::Dropped { command_ran: true });
                    return;
                }
                self.finish(ExecOutcome::Exited { code });
                let status = if code == 0 {
                    status::exec_success()
                } else {
                    status::exec_non_zero(&self.exec.argv, code)
                };
                let _ = send_status_and_close(&mut sink, &mut incoming, &status).await;
            }
        }
    }

    /// Handles one binary frame from the client: stdin data, the v5 close-stdin signal, or a
    /// resize (ignored: there is no pty).
    fn client_frame(&self, data: &[u8], stdin_tx: &mut Option<mpsc::UnboundedSender<Bytes>>) {
        match data {
            [STDIN, payload @ ..] if !payload.is_empty() => {
                if let Some(tx) = stdin_tx.as_ref() {
                    let _ = tx.send(Bytes::copy_from_slice(payload));
                }
            }
            [CLOSE_CHANNEL, STDIN, ..] if self.is_v5 => {
                stdin_tx.take();
            }
            _ => {}
        }
    }

    fn start(&self, pid: Option<u32>) {
        self.state.timeline.push(TimelineEventKind::ExecStarted {
            exec: self.exec.clone(),
            pid,
        });
    }

    fn finish(&self, outcome: ExecOutcome) {
        record_finished(&self.state, self.exec.clone(), outcome);
    }
}

/// Copies a child's output into the channel, one frame per read, until EOF.
async fn pump(mut reader: impl AsyncRead + Unpin, channel: u8, tx: mpsc::Sender<(u8, Bytes)>) {
    let mut buffer = vec![0u8; READ_CHUNK];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx
                    .send((channel, Bytes::copy_from_slice(&buffer[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Sends the status on channel 3 and a normal close, then waits (bounded) for the client's close.
async fn send_status_and_close(
    sink: &mut futures_util::stream::SplitSink<WsStream, Message>,
    incoming: &mut futures_util::stream::SplitStream<WsStream>,
    status: &Value,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut frame = vec![ERROR];
    frame.extend_from_slice(status.to_string().as_bytes());
    sink.send(Message::Binary(Bytes::from(frame))).await?;
    sink.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    })))
    .await?;
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(_)) = incoming.next().await {}
    })
    .await;
    Ok(())
}

/// The message containerd + runc give the kubelet when the executable cannot be started, e.g.
/// `failed to exec in container: failed to start exec "…": OCI runtime exec failed: exec failed:
/// unable to start container process: exec: "nosuch": executable file not found in $PATH: unknown`.
fn start_failure_message(exec_id: u64, program: &str, error: &std::io::Error) -> String {
    let reason = match error.kind() {
        ErrorKind::NotFound if program.contains('/') => {
            format!("exec: \"{program}\": stat {program}: no such file or directory")
        }
        ErrorKind::NotFound => format!("exec: \"{program}\": executable file not found in $PATH"),
        ErrorKind::PermissionDenied => format!("exec: \"{program}\": permission denied"),
        _ => format!("exec: \"{program}\": {error}"),
    };
    format!(
        "failed to exec in container: failed to start exec \"{exec_id:064x}\": OCI runtime exec failed: exec failed: unable to start container process: {reason}: unknown"
    )
}
