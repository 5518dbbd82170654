//! `https`, and the TLS the gRPC tests share.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use super::http::{answer, get};
use super::*;
use crate::check::{Http, Tls};

/// A self-signed certificate for `localhost` and 127.0.0.1, its PEM written to a file.
pub(super) struct Cert {
    der: CertificateDer<'static>,
    key: Vec<u8>,
    pub(super) dir: tempfile::TempDir,
}

impl Cert {
    pub(super) fn new() -> Cert {
        let ck = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .expect("certificate");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.pem"), ck.cert.pem()).expect("write pem");
        Cert {
            der: ck.cert.der().clone(),
            key: ck.signing_key.serialize_der(),
            dir,
        }
    }

    pub(super) fn ca_file(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }

    pub(super) fn acceptor(&self, alpn: &[u8]) -> TlsAcceptor {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        let mut config = ServerConfig::builder_with_provider(super::super::tls::provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.der.clone()], key)
            .expect("server config");
        config.alpn_protocols = vec![alpn.to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }
}

/// An https server answering one request; `None` when the handshake failed.
async fn https_once(cert: &Cert) -> (SocketAddr, tokio::task::JoinHandle<Option<String>>) {
    let (l, addr) = listener().await;
    let acceptor = cert.acceptor(b"http/1.1");
    let task = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.expect("accept");
        let tls = acceptor.accept(tcp).await.ok()?;
        Some(answer(tls, b"HTTP/1.1 200 OK\r\n\r\nhello over tls").await)
    });
    (addr, task)
}

fn https(tls: Tls) -> Http {
    Http {
        tls: Some(tls),
        ..get("/")
    }
}

async fn run(cert: &Cert, h: Http) -> ProbeResult {
    let (addr, server) = https_once(cert).await;
    let r = probe(&Kind::Http(h), addr, ms(1000)).await;
    let _ = server.await;
    r
}

#[tokio::test]
async fn https_with_ca_file() {
    let cert = Cert::new();
    let mut h = https(Tls {
        ca_file: Some(cert.ca_file()),
        ..Tls::default()
    });
    h.body = Some(crate::check::BodyMatch::Contains("over tls".to_owned()));
    // Verified against the IP: no host, no SNI.
    assert_verdict(&run(&cert, h.clone()).await, Outcome::Up, "http 200");
    // And against the name of the Host header.
    h.host = Some("localhost:8443".to_owned());
    assert_verdict(&run(&cert, h).await, Outcome::Up, "http 200");
}

#[tokio::test]
async fn https_skip_verify() {
    let cert = Cert::new();
    let h = https(Tls {
        skip_verify: true,
        sni: Some("not-the-name.example".to_owned()),
        ..Tls::default()
    });
    assert_verdict(&run(&cert, h).await, Outcome::Up, "http 200");
}

#[tokio::test]
async fn https_unknown_issuer_fails_verification() {
    let cert = Cert::new();
    let r = run(&cert, https(Tls::default())).await;
    assert_verdict(
        &r,
        Outcome::Down,
        "tls: invalid peer certificate: UnknownIssuer",
    );
}

#[tokio::test]
async fn https_wrong_name_fails_verification() {
    let cert = Cert::new();
    let h = https(Tls {
        ca_file: Some(cert.ca_file()),
        sni: Some("other.example".to_owned()),
        ..Tls::default()
    });
    let r = run(&cert, h).await;
    assert_eq!(r.outcome, Outcome::Down);
    assert!(
        r.reason
            .starts_with("tls: invalid peer certificate: certificate not valid for name"),
        "{r:?}"
    );
}

#[tokio::test]
async fn https_missing_ca_file() {
    let h = https(Tls {
        ca_file: Some("/nonexistent/ca.pem".to_owned()),
        ..Tls::default()
    });
    let (l, addr) = listener().await;
    let r = probe(&Kind::Http(h), addr, ms(500)).await;
    drop(l);
    assert_verdict(
        &r,
        Outcome::Down,
        "tls: cannot read CA file /nonexistent/ca.pem: No such file or directory (os error 2)",
    );
}

#[tokio::test]
async fn https_ca_file_without_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("empty.pem");
    std::fs::write(&path, "not a certificate\n").expect("write");
    let path = path.display().to_string();
    let h = https(Tls {
        ca_file: Some(path.clone()),
        ..Tls::default()
    });
    let (_l, addr) = listener().await;
    let r = probe(&Kind::Http(h), addr, ms(500)).await;
    assert_verdict(
        &r,
        Outcome::Down,
        &format!("tls: no usable CA certificate in {path}"),
    );
}

#[tokio::test]
async fn https_stalled_handshake_times_out_and_the_connection_closes() {
    let (l, addr) = listener().await;
    let h = https(Tls {
        skip_verify: true,
        ..Tls::default()
    });
    let timeout = ms(200);
    let (r, accepted) = {
        let kind = Kind::Http(h);
        tokio::join!(probe(&kind, addr, timeout), l.accept())
    };
    assert_verdict(&r, Outcome::Down, "timeout after 200ms");
    assert_bounded(&r, timeout);
    let (mut conn, _) = accepted.expect("accept");
    assert_closed_by_peer(&mut conn).await;
}
