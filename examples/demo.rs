//! `make demo`: a Velero backup of an annotated database pod, replayed against the real plugin
//! binary and a fake Kubernetes API server that runs the hook commands on this machine.
//!
//! It shows what a platform engineer cares about: Velero discovers the plugin, the pod is
//! frozen just before its volume snapshot and thawed right after, every hook is logged with
//! Velero's fields, and Velero's stop leaves nothing frozen.

// The integration tests' shared helpers; this target uses only part of them, and the rest
// would be dead code here (the integration binary itself uses every one).
#[allow(dead_code)]
#[path = "../tests/integration/util/mod.rs"]
mod util;

use std::time::{Duration, Instant};

use fake_kube::TimelineEventKind;
use quiesce::proto::generated::Empty;
use quiesce::proto::v1::ItemBlockActionGetRelatedItemsRequest;
use quiesce::proto::v2::ExecuteRequest;
use serde_json::{json, Value};
use util::{backup_json, launch_with_cluster, Plugin};

const NAME: &str = "quiesce.dev/pod-hooks";

fn step(text: &str) {
    println!("\n▶ {text}");
}

/// The plugin's log lines since the last call, as `velero backup logs` would show them.
fn print_logs(plugin: &Plugin, seen: &mut usize) {
    let lines = plugin.stderr_lines();
    for line in &lines[*seen..] {
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let mut fields: Vec<String> = value
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| !k.starts_with('@') && *k != "logSource")
            .map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_owned)))
            .collect();
        fields.sort();
        println!(
            "    level={} msg={:?} {}",
            value["@level"].as_str().unwrap_or("?"),
            value["@message"].as_str().unwrap_or(""),
            fields.join(" ")
        );
    }
    *seen = lines.len();
}

/// A cache pod without claims: frozen and thawed at its own item.
fn cache_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "redis-0", "namespace": "shop", "uid": "6c1d4f7e-0000-0000-0000-000000000002",
            "annotations": {
                "pre.hook.backup.quiesce.dev/command": "[\"sh\",\"-c\",\"echo SAVE\"]",
                "post.hook.backup.quiesce.dev/command": "[\"sh\",\"-c\",\"echo resumed\"]"
            }
        },
        "spec": {"containers": [{"name": "redis", "image": "redis:8"}]},
        "status": {"phase": "Running"}
    })
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "postgres-0", "namespace": "shop", "uid": "6c1d4f7e-0000-0000-0000-000000000001",
            "annotations": {
                "pre.hook.backup.quiesce.dev/command": "[\"sh\",\"-c\",\"echo CHECKPOINT; touch frozen\"]",
                "pre.hook.backup.quiesce.dev/container": "postgres",
                "post.hook.backup.quiesce.dev/command": "[\"sh\",\"-c\",\"rm frozen && echo resumed\"]",
                "post.hook.backup.quiesce.dev/container": "postgres",
                "post.hook.backup.quiesce.dev/timeout": "10s"
            }
        },
        "spec": {
            "containers": [{"name": "postgres", "image": "postgres:17"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-postgres-0"}}]
        },
        "status": {"phase": "Running"}
    })
}

