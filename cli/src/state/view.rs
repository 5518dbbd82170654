//! The state service's answers as ipvsctl prints them: one line per change, event or drain
//! step in text, the same data as JSON (one object per line for streams).

use std::fmt::Write;
use std::net::IpAddr;

use ipvs_proto::v1 as pb;
use serde::Serialize;
use serde_json::{Value, json};

use super::clock::rfc3339;
use crate::durations;
use crate::ipvsadm::command::ServiceKey;
use crate::ipvsadm::resolve::L4;
use crate::spec::text::{self, endpoint_text};

/// One change of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeView {
    /// `create-service`, `update-service`, `delete-service`, `add-destination`,
    /// `update-destination`, `delete-destination` for the IPVS table; `node` for links,
    /// addresses and attachments.
    pub kind: &'static str,
    pub description: String,
}

impl ChangeView {
    pub fn from_pb(c: &pb::StateChange) -> Self {
        use pb::state_change::Change;
        match &c.change {
            Some(Change::Ipvs(c)) => ChangeView {
                kind: match pb::ChangeKind::try_from(c.kind) {
                    Ok(pb::ChangeKind::CreateService) => "create-service",
                    Ok(pb::ChangeKind::UpdateService) => "update-service",
                    Ok(pb::ChangeKind::DeleteService) => "delete-service",
                    Ok(pb::ChangeKind::AddDestination) => "add-destination",
                    Ok(pb::ChangeKind::UpdateDestination) => "update-destination",
                    Ok(pb::ChangeKind::DeleteDestination) => "delete-destination",
                    _ => "ipvs",
                },
                description: c.description.clone(),
            },
            Some(Change::Node(n)) => ChangeView {
                kind: "node",
                description: n.description.clone(),
            },
            None => ChangeView {
                kind: "unknown",
                description: String::new(),
            },
        }
    }
}

/// What `apply` and `state rollback` did (or would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplyView {
    pub revision: u64,
    pub applied: bool,
    /// `revision` is one this request recorded.
    pub recorded: bool,
    pub changes: Vec<ChangeView>,
}

impl From<&pb::ApplyStateResponse> for ApplyView {
    fn from(r: &pb::ApplyStateResponse) -> Self {
        ApplyView {
            revision: r.revision,
            applied: r.applied,
            recorded: r.recorded,
            changes: r.changes.iter().map(ChangeView::from_pb).collect(),
        }
    }
}

impl From<&pb::RollbackResponse> for ApplyView {
    fn from(r: &pb::RollbackResponse) -> Self {
        ApplyView {
            revision: r.revision,
            applied: r.applied,
            recorded: r.recorded,
            changes: r.changes.iter().map(ChangeView::from_pb).collect(),
        }
    }
}

/// The changes, then the revision: `revision N`, `no changes (revision N)`, or for a dry
/// run `would: ...` lines and `dry run against revision N`. A declaration that changed while
/// the node already matched it is still a new revision, and says so.
pub fn apply_text(v: &ApplyView) -> String {
    if v.changes.is_empty() {
        if v.recorded {
            return format!(
                "no changes to the node; the declaration is recorded as revision {}\n",
                v.revision
            );
        }
        return format!("no changes (revision {})\n", v.revision);
    }
    let prefix = if v.applied { "" } else { "would: " };
    let mut out = String::new();
    for c in &v.changes {
        let _ = writeln!(out, "{prefix}{}", c.description);
    }
    if v.applied {
        let _ = writeln!(out, "revision {}", v.revision);
    } else {
        let _ = writeln!(out, "dry run against revision {}", v.revision);
    }
    out
}

/// What `diff` shows: the plan against the current revision; `changes` is empty when the
/// node matches the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffView {
    pub revision: u64,
    pub changes: Vec<ChangeView>,
}

impl From<&pb::ApplyStateResponse> for DiffView {
    fn from(r: &pb::ApplyStateResponse) -> Self {
        DiffView {
            revision: r.revision,
            changes: r.changes.iter().map(ChangeView::from_pb).collect(),
        }
    }
}

/// One change per line, or `no changes (revision N)`.
pub fn diff_text(v: &DiffView) -> String {
    if v.changes.is_empty() {
        return format!("no changes (revision {})\n", v.revision);
    }
    v.changes
        .iter()
        .map(|c| format!("{}\n", c.description))
        .collect()
}

