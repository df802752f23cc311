//! A fake Kubernetes API server for quiesce's tests and demo.
//!
//! It serves just enough of the API for kubectl (≥ 1.30, WebSocket exec) and kube-rs: version and
//! discovery, pods, configmaps, events (core and `events.k8s.io`), namespaces and Velero
//! `podvolumebackups` (get, list with selectors, watch, create, replace, merge-patch, delete),
//! and `pods/{name}/exec` over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`). Exec runs
//! the command **on this machine** as a child process, in a per-pod-per-container directory,
//! and records a timeline that tests assert ordering on. Faults can be injected per request
//! pattern.
//!
//! ```no_run
//! # async fn demo() -> fake_kube::Result<()> {
//! let kube = fake_kube::FakeKube::start().await?;
//! kube.add_pod(serde_json::json!({
//!     "metadata": {"name": "db", "namespace": "default"},
//!     "spec": {"containers": [{"name": "main"}]},
//!     "status": {"phase": "Running"},
//! }))?;
//! kube.write_kubeconfig("/tmp/fake-kube.kubeconfig")?;
//! // ... run `kubectl exec db -c main -- true` or a kube-rs client against it ...
//! let _ = kube.execs();
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `server` (private): accept loop, routing, generic resource handlers; hands exec upgrades
//!   down to `exec`.
//! - `exec` (private): exec validation, upgrade and the child-process session.
//! - `state` (private): what every handler shares (store, faults, timeline, kept processes).
//! - `http` (private): response body type, JSON/Status/text responses, query decoding; used
//!   by `server` and `exec`. Imports point one way: `server` → `exec` → `state`, `http`;
//!   only the crate root imports `server`.
//! - [`objects`]: builders of the pods and persistent volumes tests add and send.
//! - [`store`]: objects as JSON, resource table, change history for watches.
//! - [`selector`]: label and field selectors.
//! - `faults`: injected failures ([`FaultRule`], [`Fault`]).
//! - `timeline`: exec timeline, markers and the request log.
//! - `tls`, `kubeconfig`, `discovery`, `status`: certificates, kubeconfig text, discovery
//!   documents and `metav1.Status` shapes.
//!
//! # Differences from a real cluster (on purpose)
//! - Commands run on the host with the server's privileges, environment and `PATH`; the working
//!   directory stands in for the container's filesystem ([`FakeKube::container_dir`]). A relative
//!   program path like `./hook.sh` resolves inside that directory.
//! - When the exec client disconnects before the command ends, the command's whole process
//!   group is killed (SIGKILL) and the timeline records [`ExecOutcome::ClientDisconnected`]. A
//!   real kubelet leaves the process running; killing it is how quiesce's hook timeouts are
//!   tested for orphans. [`FakeKubeBuilder::keep_processes_on_disconnect`] behaves like the
//!   kubelet instead: the command runs on (output read and dropped, exit reaped), is listed by
//!   [`FakeKube::kept_processes`], and is killed when the handle drops or shuts down, so no
//!   process outlives the test. A WebSocket close frame from the client before the status
//!   counts as a disconnect too; note that kube-rs on a v4 connection sends one as soon as
//!   stdin is shut down (`AttachedProcess::join` does that), so on v4 read the output and
//!   status first.
//! - A program that cannot be started ends the stream with the status containerd + runc produce:
//!   `Failure`, reason `InternalError`, code 500, message `Internal error occurred: error
//!   executing command in container: failed to exec in container: … exec: "nosuch": executable
//!   file not found in $PATH: unknown`, and **no** `ExitCode` cause (so kubectl exits 1).
//! - `tty=true` allocates no pty: stderr is merged into stdout.
//! - Exec into a pod whose `status.phase` is set and is not `Running` is refused with HTTP 500
//!   and the kubelet's plain-text body `container not found ("NAME")`; so is exec into a
//!   container whose state the pod's status lists (`containerStatuses`,
//!   `initContainerStatuses`, `ephemeralContainerStatuses`) as anything but `running`
//!   ([`FakeKube::set_container_state`]); a container the status does not list counts as
//!   running. Nothing moves these states by itself: there is no kubelet.
//! - SPDY (the POST fallback of kubectl ≤ 1.29) is not spoken: such requests get a 400 Status.
//! - No authentication: any token (or none) is accepted, and recorded in the request log.

