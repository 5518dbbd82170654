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

/// `google.rpc.BadRequest` (google/rpc/error_details.proto): the request fields at fault.
#[derive(Clone, PartialEq, Message)]
pub struct BadRequest {
    #[prost(message, repeated, tag = "1")]
    pub field_violations: Vec<FieldViolation>,
}

/// `google.rpc.BadRequest.FieldViolation`.
#[derive(Clone, PartialEq, Message)]
pub struct FieldViolation {
    /// The field's path in the request, e.g. `service.key.port`.
    #[prost(string, tag = "1")]
    pub field: String,
    /// What is wrong with it.
    #[prost(string, tag = "2")]
    pub description: String,
}

/// The type URL of [`ErrorDetail`] in an `Any`.
pub const TYPE_URL: &str = "type.googleapis.com/ipvs.agent.v1.ErrorDetail";
/// The type URL of [`BadRequest`] in an `Any`.
pub const BAD_REQUEST_TYPE_URL: &str = "type.googleapis.com/google.rpc.BadRequest";

fn any(type_url: &str, message: &impl Message) -> prost_types::Any {
    prost_types::Any {
        type_url: type_url.to_owned(),
        value: message.encode_to_vec(),
    }
}

fn encode(code: Code, message: String, details: Vec<prost_types::Any>) -> Status {
    let rpc = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details,
    };
    Status::with_details(code, message, rpc.encode_to_vec().into())
}

/// A status with `code` and `message` that carries `detail`.
pub fn status(code: Code, message: String, detail: &ErrorDetail) -> Status {
    encode(code, message, vec![any(TYPE_URL, detail)])
}

/// An INVALID_ARGUMENT status that carries `detail` and names the request field at fault in a
/// `google.rpc.BadRequest`, which generic gRPC tooling understands.
pub fn bad_request(message: String, detail: &ErrorDetail, violation: FieldViolation) -> Status {
    let bad = BadRequest {
        field_violations: vec![violation],
    };
    encode(
        Code::InvalidArgument,
        message,
        vec![any(TYPE_URL, detail), any(BAD_REQUEST_TYPE_URL, &bad)],
    )
}

fn details(status: &Status) -> Vec<prost_types::Any> {
    RpcStatus::decode(status.details())
        .map(|rpc| rpc.details)
        .unwrap_or_default()
}

/// The [`ErrorDetail`] `status` carries, if any.
pub fn detail(status: &Status) -> Option<ErrorDetail> {
    details(status)
        .iter()
        .find(|a| a.type_url == TYPE_URL)
        .and_then(|a| ErrorDetail::decode(a.value.as_slice()).ok())
}

/// The request fields `status` says are at fault, if any.
pub fn field_violations(status: &Status) -> Vec<FieldViolation> {
    details(status)
        .iter()
        .filter(|a| a.type_url == BAD_REQUEST_TYPE_URL)
        .filter_map(|a| BadRequest::decode(a.value.as_slice()).ok())
        .flat_map(|b| b.field_violations)
        .collect()
}

/// `status` with `message` instead of its own; its code and details stay.
pub fn status_like(status: &Status, message: String) -> Status {
    encode(status.code(), message, details(status))
}

/// `status` with its detail changed by `f` (a detail is added if it had none); its other
/// details stay.
pub fn with_detail(status: Status, f: impl FnOnce(&mut ErrorDetail)) -> Status {
    let mut d = detail(&status).unwrap_or_default();
    f(&mut d);
    let mut rest: Vec<_> = details(&status)
        .into_iter()
        .filter(|a| a.type_url != TYPE_URL)
        .collect();
    rest.insert(0, any(TYPE_URL, &d));
    encode(status.code(), status.message().to_owned(), rest)
}

/// `status` with `violation` added to its `google.rpc.BadRequest` (one is added if it had
/// none); its message and other details stay.
pub fn with_violation(status: Status, violation: FieldViolation) -> Status {
    let mut violations = field_violations(&status);
    violations.push(violation);
    let mut rest: Vec<_> = details(&status)
        .into_iter()
        .filter(|a| a.type_url != BAD_REQUEST_TYPE_URL)
        .collect();
    rest.push(any(
        BAD_REQUEST_TYPE_URL,
        &BadRequest {
            field_violations: violations,
        },
    ));
    encode(status.code(), status.message().to_owned(), rest)
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
        assert_eq!(field_violations(&s), vec![]);
    }

    #[test]
    fn a_bad_request_names_its_field_and_keeps_it_when_the_detail_changes() {
        let d = ErrorDetail {
            reason: "INVALID_ARGUMENT".into(),
            ..ErrorDetail::default()
        };
        let v = FieldViolation {
            field: "service.key.port".into(),
            description: "must be non-zero".into(),
        };
        let s = bad_request(
            "invalid service.key.port: must be non-zero".into(),
            &d,
            v.clone(),
        );
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(detail(&s), Some(d));
        assert_eq!(field_violations(&s), vec![v.clone()]);
        let s = with_detail(s, |d| d.object = "TCP 10.0.0.1:0".into());
        assert_eq!(detail(&s).map(|d| d.object), Some("TCP 10.0.0.1:0".into()));
        assert_eq!(field_violations(&s), vec![v]);
    }

    #[test]
    fn a_violation_is_added_to_a_status_that_has_a_detail() {
        let d = ErrorDetail {
            reason: "INVALID_ARGUMENT".into(),
            ..ErrorDetail::default()
        };
        let s = status(
            Code::InvalidArgument,
            "a service with port 0 must be persistent".into(),
            &d,
        );
        let port = FieldViolation {
            field: "service.key.port".into(),
            description: "a service with port 0 must be persistent".into(),
        };
        let s = with_violation(s, port.clone());
        assert_eq!(
            (s.code(), s.message()),
            (
                Code::InvalidArgument,
                "a service with port 0 must be persistent"
            )
        );
        assert_eq!(detail(&s), Some(d));
        assert_eq!(field_violations(&s), vec![port.clone()]);
        let weight = FieldViolation {
            field: "destination.weight".into(),
            description: "x".into(),
        };
        let s = with_violation(s, weight.clone());
        assert_eq!(field_violations(&s), vec![port, weight]);
    }
}
