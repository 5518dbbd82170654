//! Resolving the "IPVS" generic-netlink family id through the controller (`nlctrl`,
//! `CTRL_CMD_GETFAMILY`), once, on a one-off socket.

use netlink_packet_core::{NLM_F_REQUEST, NetlinkMessage, NetlinkPayload, NlasIterator, parse_u16};
use netlink_packet_generic::GenlMessage;
use netlink_packet_generic::constants::CTRL_ATTR_FAMILY_ID;
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_sys::protocols::NETLINK_GENERIC;
use netlink_sys::{Socket, SocketAddr};

use super::error::IpvsError;
use super::frame::Frame;
use super::message::IPVS_GENL_NAME;

fn io(what: &str) -> impl Fn(std::io::Error) -> IpvsError + '_ {
    move |e| IpvsError::Netlink(format!("resolve family {IPVS_GENL_NAME:?}: {what}: {e}"))
}

/// The `CTRL_CMD_GETFAMILY` request for "IPVS".
pub(crate) fn family_request() -> Vec<u8> {
    let mut genl = GenlMessage::from_payload(GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName(IPVS_GENL_NAME.to_owned())],
    });
    genl.finalize();
    let mut nl = NetlinkMessage::from(genl);
    nl.header.flags = NLM_F_REQUEST;
    nl.header.sequence_number = 1;
    nl.finalize();
    let mut buf = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut buf);
    buf
}

/// The family id from the controller's reply. ENOENT means the kernel has no such family
/// (it has already tried to load the module by then).
pub(crate) fn parse_family_reply(buf: &[u8]) -> Result<u16, IpvsError> {
    let bad = |e: &dyn std::fmt::Display| {
        IpvsError::Netlink(format!("resolve family {IPVS_GENL_NAME:?}: bad reply: {e}"))
    };
    let msg = NetlinkMessage::<GenlMessage<Frame>>::deserialize(buf).map_err(|e| bad(&e))?;
    match msg.payload {
        NetlinkPayload::InnerMessage(genl) => {
            for nla in NlasIterator::new(&genl.payload.payload) {
                let nla = nla.map_err(|e| bad(&e))?;
                if nla.kind() == CTRL_ATTR_FAMILY_ID {
                    return parse_u16(nla.value()).map_err(|e| bad(&e));
                }
            }
            Err(bad(&"no CTRL_ATTR_FAMILY_ID"))
        }
        NetlinkPayload::Error(e) if e.raw_code() == -libc::ENOENT => Err(IpvsError::Unavailable),
        NetlinkPayload::Error(e) => Err(bad(&e)),
        _ => Err(bad(&"unexpected message")),
    }
}

/// Asks the controller for the "IPVS" family id. The kernel answers within the `send`
/// itself, so the receive does not wait.
pub(crate) fn resolve_family_id() -> Result<u16, IpvsError> {
    let mut socket = Socket::new(NETLINK_GENERIC).map_err(io("socket"))?;
    socket.bind_auto().map_err(io("bind"))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(io("connect"))?;
    socket.send(&family_request(), 0).map_err(io("send"))?;
    socket
        .set_non_blocking(true)
        .map_err(io("set non-blocking"))?;
    let (reply, _) = socket.recv_from_full().map_err(io("receive"))?;
    parse_family_reply(&reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nlmsghdr, genlmsghdr and the FAMILY_NAME attribute of `genl-ctrl-list`'s lookup.
    #[test]
    fn request_bytes() {
        let want: Vec<u8> = [
            &[32, 0, 0, 0][..], // nlmsg_len 32
            &[16, 0],           // GENL_ID_CTRL
            &[1, 0],            // NLM_F_REQUEST
            &[1, 0, 0, 0],      // seq 1
            &[0, 0, 0, 0],      // port id: the kernel fills it
            &[3, 2, 0, 0],      // CTRL_CMD_GETFAMILY, version 2
            &[9, 0, 2, 0],      // len 9, CTRL_ATTR_FAMILY_NAME
            b"IPVS\0",
            &[0, 0, 0], // padding
        ]
        .concat();
        assert_eq!(family_request(), want);
    }

    fn reply(cmd_and_attrs: &[u8], msg_type: u16) -> Vec<u8> {
        let len = u32::try_from(16 + cmd_and_attrs.len()).expect("small");
        [
            &len.to_ne_bytes()[..],
            &msg_type.to_ne_bytes(),
            &[0, 0],
            &[1, 0, 0, 0],
            &[0, 0, 0, 0],
            cmd_and_attrs,
        ]
        .concat()
    }

    #[test]
    fn family_id_from_the_reply() {
        // CTRL_CMD_NEWFAMILY, then FAMILY_NAME "IPVS" and FAMILY_ID 0x24 (an unknown
        // attribute in between is skipped).
        let body = [
            &[1, 2, 0, 0][..],
            &[9, 0, 2, 0],
            b"IPVS\0",
            &[0, 0, 0],
            &[8, 0, 99, 0, 1, 2, 3, 4],
            &[6, 0, 1, 0, 0x24, 0, 0, 0],
        ]
        .concat();
        assert_eq!(parse_family_reply(&reply(&body, 16)), Ok(0x24));
    }

    #[test]
    fn missing_family_is_unavailable() {
        // NLMSG_ERROR -ENOENT, then the original request header.
        let mut body = (-libc::ENOENT).to_ne_bytes().to_vec();
        body.extend_from_slice(&family_request()[..16]);
        assert_eq!(
            parse_family_reply(&reply(&body, 2)),
            Err(IpvsError::Unavailable)
        );
        let mut body = (-libc::EPERM).to_ne_bytes().to_vec();
        body.extend_from_slice(&family_request()[..16]);
        assert_eq!(
            parse_family_reply(&reply(&body, 2)),
            Err(IpvsError::Netlink(
                "resolve family \"IPVS\": bad reply: Operation not permitted (os error 1)".into()
            ))
        );
    }

    #[test]
    fn reply_without_id_is_an_error() {
        let body = [&[1, 2, 0, 0][..], &[9, 0, 2, 0], b"IPVS\0", &[0, 0, 0]].concat();
        assert_eq!(
            parse_family_reply(&reply(&body, 16)),
            Err(IpvsError::Netlink(
                "resolve family \"IPVS\": bad reply: no CTRL_ATTR_FAMILY_ID".into()
            ))
        );
    }
}
