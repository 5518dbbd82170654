//! `google.protobuf.Duration`s of the API as the whole seconds and milliseconds ipvsctl
//! reads and prints.

use prost_types::Duration;

/// `secs` whole seconds; unset for 0, which the API reads as "none" or "unchanged".
pub fn from_secs(secs: u32) -> Option<Duration> {
    (secs != 0).then(|| Duration {
        seconds: i64::from(secs),
        nanos: 0,
    })
}

/// `ms` milliseconds; unset for 0, which the API reads as its default.
pub fn from_millis(ms: u64) -> Option<Duration> {
    (ms != 0).then(|| std_to_pb(std::time::Duration::from_millis(ms)))
}

/// A standard duration as the API's.
pub fn std_to_pb(d: std::time::Duration) -> Duration {
    Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// The API's duration as a standard one: unset or negative is zero.
pub fn to_std(d: Option<&Duration>) -> std::time::Duration {
    match d {
        Some(d) if d.seconds > 0 || (d.seconds == 0 && d.nanos > 0) => std::time::Duration::new(
            u64::try_from(d.seconds).unwrap_or(0),
            u32::try_from(d.nanos).unwrap_or(0),
        ),
        _ => std::time::Duration::ZERO,
    }
}

/// Whole seconds (a fraction is dropped), at most `u32::MAX`; unset is 0.
pub fn secs(d: Option<&Duration>) -> u32 {
    u32::try_from(to_std(d).as_secs()).unwrap_or(u32::MAX)
}

/// Whole milliseconds (a fraction is dropped); unset is 0.
pub fn millis(d: Option<&Duration>) -> u64 {
    u64::try_from(to_std(d).as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_milliseconds_round_trip_and_zero_is_unset() {
        assert_eq!(from_secs(0), None);
        assert_eq!(secs(from_secs(300).as_ref()), 300);
        assert_eq!(secs(from_secs(u32::MAX).as_ref()), u32::MAX);
        assert_eq!(from_millis(0), None);
        assert_eq!(
            from_millis(1500),
            Some(Duration {
                seconds: 1,
                nanos: 500_000_000
            })
        );
        assert_eq!(millis(from_millis(1500).as_ref()), 1500);
        assert_eq!(secs(from_millis(1500).as_ref()), 1);
        assert_eq!(secs(None), 0);
        assert_eq!(millis(None), 0);
        let negative = Duration {
            seconds: -5,
            nanos: 0,
        };
        assert_eq!(secs(Some(&negative)), 0);
        let huge = Duration {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(secs(Some(&huge)), u32::MAX);
    }
}
