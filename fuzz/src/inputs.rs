//! Structured fuzz inputs (`arbitrary`): pods whose names, annotation keys and values are
//! drawn mostly from small pools so that they collide with each other and with the rules of
//! [`RULES_YAML`](crate::invariants::RULES_YAML), and sometimes from raw data so that nothing is ruled out.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use arbitrary::Arbitrary;
use k8s_openapi::api::core::v1::Pod;
use quiesce::hooks::Config;
use serde_json::{json, Map, Value};

use crate::invariants::{Method, VeleroCall, RULES_YAML};

const NAMES: &[&str] = &[
    "app",
    "db",
    "istio-proxy",
    "fsfreeze",
    "init",
    "missing",
    "",
];
const NAMESPACES: &[&str] = &["shop", "databases", "kube-system", "velero", ""];
const LABELS: &[(&str, &str)] = &[
    ("quiesce.dev/fsfreeze", "true"),
    ("quiesce.dev/fsfreeze", "false"),
    ("app.kubernetes.io/name", "mysql"),
    ("role", "primary"),
];
const HOOK_FIELDS: &[&str] = &[
    "command",
    "container",
    "on-error",
    "timeout",
    "wait-timeout",
    "wait-for",
    "retries",
    "retry-backoff",
    "retry-on-exit-code",
    "kill-on-timeout",
];
const OTHER_KEYS: &[&str] = &[
    "backup.velero.io/backup-volumes",
    "backup.velero.io/backup-volumes-excludes",
    "quiesce.dev/max-freeze",
    "pre.hook.backup.velero.io/command",
    "post.hook.backup.velero.io/command",
    "quiesce.dev/group",
    "quiesce.dev/run-once-per",
    "quiesce.dev/run-on",
];
/// Values the option keys expect, and near misses.
const WORDS: &[&str] = &[
    "owner",
    "Owner",
    "role=primary",
    "role in (primary, leader),!legacy",
    "role in primary",
    "true",
    "false",
    "ready",
    "running",
    "3",
    "11",
    "-1",
    "75,1",
    "0",
    "orders",
];
const VERBS: &[&str] = &[
    "pre",
    "post",
    "fail",
    "error",
    "hang",
    "",
    "{{pod.name}}",
    "--to={{backup.namespace}}/{{backup.name}}",
    "{{backup.nmae}}",
    "{{.State}}",
    "{{ container }}-{{phase}}",
];
const UNITS: &[&str] = &["ns", "us", "\u{00b5}s", "ms", "s", "m", "h", "d", ""];
const POD_PHASES: &[Option<&str>] = &[
    None,
    Some("Running"),
    Some("Pending"),
    Some("Succeeded"),
    Some("Failed"),
];

fn pick<T: Copy>(pool: &[T], index: u8) -> T {
    pool[usize::from(index) % pool.len()]
}

/// A container name: usually from the pool, sometimes anything.
#[derive(Arbitrary, Debug, Clone)]
pub enum Name {
    /// From the pool of names the rules and annotations use.
    Known(u8),
    /// Anything.
    Random(String),
}

impl Name {
    fn text(&self) -> String {
        match self {
            Name::Known(i) => pick(NAMES, *i).to_owned(),
            Name::Random(s) => s.clone(),
        }
    }
}

/// An annotation key.
#[derive(Arbitrary, Debug, Clone)]
pub enum AnnotationKey {
    /// `pre.`/`post.hook.backup.quiesce.dev/<field>`.
    Hook {
        /// Post instead of pre.
        post: bool,
        /// Index into the four fields.
        field: u8,
    },
    /// Another key quiesce or Velero reads.
    Other(u8),
    /// Anything.
    Random(String),
}

impl AnnotationKey {
    fn text(&self) -> String {
        match self {
            AnnotationKey::Hook { post, field } => format!(
                "{}.hook.backup.quiesce.dev/{}",
                if *post { "post" } else { "pre" },
                pick(HOOK_FIELDS, *field)
            ),
            AnnotationKey::Other(i) => pick(OTHER_KEYS, *i).to_owned(),
            AnnotationKey::Random(s) => s.clone(),
        }
    }
}

