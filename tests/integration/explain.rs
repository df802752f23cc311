//! `velero-plugin-quiesce explain`: golden outputs (text and JSON) on YAML fixtures covering
//! every validation problem, governance refusals, run once per owner, consistency groups,
//! templated commands and execution options, and a clean case; the same report read from a
//! fake API server with no exec request ever sent, exit codes, and the real binary as a
//! subprocess.
//!
//! Goldens live in `tests/fixtures/explain/*.txt|*.json`. A mismatch fails; to accept a new
//! output, run with `UPDATE_GOLDEN=1` and review the diff.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use fake_kube::{objects, FakeKube};
use quiesce::explain::{self, EXIT_CLEAN, EXIT_PROBLEMS, EXIT_USAGE};
use serde_json::{json, Value};

const FIXTURES: &str = "tests/fixtures/explain";

/// The path of a fixture file.
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
            "{}: {e}; create it with UPDATE_GOLDEN=1 cargo test --test integration explain::",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from the output (rerun with UPDATE_GOLDEN=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// Arguments of `explain` on the problems fixture and backup, output format `output`.
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

/// [`run`] with owned arguments.
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

#[tokio::test]
async fn run_once_fixture_text_matches_its_golden_and_exits_0() {
    let (code, out, err) = run(&["-f", &fixture("run-once.yaml")]).await;
    assert_eq!(code, EXIT_CLEAN, "{err}");
    assert_golden("run-once.txt", &out);
}

#[tokio::test]
async fn run_once_fixture_json_matches_its_golden_and_exits_0() {
    let (code, out, err) = run(&["-f", &fixture("run-once.yaml"), "-o", "json"]).await;
    assert_eq!(code, EXIT_CLEAN, "{err}");
    assert_golden("run-once.json", &out);
}

#[tokio::test]
async fn groups_fixture_text_matches_its_golden_and_exits_0() {
    let (code, out, err) = run(&["-f", &fixture("groups.yaml")]).await;
    assert_eq!(code, EXIT_CLEAN, "{err}");
    assert_golden("groups.txt", &out);
}

#[tokio::test]
async fn groups_fixture_json_matches_its_golden_and_exits_0() {
    let (code, out, err) = run(&["-f", &fixture("groups.yaml"), "-o", "json"]).await;
    assert_eq!(code, EXIT_CLEAN, "{err}");
    assert_golden("groups.json", &out);
}

#[tokio::test]
async fn volume_groups_fixture_text_matches_its_golden_and_exits_0() {
    let (code, out, err) = run(&["-f", &fixture("volume-groups.yaml")]).await;
    assert_eq!(code, EXIT_CLEAN, "{err}");
    assert_golden("volume-groups.txt", &out);
}

#[tokio::test]
async fn volume_groups_fixture_json_matches_its_golden_and_exits_0() {
    let (code, out, err) = run(&["-f", &fixture("volume-groups.yaml"), "-o", "json"]).await;
    assert_eq!(code, EXIT_CLEAN, "{err}");
    assert_golden("volume-groups.json", &out);
}

#[tokio::test]
async fn sessions_fixture_text_matches_its_golden_and_exits_0() {
    let (code, out, err) = run(&["-f", &fixture("sessions.yaml")]).await;
    assert_eq!(code, EXIT_CLEAN, "{err}");
    assert_golden("sessions.txt", &out);
}

#[tokio::test]
async fn sessions_fixture_json_matches_its_golden_and_exits_0() {
    let (code, out, err) = run(&["-f", &fixture("sessions.yaml"), "-o", "json"]).await;
    assert_eq!(code, EXIT_CLEAN, "{err}");
    assert_golden("sessions.json", &out);
    let report: Value = serde_json::from_str(&out).unwrap();
    let pre = hook(&report, "mariadb-0", "pre");
    assert_eq!(pre["execution"]["holdUntilOutput"], "quiesce-frozen");
    let post = hook(&report, "mariadb-0", "post");
    assert_eq!(post["endsSession"], "pre[0]");
    assert_eq!(post["execution"]["stdin"], "UNLOCK TABLES;");
    assert_eq!(post["hookCommand"], "[mysql -uroot --unbuffered -N]");
}

/// Arguments of `explain` on the templates fixture and backup, output format `output`.
fn templates_args(output: &str) -> Vec<String> {
    vec![
        "-f".into(),
        fixture("templates.yaml"),
        "--backup-file".into(),
        fixture("backup.yaml"),
        "-o".into(),
        output.into(),
    ]
}

#[tokio::test]
async fn templates_fixture_text_matches_its_golden_and_exits_0() {
    let (code, out, err) = run_owned(&templates_args("text")).await;
    assert_eq!(code, EXIT_CLEAN, "{err}");
    assert_golden("templates.txt", &out);
}

#[tokio::test]
async fn templates_fixture_json_matches_its_golden_and_exits_0() {
    let (code, out, err) = run_owned(&templates_args("json")).await;
    assert_eq!(code, EXIT_CLEAN, "{err}");
    assert_golden("templates.json", &out);
}

#[tokio::test]
async fn template_errors_fixture_text_matches_its_golden_and_exits_1() {
    let (code, out, err) = run(&["-f", &fixture("template-errors.yaml")]).await;
    assert_eq!(code, EXIT_PROBLEMS, "{err}");
    assert!(err.is_empty(), "{err}");
    assert_golden("template-errors.txt", &out);
}

#[tokio::test]
async fn template_errors_fixture_json_matches_its_golden_and_exits_1() {
    let (code, out, _) = run(&["-f", &fixture("template-errors.yaml"), "-o", "json"]).await;
    assert_eq!(code, EXIT_PROBLEMS);
    assert_golden("template-errors.json", &out);
}

// ----- what the problems fixture must contain -----

/// The report entry of pod `name`.
fn pod<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("pod {name} not in the report"))
}