#![warn(missing_docs)]

mod discovery;
mod error;
mod exec;
mod faults;
mod http;
mod kubeconfig;
pub mod objects;
pub mod selector;
mod server;
mod state;
mod status;
pub mod store;
mod timeline;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize as _;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use discovery::{SERVER_GIT_VERSION, SERVER_MINOR};
pub use error::{Error, Result};
pub use faults::{Fault, FaultId, FaultRule};
pub use kubeconfig::DUMMY_TOKEN;
pub use timeline::{
    exec_records, ExecInfo, ExecOutcome, ExecRecord, RequestRecord, TimelineEvent,
    TimelineEventKind,
};

use state::State;
use store::{resource_by_kind, resource_by_path, ResourceKind};

/// How to start a [`FakeKube`].
#[derive(Debug, Clone, Default)]
pub struct FakeKubeBuilder {
    https: bool,
    port: u16,
    work_root: Option<PathBuf>,
    v4_only: bool,
    keep_processes_on_disconnect: bool,
}

impl FakeKubeBuilder {
    /// When an exec client disconnects before its command ends, leave the command running, as
    /// a real kubelet does, instead of killing its process group (the default, which tests of
    /// cancellation rely on). Commands left running are listed by
    /// [`FakeKube::kept_processes`] and killed when the [`FakeKube`] drops or shuts down.
    pub fn keep_processes_on_disconnect(mut self, keep: bool) -> Self {
        self.keep_processes_on_disconnect = keep;
        self
    }

    /// Speak only `v4.channel.k8s.io` on exec, like API servers before 1.30 (kube-rs must fall
    /// back to it; kubectl ≥ 1.30 cannot, it needs v5 or SPDY).
    pub fn v4_only(mut self, v4_only: bool) -> Self {
        self.v4_only = v4_only;
        self
    }

    /// Serve https with a generated CA (the kubeconfig carries it). Default: plain http.
    pub fn https(mut self, https: bool) -> Self {
        self.https = https;
        self
    }

    /// Listen on this port of 127.0.0.1. Default 0: any free port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Use this directory as the root of container working directories instead of a temporary
    /// one that is removed when the handle drops. It is created if missing and never removed.
    pub fn work_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.work_root = Some(root.into());
        self
    }

    /// Binds the listener and starts serving in the background of the current Tokio runtime.
    pub async fn start(self) -> Result<FakeKube> {
        let certificates = tls::Certificates::generate()?;
        let acceptor = if self.https {
            Some(certificates.acceptor()?)
        } else {
            None
        };
        let (temp_dir, work_root) = match self.work_root {
            Some(root) => {
                std::fs::create_dir_all(&root)?;
                (None, root)
            }
            None => {
                let dir = tempfile::Builder::new().prefix("fake-kube-").tempdir()?;
                let root = dir.path().to_path_buf();
                (Some(dir), root)
            }
        };
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], self.port))).await?;
        let addr = listener.local_addr()?;
        let scheme = if self.https { "https" } else { "http" };
        let url = format!("{scheme}://{addr}");
        let state = Arc::new(State::new(
            work_root,
            addr.to_string(),
            self.v4_only,
            self.keep_processes_on_disconnect,
        ));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(server::serve(
            listener,
            acceptor,
            state.clone(),
            shutdown_rx,
        ));
        Ok(FakeKube {
            state,
            addr,
            url,
            https: self.https,
            ca_pem: certificates.ca_pem,
            shutdown,
            task: Some(task),
            _temp_dir: temp_dir,
        })
    }
}

