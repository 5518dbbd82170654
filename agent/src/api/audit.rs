//! One log line per write RPC: which method, on what, and how it ended. Reads are not logged.

use tonic::{Response, Status};

use crate::convert::FieldError;

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
        Ok(p) => {
            let target = target(&p);
            // The object the refusal is about, for programs (ErrorDetail.object).
            let result = run(p).await.map_err(|s| {
                ipvs_proto::details::with_detail(s, |d| {
                    if d.object.is_empty() {
                        d.object.clone_from(&target);
                    }
                })
            });
            (target, result)
        }
        Err(e) => ("-".to_owned(), Err(e.into())),
    };
    match &result {
        Ok(_) => tracing::info!(method, target, result = "ok", "write"),
        Err(s) => tracing::warn!(
            method,
            target,
            result = ?s.code(),
            reason = s.message(),
            "write refused"
        ),
    }
    result.map(Response::new)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex, PoisonError};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;
    use crate::convert::Problem;

    /// Collects log output in memory.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut b = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            b.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn logs_of(f: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buffer
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn one_line_per_write_with_method_target_and_result() {
        let logs = logs_of(|| {
            let ok = futures::executor::block_on(logged(
                "DeleteService",
                Ok("TCP 192.168.100.1:80"),
                |t| (*t).to_owned(),
                |_| async { Ok(()) },
            ));
            assert!(ok.is_ok());
            let refused = futures::executor::block_on(logged(
                "AddDestination",
                Ok("TCP 10.9.9.9:80 -> 10.2.0.1:8080"),
                |t| (*t).to_owned(),
                |_| async { Err::<(), _>(Status::not_found("Service not defined")) },
            ));
            assert!(refused.is_err());
            let unparsed = futures::executor::block_on(logged(
                "CreateService",
                Err::<(), _>(FieldError::new("service", Problem::Missing)),
                |_| unreachable!("no target for a request that did not parse"),
                |()| async { Ok(()) },
            ));
            assert!(unparsed.is_err());
        });
        let lines: Vec<&str> = logs.lines().collect();
        assert_eq!(
            lines,
            vec![
                r#" INFO ipvs_agent::api::audit: write method="DeleteService" target="TCP 192.168.100.1:80" result="ok""#,
                r#" WARN ipvs_agent::api::audit: write refused method="AddDestination" target="TCP 10.9.9.9:80 -> 10.2.0.1:8080" result=NotFound reason="Service not defined""#,
                r#" WARN ipvs_agent::api::audit: write refused method="CreateService" target="-" result=InvalidArgument reason="invalid service: is required""#,
            ]
        );
    }
}
