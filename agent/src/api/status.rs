//! The one place where errors become gRPC statuses.
//!
//! | error | code |
//! |---|---|
//! | malformed request field ([`FieldError`]), `IpvsError::Invalid`, `LinkError::InvalidName`/`InvalidPrefix` | `INVALID_ARGUMENT` |
//! | `ServiceNotFound`, `DestinationNotFound`, `DaemonNotRunning`, `LinkNotFound`, `AddressNotFound` | `NOT_FOUND` |
//! | `ServiceExists`, `DestinationExists`, `DaemonRunning`, `LinkExists`, `AddressExists` | `ALREADY_EXISTS` |
//! | `SchedulerNotFound`, `PersistenceEngineNotFound`, `LinkError::NotSupported`/`Ipv6Disabled` | `FAILED_PRECONDITION` |
//! | `PermissionDenied` | `PERMISSION_DENIED` |
//! | `IpvsError::Unavailable`, `IpvsError::Netlink`, `LinkError::Connection` | `UNAVAILABLE` |
//! | `IpvsError::ConnTable` (the kernel's `/proc` table unreadable) | `INTERNAL` |
//! | `Kernel { errno }` | by errno, see [`errno_code`] |
//!
//! A command of an apply that the kernel would refuse at its point in the input
//! ([`CommandError`]) is `ALREADY_EXISTS` (`-A` of an existing service, `-a` of an existing real
//! server), `NOT_FOUND` (a missing service for `-E -D -Z`, a missing real server for `-e -d`),
//! `FAILED_PRECONDITION` (a real-server command on a missing service: the request may be right,
//! the table is not ready for it) or `INVALID_ARGUMENT` (a broken rule); its trailers say which
//! command (`command-index`, `line`) and the kernel's errno for the same refusal (`errno`), or
//! for a broken rule the reason alone (`reason`).
//!
//! A desired table that breaks a rule ([`TableError`]) is `INVALID_ARGUMENT`; a plan the kernel
//! refused half-way ([`ApplyError::Refused`]) is `ABORTED`, whatever the kernel's reason, because
//! the changes made were undone (or the message says they could not be); a change the kernel
//! accepted but silently cut short ([`ApplyError::Ignored`]) is `FAILED_PRECONDITION`.
//!
//! A scheduler or persistence engine the kernel lacks is `FAILED_PRECONDITION`, not
//! `INVALID_ARGUMENT`: the request named a valid choice of the API, and the same request succeeds
//! once the node loads `ip_vs_<name>`; the fix is on the node, not in the request.
//!
//! The message is the error's own text, which carries the kernel's reason.

use tonic::{Code, Status};

use super::convert::FieldError;
use crate::ipvs::IpvsError;
use crate::link::LinkError;
use crate::state::{ApplyError, CommandError, Refusal, TableError};

/// Longest message a status carries. The message travels in an HTTP/2 header, and errors may
/// quote the request (a name, a value): an unbounded one would break the connection instead
/// of reporting the error.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// `message`, cut at a character boundary to [`MAX_MESSAGE_BYTES`] with an ellipsis.
pub fn bounded(message: String) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let mut end = MAX_MESSAGE_BYTES - '…'.len_utf8();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

impl From<FieldError> for Status {
    fn from(e: FieldError) -> Self {
        Status::invalid_argument(bounded(e.to_string()))
    }
}

impl From<IpvsError> for Status {
    fn from(e: IpvsError) -> Self {
        // The kernel answers ESRCH to every request naming a missing service: say so.
        if let IpvsError::Kernel {
            errno: libc::ESRCH, ..
        } = e
        {
            return Status::not_found(bounded(IpvsError::ServiceNotFound.to_string()));
        }
        Status::new(ipvs_code(&e), bounded(e.to_string()))
    }
}

impl From<TableError> for Status {
    fn from(e: TableError) -> Self {
        Status::invalid_argument(bounded(e.to_string()))
    }
}

