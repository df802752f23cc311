//! `config.yaml` text → validated rules and problems.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quiesce_fuzz::invariants::check_config_yaml;

fuzz_target!(|data: &[u8]| {
    check_config_yaml(&String::from_utf8_lossy(data));
});
