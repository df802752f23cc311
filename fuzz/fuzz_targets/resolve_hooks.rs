//! Annotations and containers → resolved hooks of both phases.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quiesce_fuzz::inputs::ResolveInput;
use quiesce_fuzz::invariants::check_resolution;

fuzz_target!(|input: ResolveInput| {
    check_resolution(&input.pod.to_pod(), &input.config.config());
});
