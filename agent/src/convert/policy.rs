//! PolicyService messages ↔ the attachments' domain: requests parsed (refusals name the
//! field), replies and events built. The saved attachments file uses the same messages.

use std::time::{Duration, UNIX_EPOCH};

use ipvs_proto::v1 as pb;

use super::{
    Field, FieldError, Problem, duration_or, duration_to_proto, ipvs::key_to_proto,
    ipvs::service_key,
};
use crate::attach::{
    DEFAULT_INTERVAL, DEFAULT_QUARANTINE_AFTER, DecisionRecord, Event, MAX_INTERVAL, Mode,
    RunRecord, Spec, StoredPolicy,
};

pub fn policy_to_proto(p: &StoredPolicy) -> pb::Policy {
    pb::Policy {
        hash: p.hash.clone(),
        name: p.name.clone(),
        size: p.size,
    }
}

pub fn mode_to_proto(m: Mode) -> pb::PolicyMode {
    match m {
        Mode::Enforce => pb::PolicyMode::Enforce,
        Mode::DryRun => pb::PolicyMode::DryRun,
    }
}

/// An evaluation interval: unset or zero is [`DEFAULT_INTERVAL`], and at most
/// [`MAX_INTERVAL`].
pub fn interval(d: Option<&prost_types::Duration>) -> Result<Duration, Problem> {
    let value = duration_or(d, DEFAULT_INTERVAL)?;
    if value > MAX_INTERVAL {
        return Err(Problem::TooLong {
            value,
            max: MAX_INTERVAL,
        });
    }
    Ok(value)
}

