//! The one place where errors become gRPC statuses.
//!
//! | error | code |
//! |---|---|
//! | malformed request field ([`FieldError`]: also a `google.rpc.BadRequest` naming it), `IpvsError::Invalid` (an edit's names its field too: [`edit_refused`]), `LinkError::InvalidName`/`InvalidPrefix` | `INVALID_ARGUMENT` |
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
//! the table is not ready for it) or `INVALID_ARGUMENT` (a broken rule); its detail names the
//! command (`command`, `line`), the kernel's errno for the same refusal, and the refusal alone
//! (`cause`).
//!
//! A desired table that breaks a rule ([`TableError`]) is `INVALID_ARGUMENT`; a plan the kernel
//! refused half-way ([`ApplyError::Refused`]) is `ABORTED`, whatever the kernel's reason, because
//! the changes made were undone (or the message says they could not be); a change the kernel
//! accepted but silently cut short ([`ApplyError::Ignored`]) is `FAILED_PRECONDITION`.
//!
//! An edit of one service or real server ([`EditError`]) the kernel cut short is
//! `FAILED_PRECONDITION` (CHANGE_IGNORED), as a plan's; a refused real server of a new service
//! keeps its refusal's code, and its detail's `change`/`changes` say which one it was.
//!
//! A scheduler or persistence engine the kernel lacks is `FAILED_PRECONDITION`, not
//! `INVALID_ARGUMENT`: the request named a valid choice of the API, and the same request succeeds
//! once the node loads `ip_vs_<name>`; the fix is on the node, not in the request.
//!
//! The message is the error's own text, which carries the kernel's reason. Every status also
//! carries an [`ErrorDetail`] (reason, errno, operation, object, the failing change of a
//! batch; see `errors.proto`), so programs, ipvsctl among them, never parse the words. The
//! write RPCs add the object they were about ([`super::audit::logged`]).

use ipvs_proto::errno as en;
use ipvs_proto::v1::ErrorDetail;
use tonic::{Code, Status};

use crate::attach::{AttachError, StoreError};
use crate::convert::FieldError;
use crate::convert::state::SpecInputError;
use crate::declared::StateError;
use crate::ipvs::IpvsError;
use crate::kernel::EditError;
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

/// A status with its [`ErrorDetail`]: every error the agent returns is made here.
fn status(code: Code, message: String, detail: ErrorDetail) -> Status {
    ipvs_proto::details::status(code, bounded(message), &detail)
}

fn detail(reason: &str, errno: i32, operation: &str) -> ErrorDetail {
    ErrorDetail {
        reason: reason.to_owned(),
        errno,
        errno_name: en::name(errno).unwrap_or_default().to_owned(),
        operation: operation.to_owned(),
        ..ErrorDetail::default()
    }
}

