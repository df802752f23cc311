//! quiesce's integration tests, one binary (ripgrep's `tests/tests.rs` layout): one module per
//! area, all sharing the helpers in [`util`] — launching the real plugin binary as Velero does,
//! calling it as Velero does, and replaying a whole backup in Velero's call order
//! ([`util::velero`]) — and building their pods with `fake_kube::objects`. One binary links
//! quiesce, kube-rs and tonic once instead of once per file. `tests/soak.rs` stays a binary of
//! its own (`make soak` runs it in release) and includes `util` by path, as do the benches and
//! the demo.
//!
//! Run one area with `cargo test --test integration freeze_thaw::`.

mod exec;
mod explain;
mod freeze_thaw;
mod fuzz_regressions;
mod host_contract;
mod install;
mod manifests;
mod refused_volumes;
mod security;
mod sessions;
mod thaw_at_cut;
mod util;
mod volume_groups;
