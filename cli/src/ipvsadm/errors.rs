//! The agent's refusals in ipvsadm's words.
//!
//! ipvsadm turns a kernel errno into text with libipvs's `ipvs_strerror`, which depends on the
//! call that failed: ESRCH is "No such service" for `-D` but "Service not defined" for `-a`.
//! The agent answers with a gRPC status; this module recovers the errno (from the status's
//! metadata or message when the agent names it, otherwise from the status code and the call)
//! and looks it up in the same table. With no errno to be had, the agent's own message is
//! printed.

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

const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const ESRCH: i32 = 3;
const EIO: i32 = 5;
const ENODEV: i32 = 19;
const ENOMEM: i32 = 12;
const EEXIST: i32 = 17;
const EINVAL: i32 = 22;
const EMSGSIZE: i32 = 90;
const ENOPROTOOPT: i32 = 92;
const EOPNOTSUPP: i32 = 95;
const ERANGE: i32 = 34;
const EAFNOSUPPORT: i32 = 97;

/// Linux errno names and glibc's `strerror` texts for the errors IPVS returns.
const ERRNOS: &[(i32, &str, &str)] = &[
    (EPERM, "EPERM", "Operation not permitted"),
    (EIO, "EIO", "Input/output error"),
    (ENOENT, "ENOENT", "No such file or directory"),
    (ESRCH, "ESRCH", "No such process"),
    (ENOMEM, "ENOMEM", "Cannot allocate memory"),
    (ENODEV, "ENODEV", "No such device"),
    (EEXIST, "EEXIST", "File exists"),
    (EINVAL, "EINVAL", "Invalid argument"),
    (EMSGSIZE, "EMSGSIZE", "Message too long"),
    (ENOPROTOOPT, "ENOPROTOOPT", "Protocol not available"),
    (EOPNOTSUPP, "EOPNOTSUPP", "Operation not supported"),
    (ERANGE, "ERANGE", "Numerical result out of range"),
    (
        EAFNOSUPPORT,
        "EAFNOSUPPORT",
        "Address family not supported by protocol",
    ),
];

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
        None => ERRNOS
            .iter()
            .find(|(n, _, _)| *n == errno)
            .map(|(_, _, text)| text.to_string())
            .unwrap_or_else(|| format!("Unknown error {errno}")),
    }
}

/// An errno number or name.
fn errno_from_word(word: &str) -> Option<i32> {
    let word = word.trim();
    if let Ok(n) = word.parse::<i32>() {
        return (n != 0).then_some(n.abs());
    }
    ERRNOS
        .iter()
        .find(|(_, name, _)| *name == word)
        .map(|(n, _, _)| *n)
}

/// The kernel errno the agent reported, if it did: a metadata entry (`errno`, `ipvs-errno`,
/// `kernel-errno`, `x-errno`), `(os error N)` or `errno N` in the message, an errno name
/// (`ESRCH`) or its `strerror` text in the message.
pub fn errno_hint(status: &Status) -> Option<i32> {
    for key in ["errno", "ipvs-errno", "kernel-errno", "x-errno"] {
        if let Some(n) = status
            .metadata()
            .get(key)
            .and_then(|v| v.to_str().ok())
            .and_then(errno_from_word)
        {
            return Some(n);
        }
    }
    let msg = status.message();
    let number_after = |marker: &str| {
        msg.find(marker).and_then(|at| {
            let rest = msg[at + marker.len()..].trim_start_matches([' ', '=', ':']);
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<i32>().ok().filter(|n| *n != 0)
        })
    };
    if let Some(n) = number_after("os error").or_else(|| number_after("errno")) {
        return Some(n);
    }
    let words: Vec<&str> = msg
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    if let Some((n, _, _)) = ERRNOS.iter().find(|(_, name, _)| words.contains(name)) {
        return Some(*n);
    }
    ERRNOS
        .iter()
        .find(|(_, _, text)| msg.contains(text))
        .map(|(n, _, _)| *n)
}