#[tokio::main]
async fn main() {
    step("Velero starts: it launches every binary under /plugins and asks what it serves");
    let started = Instant::now();
    let mut plugin = Plugin::launch(&[]);
    println!(
        "    handshake after {:.1} ms: {}",
        started.elapsed().as_secs_f64() * 1e3,
        plugin.handshake.trim_end()
    );
    let listed = plugin
        .lister()
        .await
        .list_plugins(Empty {})
        .await
        .unwrap()
        .into_inner();
    for p in &listed.plugins {
        println!("    {:<20} {}", p.kind, p.name);
    }
    plugin.shutdown().await;
    let code = plugin
        .wait_exit(Duration::from_secs(2))
        .and_then(|s| s.code());
    println!("    stopped, exit code {code:?}");

    step("Backup velero/nightly-1 of namespace shop: Velero launches the plugin for it");
    let (plugin, cluster) = launch_with_cluster(&[]).await;
    let mut seen = 0;
    let pod = pod();
    cluster.add_pod(pod.clone()).unwrap();
    let item = serde_json::to_vec(&pod).unwrap();
    let mut bia = plugin.backup_action().await;
    let mut iba = plugin.item_block_action().await;

    step("Item blocks are formed: GetRelatedItems(pod shop/postgres-0) — the plugin takes note, runs nothing");
    iba.get_related_items(ItemBlockActionGetRelatedItemsRequest {
        plugin: NAME.into(),
        item: item.clone(),
        backup: backup_json(),
    })
    .await
    .unwrap();
    print_logs(&plugin, &mut seen);

    step("The pod's claim is backed up; its volume comes next: Execute(persistentvolume pv-data) → freeze");
    let pv = json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-data"},
                    "spec": {"claimRef": {"namespace": "shop", "name": "data-postgres-0"}}});
    bia.execute(ExecuteRequest {
        plugin: NAME.into(),
        item: serde_json::to_vec(&pv).unwrap(),
        backup: backup_json(),
    })
    .await
    .unwrap();
    print_logs(&plugin, &mut seen);
    cluster.mark("Velero snapshots pv-data");
    println!("    (Velero cuts the volume snapshot now)");

    step("All the pod's volumes are snapshotted: Execute(pod shop/postgres-0) → thaw");
    let answer = bia
        .execute(ExecuteRequest {
            plugin: NAME.into(),
            item: item.clone(),
            backup: backup_json(),
        })
        .await
        .unwrap()
        .into_inner();
    println!(
        "    pod item returned to Velero unchanged: {}",
        answer.item == item
    );
    print_logs(&plugin, &mut seen);

    step(
        "Next item block: Execute(pod shop/redis-0), a pod without claims → freeze and thaw there",
    );
    let cache = cache_pod();
    cluster.add_pod(cache.clone()).unwrap();
    let cache_item = serde_json::to_vec(&cache).unwrap();
    iba.get_related_items(ItemBlockActionGetRelatedItemsRequest {
        plugin: NAME.into(),
        item: cache_item.clone(),
        backup: backup_json(),
    })
    .await
    .unwrap();
    bia.execute(ExecuteRequest {
        plugin: NAME.into(),
        item: cache_item,
        backup: backup_json(),
    })
    .await
    .unwrap();
    print_logs(&plugin, &mut seen);

    step("Freeze window per pod (first pre hook start → last post hook end)");
    for line in plugin.stderr_lines() {
        let Ok(value) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if value["@message"] == "Pod thawed" {
            println!(
                "    {}/{}: {} ms",
                value["namespace"].as_str().unwrap_or(""),
                value["pod"].as_str().unwrap_or(""),
                value["freezeWindowMs"]
            );
        }
    }

    step("What happened in the cluster, in order (the fake API server's timeline)");
    for event in cluster.timeline() {
        let at = event.at.as_secs_f64() * 1e3;
        match event.kind {
            TimelineEventKind::ExecStarted { exec, .. } => println!(
                "    {at:8.1} ms  exec  {} in {}/{}: {:?}",
                exec.container, exec.namespace, exec.pod, exec.argv
            ),
            TimelineEventKind::ExecFinished { exec, outcome } => {
                println!("    {at:8.1} ms  done  {}: {outcome:?}", exec.pod)
            }
            TimelineEventKind::Marker { label } => println!("    {at:8.1} ms  ----  {label}"),
        }
    }

    step("Backup done: Velero stops the plugin");
    let asked = Instant::now();
    let mut plugin = plugin;
    plugin.shutdown().await;
    let code = plugin
        .wait_exit(Duration::from_secs(2))
        .and_then(|s| s.code());
    println!(
        "    exit code {code:?}, {:.1} ms after Shutdown",
        asked.elapsed().as_secs_f64() * 1e3
    );
    print_logs(&plugin, &mut seen);
}
