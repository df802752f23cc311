//! Protocol corners checked with a raw WebSocket client, byte by byte: subprotocol negotiation,
//! opening frames, stdin and the v5 close-stdin signal, refusals before the upgrade.

use fake_kube::FakeKube;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::util::start;

type Ws = WebSocketStream<TcpStream>;

/// Connects to `path_and_query` offering `protocols` (one header, comma-separated).
async fn connect(
    kube: &FakeKube,
    path_and_query: &str,
    protocols: &str,
) -> Result<(Ws, String), tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{}{path_and_query}", kube.addr())
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_str(protocols).unwrap(),
    );
    let tcp = TcpStream::connect(kube.addr()).await.unwrap();
    let (ws, response) = tokio_tungstenite::client_async(request, tcp).await?;
    let protocol = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    Ok((ws, protocol))
}

/// Reads every binary message until the server closes; returns them and whether a close frame
/// with code 1000 arrived.
async fn read_all(ws: &mut Ws) -> (Vec<Vec<u8>>, bool) {
    let mut messages = Vec::new();
    while let Some(message) = ws.next().await {
        match message.unwrap() {
            Message::Binary(data) => messages.push(data.to_vec()),
            Message::Close(frame) => {
                let normal = frame.is_some_and(|f| u16::from(f.code) == 1000);
                return (messages, normal);
            }
            _ => {}
        }
    }
    (messages, false)
}

/// The data of the stdout frames, joined.
fn stdout_of(messages: &[Vec<u8>]) -> Vec<u8> {
    messages
        .iter()
        .filter(|m| m.len() > 1 && m[0] == 1)
        .flat_map(|m| m[1..].to_vec())
        .collect()
}

const EXEC: &str = "/api/v1/namespaces/default/pods/p/exec";

#[tokio::test]
async fn v4_only_client_gets_v4_and_the_full_frame_sequence() {
    let kube = start(false).await;
    let (mut ws, protocol) = connect(
        &kube,
        &format!("{EXEC}?command=sh&command=-c&command=echo+hi%3B+exit+2&container=main&stdout=true&stderr=true"),
        "v4.channel.k8s.io",
    )
    .await
    .unwrap();
    assert_eq!(protocol, "v4.channel.k8s.io");
    let (messages, normal_close) = read_all(&mut ws).await;
    assert!(normal_close);
    assert_eq!(messages[..3], [vec![1], vec![2], vec![3]]);
    assert_eq!(messages[3], b"\x01hi\n");
    let status: serde_json::Value = serde_json::from_slice(&messages[4][1..]).unwrap();
    assert_eq!(messages[4][0], 3);
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "2");
    assert_eq!(
        status["message"],
        "command terminated with non-zero exit code: error executing command [sh -c echo hi; exit 2], exit code 2"
    );
    assert_eq!(messages.len(), 5);
}

#[tokio::test]
async fn v5_is_preferred_when_both_are_offered() {
    let kube = start(false).await;
    let (_ws, protocol) = connect(
        &kube,
        &format!("{EXEC}?command=true&container=main&stdout=true"),
        "v4.channel.k8s.io, v5.channel.k8s.io",
    )
    .await
    .unwrap();
    assert_eq!(protocol, "v5.channel.k8s.io");
}

#[tokio::test]
async fn unsupported_subprotocol_is_refused_before_upgrade() {
    let kube = start(false).await;
    let error = connect(
        &kube,
        &format!("{EXEC}?command=true&container=main&stdout=true"),
        "base64.channel.k8s.io",
    )
    .await
    .unwrap_err();
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 400);
            let body: serde_json::Value =
                serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["kind"], "Status");
            assert_eq!(body["reason"], "BadRequest");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn v5_stdin_is_delivered_and_closed_with_ff_00() {
    let kube = start(false).await;
    let (mut ws, protocol) = connect(
        &kube,
        &format!("{EXEC}?command=sh&command=-c&command=wc+-l&container=main&stdin=true&stdout=true&stderr=true"),
        "v5.channel.k8s.io",
    )
    .await
    .unwrap();
    assert_eq!(protocol, "v5.channel.k8s.io");
    ws.send(Message::Binary(b"\x00line1\nline2\n".to_vec().into()))
        .await
        .unwrap();
    ws.send(Message::Binary(vec![0xFF, 0].into()))
        .await
        .unwrap();
    let (messages, normal_close) = read_all(&mut ws).await;
    assert!(normal_close);
    let stdout = stdout_of(&messages);
    assert_eq!(String::from_utf8(stdout).unwrap().trim(), "2");
    let last = messages.last().unwrap();
    assert_eq!(&last[1..], br#"{"metadata":{},"status":"Success"}"#);
}

#[tokio::test]
async fn plain_get_without_upgrade_is_a_bad_request() {
    let kube = start(false).await;
    let tcp = TcpStream::connect(kube.addr()).await.unwrap();
    let request = format!(
        "GET {EXEC}?command=true&container=main&stdout=true HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        kube.addr()
    );
    let (mut reader, mut writer) = tcp.into_split();
    tokio::io::AsyncWriteExt::write_all(&mut writer, request.as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut reader, &mut response)
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("Upgrade request required"), "{response}");
}