/// An attach request as a [`Spec`].
pub fn attach_spec(req: &pb::AttachRequest) -> Result<Spec, FieldError> {
    let field = |field: &str, problem| FieldError {
        field: field.into(),
        problem,
    };
    let services = req
        .services
        .iter()
        .enumerate()
        .map(|(i, k)| {
            service_key(k).map_err(|e| FieldError {
                field: format!("services[{i}].{}", e.field),
                problem: e.problem,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let interval = interval(req.interval.as_ref()).field("interval")?;
    let mode = match pb::PolicyMode::try_from(req.mode) {
        Ok(pb::PolicyMode::Unspecified | pb::PolicyMode::Enforce) => Mode::Enforce,
        Ok(pb::PolicyMode::DryRun) => Mode::DryRun,
        Err(_) => return Err(field("mode", Problem::UnknownEnum(req.mode))),
    };
    Ok(Spec {
        policy: req.policy_hash.clone(),
        services,
        params: req
            .params
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect(),
        interval,
        mode,
        quarantine_after: match req.quarantine_after {
            0 => DEFAULT_QUARANTINE_AFTER,
            n => n,
        },
    })
}

/// A saved attachment (its id aside) as a [`Spec`]: the same checks as an attach request.
pub fn attachment_spec(a: &pb::Attachment) -> Result<Spec, FieldError> {
    attach_spec(&pb::AttachRequest {
        policy_hash: a.policy_hash.clone(),
        services: a.services.clone(),
        params: a.params.clone(),
        interval: a.interval,
        mode: a.mode,
        quarantine_after: a.quarantine_after,
    })
}

pub fn attachment_to_proto(id: &str, s: &Spec) -> pb::Attachment {
    pb::Attachment {
        id: id.to_owned(),
        policy_hash: s.policy.clone(),
        services: s.services.iter().map(key_to_proto).collect(),
        params: s
            .params
            .iter()
            .map(|(k, v)| pb::PolicyParam {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        interval: Some(duration_to_proto(s.interval)),
        mode: mode_to_proto(s.mode).into(),
        quarantine_after: s.quarantine_after,
    }
}

pub fn decision_to_proto(d: &DecisionRecord) -> pb::PolicyDecision {
    pb::PolicyDecision {
        service: Some(key_to_proto(&d.service)),
        weights: d
            .weights
            .iter()
            .map(|w| pb::WeightChange {
                server: w.server.clone(),
                from: w.from,
                to: w.to,
            })
            .collect(),
        scheduler: d
            .scheduler
            .as_ref()
            .map(|s| s.name().to_owned())
            .unwrap_or_default(),
        reason: d.reason.clone(),
        applied: d.applied,
    }
}

pub fn run_to_proto(r: &RunRecord) -> pb::EvaluationResult {
    let since = r.time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let outcome = match &r.outcome {
        Ok(d) => pb::evaluation_result::Outcome::Decision(decision_to_proto(d)),
        Err(f) => pb::evaluation_result::Outcome::Failure(pb::PolicyFailure {
            service: f.service.as_ref().map(key_to_proto),
            kind: f.kind.clone(),
            message: f.message.clone(),
        }),
    };
    pb::EvaluationResult {
        time: Some(prost_types::Timestamp {
            seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
        }),
        duration: Some(duration_to_proto(r.duration)),
        fuel_used: r.fuel_used,
        output_truncated: r.output_truncated,
        outcome: Some(outcome),
    }
}

pub fn event_to_proto(e: &Event, missed: u64) -> pb::WatchPolicyEventsResponse {
    pb::WatchPolicyEventsResponse {
        attachment_id: e.attachment.clone(),
        result: Some(run_to_proto(&e.run)),
        quarantined: e.quarantined,
        missed,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ipvs::{Family, Protocol, ServiceKey};

    fn wire_key() -> pb::ServiceKey {
        pb::ServiceKey {
            protocol: pb::Protocol::Tcp.into(),
            address: "10.0.0.1".into(),
            port: 80,
            ..Default::default()
        }
    }

    /// An interval is added to the clock on every tick: a huge one overflowed it, panicking
    /// the attachment's task.
    #[test]
    fn intervals_the_timer_cannot_add_are_refused() {
        let huge = pb::AttachRequest {
            interval: Some(prost_types::Duration {
                seconds: i64::MAX,
                nanos: 0,
            }),
            ..request()
        };
        assert_eq!(
            attach_spec(&huge),
            Err(FieldError::new(
                "interval",
                Problem::TooLong {
                    value: Duration::from_secs(i64::MAX as u64),
                    max: MAX_INTERVAL,
                }
            ))
        );
        let year = pb::AttachRequest {
            interval: Some(duration_to_proto(MAX_INTERVAL)),
            ..request()
        };
        assert_eq!(attach_spec(&year).map(|s| s.interval), Ok(MAX_INTERVAL));
    }

    fn request() -> pb::AttachRequest {
        pb::AttachRequest {
            policy_hash: "sha256:abc".into(),
            services: vec![wire_key()],
            params: vec![pb::PolicyParam {
                key: "target".into(),
                value: "0.8".into(),
            }],
            interval: None,
            mode: 0,
            quarantine_after: 0,
        }
    }

    fn spec() -> Spec {
        Spec {
            policy: "sha256:abc".into(),
            services: vec![ServiceKey::Endpoint {
                protocol: Protocol::Tcp,
                addr: [10, 0, 0, 1].into(),
                port: 80,
            }],
            params: vec![("target".into(), "0.8".into())],
            interval: DEFAULT_INTERVAL,
            mode: Mode::Enforce,
            quarantine_after: DEFAULT_QUARANTINE_AFTER,
        }
    }

    fn interval(seconds: i64, nanos: i32) -> Option<prost_types::Duration> {
        Some(prost_types::Duration { seconds, nanos })
    }

    #[test]
    fn attach_requests() {
        type Tweak = fn(&mut pb::AttachRequest);
        let with = |f: Tweak| {
            let mut r = request();
            f(&mut r);
            r
        };
        let want = |f: fn(&mut Spec)| {
            let mut s = spec();
            f(&mut s);
            Ok(s)
        };
        let cases: Vec<(&str, pb::AttachRequest, Result<Spec, FieldError>)> = vec![
            ("zero values are defaults", request(), Ok(spec())),
            (
                "a zero interval is the default",
                with(|r| r.interval = interval(0, 0)),
                Ok(spec()),
            ),
            (
                "an interval",
                with(|r| r.interval = interval(0, 500_000_000)),
                want(|s| s.interval = Duration::from_millis(500)),
            ),
            (
                "a negative interval",
                with(|r| r.interval = interval(-2, 0)),
                Err(FieldError::new(
                    "interval",
                    Problem::Invalid("-2s is not a non-negative duration".into()),
                )),
            ),
            (
                "dry run",
                with(|r| r.mode = pb::PolicyMode::DryRun.into()),
                want(|s| s.mode = Mode::DryRun),
            ),
            (
                "unknown mode",
                with(|r| r.mode = 9),
                Err(FieldError::new("mode", Problem::UnknownEnum(9))),
            ),
            (
                "quarantine threshold",
                with(|r| r.quarantine_after = 10),
                want(|s| s.quarantine_after = 10),
            ),
            (
                "a fwmark service",
                with(|r| {
                    r.services.push(pb::ServiceKey {
                        fwmark: 5,
                        family: pb::AddressFamily::Inet6.into(),
                        ..Default::default()
                    });
                }),
                want(|s| {
                    s.services.push(ServiceKey::FwMark {
                        mark: 5,
                        family: Family::Inet6,
                    });
                }),
            ),
            (
                "a bad service is named by its index",
                with(|r| {
                    r.services.push(pb::ServiceKey {
                        address: "10.0.0".into(),
                        ..wire_key()
                    });
                }),
                Err(FieldError::new(
                    "services[1].address",
                    Problem::NotAnAddress("\"10.0.0\"".into()),
                )),
            ),
            (
                "a fwmark service with an address",
                with(|r| r.services[0].fwmark = 5),
                Err(FieldError::new(
                    "services[0].protocol",
                    Problem::Invalid("must be unset for a fwmark service".into()),
                )),
            ),
        ];
        for (what, req, want) in cases {
            assert_eq!(attach_spec(&req), want, "{what}");
        }
    }

    #[test]
    fn attachments_read_back_as_written() {
        let mut s = spec();
        s.interval = Duration::from_millis(1500);
        s.mode = Mode::DryRun;
        let wire = attachment_to_proto("a1", &s);
        assert_eq!(wire.id, "a1");
        assert_eq!(wire.interval, interval(1, 500_000_000));
        assert_eq!(wire.services[0].family, i32::from(pb::AddressFamily::Inet));
        assert_eq!(attachment_spec(&wire), Ok(s));
        // Defaults are said in full in replies.
        let wire = attachment_to_proto("a2", &spec());
        assert_eq!(wire.interval, interval(2, 0));
        assert_eq!(wire.quarantine_after, DEFAULT_QUARANTINE_AFTER);
        assert_eq!(wire.mode, i32::from(pb::PolicyMode::Enforce));
    }
}