/// An annotation value shaped like what the key expects, or not.
#[derive(Arbitrary, Debug, Clone)]
pub enum AnnotationValue {
    /// A JSON array of verbs from the pool.
    Argv(Vec<u8>),
    /// A JSON array of anything.
    RandomArgv(Vec<String>),
    /// A container name.
    Container(Name),
    /// `Fail`, `Continue` or a near miss.
    OnError(u8),
    /// `<sign><whole><unit>`.
    Duration {
        /// Negative.
        negative: bool,
        /// The number.
        whole: u32,
        /// Index into the unit pool.
        unit: u8,
    },
    /// A word an option expects (`owner`, `role=primary`, `true`, `75,1`, …) or a near miss.
    Word(u8),
    /// Anything.
    Raw(String),
}

impl AnnotationValue {
    fn text(&self) -> String {
        match self {
            AnnotationValue::Argv(verbs) => {
                let argv: Vec<&str> = verbs.iter().map(|v| pick(VERBS, *v)).collect();
                serde_json::to_string(&argv).unwrap_or_default()
            }
            AnnotationValue::RandomArgv(argv) => serde_json::to_string(argv).unwrap_or_default(),
            AnnotationValue::Container(name) => name.text(),
            AnnotationValue::OnError(i) => {
                pick(&["Fail", "Continue", "fail", " Continue"], *i).to_owned()
            }
            AnnotationValue::Duration {
                negative,
                whole,
                unit,
            } => format!(
                "{}{whole}{}",
                if *negative { "-" } else { "" },
                pick(UNITS, *unit)
            ),
            AnnotationValue::Word(i) => pick(WORDS, *i).to_owned(),
            AnnotationValue::Raw(s) => s.clone(),
        }
    }
}

/// An init container's `restartPolicy`.
#[derive(Arbitrary, Debug, Clone)]
pub enum InitPolicy {
    /// Unset: a plain init container.
    Unset,
    /// `Always`: a native sidecar.
    Always,
    /// Anything else (`always`, `Never`, …).
    Other(String),
}

/// A pod built from pools.
#[derive(Arbitrary, Debug, Clone)]
pub struct PodInput {
    /// `metadata.name` index (names are few so that pods collide in the engine's index).
    pub name: u8,
    /// Set `metadata.uid`.
    pub uid: bool,
    /// Index into the namespaces.
    pub namespace: u8,
    /// Indices into the labels.
    pub labels: Vec<u8>,
    /// Annotations, later entries winning.
    pub annotations: Vec<(AnnotationKey, AnnotationValue)>,
    /// `spec.containers`.
    pub containers: Vec<Name>,
    /// `spec.initContainers`.
    pub init_containers: Vec<(Name, InitPolicy)>,
    /// Claim names (`data-<n>`) mounted as volumes.
    pub claims: Vec<u8>,
    /// Index into the pod phases.
    pub phase: u8,
    /// Set `metadata.deletionTimestamp`.
    pub deleting: bool,
    /// Leave `spec` out entirely.
    pub no_spec: bool,
}

impl PodInput {
    /// The pod as Kubernetes JSON (with `apiVersion` and `kind`).
    pub fn to_json(&self) -> Value {
        let name = format!("pod-{}", self.name % 4);
        let mut metadata = json!({
            "name": name,
            "namespace": pick(NAMESPACES, self.namespace),
        });
        if self.uid {
            metadata["uid"] = json!(format!("uid-{name}"));
        }
        if self.deleting {
            metadata["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        }
        let labels: Map<String, Value> = self
            .labels
            .iter()
            .map(|i| {
                let (k, v) = pick(LABELS, *i);
                (k.to_owned(), json!(v))
            })
            .collect();
        metadata["labels"] = Value::Object(labels);
        let annotations: Map<String, Value> = self
            .annotations
            .iter()
            .map(|(k, v)| (k.text(), json!(v.text())))
            .collect();
        metadata["annotations"] = Value::Object(annotations);
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata});
        if !self.no_spec {
            let containers: Vec<Value> = self
                .containers
                .iter()
                .map(|c| json!({"name": c.text()}))
                .collect();
            let init_containers: Vec<Value> = self
                .init_containers
                .iter()
                .map(|(c, policy)| match policy {
                    InitPolicy::Unset => json!({"name": c.text()}),
                    InitPolicy::Always => json!({"name": c.text(), "restartPolicy": "Always"}),
                    InitPolicy::Other(p) => json!({"name": c.text(), "restartPolicy": p}),
                })
                .collect();
            let volumes: Vec<Value> = self
                .claims
                .iter()
                .map(|c| {
                    let claim = format!("data-{}", c % 4);
                    json!({"name": claim, "persistentVolumeClaim": {"claimName": claim}})
                })
                .collect();
            pod["spec"] = json!({
                "containers": containers,
                "initContainers": init_containers,
                "volumes": volumes,
            });
        }
        if let Some(phase) = pick(POD_PHASES, self.phase) {
            pod["status"] = json!({"phase": phase});
        }
        pod
    }