/// A running fake API server. Dropping it stops accepting connections, kills the commands
/// [`FakeKubeBuilder::keep_processes_on_disconnect`] left running and removes its temporary
/// working directories; exec sessions still running end with the Tokio runtime.
pub struct FakeKube {
    state: Arc<State>,
    addr: SocketAddr,
    url: String,
    https: bool,
    ca_pem: String,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    _temp_dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for FakeKube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKube").field("url", &self.url).finish()
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        self.state.kept_processes.kill_all();
    }
}

impl FakeKube {
    /// A builder for non-default settings (https, fixed port, own work root).
    pub fn builder() -> FakeKubeBuilder {
        FakeKubeBuilder::default()
    }

    /// Starts a plain-http server on `127.0.0.1:0`.
    pub async fn start() -> Result<Self> {
        Self::builder().start().await
    }

    /// Starts an https server on `127.0.0.1:0`.
    pub async fn start_https() -> Result<Self> {
        Self::builder().https(true).start().await
    }

    /// Stops accepting connections, kills the commands left running after their client went
    /// away, and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        self.state.kept_processes.kill_all();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    // ----- addresses and client configuration -----

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the server speaks https.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// PEM of the CA that signed the server certificate (generated in http mode too).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A kubeconfig for this server: context `fake-kube`, namespace `default`, bearer token
    /// [`DUMMY_TOKEN`], and the CA as `certificate-authority-data` (also for http, which kube-rs
    /// with rustls needs where the OS has no trust store).
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig::render(&self.url, &self.ca_pem)
    }

    /// Writes [`FakeKube::kubeconfig_yaml`] to a file.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())?;
        Ok(())
    }

    // ----- objects -----

    /// Adds or replaces any supported object, chosen by its `apiVersion` and `kind`. Missing
    /// `metadata.namespace` becomes `default`. Returns the stored object.
    pub fn add_object(&self, object: Value) -> Result<Value> {
        let api_version = object.get("apiVersion").and_then(Value::as_str);
        let kind = object.get("kind").and_then(Value::as_str);
        let resource = match (api_version, kind) {
            (Some(api_version), Some(kind)) => resource_by_kind(api_version, kind),
            _ => None,
        }
        .ok_or_else(|| {
            Error::InvalidObject(format!(
                "unsupported apiVersion/kind {api_version:?}/{kind:?}"
            ))
        })?;
        self.state.store.upsert(resource, object, None)
    }

    /// Adds or replaces a pod. `apiVersion`/`kind` may be omitted.
    pub fn add_pod(&self, pod: Value) -> Result<Value> {
        self.state.store.upsert(core("pods")?, pod, None)
    }

    /// Adds or replaces a configmap. `apiVersion`/`kind` may be omitted.
    pub fn add_config_map(&self, config_map: Value) -> Result<Value> {
        self.state
            .store
            .upsert(core("configmaps")?, config_map, None)
    }

    /// A pod as stored.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        self.state.store.get(core("pods").ok()?, namespace, name)
    }

    /// Removes a pod; later gets and execs answer 404. Returns the removed pod.
    pub fn remove_pod(&self, namespace: &str, name: &str) -> Option<Value> {
        self.state.store.delete(core("pods").ok()?, namespace, name)
    }

    /// Changes a pod in place (e.g. labels, annotations, containers).
    pub fn update_pod(
        &self,
        namespace: &str,
        name: &str,
        mutate: impl FnOnce(&mut Value),
    ) -> Result<Value> {
        self.state
            .store
            .update(core("pods")?, namespace, name, mutate)
    }

    /// Sets `status.phase` (`Running`, `Pending`, `Succeeded`, `Failed`). Exec into a pod whose
    /// phase is set to anything but `Running` is refused.
    pub fn set_pod_phase(&self, namespace: &str, name: &str, phase: &str) -> Result<Value> {
        self.update_pod(namespace, name, |pod| {
            if !pod.get("status").is_some_and(Value::is_object) {
                pod["status"] = json!({});
            }
            pod["status"]["phase"] = json!(phase);
        })
    }

    /// Sets a container's state in the pod's status, the way the kubelet reports it: `state` is
    /// the `ContainerState` object (`{"running": {}}`, `{"waiting": {"reason":
    /// "CrashLoopBackOff"}}`, `{"terminated": {"exitCode": 1, "reason": "Error"}}`) and `ready`
    /// the readiness flag. The entry goes into `containerStatuses`, `initContainerStatuses`
    /// (native sidecars) or `ephemeralContainerStatuses`, by where the spec declares the
    /// container, replacing an earlier one. `GET` of the pod returns it, and exec into the
    /// container is refused unless it is `running` (see the crate docs).
    pub fn set_container_state(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        state: Value,
        ready: bool,
    ) -> Result<Value> {
        let current = self.pod(namespace, pod).ok_or_else(|| Error::NotFound {
            resource: "pods".into(),
            namespace: namespace.into(),
            name: pod.into(),
        })?;
        let field = exec::status_field_of(&current, container).ok_or_else(|| {
            Error::InvalidObject(format!(
                "pod {namespace}/{pod} declares no container {container:?}"
            ))
        })?;
        let image = ["containers", "initContainers", "ephemeralContainers"]
            .iter()
            .filter_map(|kind| current.pointer(&format!("/spec/{kind}"))?.as_array())
            .flatten()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(container))
            .and_then(|c| c.get("image").cloned())
            .unwrap_or_else(|| json!(""));
        let entry = json!({
            "name": container,
            "ready": ready,
            "started": state.get("running").is_some(),
            "restartCount": 0,
            "image": image,
            "imageID": "",
            "state": state,
        });
        self.update_pod(namespace, pod, |pod| {
            if !pod.get("status").is_some_and(Value::is_object) {
                pod["status"] = json!({});
            }
            if !pod["status"].get(field).is_some_and(Value::is_array) {
                pod["status"][field] = json!([]);
            }
            if let Some(statuses) = pod["status"][field].as_array_mut() {
                statuses.retain(|s| s.get("name").and_then(Value::as_str) != Some(container));
                statuses.push(entry);
            }
        })
    }

    /// PIDs of the commands left running after their exec client disconnected
    /// ([`FakeKubeBuilder::keep_processes_on_disconnect`]); a command leaves the list when it
    /// exits.
    pub fn kept_processes(&self) -> Vec<u32> {
        self.state.kept_processes.pids()
    }

    /// Kills (SIGKILL, whole process group) the commands [`FakeKube::kept_processes`] lists.
    /// Dropping the handle does this too.
    pub fn kill_kept_processes(&self) {
        self.state.kept_processes.kill_all();
    }

    /// Objects of a resource (`group` `""` for core), in one namespace or all, sorted by
    /// namespace and name.
    pub fn objects(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        namespace: Option<&str>,
    ) -> Vec<Value> {
        let Some(resource) = resource_by_path(group, version, plural) else {
            return Vec::new();
        };
        let everything = selector::Selector::default();
        self.state
            .store
            .list(resource, namespace, &everything, &everything)
            .0
    }

    /// Core `v1` events (as posted by clients), in one namespace or all.
    pub fn events(&self, namespace: Option<&str>) -> Vec<Value> {
        self.objects("", "v1", "events", namespace)
    }

    /// Loads every object of a YAML file: multiple documents, `kind: List` documents and
    /// top-level sequences are all accepted. Returns how many objects were added.
    pub fn load_yaml(&self, yaml: &str) -> Result<usize> {
        let mut added = 0;
        for document in serde_yaml_ng::Deserializer::from_str(yaml) {
            let value = Value::deserialize(document).map_err(|e| Error::Parse {
                what: "YAML document".into(),
                message: e.to_string(),
            })?;
            added += self.load_value(value)?;
        }
        Ok(added)
    }

    fn load_value(&self, value: Value) -> Result<usize> {
        match value {
            Value::Null => Ok(0),
            Value::Array(items) => items.into_iter().map(|v| self.load_value(v)).sum(),
            object if object.get("kind").and_then(Value::as_str) == Some("List") => {
                let items = object
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                self.load_value(Value::Array(items))
            }
            mut object => {
                if object.get("kind").is_none() {
                    object["kind"] = json!("Pod");
                }
                if object.get("apiVersion").is_none() {
                    object["apiVersion"] = json!("v1");
                }
                self.add_object(object).map(|_| 1)
            }
        }
    }

    // ----- container directories -----

    /// Root of all container working directories.
    pub fn work_root(&self) -> &Path {
        &self.state.work_root
    }

    /// The working directory of commands exec'd into a container,
    /// `<work root>/<namespace>/<pod>/<container>`, created if missing.
    pub fn container_dir(&self, namespace: &str, pod: &str, container: &str) -> Result<PathBuf> {
        container_dir_in(&self.state.work_root, namespace, pod, container)
    }

    // ----- faults -----

    /// Installs a fault rule; rules are consulted in installation order.
    pub fn add_fault(&self, rule: FaultRule) -> FaultId {
        self.state.faults().add(rule)
    }

    /// Removes a fault rule; false if it was already gone (e.g. its count ran out).
    pub fn remove_fault(&self, id: FaultId) -> bool {
        self.state.faults().remove(id)
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.state.faults().clear();
    }

    /// Shorthand: refuse the next `count` exec upgrades (any pod) with a Status of `code`.
    pub fn fail_next_exec_upgrades(&self, count: u32, code: u16) -> FaultId {
        self.add_fault(FaultRule::exec(Fault::Reject { code }).times(count))
    }

    // ----- timeline and request log -----

    /// A snapshot of the timeline, in order.
    pub fn timeline(&self) -> Vec<TimelineEvent> {
        self.state.timeline.snapshot()
    }

    /// One record per exec (start and end paired), in start order.
    pub fn execs(&self) -> Vec<ExecRecord> {
        exec_records(&self.timeline())
    }

    /// Appends a marker (e.g. `snapshot pvc/data`) and returns its sequence number.
    pub fn mark(&self, label: impl Into<String>) -> u64 {
        self.state.timeline.push(TimelineEventKind::Marker {
            label: label.into(),
        })
    }

    /// Waits until `predicate` holds for the timeline or `timeout` passes; returns whether it
    /// held. Useful to wait for an exec's end record after a client gave up on it.
    pub async fn wait_for_timeline(
        &self,
        timeout: Duration,
        mut predicate: impl FnMut(&[TimelineEvent]) -> bool,
    ) -> bool {
        let mut changes = self.state.timeline.subscribe();
        let wait = async {
            loop {
                if predicate(&self.state.timeline.snapshot()) {
                    return true;
                }
                if changes.changed().await.is_err() {
                    return false;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.requests.snapshot()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.state.requests.clear();
    }
}

fn core(plural: &str) -> Result<&'static ResourceKind> {
    resource_by_path("", "v1", plural)
        .ok_or_else(|| Error::InvalidObject(format!("no core resource {plural}")))
}

/// `<root>/<namespace>/<pod>/<container>`, created if missing. Names containing path separators
/// or `..` are refused so a request cannot escape the root.
pub(crate) fn container_dir_in(
    root: &Path,
    namespace: &str,
    pod: &str,
    container: &str,
) -> Result<PathBuf> {
    for part in [namespace, pod, container] {
        if part.is_empty() || part == "." || part == ".." || part.contains('/') {
            return Err(Error::InvalidObject(format!(
                "{part:?} cannot be used as a directory name"
            )));
        }
    }
    let dir = root.join(namespace).join(pod).join(container);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
