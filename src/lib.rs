//! quiesce: app-consistent backup hooks for Velero, served as an out-of-tree Velero plugin.
//!
//! # Layout, top to bottom
//! A module uses only modules listed below it (a private child may also use its parent);
//! nothing points back up.
//!
//! | module | owns |
//! |---|---|
//! | `main.rs` | the binary: reads [`velero::Settings`] once, picks a mode (serve, explain, copy-to) |
//! | [`velero`] | Velero's plugin protocol: settings, plugin list, BackupItemAction v2 and ItemBlockAction services, errors as gRPC status, Velero's log format; wires the pieces below into `serve` |
//! | [`explain`] | `velero-plugin-quiesce explain`, which hooks a backup would run — a dry run |
//! | [`engine`] | the freeze/thaw state machine — when each pod's hooks run, guaranteed thaw; owns no I/O |
//! | [`kube_api`] | the one Kubernetes edge: client, every API call, a typed error; implements [`exec::Executor`] and [`kube_api::Cluster`] |
//! | [`exec`] | one hook run in one container through an [`exec::Executor`]: waits, retries, kill on timeout, stdin and held sessions, Velero's log lines |
//! | [`hooks`] | the pure hook model — annotations, rules, resolution, durations, templates. No I/O |
//! | [`goplugin`] | the go-plugin server side (cookie, socket, handshake line, health, controller, stdio, broker); knows nothing of Velero |
//! | [`install`] | `--copy-to`, how the image's init container puts the binary into `/plugins` |
//! | [`args`] | the lenient command line Velero hands every plugin |
//! | [`proto`] | generated protobuf types and gRPC stubs |

#![warn(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::await_holding_lock
)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
#![deny(unsafe_code)]

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
