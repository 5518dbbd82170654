//! `policy test`: one evaluation of a component file on this machine, with the policy engine
//! the agent runs. The engine brings wasmtime, so it is behind the `policy-test` feature (on
//! by default); an ipvsctl built without it refuses the command and says how to get it.

use crate::exit::{self, Failure};
#[cfg(feature = "policy-test")]
use crate::output::to_json;

/// What `policy test` answers when this ipvsctl was built without the policy engine.
#[cfg_attr(feature = "policy-test", allow(dead_code))]
fn without_engine() -> Failure {
    Failure::new(
        exit::USAGE,
        "ipvsctl: this ipvsctl was built without the policy engine; rebuild with --features policy-test",
    )
}

/// `policy test` without the engine: always refused.
#[cfg(not(feature = "policy-test"))]
pub async fn test_locally(_file: &str, _input: &str) -> Result<String, Failure> {
    Err(without_engine())
}

/// One evaluation of `component`, on a blocking thread as the agent does it: WASI calls
/// from the guest (stdout, files, a panic's message) block on tokio, which a runtime's own
/// worker thread must not do.
#[cfg(feature = "policy-test")]
async fn evaluate_off_runtime(
    component: Vec<u8>,
    input: String,
) -> Result<ipvs_policy::TestReport, Failure> {
    let limits = ipvs_policy::Limits::default();
    tokio::task::spawn_blocking(move || ipvs_policy::test_component(&component, &input, limits))
        .await
        .map_err(|e| {
            Failure::new(
                exit::LIST_FAILED,
                format!("ipvsctl: the evaluation failed: {e}"),
            )
        })?
        .map_err(|e| Failure::new(exit::USAGE, format!("ipvsctl: {e}")))
}

/// `policy test`: one local evaluation; prints the report as JSON.
#[cfg(feature = "policy-test")]
pub async fn test_locally(file: &str, input: &str) -> Result<String, Failure> {
    use super::{read_file, usage};

    let component = read_file(file)?;
    let input = match input.strip_prefix('@') {
        Some(path) => String::from_utf8(read_file(path)?)
            .map_err(|_| usage(format!("{path} is not UTF-8")))?,
        None => input.to_owned(),
    };
    let report = evaluate_off_runtime(component, input).await?;
    let ok = report.ok;
    let text = to_json(&report);
    if ok {
        Ok(text)
    } else {
        Err(Failure::new(exit::LIST_FAILED, text.trim_end().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_engine_the_refusal_is_a_usage_error_that_says_how_to_fix_it() {
        let failure = without_engine();
        assert_eq!(failure.code, exit::USAGE);
        assert_eq!(
            failure.message,
            "ipvsctl: this ipvsctl was built without the policy engine; \
             rebuild with --features policy-test"
        );
    }
}
