//! [`Executor`] for [`Kube`]: one command in one container over the `pods/exec` subresource
//! with kube-rs (WebSocket, `v5.channel.k8s.io` with `v4.channel.k8s.io` as the fallback
//! kube-rs offers).
//!
//! One call = one exec, over the client without kube's hidden retry of 429/503/504 (see
//! [`super::client`]): the container is always named, stdout and stderr are requested, stdin
//! and tty are not. Both output streams are drained concurrently into bounded buffers
//! ([`OUTPUT_LIMIT`] each; the rest is counted, not kept), the exit code comes from the status
//! channel, and the whole call runs under the request's timeout. On expiry the call's future
//! is dropped, which drops the `AttachedProcess`: its task is aborted and the WebSocket's TCP
//! connection closed, so the API server (and kubelet) see the client go away.
//!
//! What stderr carried before a timeout (or a dropped stream) is kept for
//! [`Executor::exec_keeping_partial_stderr`]: kill-on-timeout reads the hook's PID from it.
//!
//! [`Executor::start`] opens a stream with stdin for [`crate::exec::session`] (hooks with
//! stdin, held sessions). It speaks the channel protocol itself over kube-rs's raw WebSocket
//! ([`kube::Client::connect`]) rather than through `AttachedProcess`, for two reasons: it must
//! know whether the server speaks `v5.channel.k8s.io` (which can close stdin alone, with the
//! frame `[255, 0]`) or only `v4.channel.k8s.io` (where kube-rs would close the whole
//! WebSocket to end stdin, losing the exit status), and a held session must stay readable for
//! as long as the freeze lasts. It pings the server every minute, as kube-rs does.
//!
//! [`Executor::observe_container`] is one `GET pod` ([`Kube::get_pod`]), the container's state
//! taken from the pod's status by [`container_observation`].
//!
//! This module maps kube-rs and HTTP failures to [`ExecError`]; it does not log (the caller,
//! [`crate::exec::hook`], logs with the hook's fields), does not wait and does not retry.

use std::time::{Duration, Instant};

use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status as ChannelStatus;
use kube::api::{Api, AttachParams, AttachedProcess};
use kube::core::Status;
use kube::Resource;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_tungstenite::tungstenite::{self, Message};

use super::error::chain;
use super::{Error, Kube};
use crate::exec::{
    container_observation, Captured, ContainerObservation, ExecAttempt, ExecError, ExecOutput,
    ExecRequest, ExecStream, Executor, StreamEvent, OUTPUT_LIMIT,
};

/// Size of kube-rs's in-memory pipe per output stream (its default, 1 KiB, costs a task
/// wake-up per KiB of output). Memory per exec stays bounded: pipe + [`OUTPUT_LIMIT`].
const PIPE_BUFFER: usize = 64 * 1024;

/// Size of one read from the pipe.
const READ_CHUNK: usize = 16 * 1024;

/// The channels of the exec protocol (`k8s.io/apimachinery/pkg/util/remotecommand`).
const STDIN_CHANNEL: u8 = 0;
const STDOUT_CHANNEL: u8 = 1;
const STDERR_CHANNEL: u8 = 2;
const STATUS_CHANNEL: u8 = 3;
/// `v5.channel.k8s.io`: `[CLOSE_CHANNEL, n]` closes channel `n` (stdin only, here).
const CLOSE_CHANNEL: u8 = 255;
/// Largest stdin payload per frame.
const STDIN_FRAME: usize = 32 * 1024;
/// How often an open stream is pinged: an idle held session must outlive proxies' timeouts.
const PING_INTERVAL: Duration = Duration::from_secs(60);