/// The `kind` of each finding.
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

// ----- run once per owner, consistency groups, templates, execution options -----

/// The first hook of `phase` in the report entry of pod `pod_name`.
fn hook<'a>(report: &'a Value, pod_name: &str, phase: &str) -> &'a Value {
    &pod(report, pod_name)["phases"][phase]["hooks"][0]
}

#[tokio::test]
async fn only_the_primary_of_a_statefulset_runs_a_run_once_hook_and_the_others_skip_it() {
    let (_, out, _) = run(&["-f", &fixture("run-once.yaml"), "-o", "json"]).await;
    let report: Value = serde_json::from_str(&out).unwrap();

    for phase in ["pre", "post"] {
        let primary = &hook(&report, "db-2", phase)["runOnce"];
        assert_eq!(primary["runsHere"], true, "{phase}");
        assert_eq!(primary["runner"], "shop/db-2");
        assert_eq!(primary["reason"], "it matches run-on");
        assert_eq!(primary["owner"], "StatefulSet/db");
        assert_eq!(primary["runOn"], "role=primary");
        for replica in ["db-0", "db-1"] {
            let skipped = &hook(&report, replica, phase)["runOnce"];
            assert_eq!(skipped["runsHere"], false, "{replica} {phase}");
            assert_eq!(skipped["runner"], "shop/db-2", "{replica} {phase}");
        }
    }
    // Without run-on, the oldest pod of the ReplicaSet runs the rule's hook.
    let oldest = &hook(&report, "cache-5d9f-q8w7z", "pre")["runOnce"];
    assert_eq!(oldest["runsHere"], true);
    assert_eq!(oldest["reason"], "it is the oldest pod");
    assert_eq!(
        hook(&report, "cache-5d9f-kx2lp", "pre")["runOnce"]["runner"],
        "shop/cache-5d9f-q8w7z"
    );
    // Without an owner, run-once has no effect.
    let orphan = &hook(&report, "tools", "pre")["runOnce"];
    assert_eq!(orphan["owner"], Value::Null);
    assert_eq!(orphan["runsHere"], true);
    assert_eq!(orphan["reason"], "the pod has no owner");
    // Hooks skipped here are not counted as hooks that run: db-2's two, the oldest cache
    // pod's and tools'.
    assert_eq!(report["summary"]["hooks"], 4);
    assert_eq!(report["summary"]["podsWithHooks"], 3);
}

#[tokio::test]
async fn skipped_run_once_hooks_read_as_skipped_in_the_listing() {
    let (_, out, _) = run(&["-f", &fixture("run-once.yaml")]).await;
    let db0 = out
        .split("\n\n")
        .find(|b| b.starts_with("shop/db-0 "))
        .unwrap();
    assert!(db0.contains("skipped here, shop/db-2 runs it"), "{db0}");
    assert!(!db0.contains("runs here"), "{db0}");
    let db2 = out
        .split("\n\n")
        .find(|b| b.starts_with("shop/db-2 "))
        .unwrap();
    assert!(db2.contains("runs here: it matches run-on"), "{db2}");
}

