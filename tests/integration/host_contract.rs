//! The host contract, end to end: the real binary launched as Velero launches it, called over
//! its socket as Velero calls it, stopped as Velero stops it.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use prost::Message;
use quiesce::proto::generated::Stack;
use quiesce::proto::plugin::grpc_broker_client::GrpcBrokerClient;
use quiesce::proto::plugin::grpc_stdio_client::GrpcStdioClient;
use quiesce::proto::plugin::ConnInfo;
use quiesce::proto::v1::{ItemBlockActionAppliesToRequest, ItemBlockActionGetRelatedItemsRequest};
use quiesce::proto::v2::{
    BackupItemActionAppliesToRequest, BackupItemActionCancelRequest,
    BackupItemActionProgressRequest, ExecuteRequest,
};
use serde_json::Value;
use tonic::Code;

use crate::util::{
    backup_json, bin, execute_request, launch_with_cluster, pod_json, Plugin, PLUGIN_NAME,
};

/// What go-plugin's `Kill` waits for a graceful exit before it SIGKILLs.
const HOST_GRACE: Duration = Duration::from_secs(2);

#[test]
fn without_the_cookie_it_explains_itself_and_exits_1() {
    let output = std::process::Command::new(bin())
        .env_remove("VELERO_PLUGIN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("This binary is a plugin"), "{stderr}");
    assert!(stderr.contains("VELERO_PLUGIN"), "{stderr}");

    let wrong = std::process::Command::new(bin())
        .env("VELERO_PLUGIN", "goodbye")
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
}

#[tokio::test]
async fn the_handshake_names_a_private_unix_socket() {
    let plugin = Plugin::launch(&[]);
    let fields: Vec<&str> = plugin.handshake.split('|').collect();
    assert_eq!(fields[..3], ["1", "2", "unix"]);
    assert_eq!(fields[4], "grpc");
    assert_eq!(fields[5], "\n", "the line ends with an empty cert field");
    assert!(plugin.socket.is_absolute());
    let socket_mode = std::fs::metadata(&plugin.socket)
        .unwrap()
        .permissions()
        .mode();
    let dir_mode = std::fs::metadata(plugin.socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(socket_mode & 0o777, 0o600);
    assert_eq!(dir_mode & 0o777, 0o700);
}

#[tokio::test]
async fn list_plugins_reports_argv0_and_both_kinds_in_velero_order() {
    // Velero execs the reported command later, so it must be argv[0] exactly — even a
    // relative path or a symlink name.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("velero-plugin-quiesce");
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    let command = link.to_str().unwrap();
    let plugin = Plugin::launch_as(command, &[]);
    let plugins = plugin.list_plugins().await;
    let listed: Vec<_> = plugins
        .iter()
        .map(|p| (p.command.as_str(), p.kind.as_str(), p.name.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            (command, "BackupItemActionV2", PLUGIN_NAME),
            (command, "ItemBlockAction", PLUGIN_NAME),
        ]
    );
}

#[tokio::test]
async fn health_reports_serving_for_plugin_and_the_server() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let plugin = Plugin::launch(&[]);
    let mut health = HealthClient::new(plugin.connect().await);
    for service in ["plugin", ""] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, 1, "SERVING for {service:?}");
    }
}