impl From<CommandError> for Status {
    fn from(e: CommandError) -> Self {
        let code = match e.refusal {
            Refusal::ServiceExists | Refusal::DestExists => Code::AlreadyExists,
            Refusal::NoSuchService | Refusal::NoSuchDest => Code::NotFound,
            Refusal::ServiceNotDefined => Code::FailedPrecondition,
            Refusal::Invalid(_) => Code::InvalidArgument,
        };
        let mut status = Status::new(code, bounded(e.to_string()));
        let trailers = status.metadata_mut();
        trailers.insert("command-index", e.index.into());
        trailers.insert("line", e.line.into());
        match e.refusal.errno() {
            Some(errno) => {
                trailers.insert("errno", errno.into());
            }
            // A broken rule has no errno: the reason alone, without the command's words.
            None => {
                if let Ok(reason) = e.refusal.to_string().parse() {
                    trailers.insert("reason", reason);
                }
            }
        }
        status
    }
}

impl From<ApplyError> for Status {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Refused { .. } => Status::aborted(bounded(e.to_string())),
            ApplyError::Ignored { .. } => Status::failed_precondition(bounded(e.to_string())),
        }
    }
}

impl From<LinkError> for Status {
    fn from(e: LinkError) -> Self {
        Status::new(link_code(&e), bounded(e.to_string()))
    }
}

pub fn ipvs_code(e: &IpvsError) -> Code {
    match e {
        IpvsError::Invalid(_) => Code::InvalidArgument,
        IpvsError::ServiceNotFound
        | IpvsError::DestinationNotFound
        | IpvsError::DaemonNotRunning => Code::NotFound,
        IpvsError::ServiceExists | IpvsError::DestinationExists | IpvsError::DaemonRunning => {
            Code::AlreadyExists
        }
        IpvsError::SchedulerNotFound(_) | IpvsError::PersistenceEngineNotFound(_) => {
            Code::FailedPrecondition
        }
        IpvsError::PermissionDenied => Code::PermissionDenied,
        IpvsError::Unavailable | IpvsError::Netlink(_) => Code::Unavailable,
        IpvsError::ConnTable(_) => Code::Internal,
        IpvsError::Kernel { errno, .. } => errno_code(*errno),
    }
}

pub fn link_code(e: &LinkError) -> Code {
    match e {
        LinkError::InvalidName { .. } | LinkError::InvalidPrefix { .. } => Code::InvalidArgument,
        LinkError::LinkNotFound(_) | LinkError::AddressNotFound { .. } => Code::NotFound,
        LinkError::LinkExists(_) | LinkError::AddressExists { .. } => Code::AlreadyExists,
        LinkError::NotSupported { .. } | LinkError::Ipv6Disabled { .. } => Code::FailedPrecondition,
        LinkError::PermissionDenied { .. } => Code::PermissionDenied,
        LinkError::Kernel { errno, .. } => errno_code(*errno),
        LinkError::Connection(_) => Code::Unavailable,
    }
}