    /// The pod as a k8s-openapi value.
    pub fn to_pod(&self) -> Pod {
        serde_json::from_value(self.to_json()).expect("generated pod JSON is a valid Pod")
    }
}

/// The hook configuration the engine loads.
#[derive(Arbitrary, Debug, Clone)]
pub enum ConfigChoice {
    /// No rules.
    Empty,
    /// [`RULES_YAML`].
    Rules,
    /// Any YAML text.
    Yaml(String),
}

impl ConfigChoice {
    /// The validated config (problems are not this target's business).
    pub fn config(&self) -> Config {
        match self {
            ConfigChoice::Empty => Config::default(),
            ConfigChoice::Rules => Config::from_yaml(RULES_YAML).0,
            ConfigChoice::Yaml(text) => Config::from_yaml(text).0,
        }
    }
}

/// Target 1: one pod and one config.
#[derive(Arbitrary, Debug, Clone)]
pub struct ResolveInput {
    /// The pod.
    pub pod: PodInput,
    /// The rules.
    pub config: ConfigChoice,
}

/// Target 2: a duration string, raw or built from terms.
#[derive(Arbitrary, Debug, Clone)]
pub enum DurationInput {
    /// Any text.
    Raw(String),
    /// `[sign](<whole>[.<fraction>]<unit>)+`.
    Terms {
        /// 0: none, 1: `-`, 2: `+`.
        sign: u8,
        /// (whole, fraction digits, unit index).
        terms: Vec<(u64, Option<u32>, u8)>,
    },
}

impl DurationInput {
    /// The text to parse.
    pub fn text(&self) -> String {
        match self {
            DurationInput::Raw(s) => s.clone(),
            DurationInput::Terms { sign, terms } => {
                let mut text = pick(&["", "-", "+"], *sign).to_owned();
                for (whole, fraction, unit) in terms {
                    text.push_str(&whole.to_string());
                    if let Some(fraction) = fraction {
                        text.push('.');
                        text.push_str(&fraction.to_string());
                    }
                    text.push_str(pick(UNITS, *unit));
                }
                text
            }
        }
    }
}

/// An item in a Velero request.
#[derive(Arbitrary, Debug, Clone)]
pub enum ItemInput {
    /// A pod from the pools.
    Pod(PodInput),
    /// A PersistentVolume bound to claim `data-<n>` in a pool namespace.
    Volume {
        /// Claim index.
        claim: u8,
        /// Namespace index.
        namespace: u8,
    },
    /// JSON text of any shape.
    Text(String),
    /// Any bytes.
    Bytes(Vec<u8>),
}

impl ItemInput {
    fn bytes(&self) -> Vec<u8> {
        match self {
            ItemInput::Pod(pod) => serde_json::to_vec(&pod.to_json()).unwrap_or_default(),
            ItemInput::Volume { claim, namespace } => serde_json::to_vec(&json!({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": format!("pv-{}", claim % 4)},
                "spec": {"claimRef": {"namespace": pick(NAMESPACES, *namespace), "name": format!("data-{}", claim % 4)}}
            }))
            .unwrap_or_default(),
            ItemInput::Text(s) => s.clone().into_bytes(),
            ItemInput::Bytes(b) => b.clone(),
        }
    }
}

/// The Backup sent along.
#[derive(Arbitrary, Debug, Clone)]
pub enum BackupInput {
    /// An in-progress backup.
    InProgress {
        /// Which of two backups (uids).
        second: bool,
        /// `spec.defaultVolumesToFsBackup`.
        fs_backup: bool,
        /// Restrict `spec.includedNamespaces` to `shop`.
        only_shop: bool,
    },
    /// A finalizing backup.
    Finalizing,
    /// Any bytes.
    Bytes(Vec<u8>),
}

