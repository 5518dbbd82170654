//! Refuses an oversized policy upload from its first bytes, with the engine's own message.
//!
//! PolicyService's decoding limit (the component limit plus [`UPLOAD_OVERHEAD_BYTES`]) keeps
//! a huge upload from being buffered, but tonic refuses it in transport words ("decoded
//! message length too large: found 35651648 bytes, the limit is: 33619968 bytes") that say
//! nothing of components. The component is the request's first field, so its length is in
//! the first bytes of the body:
//!
//! ```text
//!  0      1          5      6
//!  +------+----------+------+--------------------+------------------ ...
//!  | flag | msg len  | 0x0a | component len      | component bytes
//!  | (u8) | (u32 BE) | tag 1| (varint, ≤ 10 B)   |
//!  +------+----------+------+--------------------+------------------ ...
//!  gRPC frame header  protobuf field 1, length-delimited (`bytes component = 1`)
//! ```
//!
//! When that length is over the limit, the call is answered with
//! [`LoadError::TooLarge`] as `invalid_argument` before
//! the rest of the body is read. Anything else (a compressed message, another field first, a
//! body that ends early) goes on to the service unchanged, where the transport and the engine
//! check it as before.
//!
//! [`UPLOAD_OVERHEAD_BYTES`]: super::UPLOAD_OVERHEAD_BYTES

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as _, Frame};
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;

use crate::policy::LoadError;

/// The method whose requests are checked.
pub const UPLOAD_PATH: &str = "/ipvs.agent.v1.PolicyService/UploadPolicy";

/// The gRPC frame header, the field's tag and a varint of at most 10 bytes.
const HEAD_BYTES: usize = 5 + 1 + 10;

/// A service that refuses an [`UPLOAD_PATH`] request whose component is over `limit` bytes.
#[derive(Debug, Clone)]
pub struct UploadLimit<S> {
    inner: S,
    limit: usize,
}

impl<S> UploadLimit<S> {
    pub fn new(inner: S, limit: usize) -> Self {
        UploadLimit { inner, limit }
    }
}

impl<S: NamedService> NamedService for UploadLimit<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for UploadLimit<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if req.uri().path() != UPLOAD_PATH {
            return Box::pin(self.inner.call(req));
        }
        // The clone that was made ready is the one to call (tower's rule for `call`).
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let limit = self.limit;
        Box::pin(async move {
            let (parts, mut body) = req.into_parts();
            let mut read = VecDeque::new();
            let mut head = BytesMut::new();
            while head.len() < HEAD_BYTES {
                let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
                match frame {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            head.extend_from_slice(data);
                        }
                        read.push_back(frame);
                    }
                    Some(Err(status)) => return Ok(status.into_http()),
                    None => break,
                }
            }
            if let Some(len) = component_len(&head)
                && len > limit
            {
                let refusal = LoadError::TooLarge { len, limit }.to_string();
                return Ok(super::status::invalid(refusal).into_http());
            }
            let body = Body::new(Replay { read, rest: body });
            inner.call(http::Request::from_parts(parts, body)).await
        })
    }
}

/// The length of the component in an uncompressed `UploadPolicyRequest` that starts with it.
fn component_len(head: &[u8]) -> Option<usize> {
    let (&[0], rest) = head.split_first_chunk::<1>()? else {
        return None;
    };
    let (_message_len, rest) = rest.split_first_chunk::<4>()?;
    let (&[0x0a], varint) = rest.split_first_chunk::<1>()? else {
        return None;
    };
    let mut len: u64 = 0;
    for (i, byte) in varint.iter().take(10).enumerate() {
        len |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return usize::try_from(len).ok();
        }
    }
    None
}

/// The frames read to find the length, then the rest of the body.
struct Replay {
    read: VecDeque<Frame<Bytes>>,
    rest: Body,
}

impl http_body::Body for Replay {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(frame) = self.read.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_empty() && self.rest.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request body as a client sends it: the frame header, then the message.
    fn framed(component_len: usize) -> Vec<u8> {
        let mut message = vec![0x0a];
        let mut n = component_len;
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                message.push(byte);
                break;
            }
            message.push(byte | 0x80);
        }
        message.extend(std::iter::repeat_n(0u8, component_len.min(64)));
        let mut out = vec![0];
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend(message);
        out
    }

    #[test]
    fn reads_the_component_length_from_the_head() {
        assert_eq!(component_len(&framed(0)), Some(0));
        assert_eq!(component_len(&framed(300)), Some(300));
        assert_eq!(component_len(&framed(33 << 20)), Some(33 << 20));
        // Compressed, or a name first: not read.
        let mut compressed = framed(300);
        compressed[0] = 1;
        assert_eq!(component_len(&compressed), None);
        let mut name_first = framed(300);
        name_first[5] = 0x12;
        assert_eq!(component_len(&name_first), None);
        // Cut inside the varint.
        assert_eq!(component_len(&framed(33 << 20)[..7]), None);
        assert_eq!(component_len(&[]), None);
    }
}