impl Kube {
    /// Everything the timeout covers: building the client, the upgrade, the streams, the
    /// status. Output is captured into `stdout` and `stderr`, which outlive a cancellation.
    async fn exec_uncancelled(
        &self,
        request: &ExecRequest,
        stdout: &mut Captured,
        stderr: &mut Captured,
    ) -> Result<i32, ExecError> {
        let client = self.get_for_exec().await.map_err(ExecError::NoClient)?;
        let pods: Api<Pod> = Api::namespaced(client, &request.namespace);
        let params = AttachParams::default()
            .container(request.container.clone())
            .stdin(false)
            .stdout(true)
            .stderr(true)
            .tty(false)
            .max_stdout_buf_size(PIPE_BUFFER)
            .max_stderr_buf_size(PIPE_BUFFER);
        let process = pods
            .exec(
                &request.pod,
                request.command.iter().map(String::as_str),
                &params,
            )
            .await
            .map_err(|error| map_exec_error(request, error))?;
        let (status, process) = drain(process, stdout, stderr).await;
        match status {
            Some(status) => exit_code_from_status(&status),
            None => {
                let reason = match process.join().await {
                    Ok(()) => "the connection closed without the command's exit status".to_owned(),
                    Err(error) => chain(&error),
                };
                Err(ExecError::StreamDropped(reason))
            }
        }
    }
}

#[async_trait::async_trait]
impl Executor for Kube {
    async fn exec(&self, request: &ExecRequest) -> Result<ExecOutput, ExecError> {
        self.exec_keeping_partial_stderr(request).await.result
    }

    async fn exec_keeping_partial_stderr(&self, request: &ExecRequest) -> ExecAttempt {
        let started = Instant::now();
        let mut stdout = Captured::default();
        let mut stderr = Captured::default();
        let run = self.exec_uncancelled(request, &mut stdout, &mut stderr);
        let exit = match tokio::time::timeout(request.timeout, run).await {
            Ok(exit) => exit,
            // The inner future (and the AttachedProcess in it) is dropped here: the stream is
            // cancelled, not left running in the background as Velero ≤ 1.18 does.
            Err(_elapsed) => Err(ExecError::TimedOut(request.timeout)),
        };
        ExecAttempt::ended(exit, stdout, stderr, started.elapsed())
    }

    async fn start(&self, request: &ExecRequest) -> Result<Box<dyn ExecStream>, ExecError> {
        let connect = async {
            let client = self.get_for_exec().await.map_err(ExecError::NoClient)?;
            let params = AttachParams::default()
                .container(request.container.clone())
                .stdin(true)
                .stdout(true)
                .stderr(true)
                .tty(false);
            let url = Pod::url_path(&(), Some(&request.namespace));
            let http = kube::core::Request::new(url)
                .exec(
                    &request.pod,
                    request.command.iter().map(String::as_str),
                    &params,
                )
                .map_err(|error| ExecError::Request(chain(&error)))?;
            client
                .connect(http)
                .await
                .map_err(|error| map_exec_error(request, error))
        };
        let connection = tokio::time::timeout(request.timeout, connect)
            .await
            .map_err(|_elapsed| ExecError::TimedOut(request.timeout))??;
        let can_close_stdin = connection.supports_stream_close();
        Ok(Box::new(ChannelStream::new(
            connection.into_stream(),
            can_close_stdin,
        )))
    }

