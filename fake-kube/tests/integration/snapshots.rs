//! The CSI snapshot API through kube-rs, as Velero's CSI actions and quiesce's watch use it, and
//! the simulated snapshot controller that cuts what they ask for.

use std::time::Duration;

use fake_kube::objects::{csi_persistent_volume, persistent_volume_claim, velero_volume_snapshot};
use fake_kube::{FakeKube, SnapshotStep, TimelineEventKind};
use futures_util::{StreamExt, TryStreamExt};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::discovery::Discovery;
use kube::ResourceExt;
use serde_json::{json, Value};

use crate::util::{api_error, client};

/// Generous bound for "it happens at all" waits; never a performance assertion.
const EVENTUALLY: Duration = Duration::from_secs(20);

fn resource(group: &str, version: &str, kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

fn snapshots(client: kube::Client, namespace: &str) -> Api<DynamicObject> {
    let vs = resource("snapshot.storage.k8s.io", "v1", "VolumeSnapshot");
    Api::namespaced_with(client, namespace, &vs)
}

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).unwrap()
}

/// A VolumeSnapshot of claim `claim` of `shop` as Velero's CSI action creates it in backup
/// `nightly` (class `velero-csi-snapclass`).
fn velero_snapshot(claim: &str) -> DynamicObject {
    let claim = persistent_volume_claim("shop", claim, &format!("pv-{claim}")).build();
    object(velero_volume_snapshot(&claim, "nightly"))
}

const GROUP: &str = "groupsnapshot.storage.k8s.io";

fn group_snapshots(client: kube::Client, version: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client,
        "shop",
        &resource(GROUP, version, "VolumeGroupSnapshot"),
    )
}

/// A VolumeGroupSnapshot at `version` of the claims of group `orders`, with `metadata`.
fn group_snapshot(version: &str, metadata: Value) -> DynamicObject {
    object(json!({
        "apiVersion": format!("{GROUP}/{version}"), "kind": "VolumeGroupSnapshot",
        "metadata": metadata,
        "spec": {"source": {"selector": {"matchLabels": {"velero.io/volume-group": "orders"}}}},
    }))
}

/// Creates [`velero_snapshot`]`(claim)` through `api`.
async fn create_snapshot(api: &Api<DynamicObject>, claim: &str) -> DynamicObject {
    api.create(&PostParams::default(), &velero_snapshot(claim))
        .await
        .unwrap()
}

/// Claim `name` of `shop`, in volume group `group` unless `None`, bound to the CSI volume
/// `pv-NAME` of 1Gi (volume handle `vol-pv-NAME`).
fn add_claim(kube: &FakeKube, name: &str, group: Option<&str>) {
    let volume = format!("pv-{name}");
    let mut claim = persistent_volume_claim("shop", name, &volume);
    if let Some(group) = group {
        claim = claim.label("velero.io/volume-group", group);
    }
    kube.add_object(claim.build()).unwrap();
    kube.add_object(csi_persistent_volume(&volume, "shop", name))
        .unwrap();
}

fn add_class(kube: &FakeKube) {
    kube.add_object(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
        "metadata": {"name": "velero-csi-snapclass",
                     "labels": {"velero.io/csi-volumesnapshot-class": "true"}},
        "driver": "disk.csi.example.com", "deletionPolicy": "Retain",
    }))
    .unwrap();
}