#[tokio::test]
async fn backup_action_applies_to_pods_and_persistent_volumes() {
    let plugin = Plugin::launch(&[]);
    let selector = plugin
        .backup_action()
        .await
        .applies_to(BackupItemActionAppliesToRequest {
            plugin: PLUGIN_NAME.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .resource_selector
        .unwrap();
    assert_eq!(selector.included_resources, ["pods", "persistentvolumes"]);
    assert!(selector.excluded_resources.is_empty());
    assert!(selector.included_namespaces.is_empty());
    assert!(selector.selector.is_empty());
}

#[tokio::test]
async fn execute_returns_the_item_byte_for_byte() {
    let (plugin, _cluster) = launch_with_cluster(&[]).await;
    let mut action = plugin.backup_action().await;
    let pod = pod_json("shop", "db-0");
    let pv = br#"{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"pv-1"},"spec":{"claimRef":{"name":"data-db-0","namespace":"shop"}}}"#.to_vec();
    for item in [pod, pv] {
        let response = action
            .execute(execute_request(item.clone()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.item, item);
        assert!(response.additional_items.is_empty());
        assert!(response.operation_id.is_empty());
        assert!(response.post_operation_items.is_empty());
    }
}

#[tokio::test]
async fn progress_always_answers_with_a_progress_and_cancel_succeeds() {
    let plugin = Plugin::launch(&[]);
    let mut action = plugin.backup_action().await;
    let progress = action
        .progress(BackupItemActionProgressRequest {
            plugin: PLUGIN_NAME.into(),
            operation_id: "op-1".into(),
            backup: backup_json(),
        })
        .await
        .unwrap()
        .into_inner()
        .progress
        .expect("progress must always be set: Velero dereferences it");
    assert!(progress.completed);
    assert!(progress.err.contains("op-1"), "{}", progress.err);
    assert_eq!(progress.started.unwrap().seconds, -62_135_596_800);
    action
        .cancel(BackupItemActionCancelRequest {
            plugin: PLUGIN_NAME.into(),
            operation_id: "op-1".into(),
            backup: backup_json(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn item_block_action_applies_to_pods_and_relates_nothing() {
    let (plugin, _cluster) = launch_with_cluster(&[]).await;
    let mut action = plugin.item_block_action().await;
    let selector = action
        .applies_to(ItemBlockActionAppliesToRequest {
            plugin: PLUGIN_NAME.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .resource_selector
        .unwrap();
    assert_eq!(
        selector.included_resources,
        ["pods", "persistentvolumeclaims"]
    );
    let related = action
        .get_related_items(ItemBlockActionGetRelatedItemsRequest {
            plugin: PLUGIN_NAME.into(),
            item: pod_json("shop", "db-0"),
            backup: backup_json(),
        })
        .await
        .unwrap()
        .into_inner()
        .related_items;
    assert!(related.is_empty());
}

#[tokio::test]
async fn a_wrong_plugin_name_is_an_unknown_error_with_a_matching_stack_detail() {
    let plugin = Plugin::launch(&[]);
    let status = plugin
        .backup_action()
        .await
        .execute(ExecuteRequest {
            plugin: "velero.io/pod".into(),
            ..execute_request(pod_json("shop", "db-0"))
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unknown);
    assert!(
        status.message().contains("\"velero.io/pod\" was not found"),
        "{}",
        status.message()
    );
    // google.rpc.Status: code 1, message 2, details 3 — its code must equal grpc-status.
    #[derive(Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
        #[prost(message, repeated, tag = "3")]
        details: Vec<prost_types::Any>,
    }
    let details = RpcStatus::decode(status.details()).unwrap();
    assert_eq!(details.code, Code::Unknown as i32);
    assert_eq!(details.message, status.message());
    assert_eq!(
        details.details[0].type_url,
        "type.googleapis.com/generated.Stack"
    );
    let stack = Stack::decode(details.details[0].value.as_slice()).unwrap();
    assert!(stack.frames[0].file.starts_with("src/velero/"), "{stack:?}");

    let status = plugin
        .item_block_action()
        .await
        .applies_to(ItemBlockActionAppliesToRequest {
            plugin: "quiesce.dev/other".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unknown);
}

#[tokio::test]
async fn bad_items_get_clear_errors() {
    let (plugin, _cluster) = launch_with_cluster(&[]).await;
    let mut action = plugin.backup_action().await;
    let cases: [(&[u8], &str); 5] = [
        (b"", "the item is empty"),
        (b"{not json", "the item is not valid JSON"),
        (br#"{"metadata":{"name":"x"}}"#, "the item has no kind"),
        (b"null", "the item is null"),
        (b"[]", "the item is not a Kubernetes object"),
    ];
    for (item, expected) in cases {
        let status = action
            .execute(execute_request(item.to_vec()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unknown);
        assert!(
            status
                .message()
                .starts_with(&format!("invalid item: {expected}")),
            "{:?} → {}",
            String::from_utf8_lossy(item),
            status.message()
        );
    }
    // The process is still serving.
    action
        .execute(execute_request(pod_json("shop", "db-0")))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_32_mib_item_comes_back_unchanged() {
    let (plugin, _cluster) = launch_with_cluster(&[]).await;
    let mut item = pod_json("shop", "big");
    let padding = "p".repeat(32 << 20);
    let tail = item.split_off(item.len() - 1); // the closing brace
    item.extend_from_slice(format!(",\"padding\":\"{padding}\"").as_bytes());
    item.extend_from_slice(&tail);
    let response = plugin
        .backup_action()
        .await
        .execute(execute_request(item.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.item.len(), item.len());
    assert!(response.item == item);
}

#[tokio::test]
async fn sixty_four_concurrent_executes_on_one_connection() {
    let (plugin, _cluster) = launch_with_cluster(&[]).await;
    let action = plugin.backup_action().await;
    let calls = (0..64).map(|i| {
        let mut action = action.clone();
        async move {
            let item = pod_json("shop", &format!("db-{i}"));
            let response = action
                .execute(execute_request(item.clone()))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(response.item, item);
        }
    });
    futures_util::future::join_all(calls).await;
}

#[tokio::test]
async fn a_client_may_disconnect_and_reconnect_any_number_of_times() {
    let (plugin, _cluster) = launch_with_cluster(&[]).await;
    for _ in 0..5 {
        // Each call dials a connection of its own and closes it when it returns.
        assert_eq!(plugin.list_plugins().await.len(), 2);
    }
    let mut action = plugin.backup_action().await;
    action
        .execute(execute_request(pod_json("shop", "db-0")))
        .await
        .unwrap();
}

#[tokio::test]
async fn shutdown_answers_and_the_process_exits_0_within_the_hosts_grace() {
    let mut plugin = Plugin::launch(&[]);
    let socket_dir = plugin.socket.parent().unwrap().to_owned();
    let mut stdio = GrpcStdioClient::new(plugin.connect().await);
    let mut stream = stdio.stream_stdio(()).await.unwrap().into_inner();
    let mut controller = quiesce::proto::plugin::grpc_controller_client::GrpcControllerClient::new(
        plugin.connect().await,
    );
    controller
        .shutdown(quiesce::proto::plugin::Empty {})
        .await
        .unwrap();
    // The held-open stdio stream ends without an error status the host would log.
    match stream.message().await {
        Ok(None) => {}
        Err(status) => assert!(
            matches!(status.code(), Code::Unavailable | Code::Cancelled),
            "{status:?}"
        ),
        Ok(Some(data)) => panic!("unexpected stdio data {data:?}"),
    }
    let status = plugin
        .wait_exit(HOST_GRACE)
        .expect("exited within the host's grace");
    assert_eq!(status.code(), Some(0));
    assert!(!socket_dir.exists(), "socket directory removed");
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        plugin.stdout_after_handshake().is_empty(),
        "nothing on stdout after the handshake"
    );
}

#[tokio::test]
async fn shutdown_while_calls_are_in_flight_still_exits_cleanly() {
    let (mut plugin, _cluster) = launch_with_cluster(&[]).await;
    let action = plugin.backup_action().await;
    let mut broker = GrpcBrokerClient::new(plugin.connect().await);
    let _broker_stream = broker
        .start_stream(tokio_stream::iter(vec![ConnInfo::default()]))
        .await
        .unwrap();
    let mut stdio = GrpcStdioClient::new(plugin.connect().await);
    let _stdio_stream = stdio.stream_stdio(()).await.unwrap();
    let calls: Vec<_> = (0..32)
        .map(|i| {
            let mut action = action.clone();
            tokio::spawn(async move {
                let _ = action
                    .execute(execute_request(pod_json("shop", &format!("p{i}"))))
                    .await;
            })
        })
        .collect();
    plugin.shutdown().await;
    for call in calls {
        call.await.unwrap();
    }
    let status = plugin
        .wait_exit(HOST_GRACE)
        .expect("exited within the host's grace");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn sigterm_takes_the_orderly_path_and_sigint_is_ignored() {
    let mut plugin = Plugin::launch(&[]);
    let socket_dir = plugin.socket.parent().unwrap().to_owned();
    plugin.signal(2); // SIGINT
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        plugin.child.try_wait().unwrap().is_none(),
        "SIGINT must not stop the plugin"
    );
    plugin.list_plugins().await;

    plugin.signal(15); // SIGTERM
    let status = plugin.wait_exit(HOST_GRACE).expect("exited after SIGTERM");
    assert_eq!(status.code(), Some(0));
    assert!(!socket_dir.exists(), "socket directory removed");
    assert!(plugin
        .stderr_lines()
        .iter()
        .any(|l| l.contains("SIGTERM received")));
}

#[tokio::test]
async fn stderr_carries_only_velero_log_lines_at_the_requested_level() {
    let (mut plugin, _cluster) =
        launch_with_cluster(&["--log-level", "debug", "stray-positional"]).await;
    plugin
        .backup_action()
        .await
        .execute(execute_request(pod_json("shop", "db-0")))
        .await
        .unwrap();
    plugin.shutdown().await;
    plugin.wait_exit(HOST_GRACE).expect("exited");
    let lines = plugin.stderr_lines();
    assert!(!lines.is_empty());
    for line in &lines {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let level = value["@level"].as_str().expect("@level is a string");
        assert!(
            ["trace", "debug", "info", "warn", "error"].contains(&level),
            "{line}"
        );
        assert!(value["@message"].is_string(), "{line}");
        assert_eq!(value["@logSourceSetBy"], "plugin");
        assert!(value.get("@timestamp").is_none());
    }
    let executed = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["@message"] == "Executing quiesce.dev/pod-hooks")
        .expect("a debug line per Execute at --log-level debug");
    assert_eq!(executed["item"], "shop/db-0");
    assert_eq!(executed["backup"], "velero/nightly-1");
}

#[tokio::test]
async fn a_backup_without_hooks_adds_no_warnings_or_errors_to_velero() {
    // Velero counts every warn and error line of a plugin as a backup warning or error.
    let (mut plugin, _cluster) = launch_with_cluster(&[]).await;
    plugin
        .backup_action()
        .await
        .execute(execute_request(pod_json("shop", "db-0")))
        .await
        .unwrap();
    plugin.shutdown().await;
    plugin.wait_exit(HOST_GRACE).expect("exited");
    let loud: Vec<String> = plugin
        .stderr_lines()
        .into_iter()
        .filter(|l| !l.contains("\"@level\":\"info\"") && !l.contains("\"@level\":\"debug\""))
        .collect();
    assert_eq!(loud, Vec::<String>::new());
}

#[tokio::test]
async fn an_unknown_log_level_is_a_warning_not_a_failure() {
    let plugin = Plugin::launch(&["--log-level=chatty"]);
    plugin.list_plugins().await;
    std::thread::sleep(Duration::from_millis(50));
    let lines = plugin.stderr_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"@level\":\"warn\"") && l.contains("chatty")),
        "{lines:?}"
    );
}
