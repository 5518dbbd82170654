//! The codec of the generated clients and servers: prost's, except that a request the server
//! cannot decode is the caller's fault.
//!
//! tonic's prost codec answers any undecodable message with INTERNAL, as gRPC's status-code
//! guide has it for a message the peer sent. For a request that blames the agent for the
//! client's bytes; so a message whose protobuf name ends in `Request` (what only a server
//! decodes) that does not decode is INVALID_ARGUMENT, and a response stays INTERNAL.

use std::marker::PhantomData;

use prost::{Message, Name};
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstEncoder};

/// [`ProstCodec`] with precise decode errors.
#[derive(Debug, Clone, Default)]
pub struct ApiCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Codec for ApiCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Name + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ApiDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ApiDecoder(PhantomData)
    }
}

/// Decodes a `U`, saying which message did not decode.
#[derive(Debug, Clone, Default)]
pub struct ApiDecoder<U>(PhantomData<U>);

impl<U: Message + Name + Default> Decoder for ApiDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| decode_error::<U>(&e))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

fn decode_error<U: Name>(e: &prost::DecodeError) -> Status {
    let name = U::full_name();
    let message = format!("not a valid {name} message: {e}");
    if U::NAME.ends_with("Request") {
        Status::invalid_argument(message)
    } else {
        Status::internal(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{GetServiceRequest, GetServiceResponse};
    use tonic::Code;

    #[test]
    fn a_bad_request_is_the_callers_fault_and_a_bad_response_is_not() {
        // Field 1 as a length-delimited value 5 bytes long, with 1 byte present.
        let bytes: &[u8] = &[0x0a, 0x05, 0x01];
        let e = GetServiceRequest::decode(bytes)
            .map(|_| ())
            .expect_err("refused");
        let s = decode_error::<GetServiceRequest>(&e);
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(
            s.message()
                .starts_with("not a valid ipvs.agent.v1.GetServiceRequest message: "),
            "{}",
            s.message()
        );
        let e = GetServiceResponse::decode(bytes)
            .map(|_| ())
            .expect_err("refused");
        assert_eq!(
            decode_error::<GetServiceResponse>(&e).code(),
            Code::Internal
        );
    }
}
