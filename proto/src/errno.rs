//! The Linux errnos IPVS and rtnetlink answer with: number, C name and glibc's `strerror`
//! text. One table for the agent (which names them in [`crate::v1::ErrorDetail`]) and
//! ipvsctl (which prints them as ipvsadm does).

pub const EPERM: i32 = 1;
pub const ENOENT: i32 = 2;
pub const ESRCH: i32 = 3;
pub const EIO: i32 = 5;
pub const ENOMEM: i32 = 12;
pub const EACCES: i32 = 13;
pub const EBUSY: i32 = 16;
pub const EEXIST: i32 = 17;
pub const ENODEV: i32 = 19;
pub const EINVAL: i32 = 22;
pub const ENOSPC: i32 = 28;
pub const ERANGE: i32 = 34;
pub const EMSGSIZE: i32 = 90;
pub const ENOPROTOOPT: i32 = 92;
pub const EPROTONOSUPPORT: i32 = 93;
pub const EOPNOTSUPP: i32 = 95;
pub const EAFNOSUPPORT: i32 = 97;
pub const EADDRNOTAVAIL: i32 = 99;
pub const ENOBUFS: i32 = 105;

/// (number, name, `strerror` text).
pub const ERRNOS: &[(i32, &str, &str)] = &[
    (EPERM, "EPERM", "Operation not permitted"),
    (ENOENT, "ENOENT", "No such file or directory"),
    (ESRCH, "ESRCH", "No such process"),
    (EIO, "EIO", "Input/output error"),
    (ENOMEM, "ENOMEM", "Cannot allocate memory"),
    (EACCES, "EACCES", "Permission denied"),
    (EBUSY, "EBUSY", "Device or resource busy"),
    (EEXIST, "EEXIST", "File exists"),
    (ENODEV, "ENODEV", "No such device"),
    (EINVAL, "EINVAL", "Invalid argument"),
    (ENOSPC, "ENOSPC", "No space left on device"),
    (ERANGE, "ERANGE", "Numerical result out of range"),
    (EMSGSIZE, "EMSGSIZE", "Message too long"),
    (ENOPROTOOPT, "ENOPROTOOPT", "Protocol not available"),
    (EPROTONOSUPPORT, "EPROTONOSUPPORT", "Protocol not supported"),
    (EOPNOTSUPP, "EOPNOTSUPP", "Operation not supported"),
    (
        EAFNOSUPPORT,
        "EAFNOSUPPORT",
        "Address family not supported by protocol",
    ),
    (
        EADDRNOTAVAIL,
        "EADDRNOTAVAIL",
        "Cannot assign requested address",
    ),
    (ENOBUFS, "ENOBUFS", "No buffer space available"),
];

/// The C name of `errno`, if the table has it.
pub fn name(errno: i32) -> Option<&'static str> {
    ERRNOS.iter().find(|(n, _, _)| *n == errno).map(|e| e.1)
}

/// The `strerror` text of `errno`, if the table has it.
pub fn text(errno: i32) -> Option<&'static str> {
    ERRNOS.iter().find(|(n, _, _)| *n == errno).map(|e| e.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_texts_match_the_c_library() {
        for (n, name, text) in ERRNOS {
            assert_eq!(
                std::io::Error::from_raw_os_error(*n).to_string(),
                format!("{text} (os error {n})"),
                "{name}"
            );
        }
        assert_eq!(super::name(ESRCH), Some("ESRCH"));
        assert_eq!(super::text(4242), None);
    }
}
