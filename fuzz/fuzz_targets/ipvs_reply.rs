//! IPVS generic-netlink payloads (`genlmsghdr` + attributes) as the kernel sends them: parsed,
//! read as each kind of reply, and for what parses, emit -> parse -> emit must be stable.
#![no_main]

use ipvs_agent::ipvs::{Family, IpvsMessage};
use libfuzzer_sys::fuzz_target;
use netlink_packet_core::{Emitable, ParseableParametrized};
use netlink_packet_generic::GenlHeader;

fn parse(bytes: &[u8]) -> Option<IpvsMessage> {
    let header = GenlHeader::parse(bytes).ok()?;
    IpvsMessage::parse_with_param(bytes.get(4..)?, header).ok()
}

fn emit(msg: &IpvsMessage) -> Vec<u8> {
    let mut out = vec![u8::from(msg.cmd), 1, 0, 0];
    out.resize(4 + msg.buffer_len(), 0);
    msg.emit(&mut out[4..]);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some(msg) = parse(data) else {
        return;
    };
    let _ = msg.to_service_entry();
    let _ = msg.to_destination_entry(Family::Inet);
    let _ = msg.to_destination_entry(Family::Inet6);
    let _ = msg.to_info();
    let _ = msg.to_timeouts();
    let _ = msg.to_daemon();

    let first = emit(&msg);
    let again = parse(&first).expect("an emitted message parses");
    let second = emit(&again);
    assert_eq!(first, second, "emit -> parse -> emit is not stable");
});
