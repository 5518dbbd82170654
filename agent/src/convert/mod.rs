//! Proto ↔ domain conversions: pure functions, no I/O.
//!
//! Requests are parsed into domain types here, before any core call; a refusal is a
//! [`FieldError`] naming the request field at fault by its proto path (`service.key.endpoint.port`),
//! so a client can tell which of its fields to fix. Replies are built from domain values and
//! cannot fail.

pub mod config;
pub mod ipvs;
pub mod link;
pub mod policy;
#[cfg(test)]
mod props;
pub mod state;
pub mod stats;
pub mod table;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

pub use ipvs_types::quote;

/// A request field that cannot become a domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FieldError {
    /// Proto field path, e.g. `service.key.endpoint.address.v4`.
    pub field: String,
    pub problem: Problem,
}

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("is required")]
    Missing,
    /// An enum left at its zero value where a choice is required.
    #[error("must be set ({0} is not a choice)")]
    Unspecified(&'static str),
    #[error("{0} is not a known value")]
    UnknownEnum(i32),
    /// Not an IP address as people write it; the text is quoted ([`quote`]).
    #[error("{0} is not an IP address")]
    NotAnAddress(String),
    #[error("{value} is above the maximum {max}")]
    TooLarge { value: u64, max: u64 },
    #[error("must be non-zero")]
    Zero,
    #[error("is read-only here: {0}")]
    ReadOnly(&'static str),
    #[error("{value:?} is below the minimum {min:?}")]
    TooShort { value: Duration, min: Duration },
    #[error("{value:?} is above the maximum {max:?}")]
    TooLong { value: Duration, max: Duration },
    #[error("{0}")]
    Invalid(String),
}

impl FieldError {
    pub fn new(field: impl Into<String>, problem: Problem) -> Self {
        FieldError {
            field: field.into(),
            problem,
        }
    }

    /// Places this error under `parent`: `port` inside `endpoint` becomes `endpoint.port`.
    pub fn at(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_owned()
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.problem)
    }
}

/// Prefixes the field path of an error result.
pub trait At<T> {
    fn at(self, parent: &str) -> Result<T, FieldError>;
}

impl<T> At<T> for Result<T, FieldError> {
    fn at(self, parent: &str) -> Result<T, FieldError> {
        self.map_err(|e| e.at(parent))
    }
}

/// Names the field of a bare problem.
pub trait Field<T> {
    fn field(self, name: &str) -> Result<T, FieldError>;
}

impl<T> Field<T> for Result<T, Problem> {
    fn field(self, name: &str) -> Result<T, FieldError> {
        self.map_err(|p| FieldError::new(name, p))
    }
}

/// Converts a required sub-message, reporting its errors under `field`.
pub fn nested<M, T>(
    message: Option<&M>,
    field: &str,
    convert: impl FnOnce(&M) -> Result<T, FieldError>,
) -> Result<T, FieldError> {
    match message {
        Some(m) => convert(m).at(field),
        None => Err(FieldError::new(field, Problem::Missing)),
    }
}

/// Converts an optional sub-message, reporting its errors under `field`.
pub fn optional<M, T>(
    message: Option<&M>,
    field: &str,
    convert: impl FnOnce(&M) -> Result<T, FieldError>,
) -> Result<Option<T>, FieldError> {
    message.map(|m| convert(m).at(field)).transpose()
}

/// An IP address as people write it: "192.168.100.1", "2001:db8::1". Required.
pub fn ip_address(s: &str) -> Result<IpAddr, Problem> {
    if s.is_empty() {
        return Err(Problem::Missing);
    }
    s.parse().map_err(|_| Problem::NotAnAddress(quote(s)))
}

/// An optional IP address: empty is none.
pub fn optional_ip_address(s: &str) -> Result<Option<IpAddr>, Problem> {
    (!s.is_empty()).then(|| ip_address(s)).transpose()
}

/// A non-negative `google.protobuf.Duration`.
pub fn duration(d: &prost_types::Duration) -> Result<Duration, Problem> {
    non_negative(d).ok_or_else(|| {
        Problem::Invalid(format!(
            "{} is not a non-negative duration",
            show_duration(d)
        ))
    })
}

/// `d` if it is not negative. prost's `TryFrom` negates a negative duration for its error,
/// which overflows (a panic in debug builds) for the most negative number of seconds.
pub fn non_negative(d: &prost_types::Duration) -> Option<Duration> {
    let n = d.normalized();
    let seconds = u64::try_from(n.seconds).ok()?;
    let nanos = u32::try_from(n.nanos).ok()?;
    Some(Duration::new(seconds, nanos))
}