fn drift_mode(mode: i32) -> Option<&'static str> {
    match pb::DriftMode::try_from(mode) {
        Ok(pb::DriftMode::Report) => Some("report"),
        Ok(pb::DriftMode::Enforce) => Some("enforce"),
        _ => None,
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `ipvsctl state` as text.
pub fn state_text(s: &pb::GetStateResponse) -> String {
    let mut out = String::new();
    match (s.revision, s.applied_at.as_ref()) {
        (0, _) => out.push_str("revision 0 (nothing applied yet)\n"),
        (r, Some(at)) => {
            let _ = writeln!(out, "revision {r}, applied {}", rfc3339(at));
        }
        (r, None) => {
            let _ = writeln!(out, "revision {r}");
        }
    }
    let spec = s.spec.clone().unwrap_or_default();
    let _ = writeln!(
        out,
        "declared: {}, {}, {}",
        plural(spec.links.len(), "link", "links"),
        plural(spec.services.len(), "service", "services"),
        plural(spec.attachments.len(), "attachment", "attachments"),
    );
    let _ = writeln!(
        out,
        "drift mode: {}",
        drift_mode(s.drift_mode).unwrap_or("agent default")
    );
    match s.last_check.as_ref() {
        None => out.push_str("last check: never\n"),
        Some(at) if s.drift.is_empty() => {
            let _ = writeln!(out, "last check: {}: no drift", rfc3339(at));
        }
        Some(at) => {
            let _ = writeln!(
                out,
                "last check: {}: {}",
                rfc3339(at),
                plural(s.drift.len(), "difference", "differences")
            );
            for d in &s.drift {
                let _ = writeln!(out, "  {}", d.description);
            }
        }
    }
    out
}

/// `ipvsctl -o json state`: `spec` is the declared state in the node file's shape (null if
/// it holds something the file cannot say).
pub fn state_json(s: &pb::GetStateResponse) -> Value {
    let spec = s
        .spec
        .as_ref()
        .and_then(|spec| crate::spec::encode::node(spec).ok())
        .and_then(|doc| serde_json::to_value(doc).ok());
    json!({
        "revision": s.revision,
        "applied_at": s.applied_at.as_ref().map(rfc3339),
        "drift_mode": drift_mode(s.drift_mode),
        "last_check": s.last_check.as_ref().map(rfc3339),
        "drift": s.drift.iter().map(|d| d.description.clone()).collect::<Vec<_>>(),
        "spec": spec,
    })
}

/// A kept revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevisionView {
    pub revision: u64,
    pub applied_at: Option<String>,
    pub origin: String,
}

impl From<&pb::Revision> for RevisionView {
    fn from(r: &pb::Revision) -> Self {
        RevisionView {
            revision: r.revision,
            applied_at: r.applied_at.as_ref().map(rfc3339),
            origin: r.origin.clone(),
        }
    }
}

/// `state revisions` as a table, newest first as the agent sends them.
pub fn revisions_text(list: &[RevisionView]) -> String {
    let mut out = format!("{:>8}  {:<20}  ORIGIN\n", "REVISION", "APPLIED AT");
    for r in list {
        let _ = writeln!(
            out,
            "{:>8}  {:<20}  {}",
            r.revision,
            r.applied_at.as_deref().unwrap_or("-"),
            r.origin
        );
    }
    out
}

fn drift_list(d: &[pb::Drift]) -> Vec<String> {
    d.iter().map(|d| d.description.clone()).collect()
}

/// A service as listings name it: `TCP 10.0.0.1:80`, `FWM 7`, `FWM 7 IPv6`.
pub fn service_text(key: Option<&pb::ServiceKey>) -> String {
    match text::key_from_pb(key) {
        Ok(ServiceKey::Addr {
            protocol,
            addr,
            port,
        }) => {
            let p = match protocol {
                L4::Tcp => "TCP",
                L4::Udp => "UDP",
                L4::Sctp => "SCTP",
            };
            format!("{p} {}", endpoint_text(addr, port))
        }
        Ok(ServiceKey::Fwmark { mark, ipv6: false }) => format!("FWM {mark}"),
        Ok(ServiceKey::Fwmark { mark, ipv6: true }) => format!("FWM {mark} IPv6"),
        Err(e) => format!("({e})"),
    }
}

fn health_word(state: i32) -> &'static str {
    match pb::HealthState::try_from(state) {
        Ok(pb::HealthState::Up) => "up",
        Ok(pb::HealthState::Down) => "down",
        _ => "unknown",
    }
}

/// A probe's latency: `0.4ms`, `1.2ms`, `35ms`, `1.5s`.
pub fn latency_text(d: std::time::Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1}ms")
    } else if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{:.1}s", ms / 1000.0)
    }
}

