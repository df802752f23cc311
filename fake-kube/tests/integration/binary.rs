//! The `fake-kube` binary as `make demo` runs it: load pods from YAML, write a kubeconfig, print
//! the URL, serve until SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn binary_serves_pods_from_yaml_until_sigterm() {
    let temp = tempfile::tempdir().unwrap();
    let pods = temp.path().join("pods.yaml");
    std::fs::write(
        &pods,
        "metadata: {name: demo, namespace: default}\nspec: {containers: [{name: main}]}\nstatus: {phase: Running}\n",
    )
    .unwrap();
    let kubeconfig = temp.path().join("kubeconfig");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fake-kube"))
        .arg("--pods")
        .arg(&pods)
        .arg("--https")
        .arg("--work-root")
        .arg(temp.path().join("work"))
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
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

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
    let client = Client::try_from(config).unwrap();
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
