//! The non-exec API through kube-rs: version, discovery, pods, configmaps, events, PVBs, watch.

use std::time::Duration;

use fake_kube::objects::pod;
use fake_kube::FakeKube;
use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::discovery::Discovery;
use serde_json::json;

use crate::util::{api_error, client, start};

#[tokio::test]
async fn version_claims_1_32() {
    let kube = start(false).await;
    let info = client(&kube).await.apiserver_version().await.unwrap();
    assert_eq!(info.major, "1");
    assert_eq!(info.minor, "32");
    assert!(info.git_version.starts_with("v1.32."));
}

#[tokio::test]
async fn discovery_lists_core_and_velero_resources() {
    let kube = start(true).await;
    let discovery = Discovery::new(client(&kube).await).run().await.unwrap();
    let groups: Vec<String> = discovery.groups().map(|g| g.name().to_string()).collect();
    assert!(groups.contains(&"velero.io".to_string()), "{groups:?}");
    let core = discovery.get("").unwrap();
    let plurals: Vec<String> = core
        .recommended_resources()
        .into_iter()
        .map(|(r, _)| r.plural)
        .collect();
    for plural in ["pods", "configmaps", "events"] {
        assert!(plurals.contains(&plural.to_string()), "{plurals:?}");
    }
}

#[tokio::test]
async fn pods_list_by_namespace_all_namespaces_and_label() {
    let kube = FakeKube::start().await.unwrap();
    kube.add_pod(
        pod("a", "db-0")
            .label("app", "db")
            .container("main")
            .build(),
    )
    .unwrap();
    kube.add_pod(
        pod("a", "web-0")
            .label("app", "web")
            .container("main")
            .build(),
    )
    .unwrap();
    kube.add_pod(
        pod("b", "db-1")
            .label("app", "db")
            .container("main")
            .build(),
    )
    .unwrap();
    let client = client(&kube).await;
    let names = |list: kube::api::ObjectList<Pod>| {
        list.items
            .into_iter()
            .map(|p| p.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    let in_a: Api<Pod> = Api::namespaced(client.clone(), "a");
    assert_eq!(
        names(in_a.list(&ListParams::default()).await.unwrap()),
        ["db-0", "web-0"]
    );
    assert_eq!(
        names(
            in_a.list(&ListParams::default().labels("app=db"))
                .await
                .unwrap()
        ),
        ["db-0"]
    );
    let all: Api<Pod> = Api::all(client.clone());
    assert_eq!(
        names(
            all.list(&ListParams::default().labels("app in (db)"))
                .await
                .unwrap()
        ),
        ["db-0", "db-1"]
    );
    assert_eq!(
        names(
            all.list(&ListParams::default().fields("metadata.namespace=b"))
                .await
                .unwrap()
        ),
        ["db-1"]
    );
    let pod = in_a.get("web-0").await.unwrap();
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Running"));
}

#[tokio::test]
async fn missing_pod_get_is_a_not_found_status() {
    let kube = start(false).await;
    let pods: Api<Pod> = Api::namespaced(client(&kube).await, "default");
    let message = api_error(pods.get("ghost").await.unwrap_err(), 404, "NotFound");
    assert_eq!(message, "pods \"ghost\" not found");
    assert!(pods.get_opt("ghost").await.unwrap().is_none());
}

#[tokio::test]
async fn configmaps_list_by_label_and_get_by_name() {
    let kube = start(false).await;
    kube.add_config_map(json!({
        "metadata": {"name": "hooks", "namespace": "default", "labels": {"quiesce.io/hooks": "true"}},
        "data": {"pre": "fsfreeze -f /data"}
    }))
    .unwrap();
    kube.add_config_map(json!({"metadata": {"name": "other"}, "data": {}}))
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client(&kube).await, "default");
    let listed = cms
        .list(&ListParams::default().labels("quiesce.io/hooks=true"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let hooks = cms.get("hooks").await.unwrap();
    assert_eq!(hooks.data.unwrap()["pre"], "fsfreeze -f /data");
    api_error(cms.get("nope").await.unwrap_err(), 404, "NotFound");
}

#[tokio::test]
async fn posted_events_are_recorded_and_listable() {
    let kube = start(false).await;
    let events: Api<Event> = Api::namespaced(client(&kube).await, "default");
    let event: Event = serde_json::from_value(json!({
        "metadata": {"generateName": "p.", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "HookSucceeded",
        "message": "pre hook ran",
        "type": "Normal"
    }))
    .unwrap();
    let created = events.create(&PostParams::default(), &event).await.unwrap();
    assert!(created.metadata.name.unwrap().starts_with("p."));
    let recorded = kube.events(Some("default"));
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["reason"], "HookSucceeded");
    let listed = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items[0].message.as_deref(), Some("pre hook ran"));
}

#[tokio::test]
async fn pod_volume_backups_can_be_listed_and_fetched() {
    let kube = start(false).await;
    kube.add_object(json!({
        "apiVersion": "velero.io/v1",
        "kind": "PodVolumeBackup",
        "metadata": {"name": "b-1", "namespace": "velero", "labels": {"velero.io/backup-name": "b"}},
        "spec": {"pod": {"name": "p", "namespace": "default"}, "volume": "data"},
        "status": {"phase": "InProgress"}
    }))
    .unwrap();
    let resource =
        ApiResource::from_gvk(&GroupVersionKind::gvk("velero.io", "v1", "PodVolumeBackup"));
    let pvbs: Api<DynamicObject> = Api::namespaced_with(client(&kube).await, "velero", &resource);
    let listed = pvbs
        .list(&ListParams::default().labels("velero.io/backup-name=b"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let pvb = pvbs.get("b-1").await.unwrap();
    assert_eq!(pvb.data["status"]["phase"], "InProgress");
}

#[tokio::test]
async fn watch_streams_changes_after_the_list_version() {
    let kube = start(false).await;
    let pods: Api<Pod> = Api::namespaced(client(&kube).await, "default");
    let version = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let stream = pods
        .watch(&WatchParams::default().timeout(10), &version)
        .await
        .unwrap();
    let mut stream = stream.boxed();
    kube.set_pod_phase("default", "p", "Failed").unwrap();
    kube.add_pod(
        pod("default", "late")
            .label("app", "x")
            .container("main")
            .build(),
    )
    .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match first {
        WatchEvent::Modified(pod) => {
            assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Failed"))
        }
        other => panic!("unexpected {other:?}"),
    }
    let second = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(second, WatchEvent::Added(pod) if pod.metadata.name.as_deref() == Some("late"))
    );
}

#[tokio::test]
async fn yaml_with_several_documents_and_lists_loads() {
    let kube = FakeKube::start().await.unwrap();
    let added = kube
        .load_yaml(
            "metadata: {name: a}\nspec: {containers: [{name: main}]}\n---\n\
             apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c, namespace: x}\n---\n",
        )
        .unwrap();
    assert_eq!(added, 2);
    assert!(kube.pod("default", "a").is_some());
    assert_eq!(kube.objects("", "v1", "configmaps", Some("x")).len(), 1);
}
