//! One log line per write RPC: which method, on what, and how it ended. Reads are not logged.

use tonic::{Response, Status};

use super::convert::FieldError;

/// Runs a write whose request parsed into `parsed` and logs its outcome. `target` names what it
/// writes, in ipvsadm or iproute2 notation (`TCP 192.168.100.1:80`, `dummy1`). A request that
/// did not parse is logged with target `-` and refused with `INVALID_ARGUMENT`.
pub async fn logged<P, T, F>(
    method: &'static str,
    parsed: Result<P, FieldError>,
    target: impl FnOnce(&P) -> String,
    run: impl FnOnce(P) -> F,
) -> Result<Response<T>, Status>
where
    F: Future<Output = Result<T, Status>>,
{
    let (target, result) = match parsed {
        Ok(p) => (target(&p), run(p).await),
        Err(e) => ("-".to_owned(), Err(e.into())),
    };
    match &result {
        Ok(_) => tracing::info!(method, target, result = "ok", "write"),
        Err(s) => tracing::warn!(
            method,
            target,
            result = ?s.code(),
            message = s.message(),
            "write refused"
        ),
    }
    result.map(Response::new)
}
