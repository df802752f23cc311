//! Replays on stable, through the fuzz targets' own invariant checks, the inputs the fuzzers
//! found interesting: every crash a fuzzer finds lands here, next to the edge cases each
//! target was seeded with. See `fuzz/README.md` for running the fuzzers themselves.

#[path = "../../fuzz/src/invariants.rs"]
mod invariants;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use fake_kube::objects::{container, pod, PodBuilder};
use k8s_openapi::api::core::v1::Pod;
use quiesce::hooks::Config;
use serde_json::{json, Value};

use invariants::*;

/// Running pod `shop/db-0` labelled `quiesce.dev/fsfreeze=true`, so that [`RULES_YAML`]'s
/// rules apply to it, with `annotations` and no containers yet.
fn db_pod(annotations: Value) -> PodBuilder {
    pod("shop", "db-0")
        .uid("uid-db-0")
        .label("quiesce.dev/fsfreeze", "true")
        .annotations(annotations)
}

/// The pod as the plugin parses it.
fn typed(pod: PodBuilder) -> Pod {
    serde_json::from_value(pod.build()).expect("test pod JSON")
}

/// [`RULES_YAML`] loaded, with no problem.
fn rules() -> Config {
    let (config, problems) = Config::from_yaml(RULES_YAML);
    assert!(problems.is_empty(), "{problems:?}");
    config
}

// 1. annotations → resolved hooks

#[test]
fn annotation_hook_in_a_native_sidecar_resolves_without_defect() {
    let pod = typed(
        db_pod(json!({"pre.hook.backup.quiesce.dev/command": "[\"pre\"]",
                      "pre.hook.backup.quiesce.dev/container": "fsfreeze"}))
        .container("app")
        .init_container(container("fsfreeze").restart_policy("Always")),
    );
    check_resolution(&pod, &Config::default());
    let resolution = quiesce::hooks::resolve(&pod, quiesce::hooks::Phase::Pre, &Config::default());
    assert_eq!(resolution.hooks[0].container, "fsfreeze");
    assert_eq!(resolution.hooks[0].defect, None);
}

#[test]
fn hooks_naming_plain_init_or_absent_containers_carry_a_defect() {
    for container in ["init", "missing", ""] {
        let pod = typed(
            db_pod(json!({"pre.hook.backup.quiesce.dev/command": "[\"pre\"]",
                          "pre.hook.backup.quiesce.dev/container": container,
                          "post.hook.backup.quiesce.dev/command": "[]",
                          "post.hook.backup.quiesce.dev/timeout": "-5h"}))
            .container("app")
            .init_container("init"),
        );
        check_resolution(&pod, &rules());
    }
}

#[test]
fn pods_without_containers_or_spec_resolve_rule_hooks_with_defects() {
    check_resolution(&typed(db_pod(json!({}))), &rules());
    let mut no_spec = typed(db_pod(json!({})));
    no_spec.spec = None;
    check_resolution(&no_spec, &rules());
}

#[test]
fn extreme_annotation_timeouts_stay_within_four_hours() {
    for timeout in [
        "0s",
        "4h0m0.000000001s",
        "2562047h",
        "-0",
        "1ns",
        "300",
        "1d",
    ] {
        let pod = typed(
            db_pod(json!({"pre.hook.backup.quiesce.dev/command": "pre",
                          "pre.hook.backup.quiesce.dev/timeout": timeout}))
            .container("app"),
        );
        check_resolution(&pod, &Config::default());
    }
}

// 2. Go durations

#[test]
fn go_duration_simple_cases_agree() {
    check_go_duration_simple_cases();
}

#[test]
fn go_duration_edges_keep_range_and_round_trip() {
    for input in [
        "9223372036854775807ns",
        "9223372036854775808ns",
        "-9223372036854775808ns",
        "-9223372036854775809ns",
        "2562047h47m16.854775807s",
        "-2562047h47m16.854775808s",
        "2562047h47m16.854775808s",
        "1.00000000000000000000000000001s",
        "0.000000001s",
        "99999999999999999999999h",
        "1\u{00b5}s1\u{03bc}s1us",
        "1.5h0.5m.5s5.s",
        "+0",
        "-0s",
        "-",
        "0.",
        ".",
        "1\u{00b5}",
        "1s\u{00b5}",
    ] {
        check_go_duration(input);
    }
}

