//! The plugin side of hashicorp/go-plugin's gRPC protocol, in the order go-plugin's own
//! `Serve` follows: magic cookie → listener → server → handshake line → serve until told to
//! stop (spec §2–§5). Knows nothing of Velero: the caller brings the handshake values, its
//! gRPC routes and the work to drain before exit.
//!
//! Stopping: `plugin.GRPCController/Shutdown` and the caller's shutdown future (SIGTERM, see
//! [`sigterm`]) take the same path — run the drain (once), end the held-open streams, stop the
//! server within a bounded grace, remove the socket. SIGINT is ignored, as Go plugins do (a
//! terminal's Ctrl-C reaches the host).
//!
//! [`serve`] takes its listener and its shutdown future as parameters (as mini-redis's
//! `server::run` does), so a test can bind a socket where it likes and stop the server when
//! it likes.

mod services;
mod socket;

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::Server;

use crate::proto::plugin::{
    grpc_broker_server::GrpcBrokerServer, grpc_controller_server::GrpcControllerServer,
    grpc_stdio_server::GrpcStdioServer,
};
pub use socket::PrivateSocket;

/// How long in-flight calls may take to finish once stopping; the host SIGKILLs after 2 s.
const STOP_GRACE: Duration = Duration::from_millis(1000);

/// The values host and plugin agree on (go-plugin's `HandshakeConfig`).
#[derive(Debug, Clone, Copy)]
pub struct Handshake {
    /// Environment variable the host sets, e.g. `VELERO_PLUGIN`.
    pub cookie_key: &'static str,
    /// Its expected value, e.g. `hello`.
    pub cookie_value: &'static str,
    /// The application protocol version printed in the handshake line.
    pub app_protocol_version: u32,
}

/// go-plugin's own core protocol version, field 1 of the handshake line.
pub const CORE_PROTOCOL_VERSION: u32 = 1;

/// What can stop the plugin server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The binary was started by a person, not by its host.
    #[error(
        "This binary is a plugin. These are not meant to be executed directly.\n\
         Please execute the program that consumes these plugins, which will\n\
         load any plugins automatically. (environment variable {key} is not {value:?})"
    )]
    NotLaunchedByHost {
        /// The cookie variable.
        key: &'static str,
        /// Its expected value.
        value: &'static str,
    },
    /// The private socket directory could not be created.
    #[error("cannot create a private socket directory under {dir}: {source}")]
    SocketDir {
        /// The base directory.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The socket path does not fit a Unix socket address.
    #[error("socket path {path} is longer than a Unix socket address allows (107 bytes); set TMPDIR to a shorter directory")]
    SocketPathTooLong {
        /// The path that did not fit.
        path: PathBuf,
    },
    /// The socket path contains `|` or a line break, which the handshake line cannot carry.
    #[error("socket path {path:?} contains '|' or a line break, which the go-plugin handshake line cannot carry; set TMPDIR to another directory")]
    SocketPathUnprintable {
        /// The path that cannot be printed.
        path: PathBuf,
    },
    /// Binding or securing the socket failed.
    #[error("cannot listen on {path}: {source}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Installing the signal handlers failed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The handshake line could not be written to stdout.
    #[error("cannot write the handshake line to stdout: {0}")]
    Handshake(std::io::Error),
    /// The gRPC server failed.
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Checks the magic cookie, the value of the `handshake.cookie_key` environment variable
/// (go-plugin exits 1 with a hint when it is wrong).
pub fn check_cookie(handshake: &Handshake, cookie: Option<&str>) -> Result<(), Error> {
    match cookie {
        Some(value) if value == handshake.cookie_value => Ok(()),
        _ => Err(Error::NotLaunchedByHost {
            key: handshake.cookie_key,
            value: handshake.cookie_value,
        }),
    }
}

/// The handshake line for a Unix socket, e.g. `1|2|unix|/tmp/quiesce-x/plugin.sock|grpc|`.
pub fn handshake_line(handshake: &Handshake, socket: &std::path::Path) -> String {
    format!(
        "{}|{}|unix|{}|grpc|\n",
        CORE_PROTOCOL_VERSION,
        handshake.app_protocol_version,
        socket.display()
    )
}

/// Where the handshake line goes, once the server listens.
pub trait Announce {
    /// Hands the host `line` (with its newline).
    fn announce(self, line: &str) -> std::io::Result<()>;
}

/// The process's stdout, as a go-plugin host reads it: the handshake line is written once,
/// then fd 1 points at `/dev/null`. The host reads our stdout until EOF; closing it now ends
/// that read early, instead of racing the host's own close of the pipe when the process exits
/// (go-plugin before v1.7.0 logs that race as an error). It also guarantees that nothing else
/// ever reaches the host's stdout reader.
pub struct ProcessStdout;

impl Announce for ProcessStdout {
    fn announce(self, line: &str) -> std::io::Result<()> {
        let mut stdout = std::io::stdout();
        stdout.write_all(line.as_bytes())?;
        stdout.flush()?;
        detach_stdout();
        Ok(())
    }
}

/// A test's end of the handshake: the line is sent on the channel.
impl Announce for tokio::sync::oneshot::Sender<String> {
    fn announce(self, line: &str) -> std::io::Result<()> {
        self.send(line.to_owned())
            .map_err(|_| std::io::Error::other("the handshake receiver is gone"))
    }
}

/// Points fd 1 at `/dev/null` (see [`ProcessStdout`]).
fn detach_stdout() {
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return;
    };
    use std::os::fd::AsRawFd;
    // SAFETY: dup2 on two open descriptors; fd 1 is atomically replaced, `null` stays owned
    // by the File and is closed when it drops.
    #[allow(unsafe_code)] // the crate's only unsafe: std has no safe way to replace fd 1
    unsafe {
        libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO);
    }
}

