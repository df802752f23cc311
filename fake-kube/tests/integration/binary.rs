//! The `fake-kube` binary as `make demo` and the Go harness run it: load pods from YAML, write a
//! kubeconfig, print the URL, serve until SIGTERM; cut snapshots with `--snapshot-latency`.

use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The running binary: its process, URL and a client from the kubeconfig it wrote.
struct Running {
    child: tokio::process::Child,
    url: String,
    client: Client,
}

/// Starts `fake-kube` with `args` and `--kubeconfig-out` in `temp`, and reads its URL.
async fn run_binary(temp: &std::path::Path, args: &[&std::ffi::OsStr]) -> Running {
    let kubeconfig = temp.join("kubeconfig");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fake-kube"))
        .args(args)
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut url = String::new();
    tokio::time::timeout(Duration::from_secs(30), stdout.read_line(&mut url))
        .await
        .unwrap()
        .unwrap();
    let config = Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&kubeconfig).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        config.cluster_url.to_string().trim_end_matches('/'),
        url.trim()
    );
    Running {
        child,
        url: url.trim().to_owned(),
        client: Client::try_from(config).unwrap(),
    }
}

#[tokio::test]
async fn binary_serves_pods_from_yaml_until_sigterm() {
    let temp = tempfile::tempdir().unwrap();
    let pods = temp.path().join("pods.yaml");
    std::fs::write(
        &pods,
        "metadata: {name: demo, namespace: default}\nspec: {containers: [{name: main}]}\nstatus: {phase: Running}\n",
    )
    .unwrap();
    let work = temp.path().join("work");
    let Running {
        mut child,
        url,
        client,
    } = run_binary(
        temp.path(),
        &[
            "--pods".as_ref(),
            pods.as_os_str(),
            "--https".as_ref(),
            "--work-root".as_ref(),
            work.as_os_str(),
        ],
    )
    .await;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let pod = Api::<Pod>::namespaced(client.clone(), "default")
        .get("demo")
        .await
        .unwrap();
    assert_eq!(pod.metadata.name.as_deref(), Some("demo"));
    let result = crate::util::exec(&client, "demo", "main", &["pwd"])
        .await
        .unwrap();
    assert!(
        result
            .stdout_text()
            .trim()
            .ends_with("work/default/demo/main"),
        "{}",
        result.stdout_text()
    );

    let pid = child.id().unwrap() as i32;
    // SAFETY: plain kill(2) on our own child; no memory is involved.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn binary_runs_the_snapshot_controller_with_snapshot_latency() {
    let temp = tempfile::tempdir().unwrap();
    let running = run_binary(
        temp.path(),
        &["--snapshot-latency".as_ref(), "10ms".as_ref()],
    )
    .await;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "snapshot.storage.k8s.io",
        "v1",
        "VolumeSnapshot",
    ));
    let snapshots: Api<DynamicObject> =
        Api::namespaced_with(running.client.clone(), "shop", &resource);
    let asked: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": "s"},
        "spec": {"source": {"persistentVolumeClaimName": "data"}},
    }))
    .unwrap();
    snapshots
        .create(&PostParams::default(), &asked)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let snapshot = snapshots.get("s").await.unwrap();
        if snapshot.data["status"]["creationTime"].is_string() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never cut: {snapshot:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(running.child);
}

#[tokio::test]
async fn binary_refuses_a_snapshot_latency_without_a_unit() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_fake-kube"))
        .args(["--snapshot-latency", "500", "--kubeconfig-out", "/dev/null"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("--snapshot-latency: not a duration like 500ms or 2s: 500"),
        "{output:?}"
    );
}
