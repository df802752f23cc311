//! Plugin overhead per hook beyond the command itself (DESIGN §7 target: ≤ 2 ms median on
//! loopback): execs of `true` through [`Kube`] against the in-repo fake API server.
//!
//! For each exec: round trip = `Executor::exec` wall time; command time = the fake server's
//! spawn → exit interval for that exec (from its timeline); overhead = round trip − command
//! time. Also printed: the overhead against the median of running `true` locally the same
//! number of times. The server runs on its own runtime thread, the client on another, as the
//! plugin and the API server are separate processes.
//!
//! `cargo bench --bench exec_overhead` (env `EXEC_OVERHEAD_N` to change the count).

use std::time::{Duration, Instant};

use fake_kube::objects::pod;
use fake_kube::FakeKube;
use quiesce::exec::{ExecRequest, Executor};
use quiesce::kube_api::Kube;

const DEFAULT_EXECS: usize = 300;
const WARMUP: usize = 10;
const TARGET: Duration = Duration::from_millis(2);

/// The `p`th percentile (0 to 100) of sorted samples, nearest rank.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// A duration in milliseconds, three decimals.
fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Prints one line of median, p99, min and max; returns the median and p99.
fn row(label: &str, mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let (median, p99) = (percentile(&samples, 50.0), percentile(&samples, 99.0));
    println!(
        "  {label:<44} median {:>10}   p99 {:>10}   min {:>10}   max {:>10}",
        ms(median),
        ms(p99),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    );
    (median, p99)
}

fn main() {
    let count: usize = std::env::var("EXEC_OVERHEAD_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_EXECS)
        .max(1);

    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("server runtime");
    let kube = server_runtime
        .block_on(FakeKube::start())
        .expect("fake API server");
    kube.add_pod(pod("default", "bench").container("main").build())
        .expect("pod");
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig).expect("kubeconfig");

    let client_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let executor = Kube::from_kubeconfig_file(&kubeconfig);
    let request = ExecRequest {
        namespace: "default".into(),
        pod: "bench".into(),
        container: "main".into(),
        command: vec!["true".into()],
        timeout: Duration::from_secs(30),
    };

    let round_trips: Vec<Duration> = client_runtime.block_on(async {
        for _ in 0..WARMUP {
            executor.exec(&request).await.expect("warm-up exec");
        }
        let mut round_trips = Vec::with_capacity(count);
        for _ in 0..count {
            let started = Instant::now();
            let output = executor.exec(&request).await.expect("exec");
            round_trips.push(started.elapsed());
            assert_eq!(output.exit_code, 0);
        }
        round_trips
    });

    // The server's view of each measured exec: spawn → exit of `true`.
    let records = kube.execs();
    let measured = &records[records.len() - count..];
    let command_times: Vec<Duration> = measured
        .iter()
        .map(|r| r.ended.unwrap_or(r.started).saturating_sub(r.started))
        .collect();
    let overhead_vs_server: Vec<Duration> = round_trips
        .iter()
        .zip(&command_times)
        .map(|(rt, cmd)| rt.saturating_sub(*cmd))
        .collect();

    let mut local: Vec<Duration> = (0..count)
        .map(|_| {
            let started = Instant::now();
            let status = std::process::Command::new("true")
                .status()
                .expect("run true locally");
            assert!(status.success());
            started.elapsed()
        })
        .collect();
    local.sort();
    let local_median = percentile(&local, 50.0);
    let overhead_vs_local: Vec<Duration> = round_trips
        .iter()
        .map(|rt| rt.saturating_sub(local_median))
        .collect();

    println!();
    println!(
        "exec overhead: {count} execs of `true` through Kube → fake-kube ({}), loopback, \
         after {WARMUP} warm-up execs",
        kube.url()
    );
    row("exec round trip", round_trips);
    row("command run time (server: spawn → exit)", command_times);
    row("`true` run locally (spawn → wait)", local);
    let (median, p99) = row(
        "OVERHEAD = round trip − server command time",
        overhead_vs_server,
    );
    row(
        "overhead = round trip − local `true` median",
        overhead_vs_local,
    );
    println!(
        "  target: median ≤ {} → {}",
        ms(TARGET),
        if median <= TARGET { "MET" } else { "MISSED" }
    );
    println!("  (p99 {} for information)", ms(p99));
    println!();
}
