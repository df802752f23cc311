//! The crate's error type: what can go wrong when starting the server or when a test feeds the
//! handle a bad object. Request-time problems never surface here; the server answers them with a
//! `metav1.Status` instead.

/// Errors returned by [`crate::FakeKube`] and its builder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding the listener, creating a working directory or writing a file failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Generating the CA or server certificate failed.
    #[error("certificate generation failed: {0}")]
    Certificate(#[from] rcgen::Error),
    /// Building the rustls server configuration failed.
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    /// An object given to the handle is not usable (missing name, unknown kind, not an object).
    #[error("invalid object: {0}")]
    InvalidObject(String),
    /// The object the handle was asked to change does not exist.
    #[error("{resource} {namespace}/{name} not found")]
    NotFound {
        /// Plural resource name, e.g. `pods`.
        resource: String,
        /// Namespace of the missing object (empty for cluster-scoped resources).
        namespace: String,
        /// Name of the missing object.
        name: String,
    },
    /// A create found an object with the same name.
    #[error("{resource} {name:?} already exists")]
    AlreadyExists {
        /// Plural resource name, e.g. `events`.
        resource: String,
        /// Name of the existing object.
        name: String,
    },
    /// A write named a `resourceVersion` the object no longer has.
    #[error("{resource}.{group} {name:?}: the object has been modified")]
    Conflict {
        /// Plural resource name, e.g. `volumesnapshots`.
        resource: String,
        /// Its API group (`""` for core).
        group: String,
        /// Name of the object.
        name: String,
    },
    /// A YAML or JSON document could not be parsed.
    #[error("cannot parse {what}: {message}")]
    Parse {
        /// What was being parsed (a file name or "object").
        what: String,
        /// The parser's message.
        message: String,
    },
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
