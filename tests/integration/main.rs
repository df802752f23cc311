//! quiesce's integration tests, one binary (ripgrep's `tests/tests.rs` layout): one module per
//! area, all sharing the helpers in [`util`] — launching the real plugin binary as Velero does
//! and calling it as Velero does. One binary links quiesce, kube-rs and tonic once instead of
//! once per file. `tests/soak.rs` stays a binary of its own: `make soak` runs it in release.
//!
//! Run one area with `cargo test --test integration freeze_thaw::`.

mod exec;
mod explain;
mod freeze_thaw;
mod fuzz_regressions;
mod host_contract;
mod install;
mod manifests;
mod security;
mod sessions;
mod util;
