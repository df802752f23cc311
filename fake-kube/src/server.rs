//! The HTTP side: the accept loop (plain TCP or TLS), request logging, routing of paths to
//! discovery, the generic resource handlers (get, list, watch, create, replace,
//! merge-patch, delete; the `status` subresource) and `GET /fake-kube/timeline`. Exec upgrades are handed to [`crate::exec`]; response helpers live in
//! [`crate::http`], the shared [`State`] in [`crate::state`], objects in [`crate::store`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::discovery;
use crate::exec;
use crate::faults::{Fault, RequestFacts};
use crate::http::{
    is_true, json_response, parse_query, query_value, status_response, text_response, Body,
};
use crate::selector::Selector;
use crate::state::State;
use crate::status;
use crate::store::{resource_by_path, ResourceKind};
use crate::timeline::{event_json, RequestRecord};

/// Largest request body accepted (objects are small; this only guards against mistakes).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Accepts connections until `shutdown` flips to true. Each connection is served on its own task
/// with HTTP/1.1 (with upgrades) or HTTP/2 (prior knowledge, plain TCP only).
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(_) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, request).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // Connection errors (client went away, bad TLS) only end this connection.
            let _ = match tls {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => {
                        builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .await
                    }
                    Err(_) => return,
                },
                None => {
                    builder
                        .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                        .await
                }
            };
        });
    }
}

/// Where a path leads.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Version,
    Health,
    ApiVersions,
    ApiGroupList,
    ApiGroup(String),
    ResourceList {
        group: String,
        version: String,
    },
    Collection {
        resource: &'static ResourceKind,
        namespace: Option<String>,
    },
    Object {
        resource: &'static ResourceKind,
        namespace: Option<String>,
        name: String,
        /// The request is for the object's `status` subresource.
        status: bool,
    },
    Exec {
        namespace: String,
        pod: String,
    },
    /// fake-kube's own: the timeline as JSON, for tests that are not in Rust.
    Timeline,
    Unknown,
}

fn route(path: &str) -> Route {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez"] => Route::Health,
        ["fake-kube", "timeline"] => Route::Timeline,
        ["api"] => Route::ApiVersions,
        ["apis"] => Route::ApiGroupList,
        ["api", version] => Route::ResourceList {
            group: String::new(),
            version: (*version).to_string(),
        },
        ["apis", group] => Route::ApiGroup((*group).to_string()),
        ["apis", group, version] => Route::ResourceList {
            group: (*group).to_string(),
            version: (*version).to_string(),
        },
        ["api", version, rest @ ..] => resource_route("", version, rest),
        ["apis", group, version, rest @ ..] => resource_route(group, version, rest),
        _ => Route::Unknown,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let namespaced =
        |plural: &str| resource_by_path(group, version, plural).filter(|r| r.namespaced);
    let cluster = |plural: &str| resource_by_path(group, version, plural).filter(|r| !r.namespaced);
    match rest {
        ["namespaces", namespace, "pods", pod, "exec"] if group.is_empty() => Route::Exec {
            namespace: (*namespace).to_string(),
            pod: (*pod).to_string(),
        },
        ["namespaces", namespace, plural] => match namespaced(plural) {
            Some(resource) => Route::Collection {
                resource,
                namespace: Some((*namespace).to_string()),
            },
            None => Route::Unknown,
        },
        ["namespaces", namespace, plural, name, subresource @ ..] => {
            match (namespaced(plural), subresource) {
                (Some(resource), []) | (Some(resource), ["status"]) => Route::Object {
                    resource,
                    namespace: Some((*namespace).to_string()),
                    name: (*name).to_string(),
                    status: !subresource.is_empty(),
                },
                _ => Route::Unknown,
            }
        }
        [plural] => match resource_by_path(group, version, plural) {
            Some(resource) => Route::Collection {
                resource,
                namespace: None,
            },
            None => Route::Unknown,
        },
        [plural, name, subresource @ ..] => match (cluster(plural), subresource) {
            (Some(resource), []) | (Some(resource), ["status"]) => Route::Object {
                resource,
                namespace: None,
                name: (*name).to_string(),
                status: !subresource.is_empty(),
            },
            _ => Route::Unknown,
        },
        _ => Route::Unknown,
    }
}