/// `d` as prost shows it (`-1.500s`), which it cannot for the most negative number of
/// seconds: its `Display` negates that, and overflows.
pub fn show_duration(d: &prost_types::Duration) -> String {
    let n = d.normalized();
    if n.seconds != i64::MIN {
        return d.to_string();
    }
    match n.nanos {
        0 => format!("{}s", n.seconds),
        nanos => format!("{}.{:09}s", n.seconds, nanos.unsigned_abs()),
    }
}

/// A duration whose unset or zero value means `default`.
pub fn duration_or(
    d: Option<&prost_types::Duration>,
    default: Duration,
) -> Result<Duration, Problem> {
    match d.map(duration).transpose()? {
        None => Ok(default),
        Some(v) if v.is_zero() => Ok(default),
        Some(v) => Ok(v),
    }
}

/// A duration the kernel keeps in whole seconds (timeouts); unset is 0.
pub fn whole_seconds(d: Option<&prost_types::Duration>) -> Result<u32, Problem> {
    let Some(d) = d else { return Ok(0) };
    let value = duration(d)?;
    if value.subsec_nanos() != 0 {
        return Err(Problem::Invalid(format!(
            "{} is not a whole number of seconds",
            show_duration(d)
        )));
    }
    u32::try_from(value.as_secs()).map_err(|_| Problem::TooLarge {
        value: value.as_secs(),
        max: u32::MAX.into(),
    })
}