/// A refusal with no errno, named by its code.
fn plain(code: Code, message: String) -> Status {
    let reason = match code {
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Unavailable => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    status(code, message, detail(reason, 0, ""))
}

/// A change the kernel accepted but cut short, and what became of it.
pub fn ignored(message: String) -> Status {
    status(
        Code::FailedPrecondition,
        message,
        detail("CHANGE_IGNORED", 0, ""),
    )
}

/// A request that breaks a rule; nothing was changed.
pub fn invalid(message: String) -> Status {
    plain(Code::InvalidArgument, message)
}

/// The agent's own failure, not the request's.
pub fn internal(message: String) -> Status {
    plain(Code::Internal, message)
}

/// The reason and errno of an IPVS refusal: a named one stands for the errno libipvs names it
/// after (so a program, like ipvsadm, can tell ESRCH from ENOENT).
pub fn ipvs_detail(e: &IpvsError) -> ErrorDetail {
    let (reason, errno, op) = match e {
        IpvsError::Invalid(_) => ("INVALID_ARGUMENT", 0, ""),
        IpvsError::Unavailable => ("IPVS_UNAVAILABLE", 0, ""),
        IpvsError::ServiceNotFound => ("SERVICE_NOT_FOUND", en::ESRCH, ""),
        IpvsError::ServiceExists => ("SERVICE_EXISTS", en::EEXIST, ""),
        IpvsError::DestinationNotFound => ("DESTINATION_NOT_FOUND", en::ENOENT, ""),
        IpvsError::DestinationExists => ("DESTINATION_EXISTS", en::EEXIST, ""),
        IpvsError::SchedulerNotFound(_) => ("SCHEDULER_NOT_FOUND", en::ENOENT, ""),
        IpvsError::PersistenceEngineNotFound(_) => ("PERSISTENCE_ENGINE_NOT_FOUND", en::ENOENT, ""),
        IpvsError::DaemonRunning => ("DAEMON_RUNNING", en::EEXIST, ""),
        IpvsError::DaemonNotRunning => ("DAEMON_NOT_RUNNING", en::ESRCH, ""),
        IpvsError::PermissionDenied => ("PERMISSION_DENIED", en::EPERM, ""),
        IpvsError::Kernel { op, errno, .. } => ("KERNEL", *errno, *op),
        IpvsError::Netlink(_) => ("NETLINK", 0, ""),
        IpvsError::ConnTable(_) => ("INTERNAL", 0, ""),
    };
    detail(reason, errno, op)
}

/// The reason and errno of a link or address refusal.
pub fn link_detail(e: &LinkError) -> ErrorDetail {
    let (reason, errno, op) = match e {
        LinkError::InvalidName { .. } | LinkError::InvalidPrefix { .. } => {
            ("INVALID_ARGUMENT", 0, "")
        }
        LinkError::LinkNotFound(_) => ("LINK_NOT_FOUND", en::ENODEV, ""),
        LinkError::LinkExists(_) => ("LINK_EXISTS", en::EEXIST, ""),
        LinkError::AddressExists { .. } => ("ADDRESS_EXISTS", en::EEXIST, ""),
        LinkError::AddressNotFound { .. } => ("ADDRESS_NOT_FOUND", en::EADDRNOTAVAIL, ""),
        LinkError::NotSupported { op, .. } => ("LINK_NOT_SUPPORTED", en::EOPNOTSUPP, *op),
        LinkError::PermissionDenied { op } => ("PERMISSION_DENIED", en::EPERM, *op),
        LinkError::Ipv6Disabled { .. } => ("IPV6_DISABLED", en::EACCES, "add address"),
        LinkError::Kernel { op, errno, .. } => ("KERNEL", *errno, *op),
        LinkError::Connection(_) => ("NETLINK", 0, ""),
    };
    detail(reason, errno, op)
}

impl From<FieldError> for Status {
    fn from(e: FieldError) -> Self {
        let d = ErrorDetail {
            object: e.field.clone(),
            ..detail("INVALID_ARGUMENT", 0, "")
        };
        let violation = ipvs_proto::details::FieldViolation {
            field: e.field.clone(),
            description: e.problem.to_string(),
        };
        ipvs_proto::details::bad_request(e.to_string(), &d, violation)
    }
}

impl From<EditError> for Status {
    fn from(e: EditError) -> Self {
        match e {
            EditError::Kernel(e) => e.into(),
            EditError::Ignored { .. } => ignored(e.to_string()),
            EditError::Destination {
                change,
                total,
                ref cause,
                ..
            } => {
                let like = match cause.as_ref() {
                    EditError::Kernel(k) => Status::from(k.clone()),
                    EditError::Ignored { .. } => ignored(String::new()),
                    EditError::Destination { .. } => internal(String::new()),
                };
                let s = ipvs_proto::details::status_like(&like, e.to_string());
                ipvs_proto::details::with_detail(s, |d| {
                    d.change = u32::try_from(change).unwrap_or(u32::MAX);
                    d.changes = u32::try_from(total + 1).unwrap_or(u32::MAX);
                })
            }
        }
    }
}

/// An edit's refusal, naming the request field at fault (under `at`, the request's field that
/// holds the service or real server) when an ipvsadm rule refused it; the message is the
/// rule's own, as [`From<EditError>`] gives it.
pub fn edit_refused(e: EditError, at: &str) -> Status {
    let field = match &e {
        EditError::Kernel(IpvsError::Invalid(v)) => {
            crate::convert::ipvs::rule_field(v).map(|f| (format!("{at}.{f}"), v.to_string()))
        }
        EditError::Destination { change, cause, .. } => match cause.as_ref() {
            EditError::Kernel(IpvsError::Invalid(v)) => {
                crate::convert::ipvs::rule_field(v).map(|f| {
                    let index = change.saturating_sub(2);
                    (format!("{at}.destinations[{index}].{f}"), v.to_string())
                })
            }
            _ => None,
        },
        _ => None,
    };
    let status = Status::from(e);
    match field {
        Some((field, description)) => ipvs_proto::details::with_violation(
            status,
            ipvs_proto::details::FieldViolation { field, description },
        ),
        None => status,
    }
}

impl From<IpvsError> for Status {
    fn from(e: IpvsError) -> Self {
        status(ipvs_code(&e), e.to_string(), ipvs_detail(&e))
    }
}

impl From<TableError> for Status {
    fn from(e: TableError) -> Self {
        plain(Code::InvalidArgument, e.to_string())
    }
}

impl From<CommandError> for Status {
    fn from(e: CommandError) -> Self {
        let (code, reason) = match e.refusal {
            Refusal::ServiceExists => (Code::AlreadyExists, "SERVICE_EXISTS"),
            Refusal::DestExists => (Code::AlreadyExists, "DESTINATION_EXISTS"),
            Refusal::NoSuchService => (Code::NotFound, "SERVICE_NOT_FOUND"),
            Refusal::NoSuchDest => (Code::NotFound, "DESTINATION_NOT_FOUND"),
            Refusal::ServiceNotDefined => (Code::FailedPrecondition, "SERVICE_NOT_FOUND"),
            Refusal::Invalid(_) => (Code::InvalidArgument, "INVALID_ARGUMENT"),
        };
        let d = ErrorDetail {
            object: e.command.clone(),
            command: u32::try_from(e.index + 1).unwrap_or(u32::MAX),
            line: e.line,
            cause: e.refusal.to_string(),
            ..detail(reason, e.refusal.errno().unwrap_or(0), "")
        };
        status(code, e.to_string(), d)
    }
}

impl From<ApplyError> for Status {
    fn from(e: ApplyError) -> Self {
        match &e {
            ApplyError::Refused {
                number,
                total,
                error,
                ..
            } => {
                let d = ErrorDetail {
                    change: u32::try_from(*number).unwrap_or(u32::MAX),
                    changes: u32::try_from(*total).unwrap_or(u32::MAX),
                    ..ipvs_detail(error)
                };
                status(Code::Aborted, e.to_string(), d)
            }
            ApplyError::Ignored { .. } => status(
                Code::FailedPrecondition,
                e.to_string(),
                detail("CHANGE_IGNORED", 0, ""),
            ),
        }
    }
}

impl From<LinkError> for Status {
    fn from(e: LinkError) -> Self {
        status(link_code(&e), e.to_string(), link_detail(&e))
    }
}

impl From<SpecInputError> for Status {
    fn from(e: SpecInputError) -> Self {
        match e {
            SpecInputError::Field(f) => f.into(),
            SpecInputError::Spec(s) => plain(Code::InvalidArgument, s.to_string()),
        }
    }
}

impl From<StateError> for Status {
    fn from(e: StateError) -> Self {
        let message = e.to_string();
        match e {
            StateError::Stale { .. } => status(
                Code::FailedPrecondition,
                message,
                detail("REVISION_MOVED", 0, ""),
            ),
            StateError::PolicyUnknown(_)
            | StateError::PolicyAmbiguous(_)
            | StateError::NoPolicies
            | StateError::NothingBefore => plain(Code::FailedPrecondition, message),
            StateError::NoRevision(_) => plain(Code::NotFound, message),
            StateError::ServiceNotFound(k) => status(
                Code::NotFound,
                message,
                ErrorDetail {
                    object: k.to_string(),
                    ..ipvs_detail(&IpvsError::ServiceNotFound)
                },
            ),
            StateError::DestNotFound { .. } => status(
                Code::NotFound,
                message,
                ipvs_detail(&IpvsError::DestinationNotFound),
            ),
            StateError::ReadIpvs(i) => status(ipvs_code(&i), message, ipvs_detail(&i)),
            StateError::ReadLinks(l) => status(Code::Unavailable, message, link_detail(&l)),
            StateError::Refused { number, total, .. } => status(
                Code::Aborted,
                message,
                ErrorDetail {
                    change: u32::try_from(number).unwrap_or(u32::MAX),
                    changes: u32::try_from(total).unwrap_or(u32::MAX),
                    ..detail("CHANGE_REFUSED", 0, "")
                },
            ),
            StateError::DrainRefused { error, .. } => {
                status(Code::Aborted, message, ipvs_detail(&error))
            }
            StateError::Persist { .. }
            | StateError::DrainNotKept { .. }
            | StateError::Export(_) => plain(Code::Internal, message),
        }
    }
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        let code = match e {
            StoreError::Load(_) => Code::InvalidArgument,
            StoreError::NotFound(_) => Code::NotFound,
            StoreError::Io { .. } => Code::Internal,
        };
        plain(code, e.to_string())
    }
}

