//! `PluginArgs::parse` on any argv, and `handshake_line` on any socket path.
#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use quiesce_fuzz::inputs::ArgsInput;
use quiesce_fuzz::invariants::{
    check_handshake_line, check_plugin_args, socket_path_fits_handshake,
};

fuzz_target!(|input: ArgsInput| {
    match input {
        ArgsInput::Argv(args) => check_plugin_args(&ArgsInput::argv(&args)),
        ArgsInput::Handshake { version, path } => {
            let socket = Path::new(OsStr::from_bytes(&path));
            // A path with `|` or a line break cannot be framed (finding F1 in README.md).
            if socket_path_fits_handshake(socket) {
                check_handshake_line(version, socket);
            }
        }
    }
});
