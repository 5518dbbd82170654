//! Builders of `ipvs.agent.v1` messages for the tests that call the gRPC API directly, and a
//! way to send the agent bytes that are not a valid message.

use std::net::{IpAddr, SocketAddr};

use bytes::{Buf, BufMut};
use ipvs_proto::v1::{AddressFamily, Destination, ForwardingMethod, Protocol, ServiceKey};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

/// The family of `addr`, as the agent's replies set it in every service key.
pub fn family(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// The service key of `protocol` at `at` (`192.168.100.1:80`), as the agent's replies write
/// it (the family set), so that it compares equal to a listed key.
pub fn endpoint(protocol: Protocol, at: &str) -> Option<ServiceKey> {
    let sa: SocketAddr = at.parse().expect("test address");
    Some(ServiceKey {
        protocol: protocol.into(),
        address: sa.ip().to_string(),
        port: sa.port().into(),
        fwmark: 0,
        family: family(sa.ip()).into(),
    })
}

/// The real server at `at`, by address and port alone (DeleteDestination, Drain).
pub fn real_server(at: &str) -> Destination {
    let sa: SocketAddr = at.parse().expect("test address");
    Destination {
        address: sa.ip().to_string(),
        port: sa.port().into(),
        ..Default::default()
    }
}

/// A masquerading real server at `at` with `weight`.
pub fn masq(at: &str, weight: u32) -> Destination {
    Destination {
        forwarding: ForwardingMethod::Masquerade.into(),
        weight: Some(weight),
        ..real_server(at)
    }
}

/// `seconds` as the API's duration.
pub fn seconds(seconds: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds, nanos: 0 })
}

/// `d` as the API's duration.
pub fn duration(d: std::time::Duration) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).expect("test duration"),
        nanos: i32::try_from(d.subsec_nanos()).expect("test duration"),
    })
}

/// Whole seconds of an API duration (0 when unset).
pub fn whole_seconds(d: Option<&prost_types::Duration>) -> i64 {
    d.map_or(0, |d| d.seconds)
}

/// Sends `body` as the message of the unary method `path`
/// (`/ipvs.agent.v1.IpvsService/GetService`) exactly as given, and returns the reply's bytes.
pub async fn raw_unary(
    channel: Channel,
    path: &'static str,
    body: Vec<u8>,
) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    grpc.unary(
        tonic::Request::new(body),
        PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

/// A codec that writes and reads message bytes as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}
