//! Builders for `metav1.Status` JSON, the body of every error the API server returns and the
//! message the exec stream ends with on channel 3. Shapes follow what the real API server and
//! kubelet send (see `shared/spec/exec-and-tooling.md` §3); nothing here does I/O.

use serde_json::{json, Value};

/// A failure `Status` as an HTTP error body (with `kind`/`apiVersion`, like the API server).
pub(crate) fn failure(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(details) = details {
        status["details"] = details;
    }
    status
}

/// `404 NotFound` for a named object, e.g. `pods "p" not found`.
pub(crate) fn not_found(resource: &str, name: &str) -> Value {
    failure(
        404,
        "NotFound",
        &format!("{resource} \"{name}\" not found"),
        Some(json!({ "name": name, "kind": resource })),
    )
}

/// `404 NotFound` for a path the server does not serve.
pub(crate) fn unknown_path() -> Value {
    failure(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

/// `400 BadRequest` with a free-form message.
pub(crate) fn bad_request(message: &str) -> Value {
    failure(400, "BadRequest", message, None)
}

/// `405 MethodNotAllowed`.
pub(crate) fn method_not_allowed() -> Value {
    failure(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        Some(json!({})),
    )
}

/// `409 AlreadyExists` for a create of an existing object.
pub(crate) fn already_exists(resource: &str, name: &str) -> Value {
    failure(
        409,
        "AlreadyExists",
        &format!("{resource} \"{name}\" already exists"),
        Some(json!({ "name": name, "kind": resource })),
    )
}

/// `409 Conflict` for a write based on a stale `resourceVersion`, worded like the API server's
/// `apierrors.NewConflict` (client-go's `retry.RetryOnConflict` looks for the reason).
pub(crate) fn conflict(resource: &str, group: &str, name: &str) -> Value {
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    failure(
        409,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been \
             modified; please apply your changes to the latest version and try again"
        ),
        Some(json!({ "name": name, "group": group, "kind": resource })),
    )
}

/// `500 InternalError`, shaped like `apierrors.NewInternalError`.
pub(crate) fn internal_error(message: &str) -> Value {
    failure(
        500,
        "InternalError",
        &format!("Internal error occurred: {message}"),
        Some(json!({ "causes": [{ "message": message }] })),
    )
}

/// A status for an arbitrary code, used by the reject-upgrade fault (400, 403, 503, …).
pub(crate) fn for_code(code: u16, message: &str) -> Value {
    match code {
        400 => bad_request(message),
        401 => failure(401, "Unauthorized", message, None),
        403 => failure(403, "Forbidden", message, Some(json!({ "kind": "pods" }))),
        404 => failure(404, "NotFound", message, Some(json!({}))),
        429 => failure(429, "TooManyRequests", message, Some(json!({}))),
        500 => internal_error(message),
        503 => failure(503, "ServiceUnavailable", message, Some(json!({}))),
        _ => failure(code, "", message, None),
    }
}

/// Channel-3 status of a command that exited 0.
pub(crate) fn exec_success() -> Value {
    json!({ "metadata": {}, "status": "Success" })
}

/// Channel-3 status of a command that exited non-zero, as the kubelet formats it (Go `%v` of the
/// argv, so `[sh -c exit 3]`).
pub(crate) fn exec_non_zero(argv: &[String], code: i32) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            argv.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": { "causes": [{ "reason": "ExitCode", "message": code.to_string() }] },
    })
}

/// Channel-3 status when the command could not be started, shaped like containerd + runc report
/// a missing executable through the kubelet (`InternalError`, code 500, no `ExitCode` cause).
pub(crate) fn exec_start_failed(message: &str) -> Value {
    let inner = format!("error executing command in container: {message}");
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {inner}"),
        "reason": "InternalError",
        "details": { "causes": [{ "message": inner }] },
        "code": 500,
    })
}