/// Sends one binary frame.
async fn send(ws: &mut Ws, frame: &[u8]) {
    ws.send(Message::Binary(frame.to_vec().into()))
        .await
        .unwrap();
}

/// Reads binary messages until one on `channel` contains `text`; all of them, in order.
async fn read_until(ws: &mut Ws, channel: u8, text: &str) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let found = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(message) = ws.next().await {
            if let Message::Binary(data) = message.unwrap() {
                messages.push(data.to_vec());
                let data = &messages[messages.len() - 1];
                if data.first() == Some(&channel)
                    && String::from_utf8_lossy(&data[1..]).contains(text)
                {
                    return true;
                }
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{text:?} never came: {messages:?}");
    messages
}

#[tokio::test]
async fn output_flows_while_stdin_stays_open_as_a_held_session_needs() {
    let kube = start(false).await;
    let (mut ws, _) = connect(
        &kube,
        &format!("{EXEC}?command=sh&command=-c&command=read+a%3B+echo+got+%24a%3B+cat%3B+echo+eof&container=main&stdin=true&stdout=true&stderr=true"),
        "v5.channel.k8s.io",
    )
    .await
    .unwrap();
    send(&mut ws, b"\x00lock\n").await;
    read_until(&mut ws, 1, "got lock").await;
    // Still running, stdin open, until the close signal.
    send(&mut ws, b"\x00unlock\n").await;
    read_until(&mut ws, 1, "unlock").await;
    send(&mut ws, &[0xFF, 0]).await;
    let (messages, normal_close) = read_all(&mut ws).await;
    assert!(normal_close);
    let stdout = stdout_of(&messages);
    assert_eq!(String::from_utf8(stdout).unwrap(), "eof\n");
    assert_eq!(
        &messages.last().unwrap()[1..],
        br#"{"metadata":{},"status":"Success"}"#
    );
}

#[tokio::test]
async fn on_v4_the_close_signal_is_not_spoken_and_stdin_stays_open() {
    let kube = start(false).await;
    let (mut ws, protocol) = connect(
        &kube,
        &format!("{EXEC}?command=sh&command=-c&command=cat%3B+echo+eof&container=main&stdin=true&stdout=true&stderr=true"),
        "v4.channel.k8s.io",
    )
    .await
    .unwrap();
    assert_eq!(protocol, "v4.channel.k8s.io");
    send(&mut ws, b"\x00one\n").await;
    send(&mut ws, &[0xFF, 0]).await;
    send(&mut ws, b"\x00two\n").await;
    // `[255, 0]` means nothing on v4: stdin is still open, so `two` reaches `cat` too.
    read_until(&mut ws, 1, "two").await;
    let early = tokio::time::timeout(std::time::Duration::from_millis(300), ws.next()).await;
    assert!(early.is_err(), "no end of file on v4: {early:?}");
}

#[tokio::test]
async fn a_v4_client_closing_the_socket_gives_a_kubelet_like_command_end_of_file() {
    let kube = FakeKube::builder()
        .keep_processes_on_disconnect(true)
        .start()
        .await
        .unwrap();
    kube.add_pod(crate::util::standard_pod()).unwrap();
    let (mut ws, _) = connect(
        &kube,
        &format!("{EXEC}?command=sh&command=-c&command=cat+%3E+held.txt%3B+echo+eof+%3E%3E+held.txt&container=main&stdin=true&stdout=true&stderr=true"),
        "v4.channel.k8s.io",
    )
    .await
    .unwrap();
    send(&mut ws, b"\x00unlock\n").await;
    // The only way to end stdin on v4: close the whole socket. The exit status is lost, but
    // the command reads end-of-file, as under a kubelet.
    ws.close(None).await.unwrap();
    let file = kube
        .container_dir("default", "p", "main")
        .unwrap()
        .join("held.txt");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_to_string(&file).unwrap_or_default() != "unlock\neof\n" {
        assert!(std::time::Instant::now() < deadline, "no end of file");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