// 3. rules YAML

#[test]
fn config_yaml_edge_documents_keep_rules_valid() {
    for text in [
        RULES_YAML,
        "",
        "~",
        "[]",
        "hooks: 5",
        "hooks: {resources: [{}]}",
        "hooks: {resources: [{name: '', pre: [{exec: {command: []}}]}]}",
        "hooks: {resources: [{name: x, pre: [{exec: {command: [a], timeout: -1s}}]}]}",
        "hooks: {resources: [{name: x, post: [{exec: {command: [a], timeout: 9999h}}]}]}",
        "a: &a [*a]",
        "maxFreeze: 0s\ngovernance: {annotationHooks: {allowedNamespaces: ['[']}}",
        "\u{feff}hooks:\n  resources:\n  - name: x\n    pre:\n    - exec:\n        command: a",
        include_str!("../../fuzz/seeds/config_yaml/sessions.yaml"),
        "hooks: {resources: [{name: x, post: [{exec: {stdin: q}}]}]}",
        "hooks: {resources: [{name: x, pre: [{exec: {command: [a], holdUntilOutput: r}}], \
         post: [{exec: {stdin: q}}, {exec: {stdin: again}}]}]}",
    ] {
        check_config_yaml(text);
    }
}

#[test]
fn held_sessions_resolve_to_one_session_end_and_at_most_one_command() {
    for annotations in [
        json!({"pre.hook.backup.quiesce.dev/command": "[\"mysql\"]",
               "pre.hook.backup.quiesce.dev/hold-until-output": "ready",
               "post.hook.backup.quiesce.dev/stdin": "UNLOCK TABLES;",
               "post.hook.backup.quiesce.dev/command": "[\"post\"]"}),
        json!({"pre.hook.backup.quiesce.dev/command": "[]",
               "pre.hook.backup.quiesce.dev/hold-until-output": "ready",
               "post.hook.backup.quiesce.dev/stdin": "x"}),
        json!({"post.hook.backup.quiesce.dev/hold-until-output": "ready",
               "post.hook.backup.quiesce.dev/stdin": ""}),
    ] {
        let pod = typed(db_pod(annotations).container("app"));
        check_resolution(&pod, &Config::default());
    }
    let (config, _) = Config::from_yaml(include_str!("../../fuzz/seeds/config_yaml/sessions.yaml"));
    check_resolution(
        &typed(db_pod(json!({})).label("app", "mysql").container("app")),
        &config,
    );
}

// 4. Execute / GetRelatedItems

/// The Backup the Velero calls carry.
fn backup() -> Vec<u8> {
    br#"{"kind":"Backup","metadata":{"name":"b","namespace":"velero","uid":"uid-1"},"status":{"phase":"InProgress"}}"#.to_vec()
}

/// A Velero call of `method` on `item` for this plugin.
fn call(method: Method, item: &[u8]) -> VeleroCall {
    VeleroCall {
        method,
        plugin: quiesce::velero::PLUGIN_NAME.to_owned(),
        item: item.to_vec(),
        backup: backup(),
    }
}

/// [`db_pod`] as Velero sends it: containers `app` and `db`, a native `istio-proxy` sidecar,
/// claim `data-0`.
fn pod_json(annotations: Value) -> Vec<u8> {
    let pod = db_pod(annotations)
        .container("app")
        .container("db")
        .init_container(container("istio-proxy").restart_policy("Always"))
        .claims(["data-0"]);
    serde_json::to_vec(&pod.build()).expect("pod JSON")
}

