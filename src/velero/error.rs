//! Errors answered to Velero, and their one conversion into a gRPC status.
//!
//! Like Velero's Go framework: code Unknown with the error text, and a `generated.Stack`
//! detail naming where the error was raised — the host logs that frame as `error.file`. The
//! code inside `grpc-status-details-bin` must equal the status code, or grpc-go replaces the
//! error with Internal (spec §8.2).

use std::panic::Location;

use prost::Message;
use tonic::{Code, Status};

use crate::proto::generated::{Stack, StackFrame};

/// What went wrong with a request, in words a Velero user can act on.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The request names a plugin this binary does not serve under that kind.
    #[error(
        "{kind} plugin {name:?} was not found in velero-plugin-quiesce (it serves {served:?})"
    )]
    UnknownPlugin {
        /// The plugin kind of the service called.
        kind: &'static str,
        /// The name in the request.
        name: String,
        /// The name this binary serves.
        served: &'static str,
    },
    /// The item bytes are not a Kubernetes object.
    #[error("invalid item: {0}")]
    InvalidItem(String),
    /// The freeze/thaw engine refused the item (e.g. a failed pre hook with on-error Fail).
    #[error(transparent)]
    Hooks(#[from] crate::engine::Error),
}

/// An [`ErrorKind`] and where in quiesce it was raised.
#[derive(Debug)]
pub struct Error {
    kind: Box<ErrorKind>,
    location: &'static Location<'static>,
}

impl Error {
    /// The error's kind.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.kind.fmt(f)
    }
}

impl std::error::Error for Error {}

impl From<ErrorKind> for Error {
    #[track_caller]
    fn from(kind: ErrorKind) -> Self {
        Error {
            kind: Box::new(kind),
            location: Location::caller(),
        }
    }
}

impl From<crate::engine::Error> for Error {
    #[track_caller]
    fn from(error: crate::engine::Error) -> Self {
        ErrorKind::from(error).into()
    }
}

/// `google.rpc.Status`, the payload of `grpc-status-details-bin`.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// The type URL Velero's client looks for in the status details.
pub const STACK_TYPE_URL: &str = "type.googleapis.com/generated.Stack";

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        let code = Code::Unknown;
        let message = error.to_string();
        let stack = Stack {
            frames: vec![StackFrame {
                file: error.location.file().to_owned(),
                line: i32::try_from(error.location.line()).unwrap_or(i32::MAX),
                function: String::new(),
            }],
        };
        let details = RpcStatus {
            code: code as i32,
            message: message.clone(),
            details: vec![prost_types::Any {
                type_url: STACK_TYPE_URL.to_owned(),
                value: stack.encode_to_vec(),
            }],
        };
        Status::with_details(code, message, details.encode_to_vec().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_unknown_with_a_stack_detail_of_the_same_code() {
        let error = Error::from(ErrorKind::InvalidItem("item is empty".into()));
        let line = line!() - 1;
        let status = Status::from(error);
        assert_eq!(status.code(), Code::Unknown);
        assert_eq!(status.message(), "invalid item: item is empty");

        let details = RpcStatus::decode(status.details()).unwrap();
        assert_eq!(details.code, Code::Unknown as i32);
        assert_eq!(details.message, "invalid item: item is empty");
        assert_eq!(details.details.len(), 1);
        assert_eq!(details.details[0].type_url, STACK_TYPE_URL);
        let stack = Stack::decode(details.details[0].value.as_slice()).unwrap();
        assert_eq!(stack.frames[0].file, "src/velero/error.rs");
        assert_eq!(stack.frames[0].line as u32, line);
    }
}
