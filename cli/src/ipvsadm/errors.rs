//! The agent's refusals in ipvsadm's words.
//!
//! ipvsadm turns a kernel errno into text with libipvs's `ipvs_strerror`, which depends on the
//! call that failed: ESRCH is "No such service" for `-D` but "Service not defined" for `-a`.
//! The agent answers with a gRPC status whose `ErrorDetail` names the errno (the kernel's, or
//! the one its named refusal stands for); this module looks it up in the same table. A status
//! without a detail (an agent too old to send one) is read by its code alone. With no errno to
//! be had, the agent's own message is printed.

use tonic::{Code, Status};

/// The agent call that failed, standing for the libipvs function ipvsadm would have called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    CreateService,
    UpdateService,
    DeleteService,
    GetService,
    ListServices,
    AddDestination,
    UpdateDestination,
    DeleteDestination,
    Flush,
    Zero,
    GetInfo,
    SetTimeouts,
    StartDaemon,
    StopDaemon,
    GetTimeouts,
    ListDaemons,
    ListConnections,
    Apply,
}

use ipvs_proto::errno::{
    EAFNOSUPPORT, EEXIST, EINVAL, EMSGSIZE, ENODEV, ENOENT, ENOMEM, ENOPROTOOPT, EOPNOTSUPP, EPERM,
    ESRCH,
};

/// libipvs's `ipvs_strerror` table: per call first, then for any call.
fn ipvs_strerror(op: Op, errno: i32) -> String {
    let specific = match (op, errno) {
        (Op::CreateService, EEXIST) => Some("Service already exists"),
        (Op::CreateService | Op::UpdateService, ENOENT) => {
            Some("Scheduler or persistence engine not found")
        }
        (Op::UpdateService | Op::DeleteService | Op::Zero, ESRCH) => Some("No such service"),
        (Op::AddDestination | Op::UpdateDestination | Op::DeleteDestination, ESRCH) => {
            Some("Service not defined")
        }
        (Op::AddDestination, EEXIST) => Some("Destination already exists"),
        (Op::UpdateDestination | Op::DeleteDestination, ENOENT) => Some("No such destination"),
        (Op::ListServices | Op::GetService, ESRCH) => Some("No such service"),
        (Op::StartDaemon, EEXIST) => Some("Daemon has already run"),
        (Op::StopDaemon, ESRCH) => Some("No daemon is running"),
        (_, EPERM) => Some("Permission denied (you must be root)"),
        (_, EINVAL) => {
            Some("Invalid operation.  Possibly wrong module version, address not unicast, ...")
        }
        (_, ENOPROTOOPT) => Some("Protocol not available"),
        (_, ENOMEM) => Some("Memory allocation problem"),
        (_, EOPNOTSUPP) => Some("Operation not supported with IPv6"),
        (_, EAFNOSUPPORT) => Some("Operation not supported with specified address family"),
        (_, EMSGSIZE) => Some("Module is wrong version"),
        _ => None,
    };
    match specific {
        Some(s) => s.to_string(),
        None => ipvs_proto::errno::text(errno)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("Unknown error {errno}")),
    }
}

/// The errno a status code most likely stands for in call `op`, for a status without a detail.
fn errno_from_code(op: Op, status: &Status) -> Option<i32> {
    Some(match status.code() {
        Code::AlreadyExists => EEXIST,
        Code::NotFound => match op {
            Op::CreateService => ENOENT,
            // The kernel's answer to a missing multicast interface.
            Op::StartDaemon => ENODEV,
            _ => ESRCH,
        },
        Code::PermissionDenied | Code::Unauthenticated => EPERM,
        Code::ResourceExhausted => ENOMEM,
        _ => return None,
    })
}

/// ipvsadm's words when it cannot talk to IPVS at all (it exits 2).
pub const NO_IPVS: &str = "Can't initialize ipvs: Protocol not available\n\
                           Are you sure that IP Virtual Server is built in the kernel or as module?";

/// Whether the agent says its node has no IPVS (module not loaded or not built).
pub fn is_ipvs_missing(status: &Status) -> bool {
    ipvs_proto::details::detail(status).is_some_and(|d| d.reason == "IPVS_UNAVAILABLE")
}