    async fn observe_container(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<ContainerObservation, ExecError> {
        let pod = self
            .get_pod(namespace, pod)
            .await
            .map_err(|error| pod_read_failed(namespace, pod, error))?;
        Ok(container_observation(&pod, container))
    }
}

/// Reads stdout and stderr concurrently (kube-rs's message loop stalls when either pipe is
/// full) while waiting for the status. `None` = the stream ended without one.
///
/// kube-rs shuts its pipes down only when its loop ends normally; when the loop fails (the
/// connection dropped) the pipes are never closed, so EOF would never come. The status future
/// resolving to `None` says the loop is over: whatever it wrote is then taken from the pipes
/// without waiting for an EOF.
async fn drain(
    mut process: AttachedProcess,
    stdout_captured: &mut Captured,
    stderr_captured: &mut Captured,
) -> (Option<ChannelStatus>, AttachedProcess) {
    let mut stdout = BoundedReader::new(process.stdout(), stdout_captured);
    let mut stderr = BoundedReader::new(process.stderr(), stderr_captured);
    let status = match process.take_status() {
        Some(status) => status,
        None => return (None, process),
    };
    tokio::pin!(status);
    let status = {
        let reads = async { tokio::join!(stdout.read_to_end(), stderr.read_to_end()) };
        tokio::pin!(reads);
        tokio::select! {
            _ = &mut reads => status.await,
            received = &mut status => match received {
                // The loop shuts its pipes down right after the status: EOF follows.
                Some(received) => {
                    reads.await;
                    Some(received)
                }
                None => None,
            },
        }
    };
    if status.is_none() {
        stdout.take_buffered();
        stderr.take_buffered();
    }
    (status, process)
}

/// One output stream being captured into a caller's buffer, at most [`OUTPUT_LIMIT`] bytes
/// kept. The buffer is the caller's so that what arrived survives a cancelled call.
struct BoundedReader<'a, R> {
    reader: Option<R>,
    captured: &'a mut Captured,
    chunk: Vec<u8>,
}

impl<'a, R: AsyncRead + Unpin> BoundedReader<'a, R> {
    fn new(reader: Option<R>, captured: &'a mut Captured) -> Self {
        BoundedReader {
            reader,
            captured,
            chunk: vec![0u8; READ_CHUNK],
        }
    }

    /// Reads to the end of the stream. A read error ends it like EOF: whether the command
    /// finished is decided by the status channel.
    async fn read_to_end(&mut self) {
        let Some(reader) = self.reader.as_mut() else {
            return;
        };
        loop {
            match reader.read(&mut self.chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => self.captured.push(&self.chunk[..n], OUTPUT_LIMIT),
            }
        }
    }

    /// Takes what is already in the pipe, without waiting (the writer is gone).
    fn take_buffered(&mut self) {
        let Some(reader) = self.reader.as_mut() else {
            return;
        };
        while let Some(Ok(n)) = reader.read(&mut self.chunk).now_or_never() {
            if n == 0 {
                return;
            }
            self.captured.push(&self.chunk[..n], OUTPUT_LIMIT);
        }
    }
}

/// An exec's WebSocket spoken as the channel protocol: stdin frames out, output and status in.
struct ChannelStream<S> {
    ws: S,
    can_close_stdin: bool,
    ended: Option<Result<i32, ExecError>>,
    ping: tokio::time::Interval,
}

impl<S> ChannelStream<S> {
    fn new(ws: S, can_close_stdin: bool) -> Self {
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.reset();
        ChannelStream {
            ws,
            can_close_stdin,
            ended: None,
            ping,
        }
    }
}

