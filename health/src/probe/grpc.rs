//! `grpc`: `grpc.health.v1.Health/Check` over HTTP/2, through tonic's generated client.
//!
//! The connection (TCP, then TLS when asked) is made here and handed to tonic ready to use, so
//! connect and handshake failures read as in the other probes (`connect refused`, `tls: ...`)
//! and TLS uses the same cached rustls configurations, `skip_verify` included, with no TLS
//! feature of tonic. Dropping the probe drops the channel, which ends tonic's worker and the
//! HTTP/2 connection with it.

use std::future::{Ready, ready};
use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::Code;
use tonic::codegen::Service;
use tonic::transport::{Endpoint, Uri};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::tls::{self, Alpn, Configs};
use super::{Verdict, connect, io_reason};
use crate::check::Grpc;

pub(super) async fn probe(configs: &Configs, g: &Grpc, target: SocketAddr) -> Verdict {
    let tcp = match connect(target).await {
        Ok(s) => s,
        Err(e) => return Verdict::down(io_reason(&e)),
    };
    // Always an `http` URI: tonic must not try TLS of its own; the origin names the scheme.
    let endpoint = match Endpoint::from_shared(format!("http://{target}")) {
        Ok(e) => e,
        Err(e) => return Verdict::down(format!("grpc: {e}")),
    };
    let Some(t) = &g.tls else {
        return check(endpoint, tcp, &g.service).await;
    };
    let config = match configs.get(t, Alpn::H2) {
        Ok(c) => c,
        Err(e) => return Verdict::down(format!("tls: {e}")),
    };
    let name = match tls::server_name(t, None, target) {
        Ok(n) => n,
        Err(e) => return Verdict::down(format!("tls: {e}")),
    };
    // The `:authority` the server sees: the name it is known by, when one is declared.
    let authority = match &t.sni {
        Some(sni) => format!("{sni}:{}", target.port()),
        None => target.to_string(),
    };
    let origin = match format!("https://{authority}").parse::<Uri>() {
        Ok(o) => o,
        Err(e) => return Verdict::down(format!("grpc: {e}")),
    };
    match tls::connect(config, name, tcp).await {
        Ok(stream) => check(endpoint.origin(origin), stream, &g.service).await,
        Err(e) => Verdict::down(format!("tls: {e}")),
    }
}

async fn check<S>(endpoint: Endpoint, stream: S, service: &str) -> Verdict
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let channel = match endpoint
        .connect_with_connector(Handoff(Some(TokioIo::new(stream))))
        .await
    {
        Ok(c) => c,
        Err(e) => return Verdict::down(format!("grpc: {e}")),
    };
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    match HealthClient::new(channel).check(request).await {
        Ok(response) => match ServingStatus::try_from(response.into_inner().status) {
            Ok(ServingStatus::Serving) => Verdict::up("grpc SERVING"),
            Ok(other) => Verdict::down(format!("grpc {}", other.as_str_name())),
            Err(_) => Verdict::down("grpc unknown serving status"),
        },
        Err(status) => Verdict::down(format!(
            "grpc status {}: {}",
            code_name(status.code()),
            status.message()
        )),
    }
}

/// A connector that hands over one connection already made. A second call (a reconnect after
/// the connection broke) fails: a probe gets one connection.
struct Handoff<S>(Option<S>);

impl<S> Service<Uri> for Handoff<S> {
    type Response = S;
    type Error = io::Error;
    type Future = Ready<Result<S, io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        ready(
            self.0
                .take()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "connection used")),
        )
    }
}

/// The name of a status code as the gRPC spec writes it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
