use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::Connected;
use tonic_health::ServingStatus;

use super::tls::Cert;
use super::*;
use crate::check::{Grpc, Tls};

fn grpc(service: &str, tls: Option<Tls>) -> Kind {
    Kind::Grpc(Grpc {
        service: service.to_owned(),
        tls,
    })
}

/// A health server: the server as a whole serving, `svc` not serving.
async fn health_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let (l, addr) = listener().await;
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("svc", ServingStatus::NotServing)
        .await;
    let task = tokio::spawn(async move {
        let _keep = reporter;
        Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(l))
            .await
            .expect("serve");
    });
    (addr, task)
}

#[tokio::test]
async fn grpc_serving_and_not() {
    let (addr, server) = health_server().await;
    let r = probe(&grpc("", None), addr, ms(1000)).await;
    assert_verdict(&r, Outcome::Up, "grpc SERVING");
    let r = probe(&grpc("svc", None), addr, ms(1000)).await;
    assert_verdict(&r, Outcome::Down, "grpc NOT_SERVING");
    let r = probe(&grpc("other", None), addr, ms(1000)).await;
    assert_verdict(
        &r,
        Outcome::Down,
        "grpc status NOT_FOUND: service not registered",
    );
    server.abort();
}

#[tokio::test]
async fn grpc_without_health_service() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        Server::builder()
            .add_routes(Routes::default())
            .serve_with_incoming(TcpListenerStream::new(l))
            .await
            .expect("serve");
    });
    let r = probe(&grpc("", None), addr, ms(1000)).await;
    assert_verdict(&r, Outcome::Down, "grpc status UNIMPLEMENTED: ");
    server.abort();
}

#[tokio::test]
async fn grpc_refused() {
    let r = probe(&grpc("", None), closed_port().await, ms(500)).await;
    assert_verdict(&r, Outcome::Down, "connect refused");
}

#[tokio::test]
async fn grpc_silent_server_times_out_and_the_connection_closes() {
    let (l, addr) = listener().await;
    let timeout = ms(300);
    let (r, accepted) = {
        let kind = grpc("", None);
        tokio::join!(probe(&kind, addr, timeout), l.accept())
    };
    assert_verdict(&r, Outcome::Down, "timeout after 300ms");
    assert_bounded(&r, timeout);
    let (mut conn, _) = accepted.expect("accept");
    assert_closed_by_peer(&mut conn).await;
}

/// A TLS connection the tonic server can take (tonic's own TLS is not built).
struct TlsConn(tokio_rustls::server::TlsStream<TcpStream>);

impl Connected for TlsConn {
    type ConnectInfo = ();
    fn connect_info(&self) {}
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn grpc_over_tls() {
    let cert = Cert::new();
    let (l, addr) = listener().await;
    let acceptor = cert.acceptor(b"h2");
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<TlsConn>>(4);
    let accept = tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            if let Ok(tls) = acceptor.accept(tcp).await {
                let _ = tx.send(Ok(TlsConn(tls))).await;
            }
        }
    });
    let (_reporter, service) = tonic_health::server::health_reporter();
    let server = tokio::spawn(async move {
        Server::builder()
            .add_service(service)
            .serve_with_incoming(ReceiverStream::new(rx))
            .await
            .expect("serve");
    });

    let verified = Tls {
        ca_file: Some(cert.ca_file()),
        ..Tls::default()
    };
    let r = probe(&grpc("", Some(verified)), addr, ms(1000)).await;
    assert_verdict(&r, Outcome::Up, "grpc SERVING");
    let skipped = Tls {
        skip_verify: true,
        ..Tls::default()
    };
    let r = probe(&grpc("", Some(skipped)), addr, ms(1000)).await;
    assert_verdict(&r, Outcome::Up, "grpc SERVING");
    let r = probe(&grpc("", Some(Tls::default())), addr, ms(1000)).await;
    assert_verdict(
        &r,
        Outcome::Down,
        "tls: invalid peer certificate: UnknownIssuer",
    );
    accept.abort();
    server.abort();
}