#[async_trait::async_trait]
impl<S> ExecStream for ChannelStream<S>
where
    S: Stream<Item = Result<Message, tungstenite::Error>>
        + Sink<Message, Error = tungstenite::Error>
        + Unpin
        + Send,
{
    async fn write_stdin(&mut self, data: &[u8]) -> Result<(), ExecError> {
        for chunk in data.chunks(STDIN_FRAME) {
            let mut frame = Vec::with_capacity(chunk.len() + 1);
            frame.push(STDIN_CHANNEL);
            frame.extend_from_slice(chunk);
            self.ws
                .send(Message::binary(frame))
                .await
                .map_err(|error| ExecError::StreamDropped(chain(&error)))?;
        }
        Ok(())
    }

    fn can_close_stdin(&self) -> bool {
        self.can_close_stdin
    }

    async fn close_stdin(&mut self) -> Result<(), ExecError> {
        if !self.can_close_stdin {
            return Ok(());
        }
        self.ws
            .send(Message::binary(vec![CLOSE_CHANNEL, STDIN_CHANNEL]))
            .await
            .map_err(|error| ExecError::StreamDropped(chain(&error)))
    }

    async fn next_event(&mut self) -> StreamEvent {
        loop {
            if let Some(ended) = &self.ended {
                return StreamEvent::Exited(ended.clone());
            }
            tokio::select! {
                message = self.ws.next() => match message {
                    Some(Ok(Message::Binary(frame))) => match frame.split_first() {
                        Some((&STDOUT_CHANNEL, data)) if !data.is_empty() => {
                            return StreamEvent::Stdout(data.to_vec())
                        }
                        Some((&STDERR_CHANNEL, data)) if !data.is_empty() => {
                            return StreamEvent::Stderr(data.to_vec())
                        }
                        Some((&STATUS_CHANNEL, data)) if !data.is_empty() => {
                            self.ended = Some(
                                serde_json::from_slice::<ChannelStatus>(data)
                                    .map_err(|error| {
                                        ExecError::RemoteFailure(format!(
                                            "error stream protocol error: {error}"
                                        ))
                                    })
                                    .and_then(|status| exit_code_from_status(&status)),
                            );
                        }
                        // The opening frame of each channel, or a channel we did not ask for.
                        _ => {}
                    },
                    Some(Ok(Message::Close(_))) | None => {
                        self.ended = Some(Err(ExecError::StreamDropped(
                            "the connection closed without the command's exit status".to_owned(),
                        )));
                    }
                    Some(Err(error)) => {
                        self.ended = Some(Err(ExecError::StreamDropped(chain(&error))));
                    }
                    Some(Ok(_)) => {} // text, ping, pong
                },
                _ = self.ping.tick() => {
                    // A failed ping shows up as the stream's end on the next read.
                    let _ = self.ws.send(Message::Ping(Default::default())).await;
                }
            }
        }
    }
}

/// The exit code a status-channel message reports, decoded the way client-go does
/// (`errorDecoderV4`): `Success` → 0; `Failure` with reason `NonZeroExitCode` → the `ExitCode`
/// cause; any other `Failure` → its message as the error.
pub(crate) fn exit_code_from_status(status: &ChannelStatus) -> Result<i32, ExecError> {
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode") {
        let cause = status
            .details
            .iter()
            .flat_map(|details| details.causes.iter().flatten())
            .find(|cause| cause.reason.as_deref() == Some("ExitCode"));
        return match cause {
            Some(cause) => {
                let value = cause.message.as_deref().unwrap_or_default();
                value.trim().parse::<i32>().map_err(|_| {
                    ExecError::RemoteFailure(format!(
                        "error stream protocol error: invalid exit code value {value:?}"
                    ))
                })
            }
            None => Err(ExecError::RemoteFailure(
                "error stream protocol error: no exit code value".to_owned(),
            )),
        };
    }
    match status.message.as_deref() {
        Some(message) if !message.is_empty() => Err(ExecError::RemoteFailure(message.to_owned())),
        _ => Err(ExecError::RemoteFailure(format!(
            "exec failed with status {:?} (reason {:?})",
            status.status.as_deref().unwrap_or_default(),
            status.reason.as_deref().unwrap_or_default()
        ))),
    }
}

/// Maps the failure of the exec request itself (before any stream) to an [`ExecError`].
fn map_exec_error(request: &ExecRequest, error: kube::Error) -> ExecError {
    match error {
        kube::Error::Api(status) => map_rejection(request, &status),
        kube::Error::UpgradeConnection(upgrade) => match upgrade {
            kube::client::UpgradeConnectionError::ProtocolSwitch(code) => {
                ExecError::UpgradeRejected {
                    code: code.as_u16(),
                    message: format!(
                        "the server answered {code} instead of 101 Switching Protocols"
                    ),
                }
            }
            // The server said 101 but the connection was lost while taking it over: it may
            // have started the command.
            kube::client::UpgradeConnectionError::GetPendingUpgrade(error) => {
                ExecError::StreamDropped(chain(&error))
            }
            other => ExecError::UpgradeRejected {
                code: 101,
                message: chain(&other),
            },
        },
        kube::Error::HyperError(error) => ExecError::Unreachable(chain(&error)),
        kube::Error::Service(error) => ExecError::Unreachable(chain(error.as_ref())),
        other => ExecError::Request(chain(&other)),
    }
}

