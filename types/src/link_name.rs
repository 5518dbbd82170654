//! Interface names, checked the way the kernel's `dev_valid_name()` checks them.

use std::{fmt, str::FromStr};

use thiserror::Error;

/// Longest interface name in bytes: `IFNAMSIZ` (16) less the trailing NUL.
pub const MAX_NAME_LEN: usize = 15;

/// A name the kernel would refuse, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("link name {} {reason}", crate::quote(name))]
pub struct InvalidName {
    pub name: String,
    pub reason: String,
}

/// A name the kernel accepts for a network interface.
///
/// Checking up front turns a vague `EINVAL` from the kernel into an error that says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkName(String);

impl LinkName {
    /// Validates `name`: non-empty, at most 15 bytes, not `.` or `..`, and free of `/`, `:`,
    /// NUL and whitespace (the kernel's `isspace()`, which also counts byte 0xA0).
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidName> {
        let name = name.into();
        match invalid_reason(&name) {
            None => Ok(Self(name)),
            Some(reason) => Err(InvalidName { name, reason }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn invalid_reason(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Some("is empty".into());
    }
    if bytes.len() > MAX_NAME_LEN {
        return Some(format!("is longer than {MAX_NAME_LEN} bytes"));
    }
    if name == "." || name == ".." {
        return Some("is reserved".into());
    }
    bytes.iter().find_map(|&b| match b {
        b'/' => Some("contains '/'".into()),
        b':' => Some("contains ':'".into()),
        0 => Some("contains a NUL byte".into()),
        b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0xa0 => Some("contains whitespace".into()),
        _ => None,
    })
}

impl FromStr for LinkName {
    type Err = InvalidName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for LinkName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LinkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_like_dev_valid_name() {
        let cases: &[(&str, Option<&str>)] = &[
            ("dummy0", None),
            ("lo", None),
            ("a", None),
            ("a.b-c_d@e", None),
            ("fifteen-bytes15", None),
            ("ünïcode", None),
            ("...", None),
            ("", Some("is empty")),
            ("sixteen-bytes-16", Some("is longer than 15 bytes")),
            ("averyveryverylongname", Some("is longer than 15 bytes")),
            ("ééééééé12", Some("is longer than 15 bytes")),
            (".", Some("is reserved")),
            ("..", Some("is reserved")),
            ("a/b", Some("contains '/'")),
            ("eth0:1", Some("contains ':'")),
            ("a\0b", Some("contains a NUL byte")),
            ("a b", Some("contains whitespace")),
            ("a\tb", Some("contains whitespace")),
            ("a\nb", Some("contains whitespace")),
            ("a\x0bb", Some("contains whitespace")),
            ("a\x0cb", Some("contains whitespace")),
            ("a\rb", Some("contains whitespace")),
            // U+00E0 is C3 A0 in UTF-8; the kernel's isspace() treats 0xA0 as a space.
            ("voilà", Some("contains whitespace")),
        ];
        for &(name, reason) in cases {
            let got = LinkName::new(name);
            match reason {
                None => assert_eq!(got.map(|n| n.to_string()), Ok(name.to_string()), "{name:?}"),
                Some(reason) => assert_eq!(
                    got,
                    Err(InvalidName {
                        name: name.into(),
                        reason: reason.into()
                    }),
                    "{name:?}"
                ),
            }
        }
    }

    #[test]
    fn error_message_names_the_problem() {
        let cases = [
            (
                "averyveryverylongname",
                r#"link name "averyveryverylongname" is longer than 15 bytes"#,
            ),
            ("a b", r#"link name "a b" contains whitespace"#),
            ("", r#"link name "" is empty"#),
        ];
        for (name, message) in cases {
            let got = name.parse::<LinkName>().map_err(|e| e.to_string());
            assert_eq!(got, Err(message.to_string()));
        }
    }
}