impl From<AttachError> for Status {
    fn from(e: AttachError) -> Self {
        let code = match e {
            AttachError::Store(e) => return e.into(),
            AttachError::NotFound(_) => Code::NotFound,
            AttachError::Attached { .. } | AttachError::Quarantined(_) | AttachError::Held(_) => {
                Code::FailedPrecondition
            }
            AttachError::NoService | AttachError::Interval(_) => Code::InvalidArgument,
            AttachError::Save(_) => Code::Internal,
        };
        plain(code, e.to_string())
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
    use crate::convert::Problem;
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
            // The handle names ESRCH for the calls about a service; for any other call
            // (a daemon's, say) it means only what the kernel says.
            (
                kernel(libc::ESRCH, "No such process"),
                Code::NotFound,
                "new_dest: No such process (errno 3)",
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
    fn every_status_names_its_reason_and_errno() {
        use ipvs_proto::details::detail;
        let cidr = Cidr::new("192.0.2.1".parse().expect("addr"), 24).expect("cidr");
        let cases: Vec<(Status, &str, i32, &str, &str)> = vec![
            (
                IpvsError::ServiceNotFound.into(),
                "SERVICE_NOT_FOUND",
                3,
                "ESRCH",
                "",
            ),
            (
                IpvsError::DestinationNotFound.into(),
                "DESTINATION_NOT_FOUND",
                2,
                "ENOENT",
                "",
            ),
            (
                IpvsError::ServiceExists.into(),
                "SERVICE_EXISTS",
                17,
                "EEXIST",
                "",
            ),
            (
                IpvsError::SchedulerNotFound("twos".into()).into(),
                "SCHEDULER_NOT_FOUND",
                2,
                "ENOENT",
                "",
            ),
            (
                IpvsError::DaemonNotRunning.into(),
                "DAEMON_NOT_RUNNING",
                3,
                "ESRCH",
                "",
            ),
            (IpvsError::Unavailable.into(), "IPVS_UNAVAILABLE", 0, "", ""),
            (
                kernel(libc::EINVAL, "Invalid argument").into(),
                "KERNEL",
                22,
                "EINVAL",
                "new_dest",
            ),
            (
                LinkError::AddressExists {
                    link: "dummy1".into(),
                    cidr,
                }
                .into(),
                "ADDRESS_EXISTS",
                17,
                "EEXIST",
                "",
            ),
            (
                LinkError::LinkNotFound("x".into()).into(),
                "LINK_NOT_FOUND",
                19,
                "ENODEV",
                "",
            ),
            (
                StateError::NothingBefore.into(),
                "FAILED_PRECONDITION",
                0,
                "",
                "",
            ),
            (
                StateError::Stale {
                    expected: 1,
                    current: 2,
                }
                .into(),
                "REVISION_MOVED",
                0,
                "",
                "",
            ),
        ];
        for (status, reason, errno, name, op) in cases {
            let d = detail(&status).unwrap_or_else(|| panic!("no detail: {status:?}"));
            assert_eq!(
                (
                    d.reason.as_str(),
                    d.errno,
                    d.errno_name.as_str(),
                    d.operation.as_str()
                ),
                (reason, errno, name, op),
                "{status:?}"
            );
        }
        let refused = StateError::Refused {
            number: 4,
            total: 6,
            message: "change 4 of 6 failed".into(),
        };
        let d = detail(&refused.into()).expect("detail");
        assert_eq!(
            (d.reason.as_str(), d.change, d.changes),
            ("CHANGE_REFUSED", 4, 6)
        );
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
        let violations = ipvs_proto::details::field_violations(&status);
        assert_eq!(
            violations
                .iter()
                .map(|v| (v.field.as_str(), v.description.as_str()))
                .collect::<Vec<_>>(),
            [("service.key", "is required")]
        );
    }
}