/// What ipvsadm would print for the agent's refusal of call `op`.
pub fn ipvsadm_message(op: Op, status: &Status) -> String {
    if is_ipvs_missing(status) {
        return NO_IPVS.to_string();
    }
    let errno = match ipvs_proto::details::detail(status) {
        Some(d) => (d.errno != 0).then_some(d.errno),
        None => errno_from_code(op, status),
    };
    match errno {
        Some(errno) => ipvs_strerror(op, errno),
        None if status.message().is_empty() => format!("{:?}", status.code()),
        None => status.message().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use ipvs_proto::v1::ErrorDetail;

    use super::*;

    /// A refusal as the agent makes it: a message, and a detail with the reason and errno.
    fn agent(code: Code, message: &str, reason: &str, errno: i32) -> Status {
        let d = ErrorDetail {
            reason: reason.into(),
            errno,
            ..ErrorDetail::default()
        };
        ipvs_proto::details::status(code, message.into(), &d)
    }

    #[test]
    fn details_map_to_ipvsadm_words_per_call() {
        use Code::*;
        let cases: &[(Op, Status, &str)] = &[
            (
                Op::CreateService,
                agent(
                    AlreadyExists,
                    "Service already exists",
                    "SERVICE_EXISTS",
                    EEXIST,
                ),
                "Service already exists",
            ),
            (
                Op::CreateService,
                agent(
                    FailedPrecondition,
                    "Scheduler not found: twos",
                    "SCHEDULER_NOT_FOUND",
                    ENOENT,
                ),
                "Scheduler or persistence engine not found",
            ),
            (
                Op::CreateService,
                agent(
                    FailedPrecondition,
                    "Persistence engine not found: sip",
                    "PERSISTENCE_ENGINE_NOT_FOUND",
                    ENOENT,
                ),
                "Scheduler or persistence engine not found",
            ),
            (
                Op::UpdateService,
                agent(NotFound, "Service not defined", "SERVICE_NOT_FOUND", ESRCH),
                "No such service",
            ),
            (
                Op::UpdateService,
                agent(
                    FailedPrecondition,
                    "Scheduler not found: twos",
                    "SCHEDULER_NOT_FOUND",
                    ENOENT,
                ),
                "Scheduler or persistence engine not found",
            ),
            (
                Op::DeleteService,
                agent(NotFound, "Service not defined", "SERVICE_NOT_FOUND", ESRCH),
                "No such service",
            ),
            (
                Op::Zero,
                agent(NotFound, "Service not defined", "SERVICE_NOT_FOUND", ESRCH),
                "No such service",
            ),
            (
                Op::GetService,
                agent(NotFound, "Service not defined", "SERVICE_NOT_FOUND", ESRCH),
                "No such service",
            ),
            (
                Op::AddDestination,
                agent(NotFound, "Service not defined", "SERVICE_NOT_FOUND", ESRCH),
                "Service not defined",
            ),
            (
                Op::AddDestination,
                agent(
                    AlreadyExists,
                    "Destination already exists",
                    "DESTINATION_EXISTS",
                    EEXIST,
                ),
                "Destination already exists",
            ),
            (
                Op::UpdateDestination,
                agent(NotFound, "Service not defined", "SERVICE_NOT_FOUND", ESRCH),
                "Service not defined",
            ),
            (
                Op::UpdateDestination,
                agent(
                    NotFound,
                    "No such destination",
                    "DESTINATION_NOT_FOUND",
                    ENOENT,
                ),
                "No such destination",
            ),
            (
                Op::DeleteDestination,
                agent(
                    NotFound,
                    "No such destination",
                    "DESTINATION_NOT_FOUND",
                    ENOENT,
                ),
                "No such destination",
            ),
            (
                Op::DeleteDestination,
                agent(NotFound, "Service not defined", "SERVICE_NOT_FOUND", ESRCH),
                "Service not defined",
            ),
            (
                Op::CreateService,
                agent(
                    InvalidArgument,
                    "new_service: Invalid argument (errno 22)",
                    "KERNEL",
                    EINVAL,
                ),
                "Invalid operation.  Possibly wrong module version, address not unicast, ...",
            ),
            // The agent's own validation: its words, clearer than ipvsadm's EINVAL line.
            (
                Op::AddDestination,
                agent(
                    InvalidArgument,
                    "lower threshold 9 is above upper threshold 1",
                    "INVALID_ARGUMENT",
                    0,
                ),
                "lower threshold 9 is above upper threshold 1",
            ),
            (
                Op::AddDestination,
                agent(
                    Internal,
                    "new_dest: Input/output error (errno 5)",
                    "KERNEL",
                    5,
                ),
                "Input/output error",
            ),
            (
                Op::Flush,
                agent(
                    PermissionDenied,
                    "permission denied (you must be root or have CAP_NET_ADMIN)",
                    "PERMISSION_DENIED",
                    EPERM,
                ),
                "Permission denied (you must be root)",
            ),
            (
                Op::ListServices,
                agent(
                    Unavailable,
                    "IPVS is not available in this kernel",
                    "IPVS_UNAVAILABLE",
                    0,
                ),
                NO_IPVS,
            ),
            (
                Op::Flush,
                agent(Internal, "netlink socket closed", "NETLINK", 0),
                "netlink socket closed",
            ),
            (
                Op::StartDaemon,
                agent(
                    AlreadyExists,
                    "sync daemon already running",
                    "DAEMON_RUNNING",
                    EEXIST,
                ),
                "Daemon has already run",
            ),
            (
                Op::StopDaemon,
                agent(
                    NotFound,
                    "no sync daemon running",
                    "DAEMON_NOT_RUNNING",
                    ESRCH,
                ),
                "No daemon is running",
            ),
            (
                Op::StartDaemon,
                agent(
                    NotFound,
                    "start daemon: No such device (errno 19)",
                    "KERNEL",
                    ENODEV,
                ),
                "No such device",
            ),
            (
                Op::SetTimeouts,
                agent(
                    InvalidArgument,
                    "set timeouts: Invalid argument (errno 22)",
                    "KERNEL",
                    EINVAL,
                ),
                "Invalid operation.  Possibly wrong module version, address not unicast, ...",
            ),
            (
                Op::AddDestination,
                agent(NotFound, "x", "KERNEL", ENOENT),
                "No such file or directory",
            ),
            (
                Op::CreateService,
                agent(FailedPrecondition, "x", "KERNEL", EAFNOSUPPORT),
                "Operation not supported with specified address family",
            ),
            (
                Op::Flush,
                agent(Internal, "x", "KERNEL", 4242),
                "Unknown error 4242",
            ),
        ];
        for (op, status, want) in cases {
            assert_eq!(ipvsadm_message(*op, status), *want, "{op:?} {status:?}");
        }
    }

    /// An agent that sends no detail is read by its code, never by its words.
    #[test]
    fn without_a_detail_the_code_decides() {
        use Code::*;
        let cases: &[(Op, Code, &str, &str)] = &[
            (
                Op::CreateService,
                AlreadyExists,
                "",
                "Service already exists",
            ),
            (
                Op::CreateService,
                NotFound,
                "",
                "Scheduler or persistence engine not found",
            ),
            (
                Op::UpdateService,
                NotFound,
                "Scheduler not found: twos",
                "No such service",
            ),
            (Op::AddDestination, NotFound, "", "Service not defined"),
            (
                Op::DeleteDestination,
                NotFound,
                "No such destination",
                "Service not defined",
            ),
            (Op::StartDaemon, NotFound, "", "No such device"),
            (
                Op::Flush,
                PermissionDenied,
                "",
                "Permission denied (you must be root)",
            ),
            (
                Op::Flush,
                ResourceExhausted,
                "",
                "Memory allocation problem",
            ),
            (
                Op::Flush,
                Internal,
                "netlink socket closed",
                "netlink socket closed",
            ),
            (Op::Flush, FailedPrecondition, "", "FailedPrecondition"),
            (
                Op::ListServices,
                Unavailable,
                "IPVS is not available in this kernel",
                "IPVS is not available in this kernel",
            ),
        ];
        for (op, code, msg, want) in cases {
            let got = ipvsadm_message(*op, &Status::new(*code, *msg));
            assert_eq!(got, *want, "{op:?} {code:?} {msg:?}");
        }
    }
}
