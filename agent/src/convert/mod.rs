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
    Duration::try_from(*d).map_err(|_| Problem::Invalid(format!("{d} is not a non-negative duration")))
}

/// A duration whose unset or zero value means `default`.
pub fn duration_or(d: Option<&prost_types::Duration>, default: Duration) -> Result<Duration, Problem> {
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
        return Err(Problem::Invalid(format!("{d} is not a whole number of seconds")));
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
    use super::*;

    #[test]
    fn paths_compose_from_the_leaf_up() {
        let leaf = FieldError::new("port", Problem::Zero);
        assert_eq!(
            leaf.clone().at("endpoint").at("key").field,
            "key.endpoint.port"
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
}
