//! Integration tests of the fake API server, driven by real clients: kube-rs (http and https),
//! a raw WebSocket client for protocol corners, and the real `kubectl` when it is installed.
//! One test binary; shared helpers live in `util`.

mod api;
mod binary;
mod exec_kube_rs;
mod exec_protocol;
mod faults;
mod kubectl;
mod snapshots;
mod util;
