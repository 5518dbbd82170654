//! Kernel refusals to [`IpvsError`]: libipvs's `ipvs_strerror` table, as one pure function.
//! The same errno means different things per command (ENOENT is a missing scheduler when
//! adding a service but a missing real server when deleting one), so the command decides.

use super::cmd::Cmd;
use super::error::IpvsError;
use super::types::Service;

/// What the kernel's `errno` (positive) means for `cmd`. `service` is the service a
/// NEW/SET_SERVICE carried: its scheduler or persistence engine is what ENOENT refers to.
/// The kernel checks the scheduler first and answers ENOENT for either, so when a
/// persistence engine is set the missing one is taken to be the engine (a scheduler that
/// passed validation is a stock kernel module; a persistence engine is an extra one).
pub fn kernel_error(cmd: Cmd, errno: i32, service: Option<&Service>) -> IpvsError {
    use Cmd::*;
    match (cmd, errno) {
        (_, libc::EPERM) => IpvsError::PermissionDenied,
        (NewService, libc::EEXIST) => IpvsError::ServiceExists,
        (NewService | SetService, libc::ENOENT) => match service {
            Some(Service {
                pe_name: Some(pe), ..
            }) => IpvsError::PersistenceEngineNotFound(pe.clone()),
            Some(svc) => IpvsError::SchedulerNotFound(svc.scheduler.name().to_owned()),
            None => kernel(cmd, errno),
        },
        (
            SetService | DelService | GetService | Zero | NewDest | SetDest | DelDest | GetDest,
            libc::ESRCH,
        ) => IpvsError::ServiceNotFound,
        (NewDest, libc::EEXIST) => IpvsError::DestinationExists,
        (SetDest | DelDest, libc::ENOENT) => IpvsError::DestinationNotFound,
        (NewDaemon, libc::EEXIST) => IpvsError::DaemonRunning,
        (DelDaemon, libc::ESRCH) => IpvsError::DaemonNotRunning,
        _ => kernel(cmd, errno),
    }
}

fn kernel(cmd: Cmd, errno: i32) -> IpvsError {
    IpvsError::Kernel {
        op: cmd.op(),
        errno,
        message: strerror(errno),
    }
}

/// The C library's text for `errno`, without Rust's " (os error N)" suffix.
pub fn strerror(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::types::{Protocol, Scheduler, ServiceKey};

    fn svc(pe: Option<&str>) -> Service {
        let mut s = Service::new(
            ServiceKey::Endpoint {
                protocol: Protocol::Tcp,
                addr: "192.168.100.1".parse().expect("ip"),
                port: 80,
            },
            Scheduler::Wrr,
        );
        s.pe_name = pe.map(str::to_owned);
        s
    }

    fn k(cmd: Cmd, errno: i32, message: &str) -> IpvsError {
        IpvsError::Kernel {
            op: cmd.op(),
            errno,
            message: message.to_owned(),
        }
    }

    #[test]
    fn libipvs_table() {
        use Cmd::*;
        let plain = svc(None);
        let sip = svc(Some("sip"));
        let cases: Vec<(Cmd, i32, Option<&Service>, IpvsError)> = vec![
            (
                NewService,
                libc::EEXIST,
                Some(&plain),
                IpvsError::ServiceExists,
            ),
            (
                NewService,
                libc::ENOENT,
                Some(&plain),
                IpvsError::SchedulerNotFound("wrr".into()),
            ),
            (
                NewService,
                libc::ENOENT,
                Some(&sip),
                IpvsError::PersistenceEngineNotFound("sip".into()),
            ),
            (
                SetService,
                libc::ENOENT,
                Some(&plain),
                IpvsError::SchedulerNotFound("wrr".into()),
            ),
            (
                SetService,
                libc::ESRCH,
                Some(&plain),
                IpvsError::ServiceNotFound,
            ),
            (DelService, libc::ESRCH, None, IpvsError::ServiceNotFound),
            (GetService, libc::ESRCH, None, IpvsError::ServiceNotFound),
            (Zero, libc::ESRCH, None, IpvsError::ServiceNotFound),
            (NewDest, libc::ESRCH, None, IpvsError::ServiceNotFound),
            (NewDest, libc::EEXIST, None, IpvsError::DestinationExists),
            (SetDest, libc::ESRCH, None, IpvsError::ServiceNotFound),
            (SetDest, libc::ENOENT, None, IpvsError::DestinationNotFound),
            (DelDest, libc::ESRCH, None, IpvsError::ServiceNotFound),
            (DelDest, libc::ENOENT, None, IpvsError::DestinationNotFound),
            (NewDaemon, libc::EEXIST, None, IpvsError::DaemonRunning),
            (DelDaemon, libc::ESRCH, None, IpvsError::DaemonNotRunning),
            (Flush, libc::EPERM, None, IpvsError::PermissionDenied),
            (GetInfo, libc::EPERM, None, IpvsError::PermissionDenied),
            // The same errno elsewhere is just the kernel's word.
            (
                NewService,
                libc::EINVAL,
                Some(&plain),
                k(NewService, libc::EINVAL, "Invalid argument"),
            ),
            (
                DelService,
                libc::ENOENT,
                None,
                k(DelService, libc::ENOENT, "No such file or directory"),
            ),
            (
                NewDest,
                libc::ENOENT,
                None,
                k(NewDest, libc::ENOENT, "No such file or directory"),
            ),
            (
                DelDest,
                libc::EEXIST,
                None,
                k(DelDest, libc::EEXIST, "File exists"),
            ),
            (
                NewDaemon,
                libc::ESRCH,
                None,
                k(NewDaemon, libc::ESRCH, "No such process"),
            ),
            (
                SetDest,
                libc::EAFNOSUPPORT,
                None,
                k(
                    SetDest,
                    libc::EAFNOSUPPORT,
                    "Address family not supported by protocol",
                ),
            ),
            (
                NewService,
                libc::ENOENT,
                None,
                k(NewService, libc::ENOENT, "No such file or directory"),
            ),
        ];
        for (cmd, errno, service, want) in cases {
            assert_eq!(
                kernel_error(cmd, errno, service),
                want,
                "{cmd:?} errno {errno}"
            );
        }
    }

    #[test]
    fn kernel_errors_name_the_operation() {
        assert_eq!(
            kernel_error(Cmd::NewDest, libc::EINVAL, None).to_string(),
            "add destination: Invalid argument (errno 22)"
        );
    }
}
