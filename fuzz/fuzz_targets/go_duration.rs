//! Go duration strings: range, rendering round trip, exact model for whole-number terms.
#![no_main]

use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use quiesce_fuzz::inputs::DurationInput;
use quiesce_fuzz::invariants::{check_go_duration, check_go_duration_simple_cases};

static SIMPLE_CASES: Once = Once::new();

fuzz_target!(|input: DurationInput| {
    SIMPLE_CASES.call_once(check_go_duration_simple_cases);
    check_go_duration(&input.text());
});
