//! `make bench`: per-pod freeze windows when 200 pods are backed up by 8 concurrent callers in
//! Velero's call order (GetRelatedItems, Execute(PV), the snapshot, Execute(pod)), with real
//! hook commands run by the fake API server. The window is what quiesce itself adds between a
//! pod's first pre hook and its last post hook, with an instant snapshot. Prints numbers only.

#[path = "../tests/util/mod.rs"]
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

fn pod(i: usize) -> Value {
    let volumes: Vec<Value> = if i.is_multiple_of(4) {
        vec![]
    } else {
        vec![json!({"name": "data", "persistentVolumeClaim": {"claimName": format!("data-{i}")}})]
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p{i:03}"), "namespace": "shop", "uid": format!("uid-{i}"),
            "annotations": {
                "pre.hook.backup.quiesce.dev/command": "[\"true\"]",
                "post.hook.backup.quiesce.dev/command": "[\"true\"]"
            }},
        "spec": {"containers": [{"name": "app"}], "volumes": volumes},
        "status": {"phase": "Running"}
    })
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (mut plugin, cluster) = launch_with_cluster(&[]).await;
    let pods: Arc<Vec<Value>> = Arc::new((0..PODS).map(pod).collect());
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

    let mut windows: Vec<u64> = plugin
        .stderr_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["@message"] == "Pod thawed")
        .filter_map(|l| l["freezeWindowMs"].as_u64())
        .collect();
    windows.sort_unstable();
    let execs = cluster.execs().len();
    println!(
        "freeze window: {PODS} pods, {CALLERS} concurrent callers, hooks `true`, instant snapshot"
    );
    println!(
        "  pods thawed {} of {PODS}, execs {execs}, whole backup {:.0} ms ({:.2} ms per pod)",
        windows.len(),
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e3 / PODS as f64
    );
    if !windows.is_empty() {
        println!(
            "  freeze window  median {} ms  p99 {} ms  max {} ms",
            percentile(&windows, 0.5),
            percentile(&windows, 0.99),
            windows[windows.len() - 1]
        );
    }
}
