//! The invariants the fuzz targets assert, one `check_*` function per target. Each panics with
//! the offending input when an invariant breaks, which libFuzzer records as a crash.
//!
//! Shared with `tests/integration/fuzz_regressions.rs`, which includes this file by path so that every
//! finding replays on stable through the very same checks. It may therefore use only crates
//! that `quiesce` itself depends on (no `arbitrary`, no `libfuzzer-sys`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use quiesce::args::PluginArgs;
use quiesce::engine::{Engine, Options};
use quiesce::exec::{Captured, ExecError, ExecOutput, ExecRequest, Executor};
use quiesce::goplugin::{handshake_line, Handshake};
use quiesce::hooks::{
    self, format_go_duration, parse_go_duration, template, Config, GoDuration, HookDefect,
    HookSource, Phase, CONFIG_KEY, MAX_RETRIES, MAX_RETRY_BACKOFF, MAX_TIMEOUT,
};
use quiesce::kube_api::{self, Cluster, PodEvent, PodVolumeBackup};
use quiesce::proto::v1::item_block_action_server::ItemBlockAction;
use quiesce::proto::v1::ItemBlockActionGetRelatedItemsRequest;
use quiesce::proto::v2::backup_item_action_server::BackupItemAction;
use quiesce::proto::v2::ExecuteRequest;
use quiesce::velero::actions::{PodHooksBackupAction, PodHooksItemBlockAction};

/// Rules that apply to the pool's pods, with hooks that fail, hang and name absent containers.
pub const RULES_YAML: &str = r#"
maxFreeze: 10m
governance:
  annotationHooks:
    deniedNamespaces: ["kube-system"]
hooks:
  resources:
    - name: every-pod
      pre:
        - exec:
            container: app
            command: ["pre", "--all"]
            timeout: 4h
        - exec:
            command: ["fail"]
            onError: Continue
      post:
        - exec:
            container: fsfreeze
            command: ["post"]
            timeout: 1s
    - name: labelled
      includedNamespaces: ["shop", "databases"]
      labelSelector:
        matchLabels:
          quiesce.dev/fsfreeze: "true"
      pre:
        - exec:
            container: istio-proxy
            command: ["hang"]
            timeout: 2s
        - exec:
            container: db
            command: ["error"]
      post:
        - exec:
            container: missing
            command: ["post"]
"#;

// ---------------------------------------------------------------------------------------------
// 1. annotations → resolved hooks

/// Names a hook may run in: the pod's containers and its native sidecars.
fn runnable_containers(pod: &Pod) -> Vec<&str> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.containers
        .iter()
        .chain(sidecars)
        .map(|c| c.name.as_str())
        .collect()
}

