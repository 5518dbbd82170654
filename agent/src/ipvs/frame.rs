//! What the handle's connection carries: a generic-netlink payload left unparsed. netlink-proto
//! drops (with a log line) any message its codec cannot parse, which would leave the request
//! it answers waiting forever; parsing after delivery instead turns a reply this build cannot
//! read into an error for that request alone.

use netlink_packet_core::{DecodeError, Emitable, ParseableParametrized};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use super::message::{IPVS_GENL_NAME, IPVS_GENL_VERSION, IpvsMessage};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub header: GenlHeader,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn from_message(msg: &IpvsMessage) -> Self {
        let mut payload = vec![0u8; msg.buffer_len()];
        msg.emit(&mut payload);
        Frame {
            header: GenlHeader {
                cmd: msg.command(),
                version: IPVS_GENL_VERSION,
            },
            payload,
        }
    }

    pub fn parse(&self) -> Result<IpvsMessage, DecodeError> {
        IpvsMessage::parse_with_param(&self.payload, self.header)
    }
}

impl GenlFamily for Frame {
    fn family_name() -> &'static str {
        IPVS_GENL_NAME
    }

    fn command(&self) -> u8 {
        self.header.cmd
    }

    fn version(&self) -> u8 {
        self.header.version
    }
}

impl Emitable for Frame {
    fn buffer_len(&self) -> usize {
        self.payload.len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        buffer[..self.payload.len()].copy_from_slice(&self.payload);
    }
}

impl ParseableParametrized<[u8], GenlHeader> for Frame {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(Frame {
            header,
            payload: buf.to_vec(),
        })
    }
}