/// Serves one request. Never fails: every problem becomes a Status response.
async fn handle(state: Arc<State>, request: Request<Incoming>) -> Response<Body> {
    log_request(&state, &request);
    let path = request.uri().path().to_string();
    let route = route(&path);
    if let Route::Exec { namespace, pod } = route {
        return exec::handle(state, request, namespace, pod).await;
    }

    let (namespace, pod) = match &route {
        Route::Collection { namespace, .. } => (namespace.as_deref(), None),
        Route::Object {
            resource,
            namespace,
            name,
            ..
        } => (
            namespace.as_deref(),
            (resource.plural == "pods" && resource.group.is_empty()).then_some(name.as_str()),
        ),
        _ => (None, None),
    };
    let facts = RequestFacts {
        path: &path,
        namespace,
        pod,
        ..RequestFacts::default()
    };
    match state.apply_fault_rules(&facts).await {
        Some(Fault::Reject { code }) => {
            return status_response(&status::for_code(
                code,
                "fake-kube: injected fault: request rejected",
            ))
        }
        Some(Fault::ServerError) => {
            return status_response(&status::internal_error(
                "fake-kube: injected fault: server error",
            ))
        }
        _ => {}
    }

    let method = request.method().clone();
    match (route, method) {
        (Route::Version, Method::GET) => json_response(StatusCode::OK, &discovery::version()),
        (Route::Health, Method::GET) => text_response(StatusCode::OK, "ok"),
        (Route::Timeline, Method::GET) => {
            let events: Vec<Value> = state.timeline.snapshot().iter().map(event_json).collect();
            json_response(StatusCode::OK, &json!({ "events": events }))
        }
        (Route::ApiVersions, Method::GET) => json_response(
            StatusCode::OK,
            &discovery::api_versions(&state.server_address),
        ),
        (Route::ApiGroupList, Method::GET) => {
            json_response(StatusCode::OK, &discovery::api_group_list())
        }
        (Route::ApiGroup(group), Method::GET) => match discovery::api_group(&group) {
            Some(value) => json_response(StatusCode::OK, &value),
            None => status_response(&status::unknown_path()),
        },
        (Route::ResourceList { group, version }, Method::GET) => {
            match discovery::api_resource_list(&group, &version) {
                Some(value) => json_response(StatusCode::OK, &value),
                None => status_response(&status::unknown_path()),
            }
        }
        (
            Route::Collection {
                resource,
                namespace,
            },
            Method::GET,
        ) => list_or_watch(
            &state,
            resource,
            namespace.as_deref(),
            request.uri().query(),
        ),
        (
            Route::Collection {
                resource,
                namespace,
            },
            Method::POST,
        ) => create(&state, resource, namespace.as_deref(), request).await,
        (
            Route::Object {
                resource,
                namespace,
                name,
                status,
            },
            method,
        ) => {
            let namespace = namespace.unwrap_or_default();
            let part = if status { Part::Status } else { Part::Object };
            match method {
                Method::GET => match state.store.get(resource, &namespace, &name) {
                    Some(object) => json_response(StatusCode::OK, &served(resource, object)),
                    None => status_response(&status::not_found(resource.plural, &name)),
                },
                Method::DELETE if !status => {
                    match state.store.delete(resource, &namespace, &name) {
                        Some(object) => json_response(StatusCode::OK, &served(resource, object)),
                        None => status_response(&status::not_found(resource.plural, &name)),
                    }
                }
                Method::PUT => {
                    modify(
                        &state,
                        resource,
                        &namespace,
                        &name,
                        Edit::Replace,
                        part,
                        request,
                    )
                    .await
                }
                Method::PATCH => {
                    let edit = Edit::MergePatch;
                    modify(&state, resource, &namespace, &name, edit, part, request).await
                }
                _ => status_response(&status::method_not_allowed()),
            }
        }
        (Route::Unknown, _) => status_response(&status::unknown_path()),
        _ => status_response(&status::method_not_allowed()),
    }
}

