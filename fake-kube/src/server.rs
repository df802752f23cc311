//! The HTTP side: the accept loop (plain TCP or TLS), request logging, routing of paths to
//! discovery, and the generic resource handlers (get, list, watch, create, replace,
//! merge-patch, delete). Exec upgrades are handed to [`crate::exec`]; response helpers live in
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
use crate::timeline::RequestRecord;

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
    },
    Exec {
        namespace: String,
        pod: String,
    },
    Unknown,
}

fn route(path: &str) -> Route {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez"] => Route::Health,
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
        ["namespaces", namespace, plural, name] => match namespaced(plural) {
            Some(resource) => Route::Object {
                resource,
                namespace: Some((*namespace).to_string()),
                name: (*name).to_string(),
            },
            None => Route::Unknown,
        },
        [plural] => match resource_by_path(group, version, plural) {
            Some(resource) => Route::Collection {
                resource,
                namespace: None,
            },
            None => Route::Unknown,
        },
        [plural, name] => match cluster(plural) {
            Some(resource) => Route::Object {
                resource,
                namespace: None,
                name: (*name).to_string(),
            },
            None => Route::Unknown,
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
            },
            method,
        ) => {
            let namespace = namespace.unwrap_or_default();
            match method {
                Method::GET => match state.store.get(resource, &namespace, &name) {
                    Some(object) => json_response(StatusCode::OK, &object),
                    None => status_response(&status::not_found(resource.plural, &name)),
                },
                Method::DELETE => match state.store.delete(resource, &namespace, &name) {
                    Some(object) => json_response(StatusCode::OK, &object),
                    None => status_response(&status::not_found(resource.plural, &name)),
                },
                Method::PUT | Method::PATCH => {
                    let is_patch = method == Method::PATCH;
                    modify(&state, resource, &namespace, &name, is_patch, request).await
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
        std::ptr::eq(change.resource, resource)
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
    let object = match read_json(request).await {
        Ok(object) => object,
        Err(response) => return response,
    };
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
        Ok(created) => json_response(StatusCode::CREATED, &created),
        Err(crate::Error::AlreadyExists { resource, name }) => {
            status_response(&status::already_exists(&resource, &name))
        }
        Err(error) => status_response(&status::bad_request(&error.to_string())),
    }
}

async fn modify(
    state: &State,
    resource: &'static ResourceKind,
    namespace: &str,
    name: &str,
    is_patch: bool,
    request: Request<Incoming>,
) -> Response<Body> {
    let body = match read_json(request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let result = state.store.update(resource, namespace, name, |object| {
        if is_patch {
            merge_patch(object, &body);
        } else {
            *object = body;
        }
    });
    match result {
        Ok(object) => json_response(StatusCode::OK, &object),
        Err(_) => status_response(&status::not_found(resource.plural, name)),
    }
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
    fn merge_patch_sets_and_removes() {
        let mut object = json!({"a": {"b": 1, "c": 2}, "d": 3});
        merge_patch(&mut object, &json!({"a": {"b": null, "e": 4}, "d": [1]}));
        assert_eq!(object, json!({"a": {"c": 2, "e": 4}, "d": [1]}));
    }
}
