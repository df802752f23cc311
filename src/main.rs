//! `velero-plugin-quiesce`: the binary Velero launches from `/plugins`; with `--copy-to`, the
//! image's init container that puts it there; with `explain`, a dry run for operators.
//! Reads the command line and the environment once ([`Settings`]) and hands the values down.

use std::process::ExitCode;

use quiesce::velero::{settings, Settings};
use quiesce::{goplugin, install, velero};

fn main() -> ExitCode {
    // `explain` is a dry run for operators: no plugin cookie, never serves, never execs.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == "explain")
    {
        let default_namespace = settings::velero_namespace_from_env();
        return ExitCode::from(quiesce::explain::main(
            std::env::args_os().skip(2),
            default_namespace,
        ));
    }
    // The image's init container runs `--copy-to /target`, without the plugin cookie.
    if let Some(target) = install::copy_to_target(std::env::args_os()) {
        return match target.and_then(|dir| install::copy_current_exe_to(&dir)) {
            Ok(installed) => {
                eprintln!("velero-plugin-quiesce: {installed}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("velero-plugin-quiesce: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let settings = Settings::from_process();
    if let Err(error) = goplugin::check_cookie(&velero::HANDSHAKE, settings.cookie.as_deref()) {
        eprintln!("{error}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("velero-plugin-quiesce: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(velero::serve(settings));
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "velero-plugin-quiesce stopped");
            ExitCode::FAILURE
        }
    }
}