#[tokio::test]
async fn run_once_from_the_cluster_matches_the_files_and_no_exec_is_sent() {
    let kube = FakeKube::start().await.unwrap();
    let yaml = std::fs::read_to_string(fixture("run-once.yaml")).unwrap();
    kube.load_yaml(&yaml).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig).unwrap();

    let (code, from_cluster, err) =
        run(&["--kubeconfig", kubeconfig.to_str().unwrap(), "-o", "json"]).await;
    assert_eq!(code, EXIT_CLEAN, "{err}");
    let (_, from_files, _) = run(&["-f", &fixture("run-once.yaml"), "-o", "json"]).await;
    assert_eq!(from_cluster, from_files);
    assert_no_exec(&kube);
}

#[tokio::test]
async fn a_group_of_three_pods_is_listed_with_its_members_and_a_group_of_one_is_a_notice() {
    let (code, out, _) = run(&["-f", &fixture("groups.yaml"), "-o", "json"]).await;
    assert_eq!(code, EXIT_CLEAN);
    let report: Value = serde_json::from_str(&out).unwrap();
    let groups = report["groups"].as_array().unwrap();
    let orders = groups.iter().find(|g| g["name"] == "orders").unwrap();
    assert_eq!(orders["namespace"], "shop");
    assert_eq!(
        orders["members"],
        json!(["orders-cache-0", "orders-db-0", "orders-queue-0"])
    );
    assert!(orders["pre"]
        .as_str()
        .unwrap()
        .contains("before the first member's volume snapshot"));
    assert!(orders["post"]
        .as_str()
        .unwrap()
        .contains("after the last member is backed up"));
    // The rule's group counts like the annotation.
    assert_eq!(pod(&report, "orders-cache-0")["group"], "orders");
    assert!(pod(&report, "orders-db-0")["phases"]["post"]["moment"]
        .as_str()
        .unwrap()
        .starts_with("with group orders (2 other members)"));

    let wiki = groups.iter().find(|g| g["name"] == "wiki").unwrap();
    assert_eq!(wiki["members"], json!(["wiki-0"]));
    assert_eq!(kinds(&report["notices"]), ["single-member-group"]);
    assert_eq!(report["summary"]["problems"], 0);
}

#[tokio::test]
async fn a_templated_command_is_rendered_with_the_backup_pod_container_and_phase() {
    let (_, out, _) = run_owned(&templates_args("json")).await;
    let report: Value = serde_json::from_str(&out).unwrap();
    let dump = hook(&report, "db-0", "pre");
    assert_eq!(
        dump["command"][1],
        "--to=s3://dumps/{{backup.namespace}}/{{backup.name}}/{{pod.namespace}}.{{pod.name}}"
    );
    assert_eq!(
        dump["renderedCommand"],
        json!([
            "/usr/bin/dump",
            "--to=s3://dumps/velero/nightly-20250101/shop.db-0"
        ])
    );
    assert_eq!(
        dump["hookCommand"],
        "[/usr/bin/dump --to=s3://dumps/velero/nightly-20250101/shop.db-0]"
    );
    let audit = hook(&report, "ledger-0", "pre");
    assert_eq!(
        audit["renderedCommand"],
        json!(["/bin/audit", "--event=pre", "--in=ledger"])
    );
    // A command without variables is not templated.
    assert_eq!(
        hook(&report, "db-0", "post")["renderedCommand"],
        Value::Null
    );

    let (_, text, _) = run_owned(&templates_args("text")).await;
    assert!(text.contains("1. [/usr/bin/dump --to=s3://dumps/velero/nightly-20250101/shop.db-0]"));
    assert!(
        text.contains("templated, as written: [/bin/audit --event={{phase}} --in={{container}}]")
    );
}

#[tokio::test]
async fn without_a_backup_file_the_backup_name_is_a_placeholder_and_a_notice_says_so() {
    let (code, out, _) = run(&["-f", &fixture("templates.yaml"), "-o", "json"]).await;
    assert_eq!(code, EXIT_CLEAN);
    let report: Value = serde_json::from_str(&out).unwrap();
    // The namespace is Velero's, where Backups live.
    assert_eq!(
        hook(&report, "db-0", "pre")["renderedCommand"][1],
        "--to=s3://dumps/velero/<backup.name>/shop.db-0"
    );
    assert_eq!(kinds(&report["notices"]), ["template-value-unknown"]);
    assert!(report["notices"][0]["message"]
        .as_str()
        .unwrap()
        .contains("{{backup.name}}"));
}