/// Maps a failed `GET pod` (the wait before an exec) to an [`ExecError`].
fn pod_read_failed(namespace: &str, name: &str, error: Error) -> ExecError {
    match error {
        Error::NotFound(_) => ExecError::PodNotFound {
            namespace: namespace.to_owned(),
            pod: name.to_owned(),
        },
        Error::Forbidden(_) | Error::Status(_) => ExecError::PodReadFailed {
            namespace: namespace.to_owned(),
            pod: name.to_owned(),
            code: error.code().unwrap_or_default(),
            message: error.to_string(),
        },
        Error::NoClient(reason) => ExecError::NoClient(reason),
        Error::Unreachable(error) => ExecError::Unreachable(chain(&error)),
        Error::Timeout(_) | Error::Client(_) => ExecError::Request(error.to_string()),
    }
}

/// Maps an error answer (4xx/5xx, `Status` or plain text) to an [`ExecError`].
fn map_rejection(request: &ExecRequest, status: &Status) -> ExecError {
    let code = status.code;
    let message = if status.message.is_empty() {
        format!("HTTP {code} {}", status.reason)
    } else {
        status.message.clone()
    };
    if code == 404 {
        return ExecError::PodNotFound {
            namespace: request.namespace.clone(),
            pod: request.pod.clone(),
        };
    }
    // The API server's validateContainer: `container X is not valid for pod Y`.
    if code == 400
        && message.starts_with("container ")
        && message.contains(" is not valid for pod ")
    {
        return ExecError::NoSuchContainer {
            namespace: request.namespace.clone(),
            pod: request.pod.clone(),
            container: request.container.clone(),
        };
    }
    if code == 403 {
        return ExecError::UpgradeRejected {
            code,
            message: forbidden_exec_message(request, status),
        };
    }
    ExecError::UpgradeRejected { code, message }
}

