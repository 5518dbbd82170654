//! TLS for the `https` and `grpc` probes: rustls with the ring provider, trusting the web
//! roots, or the CAs of a PEM file, or (when asked) any certificate at all.
//!
//! Client configurations are built once per (CA file, skip-verify, ALPN) and shared: parsing a
//! root store for every probe of every server would be most of a probe's CPU. The flip side:
//! a CA file is read once, so changing it takes a restart of the agent (or a new path).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::check::Tls;

/// The application protocol to offer: servers that multiplex HTTP/1.1 and HTTP/2 on one port
/// pick by it, and gRPC servers may refuse a handshake without `h2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Alpn {
    Http1,
    H2,
}

/// Why no client configuration could be built. Said after `tls: `.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConfigError {
    #[error("cannot read CA file {path}: {source}")]
    ReadCa {
        path: String,
        source: std::io::Error,
    },
    #[error("CA file {path}: {source}")]
    BadPem {
        path: String,
        source: rustls_pki_types::pem::Error,
    },
    #[error("no usable CA certificate in {0}")]
    NoCa(String),
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    ca_file: Option<String>,
    skip_verify: bool,
    alpn: Alpn,
}

/// The client configurations built so far.
#[derive(Debug, Default)]
pub(super) struct Configs {
    cache: Mutex<HashMap<Key, Arc<ClientConfig>>>,
}

impl Configs {
    /// The configuration for `tls`, built on first use. A failure is not cached: a CA file that
    /// appears later is picked up.
    pub(super) fn get(&self, tls: &Tls, alpn: Alpn) -> Result<Arc<ClientConfig>, ConfigError> {
        let key = Key {
            // Skipping verification makes the CA file irrelevant: one entry for both.
            ca_file: if tls.skip_verify {
                None
            } else {
                tls.ca_file.clone()
            },
            skip_verify: tls.skip_verify,
            alpn,
        };
        if let Some(c) = self.lock().get(&key) {
            return Ok(c.clone());
        }
        // Built outside the lock: reading a CA file must not stall every other probe.
        let config = Arc::new(build(&key)?);
        self.lock().insert(key, config.clone());
        Ok(config)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<ClientConfig>>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The ring provider: no C toolchain or aws-lc to build. Deprecated since rustls 0.23.48 for
/// lacking post-quantum key exchange, which guards recorded traffic against future decryption:
/// nothing a health check's traffic needs.
#[allow(deprecated)]
pub(super) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build(key: &Key) -> Result<ClientConfig, ConfigError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let mut config = if key.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(roots(key.ca_file.as_deref())?)
            .with_no_client_auth()
    };
    config.alpn_protocols = match key.alpn {
        Alpn::Http1 => vec![b"http/1.1".to_vec()],
        Alpn::H2 => vec![b"h2".to_vec()],
    };
    Ok(config)
}

fn roots(ca_file: Option<&str>) -> Result<RootCertStore, ConfigError> {
    let Some(path) = ca_file else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let pem = std::fs::read(path).map_err(|source| ConfigError::ReadCa {
        path: path.to_owned(),
        source,
    })?;
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|source| ConfigError::BadPem {
            path: path.to_owned(),
            source,
        })?;
        // A certificate webpki cannot parse as an anchor is skipped, as the OS stores do.
        let _ = store.add(cert);
    }
    if store.is_empty() {
        return Err(ConfigError::NoCa(path.to_owned()));
    }
    Ok(store)
}

/// The name to send and verify: the declared SNI, else the host the request names, else the
/// target's IP (rustls sends no SNI for an IP, and verifies it against the IP SANs).
pub(super) fn server_name(
    tls: &Tls,
    host: Option<&str>,
    target: SocketAddr,
) -> Result<ServerName<'static>, String> {
    let name = match (&tls.sni, host) {
        (Some(sni), _) => sni.clone(),
        (None, Some(host)) => host_part(host).to_owned(),
        (None, None) => target.ip().to_string(),
    };
    ServerName::try_from(name.clone()).map_err(|_| format!("invalid server name {name:?}"))
}

/// `example.com` of `example.com:8443`, `::1` of `[::1]:8443`.
fn host_part(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The handshake over an established connection.
pub(super) async fn connect(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    tcp: TcpStream,
) -> std::io::Result<TlsStream<TcpStream>> {
    TlsConnector::from(config).connect(name, tcp).await
}

/// `skip_verify`: any certificate chain, for any name, is accepted. The handshake signatures
/// are still checked against the presented key, so the peer must at least hold the key of the
/// certificate it sends.
#[derive(Debug)]
struct AcceptAnyCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::host_part;

    #[test]
    fn host_part_strips_ports_and_brackets() {
        assert_eq!(host_part("example.com"), "example.com");
        assert_eq!(host_part("example.com:8443"), "example.com");
        assert_eq!(host_part("[::1]:8443"), "::1");
        assert_eq!(host_part("[::1]"), "::1");
        assert_eq!(host_part("::1"), "::1");
        assert_eq!(host_part("10.0.0.1:80"), "10.0.0.1");
    }
}
