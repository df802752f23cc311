//! quiesce: app-consistent backup hooks for Velero, served as an out-of-tree Velero plugin.
//!
//! # Layout
//! - [`goplugin`]: the go-plugin server side (cookie, socket, handshake line, health,
//!   controller, stdio, broker). Knows nothing of Velero.
//! - [`velero`]: Velero's plugin protocol — plugin list, BackupItemAction v2 and
//!   ItemBlockAction services, request routing, errors as gRPC status, Velero's log format.
//! - [`hooks`]: the pure hook model — annotations, rules, resolution. No I/O.
//! - [`exec`]: running a command in a container (`pods/exec`), and one hook with its log lines.
//! - [`explain`]: `velero-plugin-quiesce explain`, which hooks a backup would run — a dry run.
//! - [`install`]: `--copy-to`, how the image's init container puts the binary into `/plugins`.
//! - [`proto`]: generated protobuf types and gRPC stubs.
//! - [`quiesce`]: the freeze/thaw state machine — when each pod's hooks run, guaranteed thaw.
//! - [`args`]: the lenient command line Velero hands every plugin.
//!
//! Dependencies point one way: `velero` uses `goplugin` and `quiesce`; `quiesce` uses `exec`
//! and `hooks`; `exec` uses `hooks`; `hooks` uses nothing of the others.

pub mod args;
pub mod engine;
pub mod exec;
pub mod explain;
pub mod goplugin;
pub mod hooks;
pub mod install;
pub mod kube_api;
pub mod proto;
pub mod velero;
