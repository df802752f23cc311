//! `make bench`: per-pod freeze windows when 200 pods are backed up by 8 concurrent callers in
//! Velero's call order (GetRelatedItems, Execute(PV), the snapshot, Execute(pod): the
//! integration tests' replaying host, `util::velero`), with real hook commands run by the fake
//! API server. A pod's window is the time its application was frozen — from its last pre hook's
//! end to its first post hook's start (`freezeWindowMs` of `Pod thawed`) — with an instant
//! snapshot; a group's, from its first member's freeze to every member thawed. A second run puts
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

use fake_kube::objects::pod;
use serde_json::Value;
use util::velero::{Velero, NAMESPACE};

const PODS: usize = 200;
const CALLERS: usize = 8;

/// Pods per consistency group in the grouped run.
const GROUP_SIZE: usize = 4;

/// Pod `p{i:03}`: hooks `true` and `true`; every fourth pod has no claim, the others claim
/// `data-{i}`; grouped, four consecutive pods form one consistency group.
fn numbered_pod(i: usize, grouped: bool) -> Value {
    let mut pod = pod(NAMESPACE, &format!("p{i:03}"))
        .uid(format!("uid-{i}"))
        .annotation("pre.hook.backup.quiesce.dev/command", r#"["true"]"#)
        .annotation("post.hook.backup.quiesce.dev/command", r#"["true"]"#);
    if grouped {
        pod = pod.annotation("quiesce.dev/group", format!("g{}", i / GROUP_SIZE));
    }
    pod.container("app")
        .volumes((!i.is_multiple_of(4)).then(|| ("data", format!("data-{i}"))))
        .build()
}

/// The `p` quantile (0 to 1) of sorted values, nearest rank.
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

/// Prints one run's pod numbers.
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

/// One backup of [`PODS`] pods by [`CALLERS`] concurrent callers, then Shutdown.
async fn backup(grouped: bool) -> Run {
    let mut velero = Velero::start().await;
    let pods: Arc<Vec<Value>> = Arc::new((0..PODS).map(|i| numbered_pod(i, grouped)).collect());
    for p in pods.iter() {
        velero.cluster.add_pod(p.clone()).unwrap();
    }
    let started = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|c| {
            let (mut worker, pods) = (velero.worker(), Arc::clone(&pods));
            tokio::spawn(async move {
                for i in (c..PODS).step_by(CALLERS) {
                    let (pv, claim) = (format!("pv-{i}"), format!("data-{i}"));
                    let volumes: &[(&str, &str)] = if i.is_multiple_of(4) {
                        &[]
                    } else {
                        &[(pv.as_str(), claim.as_str())]
                    };
                    worker.back_up(&pods[i], volumes).await.unwrap();
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    let elapsed = started.elapsed();
    velero.stop(Duration::from_secs(5)).await;

    let lines = velero.stderr();
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
        execs: velero.cluster.execs().len(),
        pod_windows: windows("Pod thawed"),
        group_windows: windows("Consistency group thawed"),
    }
}
