//! `make bench`: the host-contract numbers of DESIGN §7, measured on the real binary the
//! way Velero drives it. Prints numbers; asserts nothing about time (machines are noisy).
//!
//! - spawn → handshake line (median, p90 of 25 launches)
//! - idle RSS after the handshake
//! - Execute round trip on a ~4 KiB pod (median, p99 of 2 000 sequential calls)
//! - Shutdown → process exit (median of 25)
//! - binary size

// The integration tests' shared helpers; this target uses only part of them, and the rest
// would be dead code here (the integration binary itself uses every one).
#[allow(dead_code)]
#[path = "../tests/integration/util/mod.rs"]
mod util;

use std::time::{Duration, Instant};

use util::{bin, execute_request, pod_json, Plugin};

/// The `p` quantile (0 to 1) of the samples, nearest rank (sorts them).
fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let rank = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[rank]
}

/// A duration in milliseconds, two decimals.
fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// A duration in whole microseconds.
fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// The process's resident set (VmRSS) in KiB, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::main]
async fn main() {
    let runs = 25;
    let mut handshakes = Vec::new();
    let mut exits = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let mut plugin = Plugin::launch(&[]);
        handshakes.push(started.elapsed());
        // Let the runtime settle before reading RSS, as an idle plugin between calls would.
        tokio::time::sleep(Duration::from_millis(20)).await;
        rss.extend(rss_kib(plugin.child.id()));
        let channel = plugin.connect().await;
        let mut controller =
            quiesce::proto::plugin::grpc_controller_client::GrpcControllerClient::new(channel);
        let asked = Instant::now();
        let _ = controller.shutdown(quiesce::proto::plugin::Empty {}).await;
        drop(controller);
        if plugin.wait_exit(Duration::from_secs(5)).is_some() {
            exits.push(asked.elapsed());
        }
    }

    let plugin = Plugin::launch(&[]);
    let mut action = plugin.backup_action().await;
    let item = pod_json("shop", "db-0");
    let request = execute_request(item.clone());
    for _ in 0..200 {
        action.execute(request.clone()).await.unwrap();
    }
    let mut round_trips = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let started = Instant::now();
        let response = action.execute(request.clone()).await.unwrap();
        round_trips.push(started.elapsed());
        assert_eq!(response.into_inner().item.len(), item.len());
    }
    let busy_rss = rss_kib(plugin.child.id());

    let size = std::fs::metadata(bin()).map(|m| m.len()).unwrap_or(0);
    println!(
        "quiesce host contract ({runs} launches, 2000 Execute calls, item {} bytes)",
        item.len()
    );
    println!(
        "spawn → handshake      median {}  p90 {}   (target ≤ 10 ms)",
        ms(percentile(&mut handshakes, 0.5)),
        ms(percentile(&mut handshakes, 0.9))
    );
    rss.sort();
    println!(
        "idle RSS after handshake  median {:.1} MiB   (target ≤ 10 MiB); after 2 200 calls {:.1} MiB",
        rss.get(rss.len() / 2).copied().unwrap_or(0) as f64 / 1024.0,
        busy_rss.unwrap_or(0) as f64 / 1024.0
    );
    println!(
        "Execute round trip     median {}  p99 {}   (target ≤ 200 µs)",
        us(percentile(&mut round_trips, 0.5)),
        us(percentile(&mut round_trips, 0.99))
    );
    println!(
        "Shutdown → exit        median {}  ({} of {runs} exited)   (target ≤ 100 ms)",
        ms(percentile(&mut exits, 0.5)),
        exits.len()
    );
    println!(
        "binary {}: {:.2} MiB   (release target ≤ 10 MiB, see `make release` for the static one)",
        bin(),
        size as f64 / (1 << 20) as f64
    );
}
