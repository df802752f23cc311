//! `velero-plugin-quiesce explain`: golden outputs (text and JSON) on YAML fixtures covering
//! every validation problem, governance refusals and a clean case, the same report read from a fake API server
//! with no exec request ever sent, exit codes, and the real binary as a subprocess.
//!
//! Goldens live in `tests/fixtures/explain/*.txt|*.json`. A mismatch fails; to accept a new
//! output, run with `UPDATE_GOLDEN=1` and review the diff.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use fake_kube::FakeKube;
use quiesce::explain::{self, EXIT_CLEAN, EXIT_PROBLEMS, EXIT_USAGE};
use serde_json::{json, Value};

const FIXTURES: &str = "tests/fixtures/explain";

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

/// Runs `explain ARGS` through the library, as the binary does; Velero's namespace defaults
/// to `velero`. Returns (exit code, stdout, stderr).
async fn run(args: &[&str]) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = explain::run(
        args.iter().map(OsString::from),
        "velero".to_owned(),
        &mut out,
        &mut err,
    )
    .await;
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// Compares `actual` with the golden file, or rewrites it under `UPDATE_GOLDEN=1`.
fn assert_golden(name: &str, actual: &str) {
    let path = PathBuf::from(fixture(name));
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with UPDATE_GOLDEN=1 cargo test --test explain",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from the output (rerun with UPDATE_GOLDEN=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

fn problems_args(output: &str) -> Vec<String> {
    vec![
        "-f".into(),
        fixture("problems.yaml"),
        "--backup-file".into(),
        fixture("backup.yaml"),
        "-o".into(),
        output.into(),
    ]
}

async fn run_owned(args: &[String]) -> (u8, String, String) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args).await
}

// ----- goldens -----

#[tokio::test]
async fn clean_fixture_text_matches_its_golden_and_exits_0() {
    let (code, out, err) = run(&["-f", &fixture("clean.yaml")]).await;
    assert_eq!(code, EXIT_CLEAN, "{err}");
    assert_golden("clean.txt", &out);
}

#[tokio::test]
async fn clean_fixture_json_matches_its_golden_and_exits_0() {
    let (code, out, err) = run(&["-f", &fixture("clean.yaml"), "-o", "json"]).await;
    assert_eq!(code, EXIT_CLEAN, "{err}");
    assert_golden("clean.json", &out);
}

#[tokio::test]
async fn problems_fixture_text_matches_its_golden_and_exits_1() {
    let (code, out, err) = run_owned(&problems_args("text")).await;
    assert_eq!(code, EXIT_PROBLEMS, "{err}");
    assert!(err.is_empty(), "{err}");
    assert_golden("problems.txt", &out);
}

#[tokio::test]
async fn problems_fixture_json_matches_its_golden_and_exits_1() {
    let (code, out, _) = run_owned(&problems_args("json")).await;
    assert_eq!(code, EXIT_PROBLEMS);
    assert_golden("problems.json", &out);
}

#[tokio::test]
async fn scope_flags_select_pods_like_a_backup_would() {
    let (code, out, err) = run(&[
        "-f",
        &fixture("clean.yaml"),
        "--include-namespaces",
        "shop",
        "-l",
        "app in (mysql,web)",
    ])
    .await;
    assert_eq!(code, EXIT_CLEAN, "{err}");
    assert_golden("scoped.txt", &out);
}

#[tokio::test]
async fn governance_fixture_text_matches_its_golden_and_exits_1() {
    let (code, out, err) = run(&["-f", &fixture("governance.yaml")]).await;
    assert_eq!(code, EXIT_PROBLEMS, "{err}");
    assert!(err.is_empty(), "{err}");
    assert_golden("governance.txt", &out);
}

#[tokio::test]
async fn governance_fixture_json_matches_its_golden_and_exits_1() {
    let (code, out, _) = run(&["-f", &fixture("governance.yaml"), "-o", "json"]).await;
    assert_eq!(code, EXIT_PROBLEMS);
    assert_golden("governance.json", &out);
}