/// How long ago `since` was at `now` (seconds since the epoch), in its largest unit:
/// `12s`, `3m`, `5h`, `2d`.
pub fn age_text(since: &prost_types::Timestamp, now: i64) -> String {
    let secs = now.saturating_sub(since.seconds).max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// One checked real server, as `ipvsctl health` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthRow {
    /// `TCP 10.0.0.1:80`.
    pub service: String,
    /// `10.0.1.1:8080`.
    pub server: String,
    /// `tcp`, `http`, `https`, `udp`, `dns`, `grpc`, `exec`.
    pub check: String,
    /// What is probed (the server, or the check's connect-ip/connect-port).
    pub target: String,
    /// `up` or `down`.
    pub state: &'static str,
    /// RFC 3339, since when it is in that state.
    pub since: Option<String>,
    /// Results in a row agreeing with the last one.
    pub streak: u32,
    /// The last probe's result (`http 200`, `connect refused`); empty before the first.
    pub last_result: String,
    /// The last probe's latency in milliseconds; null before the first.
    pub latency_ms: Option<f64>,
    /// The weight its health gives it (0 when down).
    pub weight: Option<u32>,
}

impl From<&pb::ServerHealth> for HealthRow {
    fn from(h: &pb::ServerHealth) -> Self {
        HealthRow {
            service: service_text(h.service.as_ref()),
            server: h.server.clone(),
            check: h.check.clone(),
            target: h.target.clone(),
            state: health_word(h.state),
            since: h.since.as_ref().map(rfc3339),
            streak: h.streak,
            last_result: h.last_result.clone(),
            latency_ms: h
                .last_latency
                .as_ref()
                .map(|d| (durations::to_std(Some(d)).as_secs_f64() * 1_000_000.0).round() / 1000.0),
            weight: h.weight,
        }
    }
}

const NO_CHECKS: &str = "no health checks are declared\n";

/// `ipvsctl health` as text at `now` (seconds since the epoch): per service, a line with the
/// service and one line per checked real server.
pub fn health_text(s: &pb::GetStateResponse, now: i64) -> String {
    let declared = s.spec.as_ref().map_or(0, |spec| spec.checks.len());
    if declared == 0 && s.health.is_empty() {
        return NO_CHECKS.to_string();
    }
    if s.health.is_empty() {
        return format!(
            "{} declared, no real server checked\n",
            plural(declared, "health check", "health checks")
        );
    }
    let mut out = format!(
        "{:<26} {:<6} {:<5} {:>6}  {:<24} {:>8}\n",
        "SERVICE / SERVER", "CHECK", "STATE", "SINCE", "LAST RESULT", "LATENCY"
    );
    let mut service: Option<String> = None;
    for h in &s.health {
        let row = HealthRow::from(h);
        if service.as_deref() != Some(row.service.as_str()) {
            let _ = writeln!(out, "{}", row.service);
            service = Some(row.service.clone());
        }
        let since = h
            .since
            .as_ref()
            .map_or_else(|| "-".to_string(), |t| age_text(t, now));
        let last = if row.last_result.is_empty() {
            "-"
        } else {
            row.last_result.as_str()
        };
        let latency = h.last_latency.as_ref().map_or_else(
            || "-".to_string(),
            |d| latency_text(durations::to_std(Some(d))),
        );
        let _ = writeln!(
            out,
            "  {:<24} {:<6} {:<5} {:>6}  {:<24} {:>8}",
            row.server, row.check, row.state, since, last, latency
        );
    }
    out
}

/// `ipvsctl -o json health`: `{"declared_checks": N, "servers": [HealthRow, ...]}`.
pub fn health_json(s: &pb::GetStateResponse) -> Value {
    let rows: Vec<HealthRow> = s.health.iter().map(HealthRow::from).collect();
    json!({
        "declared_checks": s.spec.as_ref().map_or(0, |spec| spec.checks.len()),
        "servers": rows,
    })
}

