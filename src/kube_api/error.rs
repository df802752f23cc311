//! [`Error`]: how a call to the Kubernetes API failed, in variants a caller can act on —
//! refused by RBAC, not there (an object, or a resource type whose CRD is not installed), no
//! answer in time, no API server to talk to — with kube-rs's own error as the source.
//!
//! Callers say what they were doing (`listing pods in namespace shop: …`); the variant says
//! how it failed. Exec has a vocabulary of its own, [`crate::exec::ExecError`], because a failed
//! exec must also say whether the command may have run.

use std::time::Duration;

use kube::core::Status;

/// Why a call to the Kubernetes API failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No client could be built (no in-cluster configuration, no usable kubeconfig). Not
    /// remembered: the next call tries again.
    #[error("no Kubernetes client: {0}")]
    NoClient(String),
    /// The API server could not be reached: connection refused, DNS, TLS handshake.
    #[error("cannot reach the Kubernetes API server: {}", chain(.0))]
    Unreachable(#[source] kube::Error),
    /// HTTP 403: the identity the plugin runs as may not do this (RBAC).
    #[error("{}", status_text(.0))]
    Forbidden(#[source] kube::Error),
    /// HTTP 404: the object does not exist, or the API server does not serve the resource
    /// type at all (a CRD that is not installed).
    #[error("{}", status_text(.0))]
    NotFound(#[source] kube::Error),
    /// Another error status from the API server (409, 422, 429, 5xx, …).
    #[error("{}", status_text(.0))]
    Status(#[source] kube::Error),
    /// No answer within the bound every call of this module has (kube's own retries of
    /// 429/503/504 answers would otherwise hold a caller for minutes).
    #[error("no answer within {}", crate::hooks::format_go_duration(*.0))]
    Timeout(Duration),
    /// The request failed inside the client: building it, decoding the answer.
    #[error("{}", chain(.0))]
    Client(#[source] kube::Error),
}

impl Error {
    /// Sorts a kube-rs error into the variant a caller can act on.
    pub fn from_kube(error: kube::Error) -> Error {
        match &error {
            kube::Error::Api(status) if status.code == 403 => Error::Forbidden(error),
            kube::Error::Api(status) if status.code == 404 => Error::NotFound(error),
            kube::Error::Api(_) => Error::Status(error),
            kube::Error::HyperError(_) | kube::Error::Service(_) => Error::Unreachable(error),
            _ => Error::Client(error),
        }
    }

    /// The HTTP status code of the API server's answer, when it answered with one.
    pub fn code(&self) -> Option<u16> {
        self.status().map(|status| status.code)
    }

    /// The API server's `Status` answer, when it gave one.
    pub fn status(&self) -> Option<&Status> {
        match self {
            Error::Forbidden(kube::Error::Api(status))
            | Error::NotFound(kube::Error::Api(status))
            | Error::Status(kube::Error::Api(status)) => Some(status),
            _ => None,
        }
    }
}

/// The API server's message, or `HTTP <code> <reason>` when it sent none.
fn status_text(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        kube::Error::Api(status) => format!("HTTP {} {}", status.code, status.reason),
        other => chain(other),
    }
}

/// An error and its sources, joined with `: ` (kube's and hyper's top-level messages alone
/// hide the useful part, e.g. `Connection refused`). Repeated texts are skipped.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(error) = current {
        let text = error.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = error.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    fn api(code: u16, message: &str, reason: &str) -> kube::Error {
        kube::Error::Api(Box::new(Status::failure(message, reason).with_code(code)))
    }

    #[test]
    fn answers_are_sorted_by_what_a_caller_can_do_about_them() {
        let forbidden = Error::from_kube(api(
            403,
            "pods is forbidden: User \"velero\" cannot list resource \"pods\"",
            "Forbidden",
        ));
        assert!(matches!(forbidden, Error::Forbidden(_)));
        assert_eq!(forbidden.code(), Some(403));
        assert_eq!(
            forbidden.to_string(),
            "pods is forbidden: User \"velero\" cannot list resource \"pods\""
        );
        let missing = Error::from_kube(api(404, "", "NotFound"));
        assert!(matches!(missing, Error::NotFound(_)));
        assert_eq!(missing.to_string(), "HTTP 404 NotFound");
        assert!(matches!(
            Error::from_kube(api(503, "etcd is down", "ServiceUnavailable")),
            Error::Status(_)
        ));
        assert_eq!(
            Error::Timeout(Duration::from_secs(10)).to_string(),
            "no answer within 10s"
        );
        assert_eq!(Error::Timeout(Duration::from_secs(10)).code(), None);
    }

    #[test]
    fn chain_joins_sources_without_repeating_them() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("client error (Connect)")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused",
        ));
        assert_eq!(chain(&error), "client error (Connect): Connection refused");
    }
}