// ----- what the problems fixture must contain -----

fn pod<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("pod {name} not in the report"))
}

fn kinds(findings: &Value) -> Vec<&str> {
    findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn every_validation_problem_is_reported_where_it_belongs() {
    let (_, out, _) = run_owned(&problems_args("json")).await;
    let report: Value = serde_json::from_str(&out).unwrap();

    let api = &pod(&report, "api-0")["problems"];
    let messages = api.to_string();
    assert_eq!(kinds(api), ["annotation", "annotation", "annotation"]);
    assert!(messages.contains("is not a JSON array"), "{messages}");
    assert!(messages.contains("timeout"), "{messages}");
    assert!(messages.contains("not Fail or Continue"), "{messages}");

    let queue = pod(&report, "queue-0");
    assert_eq!(
        kinds(&queue["problems"]),
        ["hook-defect", "hook-defect", "max-freeze"]
    );
    assert_eq!(
        queue["phases"]["pre"]["moment"],
        "at the pod's own item: claims not seen first, snapshots may precede the freeze"
    );
    assert!(queue["phases"]["post"]["hooks"][0]["defect"]
        .as_str()
        .unwrap()
        .contains("no such container: \"rabbit\""));

    assert_eq!(kinds(&pod(&report, "pg-0")["problems"]), ["double-quiesce"]);
    let legacy = pod(&report, "legacy-0");
    assert_eq!(kinds(&legacy["problems"]), Vec::<&str>::new());
    assert_eq!(kinds(&legacy["notices"]), ["velero-hooks"]);

    for (name, reason) in [
        ("migrate-x7k2", "in phase Succeeded"),
        ("api-1", "being deleted"),
        ("scratch-0", "velero.io/exclude-from-backup=true"),
        ("metrics-0", "namespace monitoring is not included"),
    ] {
        let skipped = pod(&report, name)["skipped"].as_str().unwrap_or_default();
        assert!(skipped.contains(reason), "{name}: {skipped:?}");
    }

    let top = &report["problems"];
    assert_eq!(kinds(top), ["config-map", "config", "config"]);
    assert!(top
        .to_string()
        .contains("hooks.resources[0].pre[0].exec.timeout"));
    assert!(top
        .to_string()
        .contains("rule \\\"broken-selector\\\" is ignored"));
    assert_eq!(kinds(&report["notices"]), ["ignored-object"]);
}

#[tokio::test]
async fn governance_refusals_are_policy_warnings_on_their_pods_and_rule_hooks_still_run() {
    let (_, out, _) = run(&["-f", &fixture("governance.yaml"), "-o", "json"]).await;
    let report: Value = serde_json::from_str(&out).unwrap();

    for (name, expected) in [
        (
            "db-0",
            vec!["deniedContainers", "run together or not at all"],
        ),
        ("web-0", vec!["container \"istio-proxy\" matches"]),
        (
            "etcd-0",
            vec!["\"kube-system\" of governance.annotationHooks.deniedNamespaces"],
        ),
        (
            "notes-0",
            vec!["matches none of governance.annotationHooks.allowedNamespaces"],
        ),
    ] {
        let pod = pod(&report, name);
        let problems = &pod["problems"];
        assert!(kinds(problems).iter().all(|k| *k == "policy"), "{name}");
        assert!(problems
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["severity"] == "warning"));
        let text: String = problems
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["message"].as_str().unwrap())
            .collect();
        for needle in expected {
            assert!(text.contains(needle), "{name}: {text}");
        }
        // Refused hooks are not listed, and no rule hook takes their place.
        assert_eq!(pod["phases"]["pre"]["hooks"], json!([]), "{name}");
        assert_eq!(pod["phases"]["post"]["hooks"], json!([]), "{name}");
    }
    assert_eq!(
        kinds(&pod(&report, "db-0")["problems"]),
        ["policy", "policy"]
    );

    let gateway = pod(&report, "gateway-0");
    assert_eq!(gateway["phases"]["pre"]["hooks"][0]["container"], "envoy");
    assert_eq!(kinds(&gateway["problems"]), Vec::<&str>::new());
    let cache = pod(&report, "cache-0");
    assert_eq!(cache["phases"]["pre"]["hooks"][0]["container"], "redis");
    assert_eq!(kinds(&cache["problems"]), Vec::<&str>::new());
    assert_eq!(report["problems"], json!([]));
}

