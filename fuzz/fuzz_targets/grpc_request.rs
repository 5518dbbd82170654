//! gRPC requests: the first byte picks a request message of `ipvs.agent.v1`, the rest is its
//! protobuf encoding; what decodes goes through the agent's conversion. A refusal must name
//! the field it is about.
#![no_main]

use ipvs_agent::convert::state::SpecInputError;
use ipvs_agent::convert::{FieldError, config, ipvs, link, policy, state, stats, table};
use ipvs_proto::v1 as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn decode<M: Message + Default>(bytes: &[u8]) -> Option<M> {
    M::decode(bytes).ok()
}

fn check<T>(result: Result<T, FieldError>) {
    if let Err(e) = result {
        assert!(!e.field.is_empty(), "refusal without a field: {e:?}");
        let _ = e.to_string();
    }
}

fn check_spec<T>(result: Result<T, SpecInputError>) {
    match result {
        Err(SpecInputError::Field(e)) => check::<()>(Err(e)),
        Err(e) => {
            let _ = e.to_string();
        }
        Ok(_) => {}
    }
}

/// Runs `convert` on `bytes` decoded as `M`.
fn run<M: Message + Default, T>(bytes: &[u8], convert: impl Fn(&M) -> Result<T, FieldError>) {
    if let Some(req) = decode::<M>(bytes) {
        check(convert(&req));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 25 {
        0 => run(bytes, ipvs::create_service),
        1 => run(bytes, ipvs::update_service),
        2 => run(bytes, |r: &pb::DeleteServiceRequest| {
            ipvs::key_field(r.key.as_ref(), "key")
        }),
        3 => run(bytes, |r: &pb::GetServiceRequest| {
            ipvs::key_field(r.key.as_ref(), "key")
        }),
        4 => run(bytes, ipvs::add_destination),
        5 => run(bytes, ipvs::update_destination),
        6 => run(bytes, ipvs::delete_destination),
        7 => run(bytes, |r: &pb::ListDestinationsRequest| {
            ipvs::key_field(r.service.as_ref(), "service")
        }),
        8 => run(bytes, |r: &pb::ZeroRequest| {
            ipvs::optional_key(r.service.as_ref(), "service")
        }),
        9 => run(bytes, config::set_timeouts),
        10 => run(bytes, config::start_daemon),
        11 => run(bytes, config::stop_daemon),
        12 => run(bytes, link::create_dummy),
        13 => run(bytes, link::delete_link),
        14 => run(bytes, link::set_link_state),
        15 => run(bytes, link::add_address),
        16 => run(bytes, link::delete_address),
        17 => run(bytes, link::list_addresses),
        18 => run(bytes, stats::get_stats),
        19 => run(bytes, stats::watch_stats),
        20 => run(bytes, table::apply_request),
        21 => run(bytes, policy::attach_spec),
        22 => {
            if let Some(req) = decode::<pb::ApplyStateRequest>(bytes) {
                check_spec(state::node_spec(&req.spec.unwrap_or_default()));
            }
        }
        23 => run(bytes, state::managed),
        _ => run(bytes, policy::attachment_spec),
    }
});