/// A future that resolves when the process receives SIGTERM (logging it), for [`serve`]'s
/// `shutdown`. Installing it also makes the process ignore SIGINT from then on.
pub fn sigterm() -> Result<impl Future<Output = ()> + Send + 'static, Error> {
    let mut sigterm = signal(SignalKind::terminate()).map_err(Error::Signals)?;
    // Registered and never read: the OS handler stays installed, so SIGINT no longer kills us.
    let sigint = signal(SignalKind::interrupt()).map_err(Error::Signals)?;
    Ok(async move {
        let _sigint = sigint;
        sigterm.recv().await;
        tracing::info!("SIGTERM received, stopping");
    })
}

/// Serves `routes` (plus health and go-plugin's own services) on `listener` until the host's
/// Shutdown call or `shutdown` resolves.
///
/// `socket` is where `listener` is bound (printed in the handshake line, removed on return).
/// `drain` runs once when stopping, before the server stops (inside the Shutdown call when the
/// host asks, so the host waits for it). The handshake line goes to `announce` once the server
/// runs.
pub async fn serve(
    handshake: &Handshake,
    (socket, listener): (PrivateSocket, UnixListener),
    routes: Routes,
    drain: impl Future<Output = ()> + Send + 'static,
    shutdown: impl Future<Output = ()>,
    announce: impl Announce,
) -> Result<(), Error> {
    let stopping = CancellationToken::new();
    let drain = drain.boxed().shared();
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;

    let routes = routes
        .add_service(health_service)
        .add_service(GrpcControllerServer::new(services::Controller {
            drain: drain.clone(),
            stopping: stopping.clone(),
        }))
        .add_service(GrpcStdioServer::new(services::Stdio {
            stopping: stopping.clone(),
        }))
        .add_service(GrpcBrokerServer::new(services::Broker {
            stopping: stopping.clone(),
        }));
    let server = Server::builder()
        .initial_stream_window_size(Some(4 << 20))
        .initial_connection_window_size(Some(8 << 20))
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            UnixListenerStream::new(listener),
            stopping.clone().cancelled_owned(),
        );
    let mut server = tokio::spawn(server);

    announce
        .announce(&handshake_line(handshake, socket.path()))
        .map_err(Error::Handshake)?;
    tracing::debug!(socket = %socket.path().display(), "Plugin serving");

    tokio::select! {
        () = shutdown => {
            drain.await;
            stopping.cancel();
        }
        () = stopping.cancelled() => {}
        finished = &mut server => {
            // The server only ends early on a transport failure.
            return match finished {
                Ok(result) => result.map_err(Error::from),
                Err(join) => {
                    tracing::error!(error = %join, "gRPC server task failed");
                    Ok(())
                }
            };
        }
    }
    match tokio::time::timeout(STOP_GRACE, &mut server).await {
        Ok(Ok(result)) => result?,
        Ok(Err(join)) => tracing::error!(error = %join, "gRPC server task failed"),
        Err(_) => {
            tracing::debug!("In-flight calls outlived the stop grace; exiting anyway");
            server.abort();
        }
    }
    drop(socket);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tokio::sync::oneshot;

    const TEST_HANDSHAKE: Handshake = Handshake {
        cookie_key: "TEST_PLUGIN",
        cookie_value: "hello",
        app_protocol_version: 2,
    };

    /// The seams `serve` offers: a listener bound where the test likes, a shutdown the test
    /// fires, and the handshake line handed to the test.
    #[tokio::test]
    async fn serve_announces_its_socket_and_stops_on_its_shutdown_future_after_the_drain() {
        let dir = tempfile::tempdir().unwrap();
        let (socket, listener) = PrivateSocket::bind_in(dir.path()).unwrap();
        let path = socket.path().to_owned();
        let (line, announced) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let drained = Arc::new(AtomicBool::new(false));
        let drain = {
            let drained = Arc::clone(&drained);
            async move { drained.store(true, Ordering::SeqCst) }
        };
        let server = tokio::spawn(serve(
            &TEST_HANDSHAKE,
            (socket, listener),
            Routes::default(),
            drain,
            async {
                let _ = stopped.await;
            },
            line,
        ));
        let line = announced.await.unwrap();
        assert_eq!(line, format!("1|2|unix|{}|grpc|\n", path.display()));
        tokio::net::UnixStream::connect(&path).await.unwrap();
        assert!(!drained.load(Ordering::SeqCst));
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
        assert!(
            drained.load(Ordering::SeqCst),
            "the drain runs before the exit"
        );
        assert!(!path.exists(), "the socket is removed");
    }
}
