//! Fuzz targets for quiesce's parsers and its Velero entry points (see `README.md`).
//!
//! Layout:
//! - `invariants.rs`: the checks every target asserts, shared with `tests/integration/fuzz_regressions.rs`.
//! - `inputs.rs`: structured inputs (`arbitrary`) that aim at the pools the rules use.
//! - `fuzz_targets/`: one thin libFuzzer entry point per target.

pub mod inputs;
pub mod invariants;