// ----- exit codes and usage errors -----

#[tokio::test]
async fn usage_errors_exit_2_with_a_message_on_stderr_and_nothing_on_stdout() {
    for (args, expected) in [
        (vec!["--frobnicate"], "unknown argument \"--frobnicate\""),
        (vec![], "give --kubeconfig PATH or -f FILE"),
        (
            vec!["-f", "tests/fixtures/explain/nosuch.yaml"],
            "nosuch.yaml: ",
        ),
        (
            vec![
                "-f",
                &fixture("clean.yaml"),
                "--backup-file",
                &fixture("clean.yaml"),
            ],
            "clean.yaml: ",
        ),
        (
            vec![
                "-f",
                &fixture("clean.yaml"),
                "--backup-file",
                &fixture("clean.txt"),
            ],
            "clean.txt: ",
        ),
        (
            vec!["-f", &fixture("clean.yaml"), "-l", "a b"],
            "invalid selector",
        ),
    ] {
        let (code, out, err) = run(&args).await;
        assert_eq!(code, EXIT_USAGE, "{args:?}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[tokio::test]
async fn a_file_that_is_not_yaml_is_a_usage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, "apiVersion: v1\nkind: Pod\nmetadata: [\n").unwrap();
    let (code, _, err) = run(&["-f", path.to_str().unwrap()]).await;
    assert_eq!(code, EXIT_USAGE);
    assert!(err.contains("broken.yaml: document 1"), "{err}");
}

#[tokio::test]
async fn an_unreachable_cluster_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    // A server that accepts nothing: bind a port, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kube = FakeKube::builder().port(port).start().await.unwrap();
    kube.write_kubeconfig(&kubeconfig).unwrap();
    kube.shutdown().await;
    let (code, out, err) = run(&["--kubeconfig", kubeconfig.to_str().unwrap()]).await;
    assert_eq!(code, EXIT_USAGE, "{out}");
    assert!(err.contains("cannot list pods"), "{err}");
}

#[tokio::test]
async fn help_prints_the_synopsis_and_exits_0() {
    let (code, out, _) = run(&["--help"]).await;
    assert_eq!(code, EXIT_CLEAN);
    assert!(out.starts_with("usage: velero-plugin-quiesce explain"));
}

// ----- against the fake API server -----

/// A fake API server loaded with `clean.yaml`, and a kubeconfig for it.
async fn cluster_with_clean_fixture() -> (FakeKube, PathBuf, tempfile::TempDir) {
    let kube = FakeKube::start().await.unwrap();
    let yaml = std::fs::read_to_string(fixture("clean.yaml")).unwrap();
    kube.load_yaml(&yaml).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig).unwrap();
    (kube, kubeconfig, dir)
}

fn assert_no_exec(kube: &FakeKube) {
    let requests = kube.requests();
    assert!(
        !requests.is_empty(),
        "explain read nothing from the cluster"
    );
    for request in &requests {
        assert!(
            !request.path.contains("/exec") && !request.path.contains("/attach"),
            "explain sent {} {}",
            request.method,
            request.path
        );
        assert_eq!(
            request.method, "GET",
            "explain only reads: {}",
            request.path
        );
    }
    assert!(kube.execs().is_empty());
}

