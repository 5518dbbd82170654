//! `ipvs.agent.v1` statistics requests and samples.

use std::time::Duration;

use ipvs_proto::v1 as pb;

use super::ipvs::{key_to_proto, optional_key, stats_to_proto};
use super::{FieldError, Problem, non_negative, show_duration};
use crate::ipvs::{DestinationEntry, ServiceEntry, ServiceKey};

/// The kernel folds its counters and rate estimates every 2 s: sampling faster shows nothing new.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(2);
/// Below this a watcher would spend the agent's netlink socket on dumps.
pub const MIN_WATCH_INTERVAL: Duration = Duration::from_millis(100);
/// Above this a client is better served by `GetStats`; it also keeps timer arithmetic bounded.
pub const MAX_WATCH_INTERVAL: Duration = Duration::from_secs(3600);

pub fn get_stats(req: &pb::GetStatsRequest) -> Result<Option<ServiceKey>, FieldError> {
    optional_key(req.service.as_ref(), "service")
}

pub fn watch_stats(
    req: &pb::WatchStatsRequest,
) -> Result<(Option<ServiceKey>, Duration), FieldError> {
    Ok((
        optional_key(req.service.as_ref(), "service")?,
        watch_interval(req.interval.as_ref()).map_err(|p| FieldError::new("interval", p))?,
    ))
}

/// The sampling period: unset is [`DEFAULT_WATCH_INTERVAL`].
pub fn watch_interval(interval: Option<&prost_types::Duration>) -> Result<Duration, Problem> {
    let Some(d) = interval else {
        return Ok(DEFAULT_WATCH_INTERVAL);
    };
    let value = non_negative(d).ok_or_else(|| {
        Problem::Invalid(format!("{} is not a positive duration", show_duration(d)))
    })?;
    if value < MIN_WATCH_INTERVAL {
        return Err(Problem::TooShort {
            value,
            min: MIN_WATCH_INTERVAL,
        });
    }
    if value > MAX_WATCH_INTERVAL {
        return Err(Problem::TooLong {
            value,
            max: MAX_WATCH_INTERVAL,
        });
    }
    Ok(value)
}

pub fn service_stats_to_proto(
    entry: &ServiceEntry,
    dests: &[DestinationEntry],
) -> pb::ServiceStats {
    pb::ServiceStats {
        key: Some(key_to_proto(&entry.service.key)),
        stats: Some(stats_to_proto(&entry.stats)),
        destinations: dests
            .iter()
            .map(|d| pb::DestinationStats {
                address: d.dest.addr.to_string(),
                port: d.dest.port.into(),
                stats: Some(stats_to_proto(&d.stats)),
                active_connections: d.active_conns,
                inactive_connections: d.inactive_conns,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(seconds: i64, nanos: i32) -> Option<prost_types::Duration> {
        Some(prost_types::Duration { seconds, nanos })
    }

    #[test]
    fn intervals() {
        let cases: Vec<(Option<prost_types::Duration>, Result<Duration, Problem>)> = vec![
            (None, Ok(Duration::from_secs(2))),
            (d(0, 100_000_000), Ok(Duration::from_millis(100))),
            (d(5, 0), Ok(Duration::from_secs(5))),
            (d(3600, 0), Ok(Duration::from_secs(3600))),
            (
                d(0, 99_999_999),
                Err(Problem::TooShort {
                    value: Duration::from_nanos(99_999_999),
                    min: MIN_WATCH_INTERVAL,
                }),
            ),
            (
                d(0, 0),
                Err(Problem::TooShort {
                    value: Duration::ZERO,
                    min: MIN_WATCH_INTERVAL,
                }),
            ),
            (
                d(3601, 0),
                Err(Problem::TooLong {
                    value: Duration::from_secs(3601),
                    max: MAX_WATCH_INTERVAL,
                }),
            ),
            (
                d(-1, 0),
                Err(Problem::Invalid("-1s is not a positive duration".into())),
            ),
            (
                d(i64::MAX, 0),
                Err(Problem::TooLong {
                    value: Duration::from_secs(i64::MAX as u64),
                    max: MAX_WATCH_INTERVAL,
                }),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(watch_interval(input.as_ref()), want, "{input:?}");
        }
    }

    #[test]
    fn interval_message_names_the_field() {
        let req = pb::WatchStatsRequest {
            service: None,
            interval: d(0, 50_000_000),
        };
        assert_eq!(
            watch_stats(&req).map_err(|e| e.to_string()),
            Err("invalid interval: 50ms is below the minimum 100ms".to_owned())
        );
    }

    #[test]
    fn samples_write_keys_and_addresses_as_replies_do() {
        let service = crate::ipvs::Service::new(
            ServiceKey::Endpoint {
                protocol: crate::ipvs::Protocol::Udp,
                addr: "2001:db8::1".parse().expect("test address"),
                port: 53,
            },
            crate::ipvs::Scheduler::Rr,
        );
        let entry = ServiceEntry {
            service,
            stats: crate::ipvs::Stats {
                conns: 4,
                ..Default::default()
            },
        };
        let dest = DestinationEntry {
            dest: crate::ipvs::Destination::new("2001:db8:0:0::2".parse().expect("test"), 53),
            active_conns: 1,
            inactive_conns: 2,
            persistent_conns: 0,
            stats: crate::ipvs::Stats::default(),
        };
        let wire = service_stats_to_proto(&entry, &[dest]);
        assert_eq!(
            wire.key,
            Some(pb::ServiceKey {
                protocol: pb::Protocol::Udp.into(),
                address: "2001:db8::1".into(),
                port: 53,
                fwmark: 0,
                family: pb::AddressFamily::Inet6.into(),
            })
        );
        assert_eq!(
            wire.stats.and_then(|s| s.counters).map(|c| c.connections),
            Some(4)
        );
        let [d] = wire.destinations.as_slice() else {
            panic!("one real server expected: {:?}", wire.destinations);
        };
        assert_eq!(
            (
                d.address.as_str(),
                d.port,
                d.active_connections,
                d.inactive_connections
            ),
            ("2001:db8::2", 53, 1, 2)
        );
    }

    #[test]
    fn service_filters() {
        assert_eq!(get_stats(&pb::GetStatsRequest { service: None }), Ok(None));
        assert_eq!(
            get_stats(&pb::GetStatsRequest {
                service: Some(pb::ServiceKey {
                    fwmark: 3,
                    ..Default::default()
                }),
            }),
            Ok(Some(ServiceKey::FwMark {
                mark: 3,
                family: crate::ipvs::Family::Inet,
            }))
        );
        assert_eq!(
            watch_stats(&pb::WatchStatsRequest {
                service: Some(pb::ServiceKey {
                    address: "10.0.0.256".into(),
                    ..Default::default()
                }),
                interval: None,
            }),
            Err(FieldError::new(
                "service.address",
                Problem::NotAnAddress("\"10.0.0.256\"".into()),
            ))
        );
    }
}
