//! Byte-level tests of the message layer against real captures ([`captured`]): our requests
//! must be ipvsadm's bytes, and the kernel's replies must read as the domain values ipvsadm
//! showed. Bytes are the generic-netlink payload (`genlmsghdr` + attributes): the `nlmsghdr`
//! before it differs between runs (sequence number, port id) and is not the family's business.

pub(crate) mod captured;
mod props;
mod replies;
mod requests;

use netlink_packet_core::{Emitable, ParseableParametrized};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use super::message::IpvsMessage;

/// `genlmsghdr` + attributes, as `msg` goes on the wire.
fn genl(msg: &IpvsMessage) -> Vec<u8> {
    let mut out = vec![msg.command(), msg.version(), 0, 0];
    let start = out.len();
    out.resize(start + msg.buffer_len(), 0);
    msg.emit(&mut out[start..]);
    out
}

/// Parses `genlmsghdr` + attributes.
fn parse(bytes: &[u8]) -> IpvsMessage {
    let header = GenlHeader::parse(bytes).expect("genlmsghdr");
    IpvsMessage::parse_with_param(&bytes[4..], header).expect("parse")
}
