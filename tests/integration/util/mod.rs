//! Shared helpers for the integration tests: launch the real binary the way Velero's
//! go-plugin client does (cookie in the environment, all of `velero server`'s flags, read
//! the first stdout line, dial the socket it names), watch what it writes, and the requests
//! and objects of one backup as Velero sends them. [`velero`] replays a whole backup.
//!
//! The integration binary uses every helper; `tests/soak.rs`, the benches and the demo
//! include this module by path and use part of it.

pub mod databases;
pub mod velero;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use quiesce::proto::generated::plugin_lister_client::PluginListerClient;
use quiesce::proto::generated::{Empty, PluginIdentifier};
use quiesce::proto::plugin::grpc_controller_client::GrpcControllerClient;
use quiesce::proto::v1::item_block_action_client::ItemBlockActionClient;
use quiesce::proto::v1::ItemBlockActionGetRelatedItemsRequest;
use quiesce::proto::v2::backup_item_action_client::BackupItemActionClient;
use quiesce::proto::v2::ExecuteRequest;
use tonic::transport::{Channel, Endpoint};

/// The binary under test: Cargo names it for tests and benches; an example (the demo) finds
/// it beside its own directory in the target dir.
pub fn bin() -> String {
    if let Some(path) = option_env!("CARGO_BIN_EXE_velero-plugin-quiesce") {
        return path.to_owned();
    }
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().and_then(Path::parent).unwrap();
    target
        .join("velero-plugin-quiesce")
        .to_string_lossy()
        .into_owned()
}

/// The flags a `velero install` deployment passes to `velero server`, and so to every plugin.
pub const VELERO_SERVER_FLAGS: &[&str] = &[
    "--features=EnableCSI",
    "--uploader-type=kopia",
    "--default-volumes-to-fs-backup=false",
    "--log-format",
    "json",
    "--keep-latest-maintenance-jobs=3",
];

/// A running plugin process.
pub struct Plugin {
    /// The plugin process.
    pub child: Child,
    /// The Unix socket the handshake line names.
    pub socket: PathBuf,
    /// The handshake line, newline included.
    pub handshake: String,
    stdout_rest: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    kubeconfig: Option<tempfile::NamedTempFile>,
    _tmp: tempfile::TempDir,
}

/// A plugin and the fake cluster it talks to, as in Velero's pod: the plugin's kubeconfig
/// points at the fake API server.
pub async fn launch_with_cluster(extra_args: &[&str]) -> (Plugin, fake_kube::FakeKube) {
    launch_with_cluster_env(extra_args, &[]).await
}

/// Like [`launch_with_cluster`], with extra environment variables for the plugin.
pub async fn launch_with_cluster_env(
    extra_args: &[&str],
    env: &[(&str, &str)],
) -> (Plugin, fake_kube::FakeKube) {
    launch_with_cluster_from(fake_kube::FakeKube::builder(), extra_args, env).await
}

/// Like [`launch_with_cluster_env`], the fake cluster started from `cluster` (v4 only, say).
pub async fn launch_with_cluster_from(
    cluster: fake_kube::FakeKubeBuilder,
    extra_args: &[&str],
    env: &[(&str, &str)],
) -> (Plugin, fake_kube::FakeKube) {
    let cluster = cluster.start().await.unwrap();
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    cluster.write_kubeconfig(kubeconfig.path()).unwrap();
    let path = kubeconfig.path().to_str().unwrap().to_owned();
    let mut env = env.to_vec();
    env.push(("KUBECONFIG", &path));
    let mut plugin = Plugin::launch_env(&bin(), extra_args, &env);
    plugin.kubeconfig = Some(kubeconfig);
    (plugin, cluster)
}

impl Plugin {
    /// Launches with Velero's environment and the given extra flags.
    pub fn launch(extra_args: &[&str]) -> Plugin {
        Self::launch_as(&bin(), extra_args)
    }