fn mentions(msg: &str, words: &[&str]) -> bool {
    let msg = msg.to_ascii_lowercase();
    words.iter().any(|w| msg.contains(w))
}

/// The errno a status code stands for in call `op`, when the agent did not name one.
fn errno_from_code(op: Op, status: &Status) -> Option<i32> {
    let msg = status.message();
    Some(match status.code() {
        Code::AlreadyExists => EEXIST,
        Code::NotFound => match op {
            Op::CreateService => ENOENT,
            Op::UpdateService if mentions(msg, &["schedul", "persistence engine"]) => ENOENT,
            Op::UpdateDestination | Op::DeleteDestination
                if mentions(msg, &["destination", "real server", "dest "]) =>
            {
                ENOENT
            }
            // The kernel's answer to a missing multicast interface.
            Op::StartDaemon => ENODEV,
            _ => ESRCH,
        },
        // A scheduler or engine the node lacks (the agent says FAILED_PRECONDITION).
        Code::FailedPrecondition
            if matches!(op, Op::CreateService | Op::UpdateService)
                && mentions(
                    msg,
                    &["scheduler not found", "persistence engine not found"],
                ) =>
        {
            ENOENT
        }
        // The agent's own validation has clearer words than ipvsadm's EINVAL line; a kernel
        // EINVAL comes with its errno and is mapped above.
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
    status.code() == Code::Unavailable && mentions(status.message(), &["ipvs is not available"])
}

/// What ipvsadm would print for the agent's refusal of call `op`.
pub fn ipvsadm_message(op: Op, status: &Status) -> String {
    if is_ipvs_missing(status) {
        return NO_IPVS.to_string();
    }
    match errno_hint(status).or_else(|| errno_from_code(op, status)) {
        Some(errno) => ipvs_strerror(op, errno),
        None if status.message().is_empty() => format!("{:?}", status.code()),
        None => status.message().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use tonic::metadata::MetadataValue;

    use super::*;

    #[test]
    fn codes_map_to_ipvsadm_words_per_call() {
        let cases: &[(Op, Code, &str, &str)] = &[
            (
                Op::CreateService,
                Code::AlreadyExists,
                "service exists",
                "Service already exists",
            ),
            (
                Op::CreateService,
                Code::NotFound,
                "no scheduler",
                "Scheduler or persistence engine not found",
            ),
            (
                Op::UpdateService,
                Code::NotFound,
                "service not found",
                "No such service",
            ),
            (
                Op::UpdateService,
                Code::NotFound,
                "scheduler ip_vs_foo missing",
                "Scheduler or persistence engine not found",
            ),
            (Op::DeleteService, Code::NotFound, "", "No such service"),
            (Op::Zero, Code::NotFound, "", "No such service"),
            (Op::GetService, Code::NotFound, "", "No such service"),
            (
                Op::AddDestination,
                Code::NotFound,
                "service 1.2.3.4:80 not found",
                "Service not defined",
            ),
            (
                Op::AddDestination,
                Code::AlreadyExists,
                "",
                "Destination already exists",
            ),
            (
                Op::UpdateDestination,
                Code::NotFound,
                "no destination 1.1.1.1:80",
                "No such destination",
            ),
            (
                Op::UpdateDestination,
                Code::NotFound,
                "service not found",
                "Service not defined",
            ),
            (
                Op::DeleteDestination,
                Code::NotFound,
                "real server missing",
                "No such destination",
            ),
            (
                Op::DeleteDestination,
                Code::NotFound,
                "",
                "Service not defined",
            ),
            (
                Op::CreateService,
                Code::InvalidArgument,
                "new_service: Invalid argument (errno 22)",
                "Invalid operation.  Possibly wrong module version, address not unicast, ...",
            ),
            (
                Op::AddDestination,
                Code::InvalidArgument,
                "lower threshold 9 is above upper threshold 1",
                "lower threshold 9 is above upper threshold 1",
            ),
            // What ipvs-agent says (agent/src/ipvs/error.rs).
            (
                Op::UpdateService,
                Code::NotFound,
                "Service not defined",
                "No such service",
            ),
            (
                Op::UpdateDestination,
                Code::NotFound,
                "Service not defined",
                "Service not defined",
            ),
            (
                Op::UpdateDestination,
                Code::NotFound,
                "No such destination",
                "No such destination",
            ),
            (
                Op::CreateService,
                Code::FailedPrecondition,
                "Scheduler not found: twos",
                "Scheduler or persistence engine not found",
            ),
            (
                Op::CreateService,
                Code::FailedPrecondition,
                "Persistence engine not found: sip",
                "Scheduler or persistence engine not found",
            ),
            (
                Op::AddDestination,
                Code::Internal,
                "new_dest: Input/output error (errno 5)",
                "Input/output error",
            ),
            (
                Op::Flush,
                Code::PermissionDenied,
                "permission denied (you must be root or have CAP_NET_ADMIN)",
                "Permission denied (you must be root)",
            ),
            (
                Op::ListServices,
                Code::Unavailable,
                "IPVS is not available in this kernel (generic netlink family \"IPVS\" not found); load it with `modprobe ip_vs`",
                NO_IPVS,
            ),
            (
                Op::Flush,
                Code::PermissionDenied,
                "",
                "Permission denied (you must be root)",
            ),
            (
                Op::Flush,
                Code::ResourceExhausted,
                "",
                "Memory allocation problem",
            ),
            (
                Op::Flush,
                Code::Internal,
                "netlink socket closed",
                "netlink socket closed",
            ),
            (
                Op::Flush,
                Code::FailedPrecondition,
                "",
                "FailedPrecondition",
            ),
            // What ipvs-agent says for sync daemons (agent/src/api/config.rs).
            (
                Op::StartDaemon,
                Code::AlreadyExists,
                "sync daemon already running",
                "Daemon has already run",
            ),
            (
                Op::StopDaemon,
                Code::NotFound,
                "no sync daemon running",
                "No daemon is running",
            ),
            (
                Op::StartDaemon,
                Code::NotFound,
                "interface nosuch0 not found",
                "No such device",
            ),
            (
                Op::StartDaemon,
                Code::InvalidArgument,
                "start daemon: No such device (os error 19)",
                "No such device",
            ),
            (
                Op::SetTimeouts,
                Code::InvalidArgument,
                "set timeouts: Invalid argument (errno 22)",
                "Invalid operation.  Possibly wrong module version, address not unicast, ...",
            ),
        ];
        for (op, code, msg, want) in cases {
            let got = ipvsadm_message(*op, &Status::new(*code, *msg));
            assert_eq!(got, *want, "{op:?} {code:?} {msg:?}");
        }
    }

    #[test]
    fn a_named_errno_wins_over_the_code() {
        let cases: &[(Op, &str, &str)] = &[
            (
                Op::UpdateDestination,
                "kernel said: No such process",
                "Service not defined",
            ),
            (
                Op::UpdateDestination,
                "IPVS_CMD_SET_DEST: ENOENT",
                "No such destination",
            ),
            (
                Op::DeleteDestination,
                "netlink error (os error 2)",
                "No such destination",
            ),
            (
                Op::UpdateService,
                "errno=2",
                "Scheduler or persistence engine not found",
            ),
            (Op::AddDestination, "ENOENT", "No such file or directory"),
            (
                Op::CreateService,
                "EAFNOSUPPORT",
                "Operation not supported with specified address family",
            ),
        ];
        for (op, msg, want) in cases {
            let got = ipvsadm_message(*op, &Status::new(Code::NotFound, *msg));
            assert_eq!(got, *want, "{op:?} {msg:?}");
        }
        let mut status = Status::new(Code::NotFound, "not found");
        status
            .metadata_mut()
            .insert("errno", MetadataValue::from_static("ESRCH"));
        assert_eq!(
            ipvsadm_message(Op::DeleteDestination, &status),
            "Service not defined"
        );
        status
            .metadata_mut()
            .insert("errno", MetadataValue::from_static("2"));
        assert_eq!(
            ipvsadm_message(Op::DeleteDestination, &status),
            "No such destination"
        );
    }
}
