//! Errors of link and address requests, and the one place kernel errnos become them.

use std::net::IpAddr;

use nix::errno::Errno;

use super::{Cidr, InvalidName, InvalidPrefix, LinkName};

/// Why a link or address request failed; each variant maps to one gRPC status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("link name {} {reason}", ipvs_types::quote(name))]
    InvalidName { name: String, reason: String },
    #[error("prefix length {prefix_len} is invalid for {address}: the maximum is {max}")]
    InvalidPrefix {
        address: IpAddr,
        prefix_len: u8,
        max: u8,
    },
    #[error("link {0:?} not found")]
    LinkNotFound(String),
    #[error("link {0:?} already exists")]
    LinkExists(String),
    #[error("address {cidr} already exists on link {link:?}")]
    AddressExists { link: String, cidr: Cidr },
    #[error("address {cidr} not found on link {link:?}")]
    AddressNotFound { link: String, cidr: Cidr },
    /// The kernel lacks the feature, e.g. the dummy driver ("Unknown device type").
    #[error("cannot {op} {target:?}: not supported by this kernel")]
    NotSupported { op: &'static str, target: String },
    #[error("cannot {op}: permission denied (CAP_NET_ADMIN is required)")]
    PermissionDenied { op: &'static str },
    /// The kernel's EACCES for an IPv6 address on a link whose `disable_ipv6` is set; it
    /// has nothing to do with privileges.
    #[error("cannot add address {cidr}: IPv6 is disabled on link {link:?}")]
    Ipv6Disabled { link: String, cidr: Cidr },
    /// Any other kernel refusal; `message` is the errno's strerror text.
    #[error("cannot {op}: {message} (errno {errno})")]
    Kernel {
        op: &'static str,
        errno: i32,
        message: String,
    },
    /// The netlink socket could not be opened or the conversation with the kernel broke.
    #[error("netlink connection: {0}")]
    Connection(String),
}

impl From<InvalidName> for LinkError {
    fn from(InvalidName { name, reason }: InvalidName) -> Self {
        LinkError::InvalidName { name, reason }
    }
}

impl From<InvalidPrefix> for LinkError {
    fn from(
        InvalidPrefix {
            address,
            prefix_len,
            max,
        }: InvalidPrefix,
    ) -> Self {
        LinkError::InvalidPrefix {
            address,
            prefix_len,
            max,
        }
    }
}

/// The request a kernel error answered: it decides what an errno means.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op<'a> {
    CreateDummy(&'a LinkName),
    Delete(&'a LinkName),
    SetState(&'a LinkName),
    Get(&'a LinkName),
    List,
    AddAddress(&'a LinkName, Cidr),
    DeleteAddress(&'a LinkName, Cidr),
    ListAddresses(Option<&'a LinkName>),
}

impl Op<'_> {
    /// The verb phrase used in messages: "cannot {verb}".
    fn verb(&self) -> &'static str {
        match self {
            Self::CreateDummy(_) => "create dummy link",
            Self::Delete(_) => "delete link",
            Self::SetState(_) => "set link state",
            Self::Get(_) => "get link",
            Self::List => "list links",
            Self::AddAddress(..) => "add address",
            Self::DeleteAddress(..) => "delete address",
            Self::ListAddresses(_) => "list addresses",
        }
    }

    fn link(&self) -> Option<&LinkName> {
        match *self {
            Self::CreateDummy(name)
            | Self::Delete(name)
            | Self::SetState(name)
            | Self::Get(name)
            | Self::AddAddress(name, _)
            | Self::DeleteAddress(name, _)
            | Self::ListAddresses(Some(name)) => Some(name),
            Self::List | Self::ListAddresses(None) => None,
        }
    }
}

/// Maps a kernel errno (positive) for `op` to the error a caller can act on.
pub(crate) fn from_errno(op: Op<'_>, errno: i32) -> LinkError {
    let link = || op.link().map(|n| n.to_string());
    let mapped = match (errno, op) {
        (libc::EEXIST, Op::CreateDummy(name)) => Some(LinkError::LinkExists(name.to_string())),
        (libc::EEXIST, Op::AddAddress(name, cidr)) => Some(LinkError::AddressExists {
            link: name.to_string(),
            cidr,
        }),
        (libc::EADDRNOTAVAIL, Op::DeleteAddress(name, cidr)) => Some(LinkError::AddressNotFound {
            link: name.to_string(),
            cidr,
        }),
        (libc::ENODEV, _) => link().map(LinkError::LinkNotFound),
        (libc::EACCES, Op::AddAddress(name, cidr)) if cidr.address().is_ipv6() => {
            Some(LinkError::Ipv6Disabled {
                link: name.to_string(),
                cidr,
            })
        }
        (libc::EPERM | libc::EACCES, _) => Some(LinkError::PermissionDenied { op: op.verb() }),
        (libc::EOPNOTSUPP, _) => Some(LinkError::NotSupported {
            op: op.verb(),
            target: link().unwrap_or_default(),
        }),
        _ => None,
    };
    mapped.unwrap_or_else(|| LinkError::Kernel {
        op: op.verb(),
        errno,
        message: Errno::from_raw(errno).desc().to_string(),
    })
}

/// Converts an rtnetlink failure: kernel NACKs go through [`from_errno`], the rest are
/// connection-level problems.
pub(crate) fn from_rtnetlink(op: Op<'_>, err: rtnetlink::Error) -> LinkError {
    match err {
        rtnetlink::Error::NetlinkError(msg) => from_errno(op, msg.raw_code().saturating_abs()),
        other => LinkError::Connection(format!("cannot {}: {other}", op.verb())),
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroI32;

    use netlink_packet_core::ErrorMessage;

    use super::*;

    fn name(s: &str) -> LinkName {
        LinkName::new(s).expect("valid test name")
    }

    #[test]
    fn errno_table() {
        let d = name("dummy1");
        let cidr = Cidr::new("192.0.2.1".parse().expect("address"), 24).expect("cidr");
        let cidr6 = Cidr::new("2001:db8::1".parse().expect("address"), 128).expect("cidr");
        let kernel = |op, errno, message: &str| LinkError::Kernel {
            op,
            errno,
            message: message.into(),
        };
        let cases: Vec<(Op<'_>, i32, LinkError)> = vec![
            (
                Op::CreateDummy(&d),
                libc::EEXIST,
                LinkError::LinkExists("dummy1".into()),
            ),
            (
                Op::AddAddress(&d, cidr),
                libc::EEXIST,
                LinkError::AddressExists {
                    link: "dummy1".into(),
                    cidr,
                },
            ),
            (
                Op::SetState(&d),
                libc::EEXIST,
                kernel("set link state", libc::EEXIST, "File exists"),
            ),
            (
                Op::DeleteAddress(&d, cidr),
                libc::EADDRNOTAVAIL,
                LinkError::AddressNotFound {
                    link: "dummy1".into(),
                    cidr,
                },
            ),
            (
                Op::AddAddress(&d, cidr),
                libc::EADDRNOTAVAIL,
                kernel(
                    "add address",
                    libc::EADDRNOTAVAIL,
                    "Cannot assign requested address",
                ),
            ),
            (
                Op::Delete(&d),
                libc::ENODEV,
                LinkError::LinkNotFound("dummy1".into()),
            ),
            (
                Op::SetState(&d),
                libc::ENODEV,
                LinkError::LinkNotFound("dummy1".into()),
            ),
            (
                Op::Get(&d),
                libc::ENODEV,
                LinkError::LinkNotFound("dummy1".into()),
            ),
            (
                Op::DeleteAddress(&d, cidr),
                libc::ENODEV,
                LinkError::LinkNotFound("dummy1".into()),
            ),
            (
                Op::ListAddresses(Some(&d)),
                libc::ENODEV,
                LinkError::LinkNotFound("dummy1".into()),
            ),
            (
                Op::List,
                libc::ENODEV,
                kernel("list links", libc::ENODEV, "No such device"),
            ),
            (
                Op::CreateDummy(&d),
                libc::EPERM,
                LinkError::PermissionDenied {
                    op: "create dummy link",
                },
            ),
            (
                Op::AddAddress(&d, cidr6),
                libc::EACCES,
                LinkError::Ipv6Disabled {
                    link: "dummy1".into(),
                    cidr: cidr6,
                },
            ),
            (
                Op::AddAddress(&d, cidr),
                libc::EACCES,
                LinkError::PermissionDenied { op: "add address" },
            ),
            (
                Op::ListAddresses(None),
                libc::EACCES,
                LinkError::PermissionDenied {
                    op: "list addresses",
                },
            ),
            (
                Op::CreateDummy(&d),
                libc::EOPNOTSUPP,
                LinkError::NotSupported {
                    op: "create dummy link",
                    target: "dummy1".into(),
                },
            ),
            (
                Op::Delete(&d),
                libc::EOPNOTSUPP,
                LinkError::NotSupported {
                    op: "delete link",
                    target: "dummy1".into(),
                },
            ),
            (
                Op::Delete(&d),
                libc::EBUSY,
                kernel("delete link", libc::EBUSY, "Device or resource busy"),
            ),
            (
                Op::CreateDummy(&d),
                libc::EINVAL,
                kernel("create dummy link", libc::EINVAL, "Invalid argument"),
            ),
            (Op::List, 9999, kernel("list links", 9999, "Unknown errno")),
        ];
        for (op, errno, expected) in cases {
            assert_eq!(from_errno(op, errno), expected, "{op:?} errno {errno}");
        }
    }

    #[test]
    fn shared_validation_errors_keep_their_words() {
        let name = LinkName::new("a b").expect_err("whitespace");
        let prefix = Cidr::new("192.0.2.1".parse().expect("address"), 33).expect_err("too long");
        let (name_text, prefix_text) = (name.to_string(), prefix.to_string());
        let name = LinkError::from(name);
        let prefix = LinkError::from(prefix);
        assert!(matches!(name, LinkError::InvalidName { .. }), "{name:?}");
        assert!(
            matches!(prefix, LinkError::InvalidPrefix { .. }),
            "{prefix:?}"
        );
        assert_eq!(name.to_string(), name_text);
        assert_eq!(prefix.to_string(), prefix_text);
        assert_eq!(name_text, r#"link name "a b" contains whitespace"#);
    }

    #[test]
    fn messages_read_well() {
        let cidr = Cidr::new("2001:db8::1".parse().expect("address"), 64).expect("cidr");
        let cases = [
            (
                LinkError::LinkNotFound("dummy1".into()),
                r#"link "dummy1" not found"#,
            ),
            (
                LinkError::LinkExists("dummy1".into()),
                r#"link "dummy1" already exists"#,
            ),
            (
                LinkError::AddressExists {
                    link: "lo".into(),
                    cidr,
                },
                r#"address 2001:db8::1/64 already exists on link "lo""#,
            ),
            (
                LinkError::AddressNotFound {
                    link: "lo".into(),
                    cidr,
                },
                r#"address 2001:db8::1/64 not found on link "lo""#,
            ),
            (
                LinkError::NotSupported {
                    op: "create dummy link",
                    target: "dummy1".into(),
                },
                r#"cannot create dummy link "dummy1": not supported by this kernel"#,
            ),
            (
                LinkError::PermissionDenied { op: "add address" },
                "cannot add address: permission denied (CAP_NET_ADMIN is required)",
            ),
            (
                LinkError::Ipv6Disabled {
                    link: "dummy1".into(),
                    cidr,
                },
                r#"cannot add address 2001:db8::1/64: IPv6 is disabled on link "dummy1""#,
            ),
            (
                LinkError::Kernel {
                    op: "delete link",
                    errno: 16,
                    message: "Device or resource busy".into(),
                },
                "cannot delete link: Device or resource busy (errno 16)",
            ),
        ];
        for (err, message) in cases {
            assert_eq!(err.to_string(), message);
        }
    }

    #[test]
    fn rtnetlink_errors() {
        let d = name("dummy1");
        let nack = |code| {
            let mut msg = ErrorMessage::default();
            msg.code = NonZeroI32::new(code);
            rtnetlink::Error::NetlinkError(msg)
        };
        assert_eq!(
            from_rtnetlink(Op::Delete(&d), nack(-libc::ENODEV)),
            LinkError::LinkNotFound("dummy1".into())
        );
        assert_eq!(
            from_rtnetlink(Op::List, rtnetlink::Error::RequestFailed),
            LinkError::Connection("cannot list links: A netlink request failed".into())
        );
    }
}