/// A kernel refusal the lower layers did not name: the errno's usual meaning.
pub fn errno_code(errno: i32) -> Code {
    match errno {
        libc::EINVAL | libc::ERANGE => Code::InvalidArgument,
        libc::ESRCH | libc::ENOENT | libc::ENODEV => Code::NotFound,
        libc::EEXIST => Code::AlreadyExists,
        libc::EPERM | libc::EACCES => Code::PermissionDenied,
        libc::ENOMEM | libc::ENOBUFS | libc::ENOSPC => Code::ResourceExhausted,
        libc::EBUSY => Code::FailedPrecondition,
        libc::EOPNOTSUPP | libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT => Code::FailedPrecondition,
        _ => Code::Internal,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let cases: Vec<(String, usize, bool)> = vec![
            ("short".into(), 5, false),
            ("x".repeat(MAX_MESSAGE_BYTES), MAX_MESSAGE_BYTES, false),
            ("x".repeat(MAX_MESSAGE_BYTES + 1), MAX_MESSAGE_BYTES, true),
            // Multi-byte characters straddling the cut are dropped whole.
            ("é".repeat(MAX_MESSAGE_BYTES), MAX_MESSAGE_BYTES - 1, true),
        ];
        for (message, len, cut) in cases {
            let b = bounded(message.clone());
            assert_eq!(b.len(), len, "{}", &message[..8]);
            assert_eq!(b.ends_with('…'), cut);
        }
    }

    use std::net::IpAddr;

    use super::*;
    use crate::api::convert::Problem;
    use crate::ipvs::ValidationError;
    use crate::link::Cidr;

    fn kernel(errno: i32, message: &str) -> IpvsError {
        IpvsError::Kernel {
            op: "new_dest",
            errno,
            message: message.into(),
        }
    }

    #[test]
    fn ipvs_errors() {
        let cases: Vec<(IpvsError, Code, &str)> = vec![
            (
                ValidationError::Weight(70000).into(),
                Code::InvalidArgument,
                "weight 70000 is out of range 0..65535",
            ),
            (
                ValidationError::ZeroPortNotPersistent.into(),
                Code::InvalidArgument,
                "a service with port 0 must be persistent",
            ),
            (
                IpvsError::ServiceNotFound,
                Code::NotFound,
                "Service not defined",
            ),
            (
                IpvsError::DestinationNotFound,
                Code::NotFound,
                "No such destination",
            ),
            (
                IpvsError::DaemonNotRunning,
                Code::NotFound,
                "no sync daemon running",
            ),
            (
                IpvsError::ServiceExists,
                Code::AlreadyExists,
                "Service already exists",
            ),
            (
                IpvsError::DestinationExists,
                Code::AlreadyExists,
                "Destination already exists",
            ),
            (
                IpvsError::DaemonRunning,
                Code::AlreadyExists,
                "sync daemon already running",
            ),
            (
                IpvsError::SchedulerNotFound("twos".into()),
                Code::FailedPrecondition,
                "Scheduler not found: twos",
            ),
            (
                IpvsError::PersistenceEngineNotFound("sip".into()),
                Code::FailedPrecondition,
                "Persistence engine not found: sip",
            ),
            (
                IpvsError::PermissionDenied,
                Code::PermissionDenied,
                "permission denied (you must be root or have CAP_NET_ADMIN)",
            ),
            (
                IpvsError::Unavailable,
                Code::Unavailable,
                "IPVS is not available in this kernel (generic netlink family \"IPVS\" not found); load it with `modprobe ip_vs`",
            ),
            (
                IpvsError::Netlink("connection closed".into()),
                Code::Unavailable,
                "netlink: connection closed",
            ),
            (
                IpvsError::ConnTable(
                    "cannot read /proc/self/net/ip_vs_conn: Is a directory".into(),
                ),
                Code::Internal,
                "connection table: cannot read /proc/self/net/ip_vs_conn: Is a directory",
            ),
            (
                kernel(libc::ESRCH, "No such process"),
                Code::NotFound,
                "Service not defined",
            ),
            (
                kernel(libc::EINVAL, "Invalid argument"),
                Code::InvalidArgument,
                "new_dest: Invalid argument (errno 22)",
            ),
            (
                kernel(libc::ENOMEM, "Cannot allocate memory"),
                Code::ResourceExhausted,
                "new_dest: Cannot allocate memory (errno 12)",
            ),
            (
                kernel(libc::ENOENT, "No such file or directory"),
                Code::NotFound,
                "new_dest: No such file or directory (errno 2)",
            ),
            (
                kernel(libc::EEXIST, "File exists"),
                Code::AlreadyExists,
                "new_dest: File exists (errno 17)",
            ),
            (
                kernel(libc::EPERM, "Operation not permitted"),
                Code::PermissionDenied,
                "new_dest: Operation not permitted (errno 1)",
            ),
            (
                kernel(libc::EIO, "Input/output error"),
                Code::Internal,
                "new_dest: Input/output error (errno 5)",
            ),
        ];
        for (err, code, message) in cases {
            let what = format!("{err:?}");
            let status = Status::from(err);
            assert_eq!((status.code(), status.message()), (code, message), "{what}");
        }
    }

    #[test]
    fn link_errors() {
        let addr: IpAddr = "192.0.2.1".parse().expect("test address");
        let cidr = Cidr::new(addr, 24).expect("test cidr");
        let cases: Vec<(LinkError, Code, &str)> = vec![
            (
                LinkError::InvalidName {
                    name: "a b".into(),
                    reason: "contains whitespace".into(),
                },
                Code::InvalidArgument,
                "link name \"a b\" contains whitespace",
            ),
            (
                LinkError::InvalidPrefix {
                    address: addr,
                    prefix_len: 33,
                    max: 32,
                },
                Code::InvalidArgument,
                "prefix length 33 is invalid for 192.0.2.1: the maximum is 32",
            ),
            (
                LinkError::LinkNotFound("nosuchlink".into()),
                Code::NotFound,
                "link \"nosuchlink\" not found",
            ),
            (
                LinkError::AddressNotFound {
                    link: "dummy1".into(),
                    cidr,
                },
                Code::NotFound,
                "address 192.0.2.1/24 not found on link \"dummy1\"",
            ),
            (
                LinkError::LinkExists("dummy1".into()),
                Code::AlreadyExists,
                "link \"dummy1\" already exists",
            ),
            (
                LinkError::AddressExists {
                    link: "dummy1".into(),
                    cidr,
                },
                Code::AlreadyExists,
                "address 192.0.2.1/24 already exists on link \"dummy1\"",
            ),
            (
                LinkError::NotSupported {
                    op: "create dummy link",
                    target: "dummy1".into(),
                },
                Code::FailedPrecondition,
                "cannot create dummy link \"dummy1\": not supported by this kernel",
            ),
            (
                LinkError::PermissionDenied { op: "add address" },
                Code::PermissionDenied,
                "cannot add address: permission denied (CAP_NET_ADMIN is required)",
            ),
            (
                LinkError::Ipv6Disabled {
                    link: "dummy1".into(),
                    cidr: Cidr::new("2001:db8::1".parse().expect("address"), 128).expect("cidr"),
                },
                Code::FailedPrecondition,
                "cannot add address 2001:db8::1/128: IPv6 is disabled on link \"dummy1\"",
            ),
            (
                LinkError::Kernel {
                    op: "delete link",
                    errno: libc::EBUSY,
                    message: "Device or resource busy".into(),
                },
                Code::FailedPrecondition,
                "cannot delete link: Device or resource busy (errno 16)",
            ),
            (
                LinkError::Kernel {
                    op: "create dummy link",
                    errno: libc::EINVAL,
                    message: "Invalid argument".into(),
                },
                Code::InvalidArgument,
                "cannot create dummy link: Invalid argument (errno 22)",
            ),
            (
                LinkError::Connection("cannot list links: A netlink request failed".into()),
                Code::Unavailable,
                "netlink connection: cannot list links: A netlink request failed",
            ),
        ];
        for (err, code, message) in cases {
            let what = format!("{err:?}");
            let status = Status::from(err);
            assert_eq!((status.code(), status.message()), (code, message), "{what}");
        }
    }

    #[test]
    fn errnos() {
        let cases = [
            (libc::EINVAL, Code::InvalidArgument),
            (libc::ERANGE, Code::InvalidArgument),
            (libc::ESRCH, Code::NotFound),
            (libc::ENOENT, Code::NotFound),
            (libc::ENODEV, Code::NotFound),
            (libc::EEXIST, Code::AlreadyExists),
            (libc::EPERM, Code::PermissionDenied),
            (libc::EACCES, Code::PermissionDenied),
            (libc::ENOMEM, Code::ResourceExhausted),
            (libc::ENOBUFS, Code::ResourceExhausted),
            (libc::ENOSPC, Code::ResourceExhausted),
            (libc::EBUSY, Code::FailedPrecondition),
            (libc::EOPNOTSUPP, Code::FailedPrecondition),
            (libc::EAFNOSUPPORT, Code::FailedPrecondition),
            (libc::EPROTONOSUPPORT, Code::FailedPrecondition),
            (libc::EIO, Code::Internal),
            (libc::EFAULT, Code::Internal),
            (0, Code::Internal),
            (9999, Code::Internal),
        ];
        for (errno, code) in cases {
            assert_eq!(errno_code(errno), code, "errno {errno}");
        }
    }

    #[test]
    fn field_errors_are_invalid_argument() {
        let status = Status::from(FieldError::new("service.key", Problem::Missing));
        assert_eq!(
            (status.code(), status.message()),
            (Code::InvalidArgument, "invalid service.key: is required")
        );
    }
}
