//! `fake-kube`: runs the fake API server until SIGTERM or Ctrl-C, for demos.
//!
//! ```text
//! fake-kube --pods pods.yaml [--pods more.yaml] [--port N] [--https] [--work-root DIR]
//!           [--snapshot-latency 500ms] --kubeconfig-out PATH
//! ```
//! Prints the server URL on stdout (one line) once it is serving and the kubeconfig is written.
//! `--snapshot-latency` runs the simulated snapshot controller (off without it).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use fake_kube::FakeKube;

const USAGE: &str = "usage: fake-kube [--pods FILE]... [--port N] [--https] [--work-root DIR] [--snapshot-latency DURATION] --kubeconfig-out PATH";

/// Validated command-line options.
struct Options {
    pods: Vec<PathBuf>,
    port: u16,
    https: bool,
    work_root: Option<PathBuf>,
    snapshot_latency: Option<Duration>,
    kubeconfig_out: PathBuf,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut pods = Vec::new();
    let mut port = 0;
    let mut https = false;
    let mut work_root = None;
    let mut snapshot_latency = None;
    let mut kubeconfig_out = None;
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--pods" => pods.push(PathBuf::from(value("--pods")?)),
            "--port" => {
                let text = value("--port")?;
                port = text
                    .parse()
                    .map_err(|_| format!("--port: not a port number: {text}"))?;
            }
            "--https" => https = true,
            "--work-root" => work_root = Some(PathBuf::from(value("--work-root")?)),
            "--snapshot-latency" => {
                let text = value("--snapshot-latency")?;
                snapshot_latency = Some(parse_duration(&text).ok_or_else(|| {
                    format!("--snapshot-latency: not a duration like 500ms or 2s: {text}")
                })?);
            }
            "--kubeconfig-out" => kubeconfig_out = Some(PathBuf::from(value("--kubeconfig-out")?)),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(Options {
        pods,
        port,
        https,
        work_root,
        snapshot_latency,
        kubeconfig_out: kubeconfig_out
            .ok_or_else(|| format!("--kubeconfig-out is required\n{USAGE}"))?,
    })
}

async fn run(options: Options) -> Result<(), String> {
    let mut builder = FakeKube::builder().https(options.https).port(options.port);
    if let Some(root) = options.work_root {
        builder = builder.work_root(root);
    }
    if let Some(latency) = options.snapshot_latency {
        builder = builder.snapshot_latency(latency);
    }
    let kube = builder
        .start()
        .await
        .map_err(|e| format!("cannot start: {e}"))?;
    for path in &options.pods {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        kube.load_yaml(&text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    kube.write_kubeconfig(&options.kubeconfig_out)
        .map_err(|e| format!("cannot write {}: {e}", options.kubeconfig_out.display()))?;
    println!("{}", kube.url());
    eprintln!(
        "fake-kube: serving; work root {}",
        kube.work_root().display()
    );
    wait_for_signal().await;
    kube.shutdown().await;
    Ok(())
}

/// A duration as a whole number and a unit: `500ms`, `2s`, `1m`, or `0`.
fn parse_duration(text: &str) -> Option<Duration> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (amount, unit) = text.split_at(digits);
    let amount: u64 = amount.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(amount)),
        "s" => Some(Duration::from_secs(amount)),
        "m" => Some(Duration::from_secs(amount.checked_mul(60)?)),
        "" if amount == 0 => Some(Duration::ZERO),
        _ => None,
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("fake-kube: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_latencies_are_whole_numbers_with_a_unit() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in ["", "5", "1.5s", "s", "2h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