fn log_request(state: &State, request: &Request<Incoming>) {
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    state.requests.push(RequestRecord {
        at: state.started.elapsed(),
        method: request.method().as_str().to_string(),
        path: request.uri().path().to_string(),
        query: request.uri().query().map(str::to_string),
        headers,
    });
}

fn list_or_watch(
    state: &Arc<State>,
    resource: &'static ResourceKind,
    namespace: Option<&str>,
    query: Option<&str>,
) -> Response<Body> {
    let pairs = parse_query(query);
    let labels = match Selector::parse_labels(query_value(&pairs, "labelSelector").unwrap_or("")) {
        Ok(selector) => selector,
        Err(message) => return status_response(&status::bad_request(&message)),
    };
    let fields = match Selector::parse_fields(query_value(&pairs, "fieldSelector").unwrap_or("")) {
        Ok(selector) => selector,
        Err(message) => return status_response(&status::bad_request(&message)),
    };
    if is_true(query_value(&pairs, "watch")) {
        let since = query_value(&pairs, "resourceVersion")
            .and_then(|rv| rv.parse::<u64>().ok())
            .filter(|rv| *rv > 0);
        let timeout = query_value(&pairs, "timeoutSeconds")
            .and_then(|s| s.parse::<u64>().ok())
            .map(Duration::from_secs);
        return watch(
            state.clone(),
            resource,
            namespace.map(str::to_string),
            labels,
            fields,
            since,
            timeout,
        );
    }
    let (items, resource_version) = state.store.list(resource, namespace, &labels, &fields);
    let items: Vec<Value> = items
        .into_iter()
        .map(|object| served(resource, object))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "kind": resource.list_kind(),
            "apiVersion": resource.api_version(),
            "metadata": { "resourceVersion": resource_version.to_string() },
            "items": items,
        }),
    )
}

/// A streaming watch: replays changes after `since` (or synthesizes ADDED events for the
/// current objects when no resourceVersion was given), then streams live changes as
/// newline-delimited JSON until the client leaves, the timeout passes or the server stops.
fn watch(
    state: Arc<State>,
    resource: &'static ResourceKind,
    namespace: Option<String>,
    labels: Selector,
    fields: Selector,
    since: Option<u64>,
    timeout: Option<Duration>,
) -> Response<Body> {
    let (sender, receiver) = mpsc::channel::<Bytes>(64);
    let (initial, start_version) = match since {
        Some(since) => (Vec::new(), since),
        None => state
            .store
            .list(resource, namespace.as_deref(), &labels, &fields),
    };
    let (backlog, mut live) = state.store.subscribe(Some(start_version));
    let wanted = move |change: &crate::store::Change| {
        change.resource.same_resource(resource)
            && namespace.as_deref().is_none_or(|ns| {
                change
                    .object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    == Some(ns)
            })
            && labels.matches_labels(&change.object)
            && fields.matches_fields(&change.object)
    };
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(3600)));
        tokio::pin!(deadline);
        let mut last_sent = start_version;
        let encode = |change_type: &str, object: &Value| {
            let object = served(resource, object.clone());
            let mut line = json!({ "type": change_type, "object": object }).to_string();
            line.push('\n');
            Bytes::from(line)
        };
        for object in &initial {
            if sender.send(encode("ADDED", object)).await.is_err() {
                return;
            }
        }
        for change in backlog.iter().filter(|c| wanted(c)) {
            last_sent = change.resource_version;
            if sender
                .send(encode(change.change_type.as_str(), &change.object))
                .await
                .is_err()
            {
                return;
            }
        }
        loop {
            let change = tokio::select! {
                _ = &mut deadline => return,
                _ = sender.closed() => return,
                change = live.recv() => change,
            };
            match change {
                Ok(change) if change.resource_version > last_sent && wanted(&change) => {
                    last_sent = change.resource_version;
                    let kind = change.change_type;
                    if sender
                        .send(encode(kind.as_str(), &change.object))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // The client must relist, as with a real "too old resource version".
                    let gone = status::failure(410, "Expired", "too old resource version", None);
                    let _ = sender.send(encode("ERROR", &gone)).await;
                    return;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), receiver))
    });
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn read_json(request: Request<Incoming>) -> Result<Value, Response<Body>> {
    let bytes = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return Err(status_response(&status::bad_request(&format!(
                "cannot read request body: {error}"
            ))))
        }
    };
    serde_json::from_slice(&bytes).map_err(|error| {
        status_response(&status::bad_request(&format!(
            "the body of the request was in an unknown format: {error}"
        )))
    })
}

