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

use fake_kube::objects::{container, pod};
use fake_kube::TimelineEventKind;
use serde_json::Value;
use util::velero::{Velero, NAMESPACE};
use util::Plugin;

/// Prints the heading of the next step.
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

/// The database pod: freeze and thaw hooks in container `postgres`, one claim.
fn database_pod() -> Value {
    pod(NAMESPACE, "postgres-0")
        .uid("6c1d4f7e-0000-0000-0000-000000000001")
        .annotation(
            "pre.hook.backup.quiesce.dev/command",
            "[\"sh\",\"-c\",\"echo CHECKPOINT; touch frozen\"]",
        )
        .annotation("pre.hook.backup.quiesce.dev/container", "postgres")
        .annotation(
            "post.hook.backup.quiesce.dev/command",
            "[\"sh\",\"-c\",\"rm frozen && echo resumed\"]",
        )
        .annotation("post.hook.backup.quiesce.dev/container", "postgres")
        .annotation("post.hook.backup.quiesce.dev/timeout", "10s")
        .container(container("postgres").image("postgres:17"))
        .volume("data", "data-postgres-0")
        .build()
}

/// A cache pod without claims: frozen and thawed at its own item.
fn cache_pod() -> Value {
    pod(NAMESPACE, "redis-0")
        .uid("6c1d4f7e-0000-0000-0000-000000000002")
        .annotation(
            "pre.hook.backup.quiesce.dev/command",
            "[\"sh\",\"-c\",\"echo SAVE\"]",
        )
        .annotation(
            "post.hook.backup.quiesce.dev/command",
            "[\"sh\",\"-c\",\"echo resumed\"]",
        )
        .container(container("redis").image("redis:8"))
        .build()
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
    for p in &plugin.list_plugins().await {
        println!("    {:<20} {}", p.kind, p.name);
    }
    plugin.shutdown().await;
    let code = plugin
        .wait_exit(Duration::from_secs(2))
        .and_then(|s| s.code());
    println!("    stopped, exit code {code:?}");

    step("Backup velero/nightly-1 of namespace shop: Velero launches the plugin for it");
    let mut velero = Velero::start().await;
    let mut seen = 0;
    let pod = database_pod();

    step("Item blocks are formed: GetRelatedItems(pod shop/postgres-0) — the plugin takes note, runs nothing");
    velero.index(&pod).await;
    print_logs(&velero.plugin, &mut seen);

    step("The pod's claim is backed up; its volume comes next: Execute(persistentvolume pv-data) → freeze");
    velero.volume("pv-data", "data-postgres-0").await.unwrap();
    print_logs(&velero.plugin, &mut seen);
    println!("    (Velero cuts the volume snapshot now)");

    step("All the pod's volumes are snapshotted: Execute(pod shop/postgres-0) → thaw");
    velero.pod(&pod).await.unwrap();
    println!("    pod item returned to Velero unchanged (checked byte for byte)");
    print_logs(&velero.plugin, &mut seen);

    step(
        "Next item block: Execute(pod shop/redis-0), a pod without claims → freeze and thaw there",
    );
    velero.back_up(&cache_pod(), &[]).await.unwrap();
    print_logs(&velero.plugin, &mut seen);

    step("Freeze window per pod (first pre hook start → last post hook end)");
    for line in velero.plugin.stderr_lines() {
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
    for event in velero.cluster.timeline() {
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
    let code = velero
        .stop(Duration::from_secs(2))
        .await
        .and_then(|s| s.code());
    println!(
        "    exit code {code:?}, {:.1} ms after Shutdown",
        asked.elapsed().as_secs_f64() * 1e3
    );
    print_logs(&velero.plugin, &mut seen);
}