/// One event as a line: `TIME applied revision 7 (apply)`, `TIME drift found: A; B`.
pub fn event_text(e: &pb::WatchStateEventsResponse) -> String {
    use pb::watch_state_events_response::Event;
    let time = e.time.as_ref().map_or_else(|| "-".to_string(), rfc3339);
    let what = match &e.event {
        Some(Event::Applied(r)) => format!("applied revision {} ({})", r.revision, r.origin),
        Some(Event::DriftFound(d)) => format!("drift found: {}", drift_list(&d.drift).join("; ")),
        Some(Event::DriftRepaired(d)) => {
            format!("drift repaired: {}", drift_list(&d.drift).join("; "))
        }
        Some(Event::HealthChanged(h)) => {
            let h = h.health.clone().unwrap_or_default();
            let why = if h.last_result.is_empty() {
                String::new()
            } else {
                format!(" ({})", h.last_result)
            };
            format!(
                "health {} {} {}{why}",
                service_text(h.service.as_ref()),
                h.server,
                health_word(h.state)
            )
        }
        Some(Event::QuorumChanged(q)) => {
            let (word, cmp) = if q.lost {
                ("lost", "<")
            } else {
                ("back", ">=")
            };
            format!(
                "quorum {} {word} (healthy weight {} {cmp} quorum {})",
                service_text(q.service.as_ref()),
                q.healthy_weight,
                q.quorum
            )
        }
        None => "unknown event".to_string(),
    };
    format!("{time} {what}\n")
}

/// One event as a JSON object on one line.
pub fn event_json(e: &pb::WatchStateEventsResponse) -> String {
    use pb::watch_state_events_response::Event;
    let time = e.time.as_ref().map(rfc3339);
    let v = match &e.event {
        Some(Event::Applied(r)) => {
            json!({"time": time, "event": "applied", "revision": r.revision, "origin": r.origin})
        }
        Some(Event::DriftFound(d)) => {
            json!({"time": time, "event": "drift-found", "drift": drift_list(&d.drift)})
        }
        Some(Event::DriftRepaired(d)) => {
            json!({"time": time, "event": "drift-repaired", "drift": drift_list(&d.drift)})
        }
        Some(Event::HealthChanged(h)) => {
            let row = HealthRow::from(&h.health.clone().unwrap_or_default());
            let mut v = json!({"time": time, "event": "health-changed"});
            if let (Value::Object(out), Ok(Value::Object(fields))) =
                (&mut v, serde_json::to_value(&row))
            {
                out.extend(fields);
            }
            v
        }
        Some(Event::QuorumChanged(q)) => json!({
            "time": time,
            "event": "quorum-changed",
            "service": service_text(q.service.as_ref()),
            "lost": q.lost,
            "healthy_weight": q.healthy_weight,
            "quorum": q.quorum,
        }),
        None => json!({"time": time, "event": "unknown"}),
    };
    format!("{v}\n")
}

/// A real server as drain messages name it: `10.0.1.1:80`, or the bare address for a
/// fwmark service's portless server.
pub fn server_text(addr: IpAddr, port: u16) -> String {
    if port == 0 {
        addr.to_string()
    } else {
        endpoint_text(addr, port)
    }
}

fn phase_word(phase: i32) -> &'static str {
    match pb::DrainPhase::try_from(phase) {
        Ok(pb::DrainPhase::WeightZero) => "weight-zero",
        Ok(pb::DrainPhase::Waiting) => "waiting",
        Ok(pb::DrainPhase::Done) => "done",
        _ => "unknown",
    }
}

/// One drain step as a line.
pub fn drain_text(server: &str, p: &pb::DrainResponse) -> String {
    let secs = durations::secs(p.elapsed.as_ref());
    let outcome = if p.removed {
        "removed"
    } else {
        "kept at weight 0"
    };
    match pb::DrainPhase::try_from(p.phase) {
        Ok(pb::DrainPhase::WeightZero) => {
            format!("draining {server}: weight 0 (was {})\n", p.previous_weight)
        }
        Ok(pb::DrainPhase::Done) if p.timed_out => format!(
            "{server}: timed out after {secs} s with {} active; {outcome} (revision {})\n",
            p.active_connections, p.revision
        ),
        Ok(pb::DrainPhase::Done) => format!(
            "{server}: drained in {secs} s, {outcome} (revision {})\n",
            p.revision
        ),
        _ => format!(
            "{server}: {} active, {} inactive, {secs} s\n",
            p.active_connections, p.inactive_connections
        ),
    }
}

/// One drain step as a JSON object on one line.
pub fn drain_json(server: &str, p: &pb::DrainResponse) -> String {
    let v = json!({
        "server": server,
        "phase": phase_word(p.phase),
        "active_connections": p.active_connections,
        "inactive_connections": p.inactive_connections,
        "elapsed_ms": durations::millis(p.elapsed.as_ref()),
        "previous_weight": p.previous_weight,
        "timed_out": p.timed_out,
        "removed": p.removed,
        "revision": p.revision,
    });
    format!("{v}\n")
}

#[cfg(test)]
mod tests;