async fn create(
    state: &State,
    resource: &'static ResourceKind,
    namespace: Option<&str>,
    request: Request<Incoming>,
) -> Response<Body> {
    let mut object = match read_json(request).await {
        Ok(object) => object,
        Err(response) => return response,
    };
    if resource.status_subresource {
        // As for a CRD with a status subresource: only the object's controller sets it.
        if let Some(fields) = object.as_object_mut() {
            fields.remove("status");
        }
    }
    if let (Some(path_ns), Some(body_ns)) = (
        namespace,
        object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str),
    ) {
        if path_ns != body_ns {
            return status_response(&status::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    match state.store.create(resource, object, namespace) {
        Ok(created) => json_response(StatusCode::CREATED, &served(resource, created)),
        Err(crate::Error::AlreadyExists { resource, name }) => {
            status_response(&status::already_exists(&resource, &name))
        }
        Err(error) => status_response(&status::bad_request(&error.to_string())),
    }
}

/// How a PUT or PATCH changes the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit {
    /// PUT: the body is the new object.
    Replace,
    /// PATCH: the body is an RFC 7386 merge patch.
    MergePatch,
}

/// Which part of the object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The object (for a resource with a status subresource: all but `status`).
    Object,
    /// The `status` subresource: only `status`.
    Status,
}

async fn modify(
    state: &State,
    resource: &'static ResourceKind,
    namespace: &str,
    name: &str,
    edit: Edit,
    part: Part,
    request: Request<Incoming>,
) -> Response<Body> {
    let body = match read_json(request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    // A write that names a resourceVersion is a precondition, as with the API server (client-go's
    // Update always sends the one it read; a merge patch rarely does).
    let expected = body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|version| !version.is_empty())
        .map(str::to_string);
    let result = state
        .store
        .update_if(resource, namespace, name, expected.as_deref(), |object| {
            *object = edited(resource, object, &body, edit, part);
        });
    match result {
        Ok(object) => json_response(StatusCode::OK, &served(resource, object)),
        Err(crate::Error::Conflict {
            resource,
            group,
            name,
        }) => status_response(&status::conflict(&resource, &group, &name)),
        Err(_) => status_response(&status::not_found(resource.plural, name)),
    }
}

/// The object after a write of `body` to `current`. With a status subresource, a write of the
/// object keeps the current `status` and a write of `status` keeps everything else; a PUT
/// without `uid` or `creationTimestamp` keeps the current ones, as the API server does.
fn edited(resource: &ResourceKind, current: &Value, body: &Value, edit: Edit, part: Part) -> Value {
    let mut next = match edit {
        Edit::Replace => body.clone(),
        Edit::MergePatch => {
            let mut next = current.clone();
            merge_patch(&mut next, body);
            next
        }
    };
    if resource.status_subresource {
        let (keep_from, take_status_from) = match part {
            Part::Object => (&next, current),
            Part::Status => (current, &next),
        };
        let mut kept = keep_from.clone();
        match take_status_from.get("status") {
            Some(status) => kept["status"] = status.clone(),
            None => {
                if let Some(fields) = kept.as_object_mut() {
                    fields.remove("status");
                }
            }
        }
        next = kept;
    }
    for field in ["uid", "creationTimestamp"] {
        let missing = next.pointer(&format!("/metadata/{field}")).is_none();
        if let (true, Some(value)) = (missing, current.pointer(&format!("/metadata/{field}"))) {
            if next.get("metadata").is_some_and(Value::is_object) {
                next["metadata"][field] = value.clone();
            }
        }
    }
    next
}

