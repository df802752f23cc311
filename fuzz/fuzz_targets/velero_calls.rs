//! Execute / GetRelatedItems through the real service handlers, over a scripted executor.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use quiesce_fuzz::inputs::CallsInput;
use quiesce_fuzz::invariants::{check_velero_calls, runtime};

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

fuzz_target!(|input: CallsInput| {
    let runtime = RUNTIME.get_or_init(runtime);
    check_velero_calls(
        runtime,
        &input.calls(),
        input.config.config(),
        input.discover_pods_of_volumes,
    );
});
