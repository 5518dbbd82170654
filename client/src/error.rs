//! What a failure to reach or use the agent means.

/// Why the agent could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The address is neither `unix:/path` nor `http://host:port`.
    #[error("invalid agent address `{0}': expected unix:/path or http://host:port")]
    BadAddress(String),
    /// The connection failed; `reason` is the innermost cause.
    #[error("cannot reach agent at {address}: {reason}")]
    Unreachable { address: String, reason: String },
}

/// The innermost cause of an error: "No such file or directory (os error 2)", not
/// "transport error".
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Whether a failed call means the connection itself failed (rather than the agent refusing
/// the request): tonic reports both as UNAVAILABLE, but only a transport failure has a cause.
pub fn is_transport_failure(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unavailable && std::error::Error::source(status).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn root_cause_is_the_innermost_message() {
        let e = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(root_cause(&e), "disk on fire");
        let plain = std::io::Error::other("alone");
        assert_eq!(root_cause(&plain), "alone");
    }

    #[test]
    fn a_refusal_is_not_a_transport_failure() {
        let refused = tonic::Status::unavailable("node is draining");
        assert!(!is_transport_failure(&refused));
        let other = tonic::Status::not_found("no such service");
        assert!(!is_transport_failure(&other));
    }
}