#[tokio::test]
async fn the_cluster_gives_the_same_report_as_the_files_and_no_exec_is_sent() {
    let (kube, kubeconfig, _dir) = cluster_with_clean_fixture().await;
    let kubeconfig = kubeconfig.to_str().unwrap();

    let (code, from_cluster, err) = run(&["--kubeconfig", kubeconfig, "-o", "json"]).await;
    assert_eq!(code, EXIT_CLEAN, "{err}");
    let (_, from_files, _) = run(&["-f", &fixture("clean.yaml"), "-o", "json"]).await;
    assert_eq!(from_cluster, from_files);

    let (code, text, _) = run(&["--kubeconfig", kubeconfig]).await;
    assert_eq!(code, EXIT_CLEAN);
    assert_golden("clean.txt", &text);
    assert_no_exec(&kube);
}

#[tokio::test]
async fn a_problem_in_the_cluster_exits_1_and_still_no_exec_is_sent() {
    let (kube, kubeconfig, _dir) = cluster_with_clean_fixture().await;
    kube.add_pod(json!({
        "metadata": {"name": "broken-0", "namespace": "shop", "annotations": {
            "pre.hook.backup.quiesce.dev/command": "[\"sync\"]",
            "pre.hook.backup.quiesce.dev/container": "nosuch",
        }},
        "spec": {"containers": [{"name": "main"}]},
        "status": {"phase": "Running"},
    }))
    .unwrap();
    let (code, out, err) = run(&[
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--include-namespaces",
        "shop",
        "-o",
        "json",
    ])
    .await;
    assert_eq!(code, EXIT_PROBLEMS, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        kinds(&pod(&report, "broken-0")["problems"]),
        ["hook-defect"]
    );
    assert!(
        report["pods"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["namespace"] == "shop"),
        "{out}"
    );
    assert_no_exec(&kube);
    // Only the included namespace was listed for pods.
    assert!(kube
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/pods"))
        .all(|r| r.path == "/api/v1/namespaces/shop/pods"));
}

#[tokio::test]
async fn the_plugin_config_map_is_read_from_the_velero_namespace_only() {
    let (kube, kubeconfig, _dir) = cluster_with_clean_fixture().await;
    let (code, out, err) = run(&[
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--velero-namespace",
        "backups",
        "-o",
        "json",
    ])
    .await;
    assert_eq!(code, EXIT_CLEAN, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["configMap"], Value::Null);
    assert_eq!(kinds(&report["notices"]), ["no-config-map"]);
    assert_no_exec(&kube);
}

// ----- the binary (needs `explain` dispatched in main.rs) -----

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_velero-plugin-quiesce"));
    command
        .env_remove("VELERO_PLUGIN")
        .env_remove("VELERO_NAMESPACE");
    command
}

fn golden_text(name: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURES).join(name)).unwrap()
}

#[test]
fn binary_explain_prints_the_report_without_the_plugin_cookie() {
    let output = binary()
        .args(["explain", "-f", &fixture("clean.yaml")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        golden_text("clean.txt")
    );
    assert!(!stderr.contains("This binary is a plugin"), "{stderr}");
}

#[test]
fn binary_explain_exits_1_on_problems_and_2_on_usage_errors() {
    let problems = binary()
        .arg("explain")
        .args(problems_args("text"))
        .output()
        .unwrap();
    assert_eq!(problems.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&problems.stdout),
        golden_text("problems.txt")
    );

    let usage = binary().args(["explain", "--frobnicate"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    assert!(usage.stdout.is_empty());
    assert!(String::from_utf8_lossy(&usage.stderr).contains("unknown argument"));
}

#[test]
fn binary_explain_takes_velero_namespace_from_the_environment() {
    let output = binary()
        .env("VELERO_NAMESPACE", "backups")
        .args(["explain", "-f", &fixture("clean.yaml"), "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    // clean.yaml's ConfigMap is in `velero`, so it is not the plugin's in `backups`.
    assert_eq!(report["configMap"], Value::Null);
}