/// For both phases: a hook without a defect runs in a container of the pod, with a non-empty
/// argv; every hook's timeout is in (0, 4h]; an annotation hook replaces the phase's rule hooks.
pub fn check_resolution(pod: &Pod, config: &Config) {
    let runnable = runnable_containers(pod);
    for phase in [Phase::Pre, Phase::Post] {
        let resolution = hooks::resolve(pod, phase, config);
        if resolution.skipped.is_some() {
            assert!(
                resolution.hooks.is_empty() && resolution.refused.is_empty(),
                "a skipped pod has hooks: {resolution:?}"
            );
        }
        let from_annotations = resolution
            .hooks
            .iter()
            .filter(|h| h.source == HookSource::Annotation)
            .count();
        // A post phase may end the session its pre hook holds, then run its own command.
        let session_ends = resolution
            .hooks
            .iter()
            .filter(|h| h.source == HookSource::Annotation && h.ends_session.is_some())
            .count();
        assert!(
            from_annotations - session_ends <= 1 && session_ends <= 1,
            "{phase}: more than one annotation hook: {resolution:?}"
        );
        assert!(
            phase == Phase::Post || session_ends == 0,
            "{phase}: a pre hook ends a session: {resolution:?}"
        );
        if from_annotations == 1 || !resolution.refused.is_empty() {
            assert!(
                resolution.hooks.len() == from_annotations,
                "{phase}: rule hooks beside an annotation hook: {resolution:?}"
            );
        }
        for hook in &resolution.hooks {
            assert_eq!(hook.phase, phase, "{hook:?}");
            assert!(
                !hook.timeout.is_zero() && hook.timeout <= MAX_TIMEOUT,
                "{phase}: timeout out of (0, 4h]: {hook:?}"
            );
            if !matches!(hook.defect, Some(HookDefect::EmptyCommand { .. })) {
                assert!(!hook.command.is_empty(), "{phase}: empty argv: {hook:?}");
            }
            if hook.defect.is_none() {
                assert!(
                    runnable.contains(&hook.container.as_str()),
                    "{phase}: hook without defect targets {:?}, not one of {runnable:?}: {hook:?}",
                    hook.container
                );
                // A runnable hook's template renders, element for element.
                let context = template::TemplateContext {
                    backup_name: "b",
                    backup_namespace: "velero",
                    pod_name: "p q",
                    pod_namespace: "{{pod.name}}",
                    container: &hook.container,
                    phase,
                };
                let rendered = template::render(&hook.command, &context).unwrap_or_else(|e| {
                    panic!("{phase}: runnable hook does not render: {e}: {hook:?}")
                });
                assert_eq!(rendered.len(), hook.command.len(), "{hook:?}");
                // And so does its stdin (a defect otherwise).
                if let Some(stdin) = &hook.execution.stdin {
                    template::render_stdin(stdin, &context).unwrap_or_else(|e| {
                        panic!("{phase}: runnable hook's stdin does not render: {e}: {hook:?}")
                    });
                }
            }
            let execution = &hook.execution;
            assert!(execution.retries <= MAX_RETRIES, "{hook:?}");
            assert!(execution.retry_backoff <= MAX_RETRY_BACKOFF, "{hook:?}");
            assert!(
                execution
                    .wait
                    .is_none_or(|w| !w.timeout.is_zero() && w.timeout <= MAX_TIMEOUT),
                "{hook:?}"
            );
            assert!(
                execution
                    .retry_on_exit_codes
                    .iter()
                    .all(|c| (1..=255).contains(c)),
                "{hook:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Go durations

const LIMIT: u128 = 1 << 63;

/// Parses, then checks the result against Go's range, the rendering round trip and, for inputs
/// made of whole-number terms only, an independent exact model.
pub fn check_go_duration(input: &str) {
    let parsed = parse_go_duration(input);
    match &parsed {
        Ok(d) => {
            assert!(
                !(d.negative && d.magnitude.is_zero()),
                "{input:?}: negative zero {d:?}"
            );
            let nanos = d.magnitude.as_nanos();
            assert!(nanos <= LIMIT, "{input:?}: beyond Go's range: {d:?}");
            assert!(
                d.negative || nanos < LIMIT,
                "{input:?}: positive 2^63ns: {d:?}"
            );
            assert!(
                !input.is_empty() && !input.chars().any(char::is_whitespace),
                "{input:?} accepted"
            );
            let sign = if d.negative { "-" } else { "" };
            let rendered = format!("{sign}{}", format_go_duration(d.magnitude));
            assert_eq!(
                parse_go_duration(&rendered).as_ref(),
                Ok(d),
                "{input:?} → {d:?} renders as {rendered:?}, which does not parse back"
            );
        }
        Err(error) => assert!(!error.to_string().is_empty(), "{input:?}: empty error"),
    }
    if let Some(expected) = whole_terms_model(input) {
        let got = parsed
            .as_ref()
            .ok()
            .map(|d| (d.negative, d.magnitude.as_nanos()));
        assert_eq!(got, expected, "{input:?}: parser and model disagree");
    }
}

/// `Some(result)` for inputs of the form `[-+]?(<digits><unit>)+` or `[-+]?0`, computed
/// exactly in u128; `None` (no opinion) for anything else.
fn whole_terms_model(input: &str) -> Option<Option<(bool, u128)>> {
    let (negative, body) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if body == "0" {
        return Some(Some((false, 0)));
    }
    if body.is_empty() {
        return None;
    }
    let mut rest = body;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let value = rest[..digits]
            .bytes()
            .try_fold(0u128, |x, c| {
                x.checked_mul(10)?.checked_add(u128::from(c - b'0'))
            })
            .unwrap_or(u128::MAX);
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "\u{00b5}s" | "\u{03bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        if rest.starts_with('.') {
            return None;
        }
        total = total.saturating_add(value.saturating_mul(unit));
    }
    let in_range = if negative {
        total <= LIMIT
    } else {
        total < LIMIT
    };
    Some(in_range.then_some((negative && total != 0, total)))
}

/// Exact agreement on a few hand-written cases, used as the fuzz target's sanity check.
pub fn check_go_duration_simple_cases() {
    let ok = |s: &str, negative: bool, nanos: u64| {
        assert_eq!(
            parse_go_duration(s),
            Ok(GoDuration {
                negative,
                magnitude: Duration::from_nanos(nanos)
            }),
            "{s:?}"
        );
    };
    ok("0", false, 0);
    ok("-0", false, 0);
    ok("30s", false, 30_000_000_000);
    ok("1h30m", false, 5_400_000_000_000);
    ok("1.5h", false, 5_400_000_000_000);
    ok(".5s", false, 500_000_000);
    ok("-1s", true, 1_000_000_000);
    ok("1\u{00b5}s", false, 1_000);
    for bad in ["", "300", "1d", " 1s", "1s ", "-", ".s", "1.2.3s"] {
        assert!(parse_go_duration(bad).is_err(), "{bad:?} accepted");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. rules YAML → validated rules

/// Every rule is named and has only runnable hooks; every problem says something; the
/// ConfigMap entry point agrees with the YAML one; parsing is deterministic.
pub fn check_config_yaml(text: &str) {
    let (config, problems) = Config::from_yaml(text);
    let mut last_index = None;
    for rule in config.rules() {
        assert!(!rule.name().is_empty(), "{text:?}: unnamed rule {rule:?}");
        assert!(
            last_index.is_none_or(|last| last < rule.index()),
            "{text:?}: rules out of order: {rule:?}"
        );
        last_index = Some(rule.index());
        for phase in [Phase::Pre, Phase::Post] {
            for hook in rule.hooks(phase) {
                // Only a post hook ending the rule's held session runs no command.
                assert!(
                    !hook.command.is_empty()
                        || (phase == Phase::Post
                            && hook.ends_session
                            && rule.held_session().is_some()),
                    "{text:?}: empty command {hook:?}"
                );
                assert!(
                    !hook.timeout.is_zero() && hook.timeout <= MAX_TIMEOUT,
                    "{text:?}: timeout out of (0, 4h]: {hook:?}"
                );
            }
        }
    }
    for problem in &problems {
        assert!(
            !problem.message.trim().is_empty(),
            "{text:?}: problem without message: {problem:?}"
        );
    }
    let data = BTreeMap::from([(CONFIG_KEY.to_owned(), text.to_owned())]);
    assert_eq!(
        Config::from_configmap_data(&data),
        (config.clone(), problems.clone()),
        "{text:?}: from_configmap_data disagrees with from_yaml"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Execute / GetRelatedItems

/// Which RPC a [`VeleroCall`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `v2.BackupItemAction/Execute`.
    Execute,
    /// `v1.ItemBlockAction/GetRelatedItems`.
    GetRelatedItems,
}

/// One request as Velero would send it.
#[derive(Debug, Clone)]
pub struct VeleroCall {
    /// The RPC.
    pub method: Method,
    /// The `plugin` field.
    pub plugin: String,
    /// The item JSON bytes.
    pub item: Vec<u8>,
    /// The Backup JSON bytes.
    pub backup: Vec<u8>,
}

/// Runs nothing. Answers by argv[0]: `fail` exits 1, `error` is a remote failure, `hang`
/// times out after the hook's timeout (on tokio's clock), anything else exits 0.
#[derive(Default)]
pub struct ScriptedExecutor {
    /// argv[0] of every exec, in order.
    pub calls: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Executor for ScriptedExecutor {
    async fn exec(&self, request: &ExecRequest) -> Result<ExecOutput, ExecError> {
        let verb = request.command.first().cloned().unwrap_or_default();
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(verb.clone());
        }
        let exit_code = match verb.as_str() {
            "fail" => 1,
            "error" => return Err(ExecError::RemoteFailure("scripted failure".into())),
            "hang" => {
                tokio::time::sleep(request.timeout).await;
                return Err(ExecError::TimedOut(request.timeout));
            }
            _ => 0,
        };
        Ok(ExecOutput {
            exit_code,
            stdout: Captured::default(),
            stderr: Captured::default(),
            duration: Duration::ZERO,
        })
    }
}

/// A cluster that holds `config`, no PodVolumeBackups and no pods, and drops Events.
pub struct StaticCluster {
    /// What `load_config` returns.
    pub config: Config,
}

#[async_trait::async_trait]
impl Cluster for StaticCluster {
    async fn load_config(&self, _velero_namespace: &str) -> Config {
        self.config.clone()
    }
    async fn pod_volume_backups(
        &self,
        _velero_namespace: &str,
        _backup_uid: &str,
    ) -> Result<Vec<PodVolumeBackup>, kube_api::Error> {
        Ok(Vec::new())
    }
    async fn pods_in_namespace(&self, _namespace: &str) -> Result<Vec<Pod>, kube_api::Error> {
        Ok(Vec::new())
    }
    async fn record_event(&self, _event: &PodEvent) -> Result<(), kube_api::Error> {
        Ok(())
    }
    fn watch_volume_snapshots(&self, _namespace: &str, _labels: &str) -> kube_api::SnapshotEvents {
        Box::pin(futures_util::stream::empty())
    }
}

/// A current-thread runtime on a paused clock, so that timeouts and polls cost no wall time.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds")
}

/// Sends `calls` in order through the real service handlers of one fresh engine (over a
/// scripted executor and a static cluster), then shuts the engine down as `Shutdown` would.
/// Every call answers the request item byte-for-byte with nothing added, or a gRPC error.
pub fn check_velero_calls(
    runtime: &tokio::runtime::Runtime,
    calls: &[VeleroCall],
    config: Config,
    discover_pods_of_volumes: bool,
) {
    let engine = Engine::new(
        Arc::new(ScriptedExecutor::default()),
        Arc::new(StaticCluster { config }),
        Options {
            pvb_poll: Duration::from_secs(1),
            discover_pods_of_volumes,
            ..Options::default()
        },
    );
    let backup_action = PodHooksBackupAction {
        plugins: quiesce::velero::plugins(true),
        engine: engine.clone(),
    };
    let item_block_action = PodHooksItemBlockAction {
        plugins: quiesce::velero::plugins(true),
        engine: engine.clone(),
    };
    runtime.block_on(async {
        for call in calls {
            match call.method {
                Method::Execute => {
                    let request = ExecuteRequest {
                        plugin: call.plugin.clone(),
                        item: call.item.clone(),
                        backup: call.backup.clone(),
                    };
                    match backup_action.execute(tonic::Request::new(request)).await {
                        Ok(response) => {
                            let response = response.into_inner();
                            assert_eq!(response.item, call.item, "item changed: {call:?}");
                            assert!(
                                response.additional_items.is_empty()
                                    && response.operation_id.is_empty()
                                    && response.post_operation_items.is_empty(),
                                "Execute added something: {response:?} for {call:?}"
                            );
                        }
                        Err(status) => check_status(&status, call),
                    }
                }
                Method::GetRelatedItems => {
                    let request = ItemBlockActionGetRelatedItemsRequest {
                        plugin: call.plugin.clone(),
                        item: call.item.clone(),
                        backup: call.backup.clone(),
                    };
                    match item_block_action
                        .get_related_items(tonic::Request::new(request))
                        .await
                    {
                        Ok(response) => assert!(
                            response.get_ref().related_items.is_empty(),
                            "GetRelatedItems added items: {response:?} for {call:?}"
                        ),
                        Err(status) => check_status(&status, call),
                    }
                }
            }
        }
        engine.drain().await;
    });
}

fn check_status(status: &tonic::Status, call: &VeleroCall) {
    assert_ne!(
        status.code(),
        tonic::Code::Ok,
        "error with code Ok for {call:?}"
    );
    assert!(
        !status.message().trim().is_empty(),
        "error without message for {call:?}: {status:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. argument parser and handshake line

/// `command` is argv[0] (lossily); features are non-empty, trimmed and comma-free; a flag value
/// only comes from an argument that mentions the flag or follows one.
pub fn check_plugin_args(argv: &[OsString]) {
    let parsed = PluginArgs::parse(argv.iter().cloned());
    let lossy: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        parsed.command,
        lossy.first().cloned().unwrap_or_default(),
        "{argv:?}"
    );
    let rest = lossy.get(1..).unwrap_or_default();
    for feature in &parsed.features {
        assert!(
            !feature.is_empty() && feature.trim() == feature && !feature.contains(','),
            "{argv:?}: feature {feature:?}"
        );
    }
    if !rest.iter().any(|a| a.contains("features")) {
        assert!(parsed.features.is_empty(), "{argv:?}: {parsed:?}");
    }
    match &parsed.log_level {
        None => {}
        Some(level) => {
            assert!(
                rest.iter().any(|a| a.contains("log-level")),
                "{argv:?}: {parsed:?}"
            );
            assert!(
                rest.iter()
                    .any(|a| a == level || a.ends_with(&format!("={level}"))),
                "{argv:?}: log level {level:?} from nowhere"
            );
        }
    }
    assert_eq!(PluginArgs::parse(argv.iter().cloned()), parsed, "{argv:?}");
}

/// Whether go-plugin can split the handshake line for `socket` back into its fields: the path
/// must hold neither the field separator `|` nor a line break.
pub fn socket_path_fits_handshake(socket: &Path) -> bool {
    !socket.display().to_string().contains(['|', '\n', '\r'])
}

/// `1|<app version>|unix|<path>|grpc|\n`: six `|`-separated fields, the last one the newline.
pub fn check_handshake_line(app_protocol_version: u32, socket: &Path) {
    let handshake = Handshake {
        app_protocol_version,
        ..quiesce::velero::HANDSHAKE
    };
    let line = handshake_line(&handshake, socket);
    assert!(line.ends_with("|\n"), "{socket:?}: {line:?}");
    let fields: Vec<&str> = line.split('|').collect();
    assert_eq!(fields.len(), 6, "{socket:?}: {line:?}");
    let version = app_protocol_version.to_string();
    let path = socket.display().to_string();
    assert_eq!(
        fields[..5],
        ["1", version.as_str(), "unix", path.as_str(), "grpc"],
        "{socket:?}: {line:?}"
    );
    assert_eq!(fields[5], "\n", "{socket:?}: {line:?}");
}