impl BackupInput {
    fn bytes(&self) -> Vec<u8> {
        match self {
            BackupInput::InProgress {
                second,
                fs_backup,
                only_shop,
            } => {
                let mut spec = json!({"defaultVolumesToFsBackup": fs_backup});
                if *only_shop {
                    spec["includedNamespaces"] = json!(["shop"]);
                }
                serde_json::to_vec(&json!({
                    "apiVersion": "velero.io/v1", "kind": "Backup",
                    "metadata": {"name": "b", "namespace": "velero", "uid": if *second { "uid-2" } else { "uid-1" }},
                    "spec": spec,
                    "status": {"phase": "InProgress"}
                }))
                .unwrap_or_default()
            }
            BackupInput::Finalizing => {
                br#"{"metadata":{"name":"b","namespace":"velero","uid":"uid-1"},"status":{"phase":"Finalizing"}}"#.to_vec()
            }
            BackupInput::Bytes(b) => b.clone(),
        }
    }
}

/// One call.
#[derive(Arbitrary, Debug, Clone)]
pub struct CallInput {
    /// GetRelatedItems instead of Execute.
    pub get_related_items: bool,
    /// Send another plugin name than quiesce's.
    pub plugin: Option<String>,
    /// Index into the items.
    pub item: u8,
    /// The Backup.
    pub backup: BackupInput,
}

/// Target 4: a sequence of calls against one engine.
#[derive(Arbitrary, Debug, Clone)]
pub struct CallsInput {
    /// The rules.
    pub config: ConfigChoice,
    /// Velero before 1.15 (no ItemBlockAction, pods of volumes discovered).
    pub discover_pods_of_volumes: bool,
    /// Items the calls refer to.
    pub items: Vec<ItemInput>,
    /// The calls, at most 16 are made.
    pub calls: Vec<CallInput>,
}

impl CallsInput {
    /// The requests as Velero would send them.
    pub fn calls(&self) -> Vec<VeleroCall> {
        if self.items.is_empty() {
            return Vec::new();
        }
        self.calls
            .iter()
            .take(16)
            .map(|call| VeleroCall {
                method: if call.get_related_items {
                    Method::GetRelatedItems
                } else {
                    Method::Execute
                },
                plugin: call
                    .plugin
                    .clone()
                    .unwrap_or_else(|| quiesce::velero::PLUGIN_NAME.to_owned()),
                item: self.items[usize::from(call.item) % self.items.len()].bytes(),
                backup: call.backup.bytes(),
            })
            .collect()
    }
}

/// One argument: a flag-like string from the pool, or any bytes.
#[derive(Arbitrary, Debug, Clone)]
pub enum ArgInput {
    /// From the pool.
    Known(u8),
    /// Any bytes (not necessarily UTF-8).
    Bytes(Vec<u8>),
}

const ARGS: &[&str] = &[
    "--log-level",
    "--log-level=debug",
    "-log-level",
    "-log-level=",
    "--features",
    "--features=EnableCSI, ,EnableAPIGroupVersions,",
    "-features=",
    "--",
    "-",
    "---log-level",
    "debug",
    "=",
    "--namespace=velero",
    "server",
];

impl ArgInput {
    fn os_string(&self) -> OsString {
        match self {
            ArgInput::Known(i) => OsString::from(pick(ARGS, *i)),
            ArgInput::Bytes(b) => OsString::from_vec(b.clone()),
        }
    }
}

/// Target 5: an argv, or a handshake line.
#[derive(Arbitrary, Debug, Clone)]
pub enum ArgsInput {
    /// `PluginArgs::parse`.
    Argv(Vec<ArgInput>),
    /// `handshake_line`.
    Handshake {
        /// The application protocol version.
        version: u32,
        /// The socket path bytes.
        path: Vec<u8>,
    },
}

impl ArgsInput {
    /// The argv, for [`ArgsInput::Argv`].
    pub fn argv(args: &[ArgInput]) -> Vec<OsString> {
        args.iter().map(ArgInput::os_string).collect()
    }
}