/// A refused exec as the API server put it — and, when its message names no reason, which
/// grant is missing. Kubernetes 1.35+ authorizes a WebSocket exec (a GET) for `create` on
/// `pods/exec` too, and RBAC's denial of that second check carries an empty reason, so the
/// message ends in `is forbidden: ` (kubectl shows a full reason because it falls back to
/// SPDY, whose POST is authorized for `create` directly).
fn forbidden_exec_message(request: &ExecRequest, status: &Status) -> String {
    let message = status.message.trim_end();
    if !message.is_empty() && !message.ends_with(':') {
        return status.message.clone();
    }
    let said = if message.is_empty() {
        format!("pods {:?} is forbidden:", request.pod)
    } else {
        message.to_owned()
    };
    format!(
        "{said} the API server gave no reason (HTTP 403 {}); exec over WebSocket needs \
         \"create\" as well as \"get\" on \"pods/exec\" in namespace {:?} (Kubernetes 1.35+): \
         grant both to the plugin's identity (plugin-manifest/rbac.yaml)",
        if status.reason.is_empty() {
            "Forbidden"
        } else {
            status.reason.as_str()
        },
        request.namespace
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn request() -> ExecRequest {
        ExecRequest {
            namespace: "ns".into(),
            pod: "db".into(),
            container: "main".into(),
            command: vec!["true".into()],
            timeout: Duration::from_secs(1),
        }
    }

    fn channel_status(json: serde_json::Value) -> ChannelStatus {
        serde_json::from_value(json).unwrap()
    }

    fn non_zero(cause_message: &str) -> ChannelStatus {
        channel_status(serde_json::json!({
            "metadata": {}, "status": "Failure",
            "message": "command terminated with non-zero exit code: error executing command [sh -c exit 2], exit code 2",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": cause_message}]},
        }))
    }

    #[test]
    fn success_status_is_exit_code_zero() {
        let status = channel_status(serde_json::json!({"metadata": {}, "status": "Success"}));
        assert_eq!(exit_code_from_status(&status), Ok(0));
    }

    #[test]
    fn non_zero_exit_code_comes_from_the_exit_code_cause() {
        assert_eq!(exit_code_from_status(&non_zero("2")), Ok(2));
        assert_eq!(exit_code_from_status(&non_zero("137")), Ok(137));
    }

    #[test]
    fn a_garbled_exit_code_is_a_protocol_error() {
        let error = exit_code_from_status(&non_zero("two")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "error stream protocol error: invalid exit code value \"two\""
        );
    }

    #[test]
    fn non_zero_without_exit_code_cause_is_a_protocol_error() {
        let status = channel_status(serde_json::json!({
            "status": "Failure", "reason": "NonZeroExitCode", "message": "x"
        }));
        assert_eq!(
            exit_code_from_status(&status).unwrap_err().to_string(),
            "error stream protocol error: no exit code value"
        );
    }

    #[test]
    fn other_failures_report_the_status_message_verbatim() {
        let message = "Internal error occurred: error executing command in container: failed to \
                       exec in container: exec: \"nosuch\": executable file not found in $PATH";
        let status = channel_status(serde_json::json!({
            "status": "Failure", "reason": "InternalError", "code": 500, "message": message,
            "details": {"causes": [{"message": "error executing command in container"}]},
        }));
        assert_eq!(
            exit_code_from_status(&status),
            Err(ExecError::RemoteFailure(message.into()))
        );
    }

    #[test]
    fn not_found_answer_is_pod_not_found() {
        let status = Status::failure("pods \"db\" not found", "NotFound").with_code(404);
        assert_eq!(
            map_rejection(&request(), &status),
            ExecError::PodNotFound {
                namespace: "ns".into(),
                pod: "db".into()
            }
        );
    }

    #[test]
    fn api_server_container_validation_is_no_such_container() {
        let status =
            Status::failure("container main is not valid for pod db", "BadRequest").with_code(400);
        let error = map_rejection(&request(), &status);
        assert_eq!(
            error.to_string(),
            "no such container: \"main\" in pod ns/db"
        );
    }

    #[test]
    fn a_forbidden_exec_keeps_the_servers_reason_or_names_the_missing_verb() {
        let full = Status::failure(
            "pods \"db\" is forbidden: User \"velero\" cannot get resource \"pods/exec\" in API group \"\" in the namespace \"ns\"",
            "Forbidden",
        )
        .with_code(403);
        assert_eq!(
            map_rejection(&request(), &full).to_string(),
            format!("unable to upgrade connection: {}", full.message)
        );
        // What a 1.35 API server sends when `create` is missing: no reason after the colon.
        let empty = Status::failure("pods \"db\" is forbidden: ", "Forbidden").with_code(403);
        let error = map_rejection(&request(), &empty);
        assert_eq!(
            error.to_string(),
            "unable to upgrade connection: pods \"db\" is forbidden: the API server gave no \
             reason (HTTP 403 Forbidden); exec over WebSocket needs \"create\" as well as \"get\" \
             on \"pods/exec\" in namespace \"ns\" (Kubernetes 1.35+): grant both to the plugin's \
             identity (plugin-manifest/rbac.yaml)"
        );
        assert!(!error.is_transient());
    }

    #[test]
    fn other_answers_are_rejected_upgrades_with_the_servers_words() {
        let status = Status::failure(
            "container not found (\"main\")",
            "Failed to parse error data",
        )
        .with_code(500);
        let error = map_rejection(&request(), &status);
        assert_eq!(
            error.to_string(),
            "unable to upgrade connection: container not found (\"main\")"
        );
        assert!(error.is_transient());
    }
}