/// The object as served at `resource`'s version: the store keeps one copy of an object whatever
/// version wrote it, and this version's clients expect its `apiVersion` back.
fn served(resource: &ResourceKind, mut object: Value) -> Value {
    if object.is_object() {
        object["apiVersion"] = json!(resource.api_version());
    }
    object
}

/// RFC 7386 JSON merge patch. Strategic-merge and apply patches are treated the same way, which
/// is right for the status and annotation updates tests make.
fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_cover_the_paths_clients_use() {
        assert_eq!(route("/version"), Route::Version);
        assert_eq!(
            route("/api/v1/namespaces/default/pods/p/exec"),
            Route::Exec {
                namespace: "default".into(),
                pod: "p".into()
            }
        );
        assert!(matches!(
            route("/api/v1/pods"),
            Route::Collection {
                namespace: None,
                ..
            }
        ));
        assert!(matches!(
            route("/apis/velero.io/v1/namespaces/velero/podvolumebackups/x"),
            Route::Object { .. }
        ));
        assert!(matches!(
            route("/api/v1/namespaces/default"),
            Route::Object { .. }
        ));
        assert_eq!(route("/api/v1/namespaces/default/secrets"), Route::Unknown);
    }

    #[test]
    fn status_subresources_and_the_timeline_have_routes() {
        assert!(matches!(
            route("/apis/snapshot.storage.k8s.io/v1/namespaces/shop/volumesnapshots/s/status"),
            Route::Object { status: true, .. }
        ));
        assert!(matches!(
            route("/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents/c/status"),
            Route::Object { status: true, .. }
        ));
        assert_eq!(
            route("/apis/snapshot.storage.k8s.io/v1/namespaces/shop/volumesnapshots/s/scale"),
            Route::Unknown
        );
        assert_eq!(route("/fake-kube/timeline"), Route::Timeline);
    }

    #[test]
    fn a_write_of_one_part_keeps_the_other() {
        let snapshots =
            resource_by_path("snapshot.storage.k8s.io", "v1", "volumesnapshots").unwrap();
        let current =
            json!({"metadata": {"name": "s", "uid": "u"}, "spec": {"a": 1}, "status": {"b": 2}});
        let body = json!({"metadata": {"name": "s"}, "spec": {"a": 3}, "status": {"b": 4}});
        let object = edited(snapshots, &current, &body, Edit::Replace, Part::Object);
        assert_eq!(
            object,
            json!({"metadata": {"name": "s", "uid": "u"}, "spec": {"a": 3}, "status": {"b": 2}})
        );
        let status = edited(snapshots, &current, &body, Edit::Replace, Part::Status);
        assert_eq!(
            status,
            json!({"metadata": {"name": "s", "uid": "u"}, "spec": {"a": 1}, "status": {"b": 4}})
        );
        let pods = resource_by_path("", "v1", "pods").unwrap();
        let pod = edited(pods, &current, &body, Edit::MergePatch, Part::Object);
        assert_eq!(
            pod["status"]["b"], 4,
            "no status subresource: the write takes it all"
        );
    }

    #[test]
    fn merge_patch_sets_and_removes() {
        let mut object = json!({"a": {"b": 1, "c": 2}, "d": 3});
        merge_patch(&mut object, &json!({"a": {"b": null, "e": 4}, "d": [1]}));
        assert_eq!(object, json!({"a": {"c": 2, "e": 4}, "d": [1]}));
    }
}
