//! `make bench`: per-pod freeze windows when 200 pods are backed up by 8 concurrent callers in
//! Velero's call order (GetRelatedItems, Execute(PV), the snapshot, Execute(pod)), with real
//! hook commands run by the fake API server. The window is what quiesce itself adds between a
//! pod's first pre hook and its last post hook, with an instant snapshot. A second run puts
//! the same pods in 50 consistency groups of 4 (members on different callers) and reports the
//! groups' windows and what the group bookkeeping (one pod list per group) costs the backup.
//! Prints numbers only.

// The integration tests' shared helpers; this target uses only part of them, and the rest
// would be dead code here (the integration binary itself uses every one).
#[allow(dead_code)]
#[path = "../tests/integration/util/mod.rs"]
mod util;

use std::sync::Arc;
use std::time::{Duration, Instant};

use quiesce::proto::v1::ItemBlockActionGetRelatedItemsRequest;
use quiesce::proto::v2::ExecuteRequest;
use serde_json::{json, Value};
use util::{backup_json, launch_with_cluster};

const NAME: &str = "quiesce.dev/pod-hooks";
const PODS: usize = 200;
const CALLERS: usize = 8;

/// Pods per consistency group in the grouped run.
const GROUP_SIZE: usize = 4;

fn pod(i: usize, grouped: bool) -> Value {
    let volumes: Vec<Value> = if i.is_multiple_of(4) {
        vec![]
    } else {
        vec![json!({"name": "data", "persistentVolumeClaim": {"claimName": format!("data-{i}")}})]
    };
    let mut annotations = json!({
        "pre.hook.backup.quiesce.dev/command": "[\"true\"]",
        "post.hook.backup.quiesce.dev/command": "[\"true\"]"
    });
    if grouped {
        annotations["quiesce.dev/group"] = json!(format!("g{}", i / GROUP_SIZE));
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p{i:03}"), "namespace": "shop", "uid": format!("uid-{i}"),
            "annotations": annotations},
        "spec": {"containers": [{"name": "app"}], "volumes": volumes},
        "status": {"phase": "Running"}
    })
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// What one backup run measured.
struct Run {
    elapsed: Duration,
    execs: usize,
    /// `freezeWindowMs` of every `Pod thawed` line, sorted.
    pod_windows: Vec<u64>,
    /// `freezeWindowMs` of every `Consistency group thawed` line, sorted.
    group_windows: Vec<u64>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let plain = backup(false).await;
    println!(
        "freeze window: {PODS} pods, {CALLERS} concurrent callers, hooks `true`, instant snapshot"
    );
    report(&plain);
    let grouped = backup(true).await;
    println!(
        "same pods in {} consistency groups of {GROUP_SIZE}",
        PODS / GROUP_SIZE
    );
    report(&grouped);
    println!(
        "  group freeze window  median {} ms  p99 {} ms  max {} ms  ({} groups)",
        percentile(&grouped.group_windows, 0.5),
        percentile(&grouped.group_windows, 0.99),
        grouped.group_windows[grouped.group_windows.len() - 1],
        grouped.group_windows.len()
    );
    println!(
        "  whole backup with groups / without: {:.2}",
        grouped.elapsed.as_secs_f64() / plain.elapsed.as_secs_f64()
    );
}

fn report(run: &Run) {
    println!(
        "  pods thawed {} of {PODS}, execs {}, whole backup {:.0} ms ({:.2} ms per pod)",
        run.pod_windows.len(),
        run.execs,
        run.elapsed.as_secs_f64() * 1e3,
        run.elapsed.as_secs_f64() * 1e3 / PODS as f64
    );
    if !run.pod_windows.is_empty() {
        println!(
            "  pod freeze window  median {} ms  p99 {} ms  max {} ms",
            percentile(&run.pod_windows, 0.5),
            percentile(&run.pod_windows, 0.99),
            run.pod_windows[run.pod_windows.len() - 1]
        );
    }
}

async fn backup(grouped: bool) -> Run {
    let (mut plugin, cluster) = launch_with_cluster(&[]).await;
    let pods: Arc<Vec<Value>> = Arc::new((0..PODS).map(|i| pod(i, grouped)).collect());
    for p in pods.iter() {
        cluster.add_pod(p.clone()).unwrap();
    }
    let bia = plugin.backup_action().await;
    let iba = plugin.item_block_action().await;
    let request = |item: Vec<u8>| ExecuteRequest {
        plugin: NAME.into(),
        item,
        backup: backup_json(),
    };
    let started = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|c| {
            let (mut bia, mut iba, pods) = (bia.clone(), iba.clone(), Arc::clone(&pods));
            tokio::spawn(async move {
                for i in (c..PODS).step_by(CALLERS) {
                    let item = serde_json::to_vec(&pods[i]).unwrap();
                    iba.get_related_items(ItemBlockActionGetRelatedItemsRequest {
                        plugin: NAME.into(),
                        item: item.clone(),
                        backup: backup_json(),
                    })
                    .await
                    .unwrap();
                    if !i.is_multiple_of(4) {
                        let pv = json!({"apiVersion": "v1", "kind": "PersistentVolume",
                            "metadata": {"name": format!("pv-{i}")},
                            "spec": {"claimRef": {"namespace": "shop", "name": format!("data-{i}")}}});
                        bia.execute(request(serde_json::to_vec(&pv).unwrap())).await.unwrap();
                    }
                    bia.execute(request(item)).await.unwrap();
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    let elapsed = started.elapsed();
    plugin.shutdown().await;
    plugin.wait_exit(Duration::from_secs(5));

    let lines: Vec<Value> = plugin
        .stderr_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    let windows = |message: &str| {
        let mut windows: Vec<u64> = lines
            .iter()
            .filter(|l| l["@message"] == message)
            .filter_map(|l| l["freezeWindowMs"].as_u64())
            .collect();
        windows.sort_unstable();
        windows
    };
    Run {
        elapsed,
        execs: cluster.execs().len(),
        pod_windows: windows("Pod thawed"),
        group_windows: windows("Consistency group thawed"),
    }
}
