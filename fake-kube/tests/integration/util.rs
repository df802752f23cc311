//! Shared helpers: start a server with standard pods, build a kube-rs client from the generated
//! kubeconfig, run an exec and collect its output and exit code.

use fake_kube::objects::{container, pod};
use fake_kube::FakeKube;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::io::AsyncReadExt;

/// A running pod `default/p` with containers `main` and `sidecar`.
pub fn standard_pod() -> serde_json::Value {
    pod("default", "p")
        .label("app", "db")
        .container(container("main").image("busybox").env("GREETING", "hello"))
        .container(container("sidecar").image("busybox"))
        .build()
}

/// Starts a server (http or https) holding [`standard_pod`].
pub async fn start(https: bool) -> FakeKube {
    let kube = FakeKube::builder().https(https).start().await.unwrap();
    kube.add_pod(standard_pod()).unwrap();
    kube
}

/// A kube-rs client configured only from the server's generated kubeconfig.
pub async fn client(kube: &FakeKube) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(&kube.kubeconfig_yaml()).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// What an exec produced.
#[derive(Debug)]
pub struct ExecResult {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Exit code from the channel-3 status (`None` when it carried no `ExitCode` cause).
    pub code: Option<i32>,
    pub status: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>,
    /// What `AttachedProcess::join` failed with (e.g. the connection dropped without status).
    pub join_error: Option<String>,
}

impl ExecResult {
    /// Stdout as text (lossy UTF-8).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// Stderr as text (lossy UTF-8).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Exit code as quiesce reads it: `Success` → 0, else the `ExitCode` cause.
pub fn exit_code(status: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status) -> Option<i32> {
    if status.status.as_deref() == Some("Success") {
        return Some(0);
    }
    status
        .details
        .as_ref()?
        .causes
        .as_ref()?
        .iter()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))?
        .message
        .as_ref()?
        .parse()
        .ok()
}

/// Runs `argv` in `pod`/`container` (namespace default) with stdout and stderr, no stdin.
///
/// kube-rs 5 only shuts its stdout/stderr pipes down after a status or a clean close; when the
/// connection drops without one, the readers would wait forever. So the readers race the status
/// future (which resolves, possibly to `None`, once kube-rs's message loop has ended), and
/// whatever is buffered is drained without waiting. `join()` is called last: it shuts stdin
/// down, which on a v4 connection makes kube-rs close the WebSocket.
pub async fn exec(
    client: &Client,
    pod: &str,
    container: &str,
    argv: &[&str],
) -> Result<ExecResult, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let params = AttachParams::default()
        .container(container)
        .stdout(true)
        .stderr(true)
        .stdin(false);
    let mut process = pods.exec(pod, argv.to_vec(), &params).await?;
    let mut stdout = process.stdout().unwrap();
    let mut stderr = process.stderr().unwrap();
    let status = process.take_status().unwrap();
    tokio::pin!(status);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let early_status = {
        let reads =
            async { tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err)) };
        tokio::pin!(reads);
        tokio::select! {
            (a, b) = &mut reads => {
                a.unwrap();
                b.unwrap();
                None
            }
            status = &mut status => Some(status),
        }
    };
    let status = match early_status {
        Some(status) => {
            drain(&mut stdout, &mut out).await;
            drain(&mut stderr, &mut err).await;
            status
        }
        None => status.await,
    };
    let join_error = process.join().await.err().map(|e| e.to_string());
    Ok(ExecResult {
        code: status.as_ref().and_then(exit_code),
        stdout: out,
        stderr: err,
        status,
        join_error,
    })
}

/// Reads what is already buffered, without waiting for more.
async fn drain(reader: &mut (impl tokio::io::AsyncRead + Unpin), into: &mut Vec<u8>) {
    use futures_util::FutureExt;
    let mut buffer = vec![0u8; 64 * 1024];
    while let Some(Ok(n)) = reader.read(&mut buffer).now_or_never() {
        if n == 0 {
            break;
        }
        into.extend_from_slice(&buffer[..n]);
    }
}

/// Asserts a kube error is an API error with this code and reason; returns its message.
pub fn api_error(error: kube::Error, code: u16, reason: &str) -> String {
    match error {
        kube::Error::Api(status) => {
            assert_eq!(status.code, code, "{status:?}");
            assert_eq!(status.reason, reason, "{status:?}");
            status.message.clone()
        }
        other => panic!("expected API error {code} {reason}, got {other:?}"),
    }
}