#[test]
fn velero_order_of_calls_echoes_every_item() {
    let runtime = runtime();
    let pod = pod_json(json!({"post.hook.backup.quiesce.dev/command": "[\"fail\"]"}));
    let pv = br#"{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"pv-0"},"spec":{"claimRef":{"namespace":"shop","name":"data-0"}}}"#;
    let calls = [
        call(Method::GetRelatedItems, &pod),
        call(Method::Execute, pv),
        call(Method::Execute, &pod),
        call(Method::Execute, &pod),
    ];
    for discover in [false, true] {
        check_velero_calls(&runtime, &calls, rules(), discover);
    }
}

#[test]
fn failing_and_hanging_hooks_end_in_an_error_or_the_item() {
    let runtime = runtime();
    for verb in ["fail", "error", "hang"] {
        let pod = pod_json(json!({
            "pre.hook.backup.quiesce.dev/command": format!("[\"{verb}\"]"),
            "pre.hook.backup.quiesce.dev/timeout": "4h",
            "backup.velero.io/backup-volumes": "data-0",
        }));
        check_velero_calls(&runtime, &[call(Method::Execute, &pod)], rules(), false);
    }
}

#[test]
fn unreadable_items_and_foreign_plugins_are_errors_not_panics() {
    let runtime = runtime();
    let mut calls = Vec::new();
    for item in [
        &b""[..],
        b"null",
        b"[]",
        b"{\"kind\":\"Pod\"}",
        b"{\"kind\":\"Pod\",\"spec\":5}",
        b"{\"kind\":\"PersistentVolume\",\"spec\":{\"claimRef\":{}}}",
        b"\xff\xfe",
        b"{\"kind\":\"Deployment\"}",
    ] {
        calls.push(call(Method::Execute, item));
        calls.push(call(Method::GetRelatedItems, item));
    }
    let mut foreign = call(Method::Execute, &pod_json(json!({})));
    foreign.plugin = "velero.io/pod".to_owned();
    calls.push(foreign);
    let mut finalizing = call(Method::Execute, &pod_json(json!({})));
    finalizing.backup = br#"{"status":{"phase":"FinalizingPartiallyFailed"}}"#.to_vec();
    calls.push(finalizing);
    check_velero_calls(&runtime, &calls, rules(), false);
}

// 5. argument parser and handshake line

#[test]
fn plugin_args_edges_keep_command_and_flag_values() {
    let cases: Vec<Vec<OsString>> = vec![
        vec![],
        vec![OsString::from_vec(vec![0xff, b'/', b'q'])],
        vec!["/plugins/q".into(), "--log-level".into()],
        vec!["q".into(), "--features= , ,".into(), "-log-level=".into()],
        vec!["q".into(), "---log-level".into(), "debug".into()],
        vec![
            "q".into(),
            "--log-level".into(),
            OsString::from_vec(vec![0x80]),
        ],
        vec!["q".into(), "--features".into(), "--log-level=info".into()],
    ];
    for argv in cases {
        check_plugin_args(&argv);
    }
}

#[test]
fn handshake_line_has_six_fields_for_socket_paths() {
    for path in [
        "/tmp/quiesce-abc/plugin.sock",
        "",
        "relative",
        "/t\u{e9}mp/x",
    ] {
        assert!(socket_path_fits_handshake(Path::new(path)), "{path:?}");
        check_handshake_line(2, Path::new(path));
    }
    assert!(!socket_path_fits_handshake(Path::new(
        "/tmp/a|b/plugin.sock"
    )));
    check_handshake_line(u32::MAX, Path::new("/tmp/x.sock"));
}

/// Finding F1: a `|` or a newline in the socket path would add handshake fields. The socket
/// directory now refuses such a base, so such a line is never printed.
#[test]
fn a_socket_base_with_a_bar_is_refused_so_the_handshake_keeps_six_fields() {
    let base = tempfile::tempdir().unwrap();
    let odd = base.path().join("a|b");
    std::fs::create_dir_all(&odd).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let refused = runtime.block_on(async { quiesce::goplugin::PrivateSocket::bind_in(&odd).err() });
    assert!(refused.is_some_and(|e| e.to_string().contains("contains '|'")));
}