pub fn duration_to_proto(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

pub fn seconds_to_proto(seconds: u32) -> prost_types::Duration {
    duration_to_proto(Duration::from_secs(seconds.into()))
}

/// A `u32` wire value that must fit `u16` (ports).
pub fn u16_field(value: u32) -> Result<u16, Problem> {
    u16::try_from(value).map_err(|_| Problem::TooLarge {
        value: value.into(),
        max: u16::MAX.into(),
    })
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn d(seconds: i64, nanos: i32) -> prost_types::Duration {
        prost_types::Duration { seconds, nanos }
    }

    /// prost's `TryFrom` and `Display` of a duration negate its seconds, which overflowed (a
    /// panic in debug builds) for the most negative ones.
    #[test]
    fn the_most_negative_durations_are_refused() {
        let refused = |what: &str| {
            Err(Problem::Invalid(format!(
                "{what} is not a non-negative duration"
            )))
        };
        assert_eq!(duration(&d(i64::MIN, 0)), refused("-9223372036854775808s"));
        assert_eq!(
            duration(&d(i64::MIN, -1)),
            refused("-9223372036854775808.000000001s")
        );
        assert_eq!(
            duration(&d(i64::MIN + 1, -1_000_000_000)),
            refused("-9223372036854775808s")
        );
        assert_eq!(duration(&d(-1, -500_000_000)), refused("-1.500s"));
        assert_eq!(
            stats::watch_interval(Some(&d(i64::MIN, 0))),
            Err(Problem::Invalid(
                "-9223372036854775808s is not a positive duration".into()
            ))
        );
    }

    #[test]
    fn paths_compose_from_the_leaf_up() {
        let leaf = FieldError::new("port", Problem::Zero);
        assert_eq!(
            leaf.clone().at("key").at("service").field,
            "service.key.port"
        );
        assert_eq!(
            FieldError::new("", Problem::Missing)
                .at("address")
                .to_string(),
            "invalid address: is required"
        );
        assert_eq!(
            nested(None::<&u32>, "service", |_| Ok(())),
            Err(FieldError::new("service", Problem::Missing))
        );
        assert_eq!(
            nested(Some(&7u32), "service", |_| -> Result<(), _> {
                Err(leaf.clone())
            }),
            Err(FieldError::new("service.port", Problem::Zero))
        );
        assert_eq!(optional(None::<&u32>, "service", |v| Ok(*v)), Ok(None));
        assert_eq!(
            u16_field(65536).field("port").map_err(|e| e.to_string()),
            Err("invalid port: 65536 is above the maximum 65535".to_owned())
        );
        assert_eq!(u16_field(65535), Ok(65535));
    }

    #[test]
    fn addresses() {
        let garbage = "\u{0}".repeat(4096);
        let long_v6 = "1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16:17:18:19:20";
        let cases: Vec<(&str, Result<IpAddr, Problem>)> = vec![
            ("10.0.0.1", Ok(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))),
            ("::1", Ok(IpAddr::V6(Ipv6Addr::LOCALHOST))),
            (
                "2001:DB8:0::1",
                Ok(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))),
            ),
            (
                "::ffff:10.0.0.1",
                Ok(IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped())),
            ),
            ("", Err(Problem::Missing)),
            ("10.0.0", Err(Problem::NotAnAddress("\"10.0.0\"".into()))),
            (
                "10.0.0.256",
                Err(Problem::NotAnAddress("\"10.0.0.256\"".into())),
            ),
            (
                "10.0.0.1.2",
                Err(Problem::NotAnAddress("\"10.0.0.1.2\"".into())),
            ),
            (
                "10.0.0.1/32",
                Err(Problem::NotAnAddress("\"10.0.0.1/32\"".into())),
            ),
            (
                "10.0.0.1 ",
                Err(Problem::NotAnAddress("\"10.0.0.1 \"".into())),
            ),
            ("[::1]", Err(Problem::NotAnAddress("\"[::1]\"".into()))),
            (
                "fe80::1%eth0",
                Err(Problem::NotAnAddress("\"fe80::1%eth0\"".into())),
            ),
            (
                "localhost",
                Err(Problem::NotAnAddress("\"localhost\"".into())),
            ),
            // Quoted as Rust does, so control characters cannot reach a log line raw.
            (
                "10.0.0.1\n",
                Err(Problem::NotAnAddress("\"10.0.0.1\\n\"".into())),
            ),
            // Up to 48 bytes are quoted whole, longer values are cut.
            (
                long_v6,
                Err(Problem::NotAnAddress(format!(
                    "{:?}... (50 bytes)",
                    &long_v6[..48]
                ))),
            ),
            (
                &garbage,
                Err(Problem::NotAnAddress(format!(
                    "{:?}... (4096 bytes)",
                    &garbage[..48]
                ))),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(ip_address(input), want, "{input:?}");
        }
        assert_eq!(optional_ip_address(""), Ok(None));
        assert_eq!(
            optional_ip_address("224.0.0.81"),
            Ok(Some(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 81))))
        );
        assert_eq!(
            optional_ip_address("x"),
            Err(Problem::NotAnAddress("\"x\"".into()))
        );
    }

    #[test]
    fn whole_seconds_for_the_kernel() {
        let cases: Vec<(Option<prost_types::Duration>, Result<u32, Problem>)> = vec![
            (None, Ok(0)),
            (Some(d(0, 0)), Ok(0)),
            (Some(d(900, 0)), Ok(900)),
            (Some(d(u32::MAX.into(), 0)), Ok(u32::MAX)),
            (
                Some(d(1, 500_000_000)),
                Err(Problem::Invalid(
                    "1.500s is not a whole number of seconds".into(),
                )),
            ),
            (
                Some(d(0, 1)),
                Err(Problem::Invalid(
                    "0.000000001s is not a whole number of seconds".into(),
                )),
            ),
            (
                Some(d(-5, 0)),
                Err(Problem::Invalid(
                    "-5s is not a non-negative duration".into(),
                )),
            ),
            (
                Some(d(-1, -500_000_000)),
                Err(Problem::Invalid(
                    "-1.500s is not a non-negative duration".into(),
                )),
            ),
            (
                Some(d(1 << 32, 0)),
                Err(Problem::TooLarge {
                    value: 1 << 32,
                    max: u32::MAX.into(),
                }),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(whole_seconds(input.as_ref()), want, "{input:?}");
        }
        for secs in [0, 1, 179, u32::MAX] {
            assert_eq!(whole_seconds(Some(&seconds_to_proto(secs))), Ok(secs));
        }
    }

    #[test]
    fn durations_with_a_default() {
        let default = Duration::from_secs(2);
        let cases: Vec<(Option<prost_types::Duration>, Result<Duration, Problem>)> = vec![
            (None, Ok(default)),
            (Some(d(0, 0)), Ok(default)),
            (Some(d(0, 500_000_000)), Ok(Duration::from_millis(500))),
            (Some(d(0, 1)), Ok(Duration::from_nanos(1))),
            (Some(d(60, 0)), Ok(Duration::from_secs(60))),
            (
                Some(d(-1, 0)),
                Err(Problem::Invalid(
                    "-1s is not a non-negative duration".into(),
                )),
            ),
            (
                Some(d(0, -1)),
                Err(Problem::Invalid(
                    "-0.000000001s is not a non-negative duration".into(),
                )),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(duration_or(input.as_ref(), default), want, "{input:?}");
        }
        for v in [
            Duration::ZERO,
            Duration::from_millis(1500),
            Duration::from_secs(3600),
        ] {
            assert_eq!(duration(&duration_to_proto(v)), Ok(v), "{v:?}");
        }
        // Beyond what a Duration message holds: the longest it can say.
        assert_eq!(duration_to_proto(Duration::MAX), d(i64::MAX, 999_999_999));
    }
}
