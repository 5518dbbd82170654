//! The IPVS generic-netlink payload: a command and its top-level attributes. Pure: parse and
//! emit only, no I/O.
//!
//! ```text
//!  0               1               2               3
//! +---------------+---------------+-------------------------------+
//! |      cmd      |  version (1)  |          reserved (0)         |  genlmsghdr
//! +---------------+---------------+-------------------------------+
//! |  nla_len                      |  nla_type (| NLA_F_NESTED)    |  attributes ...
//! +-------------------------------+-------------------------------+
//! ```

use netlink_packet_core::{
    DecodeError, Emitable, ErrorContext, NlasIterator, Parseable, ParseableParametrized,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use super::attr::{CmdAttr, InfoAttr, IpvsAttr};
use super::cmd::Cmd;

/// `IPVS_GENL_NAME`.
pub const IPVS_GENL_NAME: &str = "IPVS";
/// `IPVS_GENL_VERSION`.
pub const IPVS_GENL_VERSION: u8 = 1;

/// One IPVS message (request or reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsMessage {
    pub cmd: Cmd,
    pub attrs: Vec<IpvsAttr>,
}

impl IpvsMessage {
    pub fn new(cmd: Cmd, attrs: Vec<CmdAttr>) -> Self {
        IpvsMessage {
            cmd,
            attrs: attrs.into_iter().map(IpvsAttr::Cmd).collect(),
        }
    }

    /// The command attributes (everything but `SET_INFO`'s info attributes).
    pub fn cmd_attrs(&self) -> impl Iterator<Item = &CmdAttr> {
        self.attrs.iter().filter_map(|a| match a {
            IpvsAttr::Cmd(a) => Some(a),
            IpvsAttr::Info(_) => None,
        })
    }

    pub fn info_attrs(&self) -> impl Iterator<Item = &InfoAttr> {
        self.attrs.iter().filter_map(|a| match a {
            IpvsAttr::Info(a) => Some(a),
            IpvsAttr::Cmd(_) => None,
        })
    }
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        IPVS_GENL_NAME
    }

    fn command(&self) -> u8 {
        self.cmd.into()
    }

    fn version(&self) -> u8 {
        IPVS_GENL_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let cmd = Cmd::try_from(header.cmd)?;
        let info = matches!(cmd, Cmd::SetInfo);
        let attrs = NlasIterator::new(buf)
            .map(|nla| {
                nla.and_then(|nla| {
                    if info {
                        InfoAttr::parse(&nla).map(IpvsAttr::Info)
                    } else {
                        CmdAttr::parse(&nla).map(IpvsAttr::Cmd)
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("failed to parse IPVS {cmd:?} attributes"))?;
        Ok(IpvsMessage { cmd, attrs })
    }
}