    /// Launches `command` (argv[0] as given) with Velero's environment and the given flags.
    pub fn launch_as(command: &str, extra_args: &[&str]) -> Plugin {
        Self::launch_env(command, extra_args, &[])
    }

    /// Like [`Plugin::launch_as`], with extra environment variables.
    pub fn launch_env(command: &str, extra_args: &[&str], env: &[(&str, &str)]) -> Plugin {
        let tmp = tempfile::tempdir().unwrap();
        let mut child = Command::new(command)
            .args(VELERO_SERVER_FLAGS)
            .args(extra_args)
            .envs(env.iter().copied())
            .env("VELERO_NAMESPACE", "velero")
            .env("VELERO_PLUGIN", "hello")
            .env("PLUGIN_MIN_PORT", "10000")
            .env("PLUGIN_MAX_PORT", "25000")
            .env("PLUGIN_PROTOCOL_VERSIONS", "2")
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        let mut err_pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut handshake = String::new();
        stdout.read_line(&mut handshake).unwrap();
        let stdout_rest = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stdout_rest);
        std::thread::spawn(move || {
            let mut rest = Vec::new();
            let _ = stdout.read_to_end(&mut rest);
            sink.lock().unwrap().extend_from_slice(&rest);
        });
        let fields: Vec<&str> = handshake.trim_end().split('|').collect();
        assert_eq!(fields.len(), 6, "handshake line {handshake:?}");
        let socket = PathBuf::from(fields[3]);
        Plugin {
            child,
            socket,
            handshake,
            stdout_rest,
            stderr,
            kubeconfig: None,
            _tmp: tmp,
        }
    }

    /// A fresh gRPC connection to the plugin, dialled like go-plugin (authority `unused`).
    pub async fn connect(&self) -> Channel {
        connect(&self.socket).await
    }

    /// A `PluginLister` client, as Velero asks what the binary serves.
    async fn lister(&self) -> PluginListerClient<Channel> {
        PluginListerClient::new(self.connect().await)
    }

    /// What the binary serves, as Velero's `ListPlugins` asks at start, on a connection of its
    /// own that is closed before this returns.
    pub async fn list_plugins(&self) -> Vec<PluginIdentifier> {
        let mut lister = self.lister().await;
        lister
            .list_plugins(Empty {})
            .await
            .unwrap()
            .into_inner()
            .plugins
    }

    /// A BackupItemAction v2 client with message size limits lifted, for large items.
    pub async fn backup_action(&self) -> BackupItemActionClient<Channel> {
        BackupItemActionClient::new(self.connect().await)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }

    /// An ItemBlockAction v1 client.
    pub async fn item_block_action(&self) -> ItemBlockActionClient<Channel> {
        ItemBlockActionClient::new(self.connect().await)
    }

    /// Calls `plugin.GRPCController/Shutdown` as go-plugin's `Kill` does, ignoring the result.
    pub async fn shutdown(&self) {
        let mut controller = GrpcControllerClient::new(self.connect().await);
        let _ = controller.shutdown(quiesce::proto::plugin::Empty {}).await;
    }

    /// Waits for the process to exit by itself within `limit` (go-plugin waits 2 s, then SIGKILLs).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Everything written to stderr so far, as lines. The reader thread may lag behind the
    /// process by a moment, so this waits until the output has been quiet for 25 ms (at most
    /// 2 s): lines logged before an RPC answered are then always there.
    pub fn stderr_lines(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut seen = self.stderr.lock().unwrap().len();
        loop {
            std::thread::sleep(Duration::from_millis(25));
            let now = self.stderr.lock().unwrap().len();
            if now == seen || Instant::now() >= deadline {
                break;
            }
            seen = now;
        }
        let bytes = self.stderr.lock().unwrap().clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits (up to `within`) until stderr holds a JSON log line with this `@message`: the
    /// reader thread may lag behind the process.
    pub fn wait_for_log(&self, message: &str, within: Duration) -> Option<serde_json::Value> {
        let deadline = Instant::now() + within;
        loop {
            let found = self
                .stderr_lines()
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|l| l["@message"] == message);
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What was written to stdout after the handshake line (read once the process exited).
    pub fn stdout_after_handshake(&self) -> Vec<u8> {
        self.stdout_rest.lock().unwrap().clone()
    }

    /// Sends `signal` to the process, as `kill -SIGNAL PID` does.
    pub fn signal(&self, signal: i32) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Dials a Unix socket with `:authority` = `unused`, as go-plugin's client does.
pub async fn connect(socket: &Path) -> Channel {
    let socket = socket.to_owned();
    Endpoint::from_static("http://unused")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .unwrap()
}

/// A realistic ~4 KiB pod as Velero's Go encoder would send it (sorted keys, `\u003c` escapes),
/// without hooks.
pub fn pod_json(namespace: &str, name: &str) -> Vec<u8> {
    let mut annotations = String::new();
    for i in 0..36 {
        annotations.push_str(&format!(
            "\"example.com/note-{i:02}\":\"a \\u003cnote\\u003e \\u0026 some padding to look like a real annotation value\","
        ));
    }
    format!(
        concat!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"annotations":{{{annotations}"#,
            r#""app.kubernetes.io/managed-by":"helm"}},"#,
            r#""creationTimestamp":"2026-11-01T10:00:00Z","labels":{{"app":"db"}},"name":"{name}","namespace":"{namespace}","#,
            r#""uid":"6c1d4f7e-1111-2222-3333-444455556666"}},"spec":{{"containers":[{{"image":"postgres:17","name":"db","#,
            r#""volumeMounts":[{{"mountPath":"/data","name":"data"}}]}}],"volumes":[{{"name":"data","#,
            r#""persistentVolumeClaim":{{"claimName":"data-{name}"}}}}]}},"status":{{"phase":"Running"}}}}"#
        ),
        annotations = annotations,
        namespace = namespace,
        name = name
    )
    .into_bytes()
}

/// The name the plugin registers its actions under, as Velero addresses them.
pub const PLUGIN_NAME: &str = "quiesce.dev/pod-hooks";

/// BackupItemAction `Execute` of `item` in [`backup_json`]'s backup, as Velero sends it.
pub fn execute_request(item: Vec<u8>) -> ExecuteRequest {
    ExecuteRequest {
        plugin: PLUGIN_NAME.into(),
        item,
        backup: backup_json(),
    }
}

/// ItemBlockAction `GetRelatedItems` of `item` in [`backup_json`]'s backup, as Velero sends it
/// while forming item blocks.
pub fn related_items_request(item: Vec<u8>) -> ItemBlockActionGetRelatedItemsRequest {
    ItemBlockActionGetRelatedItemsRequest {
        plugin: PLUGIN_NAME.into(),
        item,
        backup: backup_json(),
    }
}

/// A ConfigMap in Velero's namespace (`velero`) with the plugin-config labels and `yaml` as its
/// configuration.
pub fn plugin_config_map(name: &str, yaml: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": {
            "name": name,
            "namespace": "velero",
            "labels": {"velero.io/plugin-config": "", "quiesce.dev/pod-hooks": "BackupItemActionV2"},
        },
        "data": {"config.yaml": yaml},
    })
}

/// The name of [`backup_json`]'s backup.
pub const BACKUP_NAME: &str = "nightly-1";

/// A Backup object as Velero's controller marshals it (1.17+ always fills in
/// `volumeGroupSnapshotLabelKey`).
pub fn backup_json() -> Vec<u8> {
    br#"{"metadata":{"creationTimestamp":"2026-11-01T10:00:00Z","name":"nightly-1","namespace":"velero","uid":"b-uid"},"spec":{"includedNamespaces":["shop"],"defaultVolumesToFsBackup":false,"volumeGroupSnapshotLabelKey":"velero.io/volume-group"},"status":{"phase":"InProgress"}}"#.to_vec()
}
