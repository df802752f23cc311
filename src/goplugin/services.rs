//! go-plugin's infrastructure services every plugin serves beside its own:
//! `plugin.GRPCController` (the host's "please exit"), and the `plugin.GRPCStdio` and
//! `plugin.GRPCBroker` streams, held open idle until the process stops (spec §5).

use std::pin::Pin;

use futures_util::future::{BoxFuture, Shared};
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::proto::plugin::{
    grpc_broker_server::GrpcBroker, grpc_controller_server::GrpcController,
    grpc_stdio_server::GrpcStdio, ConnInfo, Empty, StdioData,
};

/// The work to finish before the process may stop, run at most once whoever asks first.
pub type Drain = Shared<BoxFuture<'static, ()>>;

/// `plugin.GRPCController`: Shutdown drains, answers, then stops the server.
pub struct Controller {
    pub drain: Drain,
    pub stopping: CancellationToken,
}

#[tonic::async_trait]
impl GrpcController for Controller {
    async fn shutdown(&self, _request: Request<Empty>) -> Result<Response<Empty>, Status> {
        tracing::debug!("Shutdown requested by the host");
        // The host awaits this call without a deadline, so pending work finishes here,
        // before the host starts its 2 s countdown to SIGKILL.
        self.drain.clone().await;
        self.stopping.cancel();
        Ok(Response::new(Empty {}))
    }
}

/// A stream that yields nothing and ends (OK) once the process stops.
fn idle_until<T: Send + 'static>(
    stopping: &CancellationToken,
) -> Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>> {
    let stopped = stopping.clone().cancelled_owned();
    Box::pin(futures_util::stream::once(stopped).filter_map(|()| None))
}

/// `plugin.GRPCStdio`: quiesce never redirects its stdio, so the stream stays empty.
pub struct Stdio {
    pub stopping: CancellationToken,
}

#[tonic::async_trait]
impl GrpcStdio for Stdio {
    type StreamStdioStream = Pin<Box<dyn Stream<Item = Result<StdioData, Status>> + Send>>;

    async fn stream_stdio(
        &self,
        _request: Request<()>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(idle_until(&self.stopping)))
    }
}

/// `plugin.GRPCBroker`: no sub-connections are offered; the host's messages are read and dropped.
pub struct Broker {
    pub stopping: CancellationToken,
}

#[tonic::async_trait]
impl GrpcBroker for Broker {
    type StartStreamStream = Pin<Box<dyn Stream<Item = Result<ConnInfo, Status>> + Send>>;

    async fn start_stream(
        &self,
        request: Request<Streaming<ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        let mut incoming = request.into_inner();
        let stopped = self.stopping.clone().cancelled_owned();
        tokio::spawn(async move {
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    message = incoming.next() => match message {
                        Some(Ok(info)) => tracing::debug!(serviceId = info.service_id, "Ignoring broker message"),
                        _ => break,
                    },
                }
            }
        });
        Ok(Response::new(idle_until(&self.stopping)))
    }
}