/// Waits until the object read by `get` satisfies `done`.
async fn eventually(
    api: &Api<DynamicObject>,
    name: &str,
    done: impl Fn(&DynamicObject) -> bool,
) -> DynamicObject {
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    loop {
        let current = api.get(name).await.unwrap();
        if done(&current) {
            return current;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never got there: {current:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A server whose simulated snapshot controller cuts after `latency`.
async fn with_controller(latency: Duration) -> FakeKube {
    FakeKube::builder()
        .snapshot_latency(latency)
        .start()
        .await
        .unwrap()
}

/// Every VolumeSnapshotContent the server holds.
fn contents(kube: &FakeKube) -> Vec<Value> {
    kube.objects(
        "snapshot.storage.k8s.io",
        "v1",
        "volumesnapshotcontents",
        None,
    )
}

fn bound(snapshot: &DynamicObject) -> bool {
    snapshot.data["status"]["boundVolumeSnapshotContentName"].is_string()
}

#[tokio::test]
async fn discovery_serves_the_snapshot_groups_and_both_group_snapshot_versions() {
    let kube = FakeKube::start().await.unwrap();
    let discovery = Discovery::new(client(&kube).await).run().await.unwrap();
    let snapshot = discovery.get("snapshot.storage.k8s.io").unwrap();
    let plurals: Vec<String> = snapshot
        .recommended_resources()
        .into_iter()
        .map(|(r, caps)| format!("{} {:?}", r.plural, caps.scope))
        .collect();
    assert_eq!(
        plurals,
        [
            "volumesnapshots Namespaced",
            "volumesnapshotcontents Cluster",
            "volumesnapshotclasses Cluster"
        ]
    );
    let group = discovery.get("groupsnapshot.storage.k8s.io").unwrap();
    let versions: Vec<&str> = group.versions().collect();
    assert_eq!(versions, ["v1beta2", "v1beta1"]);
    assert_eq!(group.preferred_version_or_latest(), "v1beta2");
    let storage = discovery.get("storage.k8s.io").unwrap();
    assert!(storage
        .recommended_resources()
        .iter()
        .any(|(r, _)| r.plural == "storageclasses"));
}

#[tokio::test]
async fn a_snapshot_is_created_with_generate_name_listed_by_label_and_patched() {
    let kube = FakeKube::start().await.unwrap();
    let api = snapshots(client(&kube).await, "shop");
    let created = create_snapshot(&api, "data").await;
    let name = created.metadata.name.clone().unwrap();
    assert!(
        name.starts_with("velero-data-") && name.len() == 17,
        "{name}"
    );
    let mut other = velero_snapshot("logs");
    other.metadata.labels = Some([("velero.io/backup-name".into(), "weekly".into())].into());
    api.create(&PostParams::default(), &other).await.unwrap();

    let nightly = api
        .list(&ListParams::default().labels("velero.io/backup-name=nightly"))
        .await
        .unwrap();
    let names: Vec<String> = nightly.items.iter().map(ResourceExt::name_any).collect();
    assert_eq!(names, [name.as_str()]);

    let patch = json!({"metadata": {"annotations": {"velero.io/vsc-deletion-policy": "Retain"}}});
    let patched = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(
        patched.metadata.annotations.unwrap()["velero.io/vsc-deletion-policy"],
        "Retain"
    );
    api.delete(&name, &Default::default()).await.unwrap();
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
}

#[tokio::test]
async fn an_update_from_a_stale_read_is_a_conflict_as_retry_on_conflict_expects() {
    let kube = FakeKube::start().await.unwrap();
    let api = snapshots(client(&kube).await, "shop");
    let created = create_snapshot(&api, "data").await;
    let name = created.metadata.name.clone().unwrap();
    let mut first = created.clone();
    first.metadata.labels = Some([("velero.io/backup-uid".into(), "u1".into())].into());
    let updated = api
        .replace(&name, &PostParams::default(), &first)
        .await
        .unwrap();
    assert_ne!(
        updated.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(updated.metadata.uid, created.metadata.uid);

    let stale = created;
    let error = api
        .replace(&name, &PostParams::default(), &stale)
        .await
        .unwrap_err();
    let message = api_error(error, 409, "Conflict");
    assert_eq!(
        message,
        format!(
            "Operation cannot be fulfilled on volumesnapshots.snapshot.storage.k8s.io \"{name}\": \
             the object has been modified; please apply your changes to the latest version and \
             try again"
        )
    );
    let current = api.get(&name).await.unwrap();
    assert_eq!(
        current.metadata.labels.unwrap()["velero.io/backup-uid"],
        "u1"
    );
}

#[tokio::test]
async fn status_is_a_subresource_of_snapshots() {
    let kube = FakeKube::start().await.unwrap();
    let api = snapshots(client(&kube).await, "shop");
    let mut asked = velero_snapshot("data");
    asked.data["status"] = json!({"readyToUse": true});
    let created = api.create(&PostParams::default(), &asked).await.unwrap();
    assert!(
        created.data.get("status").is_none(),
        "a create sets no status"
    );
    let name = created.metadata.name.clone().unwrap();

    let status = json!({"status": {"boundVolumeSnapshotContentName": "snapcontent-1"}});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    // A write of the object leaves the status alone, whatever its body says.
    let mut current = api.get(&name).await.unwrap();
    current.data["status"] = json!({});
    current.metadata.labels = Some([("x".into(), "y".into())].into());
    let replaced = api
        .replace(&name, &PostParams::default(), &current)
        .await
        .unwrap();
    assert_eq!(
        replaced.data["status"]["boundVolumeSnapshotContentName"],
        "snapcontent-1"
    );
    assert_eq!(replaced.metadata.labels.unwrap()["x"], "y");
}

#[tokio::test]
async fn a_group_snapshot_created_at_v1beta1_is_served_at_v1beta2_too() {
    let kube = FakeKube::start().await.unwrap();
    let client = client(&kube).await;
    let v1beta1 = group_snapshots(client.clone(), "v1beta1");
    let v1beta2 = group_snapshots(client, "v1beta2");
    let asked = group_snapshot("v1beta1", json!({"generateName": "velero-orders-"}));
    let created = v1beta1
        .create(&PostParams::default(), &asked)
        .await
        .unwrap();
    let name = created.metadata.name.unwrap();
    let read = v1beta2.get(&name).await.unwrap();
    assert_eq!(read.types.unwrap().api_version, format!("{GROUP}/v1beta2"));
    v1beta2.delete(&name, &Default::default()).await.unwrap();
    assert!(v1beta1
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn without_the_controller_a_snapshot_stays_as_created() {
    let kube = FakeKube::start().await.unwrap();
    add_claim(&kube, "data", None);
    let api = snapshots(client(&kube).await, "shop");
    let created = create_snapshot(&api, "data").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let current = api.get(&created.name_any()).await.unwrap();
    assert!(current.data.get("status").is_none());
    assert!(contents(&kube).is_empty());
}

#[tokio::test]
async fn the_controller_cuts_a_snapshot_and_binds_it_to_a_content_with_a_handle() {
    let kube = with_controller(Duration::from_millis(100)).await;
    add_claim(&kube, "data", None);
    add_class(&kube);
    let client = client(&kube).await;
    let api = snapshots(client.clone(), "shop");
    // Watch as quiesce does: by Velero's label, from a list.
    let params = WatchParams::default().labels("velero.io/backup-name=nightly");
    let mut changes = api.watch(&params, "0").await.unwrap().boxed();
    let created = create_snapshot(&api, "data").await;
    let name = created.name_any();
    let snapshot = eventually(&api, &name, bound).await;
    let status = &snapshot.data["status"];
    let content_name = status["boundVolumeSnapshotContentName"].as_str().unwrap();
    assert_eq!(
        content_name,
        format!("snapcontent-{}", created.metadata.uid.unwrap())
    );
    assert!(status["creationTime"].is_string(), "{status}");
    assert_eq!(status["readyToUse"], true);
    assert_eq!(status["restoreSize"], "1Gi");

    let contents: Api<DynamicObject> = Api::all_with(
        client,
        &resource("snapshot.storage.k8s.io", "v1", "VolumeSnapshotContent"),
    );
    let content = contents.get(content_name).await.unwrap();
    assert_eq!(content.data["spec"]["driver"], "disk.csi.example.com");
    assert_eq!(content.data["spec"]["deletionPolicy"], "Retain");
    assert_eq!(
        content.data["spec"]["source"]["volumeHandle"],
        "vol-pv-data"
    );
    assert_eq!(
        content.data["spec"]["volumeSnapshotRef"]["name"],
        name.as_str()
    );
    let content_status = &content.data["status"];
    assert!(content_status["snapshotHandle"].is_string());
    assert!(content_status["creationTime"].is_i64());
    assert_eq!(content_status["restoreSize"], 1 << 30);

    // The watch saw the snapshot created, then cut.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match tokio::time::timeout(EVENTUALLY, changes.try_next()).await {
            Ok(Ok(Some(WatchEvent::Added(o)))) => seen.push(("added", bound(&o))),
            Ok(Ok(Some(WatchEvent::Modified(o)))) => seen.push(("modified", bound(&o))),
            other => panic!("unexpected watch outcome {other:?}"),
        }
    }
    assert_eq!(seen, [("added", false), ("modified", true)]);

    let steps: Vec<(String, SnapshotStep)> = kube
        .timeline()
        .into_iter()
        .filter_map(|e| match e.kind {
            TimelineEventKind::Snapshot { snapshot, step } => Some((
                format!("{} {}", snapshot.kind, snapshot.claims.join(",")),
                step,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("VolumeSnapshot ".to_string(), SnapshotStep::Requested),
            ("VolumeSnapshot data".to_string(), SnapshotStep::Cut),
        ]
    );
}

#[tokio::test]
async fn a_failing_claim_gets_a_snapshot_with_an_error_and_no_content() {
    let kube = with_controller(Duration::ZERO).await;
    add_claim(&kube, "data", None);
    kube.fail_snapshots("shop", "data", "driver: quota exceeded");
    let api = snapshots(client(&kube).await, "shop");
    let created = create_snapshot(&api, "data").await;
    let snapshot = eventually(&api, &created.name_any(), |s| {
        s.data["status"]["error"].is_object()
    })
    .await;
    assert_eq!(
        snapshot.data["status"]["error"]["message"],
        "driver: quota exceeded"
    );
    assert_eq!(snapshot.data["status"]["readyToUse"], false);
    assert!(!bound(&snapshot));
    assert!(contents(&kube).is_empty());
}

/// What Velero 1.17 (v1beta1) and 1.18.1+ (v1beta2) find after creating a group snapshot.
async fn group_snapshot_members(version: &str) {
    let kube = with_controller(Duration::from_millis(50)).await;
    add_claim(&kube, "data-a", Some("orders"));
    add_claim(&kube, "data-b", Some("orders"));
    add_claim(&kube, "logs", Some("other"));
    let client = client(&kube).await;
    let groups = group_snapshots(client.clone(), version);
    let asked = group_snapshot(
        version,
        json!({"generateName": "velero-orders-", "labels": {"velero.io/backup-name": "nightly"}}),
    );
    let created = groups.create(&PostParams::default(), &asked).await.unwrap();
    let name = created.name_any();
    let uid = created.metadata.uid.clone().unwrap();
    let cut = eventually(&groups, &name, |g| {
        g.data["status"]["boundVolumeGroupSnapshotContentName"].is_string()
    })
    .await;
    let content_name = format!("groupsnapcontent-{uid}");
    assert_eq!(
        cut.data["status"]["boundVolumeGroupSnapshotContentName"],
        content_name.as_str()
    );
    let contents: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource(GROUP, version, "VolumeGroupSnapshotContent"),
    );
    let content = contents.get(&content_name).await.unwrap();
    assert_eq!(content.data["status"]["readyToUse"], true);
    let handles = if version == "v1beta1" {
        &content.data["status"]["volumeSnapshotHandlePairList"]
    } else {
        &content.data["status"]["volumeSnapshotInfoList"]
    };
    assert_eq!(handles.as_array().map(Vec::len), Some(2), "{content:?}");

    let members = snapshots(client, "shop")
        .list(&ListParams::default())
        .await
        .unwrap();
    let mut claims: Vec<String> = Vec::new();
    for member in &members.items {
        let owner = &member.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.api_version, format!("{GROUP}/{version}"));
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("VolumeGroupSnapshot", uid.as_str())
        );
        assert_eq!(
            member.data["status"]["volumeGroupSnapshotName"],
            name.as_str()
        );
        assert!(bound(member) && member.data["status"]["creationTime"].is_string());
        assert!(member.name_any().starts_with("snapshot-"));
        claims.push(
            member.data["spec"]["source"]["persistentVolumeClaimName"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    claims.sort();
    assert_eq!(
        claims,
        ["data-a", "data-b"],
        "the claim outside the group is not cut"
    );
}

#[tokio::test]
async fn a_v1beta1_group_snapshot_gets_one_owned_snapshot_per_claim_of_the_group() {
    group_snapshot_members("v1beta1").await;
}

#[tokio::test]
async fn a_v1beta2_group_snapshot_gets_one_owned_snapshot_per_claim_of_the_group() {
    group_snapshot_members("v1beta2").await;
}

#[tokio::test]
async fn the_timeline_is_served_as_json() {
    let kube = with_controller(Duration::ZERO).await;
    add_claim(&kube, "data", None);
    kube.mark("before");
    let api = snapshots(client(&kube).await, "shop");
    let created = create_snapshot(&api, "data").await;
    eventually(&api, &created.name_any(), bound).await;
    let body: Value = reqwest_get(&format!("{}/fake-kube/timeline", kube.url())).await;
    let events = body["events"].as_array().unwrap();
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e["type"].as_str().unwrap() {
            "Snapshot" => format!("Snapshot {}", e["step"].as_str().unwrap()),
            other => other.to_owned(),
        })
        .collect();
    assert_eq!(kinds, ["Marker", "Snapshot Requested", "Snapshot Cut"]);
    assert_eq!(events[2]["snapshot"]["claims"], json!(["data"]));
    assert_eq!(events[2]["snapshot"]["namespace"], "shop");
    assert!(events[1]["atMicros"].as_u64() <= events[2]["atMicros"].as_u64());
    assert_eq!(events[0]["seq"], 0);
}

/// GET over plain HTTP/1.1 with a raw TCP stream (no HTTP client in the dev-dependencies).
async fn reqwest_get(url: &str) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn a_watch_of_one_version_sees_changes_written_at_another() {
    let kube = FakeKube::start().await.unwrap();
    let client = client(&kube).await;
    let mut changes = group_snapshots(client.clone(), "v1beta2")
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let asked = group_snapshot("v1beta1", json!({"name": "g"}));
    group_snapshots(client, "v1beta1")
        .create(&PostParams::default(), &asked)
        .await
        .unwrap();
    match tokio::time::timeout(EVENTUALLY, changes.next()).await {
        Ok(Some(Ok(WatchEvent::Added(o)))) => {
            assert_eq!(o.types.unwrap().api_version, format!("{GROUP}/v1beta2"))
        }
        other => panic!("unexpected watch outcome {other:?}"),
    }
}