#[tokio::test]
async fn execution_options_are_shown_when_not_the_default() {
    let (_, out, _) = run_owned(&templates_args("json")).await;
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        hook(&report, "db-0", "pre")["execution"],
        json!({
            "wait": {"for": "running", "timeout": "1m0s"},
            "retries": 3,
            "retryBackoff": "1s",
            "retryDelays": ["1s", "2s", "4s"],
            "retryOnExitCodes": [75],
            "killOnTimeout": false
        })
    );
    assert_eq!(hook(&report, "db-0", "post")["execution"], Value::Null);
    let audit = &hook(&report, "ledger-0", "pre")["execution"];
    assert_eq!(audit["wait"], json!({"for": "ready", "timeout": "1m0s"}));
    assert_eq!(audit["killOnTimeout"], true);

    let (_, text, _) = run_owned(&templates_args("text")).await;
    for expected in [
        "wait: running, up to 1m0s",
        "retries: 3 (backoff 1s, doubling; also on exit code 75)",
        "wait: ready, up to 1m0s",
        "kill on timeout: TERM, then KILL after 5s",
    ] {
        assert!(text.contains(expected), "{expected}\n{text}");
    }
}

#[tokio::test]
async fn an_unknown_template_variable_is_a_hook_defect_and_exits_1_like_other_defects() {
    let (code, out, _) = run(&["-f", &fixture("template-errors.yaml"), "-o", "json"]).await;
    assert_eq!(code, EXIT_PROBLEMS);
    let report: Value = serde_json::from_str(&out).unwrap();
    let db = pod(&report, "db-0");
    assert_eq!(kinds(&db["problems"]), ["hook-defect"]);
    assert_eq!(db["problems"][0]["severity"], "error");
    let dump = hook(&report, "db-0", "pre");
    assert!(dump["defect"]
        .as_str()
        .unwrap()
        .contains("unknown template variable {{backup.nmae}} in command element 1"));
    assert_eq!(dump["renderedCommand"], Value::Null);
    // In a rule it is a config error, and the rule is ignored.
    let top = &report["problems"];
    assert_eq!(kinds(top), ["config"]);
    assert_eq!(top[0]["severity"], "error");
    assert!(top[0]["message"]
        .as_str()
        .unwrap()
        .contains("{{backup.nmae}}"));
    assert_eq!(report["rules"], 0);
}

#[tokio::test]
async fn an_invalid_execution_option_is_an_annotation_warning_and_keeps_its_default() {
    let (code, out, _) = run(&["-f", &fixture("template-errors.yaml"), "-o", "json"]).await;
    assert_eq!(code, EXIT_PROBLEMS);
    let report: Value = serde_json::from_str(&out).unwrap();
    let api = pod(&report, "api-0");
    assert_eq!(
        kinds(&api["problems"]),
        ["annotation", "annotation", "annotation"]
    );
    let locations: Vec<&str> = api["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["location"].as_str().unwrap())
        .collect();
    assert_eq!(
        locations,
        [
            "pre.hook.backup.quiesce.dev/retries",
            "pre.hook.backup.quiesce.dev/kill-on-timeout",
            "post.hook.backup.quiesce.dev/retry-on-exit-code",
        ]
    );
    assert!(api["problems"][0]["message"]
        .as_str()
        .unwrap()
        .contains("\"three\" is not a whole number of retries"));
    // The ignored options keep their defaults.
    assert_eq!(hook(&report, "api-0", "pre")["execution"], Value::Null);
}

#[tokio::test]
async fn an_invalid_run_on_is_warned_about_once_and_the_lowest_ordinal_runs() {
    let (_, out, _) = run(&["-f", &fixture("template-errors.yaml"), "-o", "json"]).await;
    let report: Value = serde_json::from_str(&out).unwrap();
    let queue = pod(&report, "queue-0");
    assert_eq!(kinds(&queue["problems"]), ["annotation"]);
    assert_eq!(queue["problems"][0]["location"], "quiesce.dev/run-on");
    let run_once = &hook(&report, "queue-0", "pre")["runOnce"];
    assert_eq!(run_once["runOn"], Value::Null);
    assert_eq!(run_once["runsHere"], true);
    assert_eq!(run_once["reason"], "it has the lowest StatefulSet ordinal");
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

/// Asserts that explain read the cluster with GETs only and sent no exec.
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
    kube.add_pod(
        objects::pod("shop", "broken-0")
            .annotation("pre.hook.backup.quiesce.dev/command", "[\"sync\"]")
            .annotation("pre.hook.backup.quiesce.dev/container", "nosuch")
            .container("main")
            .build(),
    )
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

/// The plugin binary as a plain command, without Velero's environment.
fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_velero-plugin-quiesce"));
    command
        .env_remove("VELERO_PLUGIN")
        .env_remove("VELERO_NAMESPACE");
    command
}

/// The content of a golden file.
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
