//! [`ErrorDetail`] on a status, the way gRPC's richer error model carries details: an encoded
//! `google.rpc.Status` in the `grpc-status-details-bin` trailer, its `details` a list of
//! `google.protobuf.Any`.

use prost::Message;
use tonic::{Code, Status};

use crate::v1::ErrorDetail;

/// `google.rpc.Status` (google/rpc/status.proto), as every gRPC library knows it.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// The type URL of [`ErrorDetail`] in an `Any`.
pub const TYPE_URL: &str = "type.googleapis.com/ipvs.agent.v1.ErrorDetail";

/// A status with `code` and `message` that carries `detail`.
pub fn status(code: Code, message: String, detail: &ErrorDetail) -> Status {
    let any = prost_types::Any {
        type_url: TYPE_URL.to_owned(),
        value: detail.encode_to_vec(),
    };
    let rpc = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details: vec![any],
    };
    Status::with_details(code, message, rpc.encode_to_vec().into())
}

/// The [`ErrorDetail`] `status` carries, if any.
pub fn detail(status: &Status) -> Option<ErrorDetail> {
    let rpc = RpcStatus::decode(status.details()).ok()?;
    rpc.details
        .iter()
        .find(|a| a.type_url == TYPE_URL)
        .and_then(|a| ErrorDetail::decode(a.value.as_slice()).ok())
}

/// `status` with its detail changed by `f` (a detail is added if it had none).
pub fn with_detail(status: Status, f: impl FnOnce(&mut ErrorDetail)) -> Status {
    let mut d = detail(&status).unwrap_or_default();
    f(&mut d);
    self::status(status.code(), status.message().to_owned(), &d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detail_round_trips_through_a_status() {
        let d = ErrorDetail {
            reason: "SERVICE_NOT_FOUND".into(),
            errno: 3,
            errno_name: "ESRCH".into(),
            operation: "add destination".into(),
            object: "TCP 192.168.100.1:80".into(),
            ..ErrorDetail::default()
        };
        let s = status(Code::NotFound, "Service not defined".into(), &d);
        assert_eq!(s.code(), Code::NotFound);
        assert_eq!(s.message(), "Service not defined");
        assert_eq!(detail(&s), Some(d.clone()));
        let s = with_detail(s, |d| d.change = 4);
        assert_eq!(
            detail(&s).map(|d| (d.reason, d.change)),
            Some(("SERVICE_NOT_FOUND".into(), 4))
        );
        // A status without details has none, and one from elsewhere is not mistaken for ours.
        assert_eq!(detail(&Status::not_found("x")), None);
        let other = RpcStatus {
            code: 5,
            message: "x".into(),
            details: vec![prost_types::Any {
                type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
                value: vec![1, 2, 3],
            }],
        };
        let s = Status::with_details(Code::NotFound, "x", other.encode_to_vec().into());
        assert_eq!(detail(&s), None);
    }
}
