//! `ipvsctl policy test FILE --input JSON`: one evaluation of a component file against a JSON
//! description of a service, under the same limits as the agent, with no agent involved.
//!
//! ```json
//! {
//!   "service": "TCP 10.0.0.1:80",          // ipvsadm notation; also "UDP [::1]:53", "FWM 7 IPv6"
//!   "scheduler": "wlc",                    // default "wlc"
//!   "servers": [
//!     { "address": "10.0.0.2", "port": 80, "weight": 5, "forward": "masquerade",
//!       "active": 3, "inactive": 1, "persistent": 0,
//!       "health": { "up": false, "consecutive": 3, "latency_us": 2000, "since_ms": 9000,
//!                   "reason": "http 503" } }  // health: only for 1.1.0 policies; default none
//!   ],
//!   "now_ms": 1700000000000,               // default: now
//!   "sequence": 1,                         // default 1
//!   "params": [["max-weight", "100"]],     // or {"max-weight": "100"}
//!   "state": "text of the previous state", // or "state_hex": "0a0b"
//!   "schedulers": ["rr", "wrr", "lc"]      // default: every scheduler the kernel tree has
//! }
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use ipvs_types::{
    Destination, DestinationEntry, Family, ForwardMethod, Protocol, Scheduler, Service,
    ServiceEntry, ServiceKey, Stats,
};

use super::artifacts::hex;
use super::bindings::server_name;
use super::engine::{Evaluation, LogLine, PolicyEngine};
use super::error::{EngineError, Failure, LoadError};
use super::input::{PolicyInput, ServerHealth};
use super::limits::Limits;

/// Why a test could not run (as opposed to the policy failing, which is a report).
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error("input: {0}")]
    Input(String),
    #[error("policy refused: {0}")]
    Load(#[from] LoadError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonInput {
    service: String,
    #[serde(default = "default_scheduler")]
    scheduler: String,
    #[serde(default)]
    servers: Vec<JsonServer>,
    now_ms: Option<u64>,
    #[serde(default = "one")]
    sequence: u64,
    #[serde(default)]
    params: JsonParams,
    state: Option<String>,
    state_hex: Option<String>,
    schedulers: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonServer {
    address: IpAddr,
    port: u16,
    #[serde(default = "one_u32")]
    weight: u32,
    #[serde(default)]
    forward: JsonForward,
    #[serde(default)]
    active: u32,
    #[serde(default)]
    inactive: u32,
    #[serde(default)]
    persistent: u32,
    #[serde(default)]
    upper_threshold: u32,
    #[serde(default)]
    lower_threshold: u32,
    #[serde(default)]
    conns: u64,
    #[serde(default)]
    cps: u64,
    health: Option<JsonHealth>,
}

/// A real server's health check; `last_passed` defaults to `up`, `consecutive` to 1.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonHealth {
    up: bool,
    last_passed: Option<bool>,
    #[serde(default = "one_u32")]
    consecutive: u32,
    latency_us: Option<u64>,
    #[serde(default)]
    since_ms: u64,
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum JsonForward {
    Masquerade,
    Local,
    Tunnel,
    #[default]
    DirectRoute,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum JsonParams {
    Pairs(Vec<(String, String)>),
    Map(BTreeMap<String, String>),
}

impl Default for JsonParams {
    fn default() -> Self {
        JsonParams::Pairs(Vec::new())
    }
}

fn default_scheduler() -> String {
    "wlc".into()
}
fn one() -> u64 {
    1
}
fn one_u32() -> u32 {
    1
}

/// Parses ipvsadm's notation of a service: `TCP 10.0.0.1:80`, `UDP [::1]:53`, `FWM 7 IPv6`.
pub fn parse_service_key(text: &str) -> Result<ServiceKey, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let bad = || format!("service {text:?}: expected e.g. \"TCP 10.0.0.1:80\" or \"FWM 7\"");
    match words.as_slice() {
        [proto, addr] if !proto.eq_ignore_ascii_case("fwm") => {
            let protocol = match proto.to_ascii_lowercase().as_str() {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                "sctp" => Protocol::Sctp,
                _ => return Err(bad()),
            };
            let sa: SocketAddr = addr.parse().map_err(|_| bad())?;
            Ok(ServiceKey::Endpoint {
                protocol,
                addr: sa.ip(),
                port: sa.port(),
            })
        }
        [fwm, mark] | [fwm, mark, _] if fwm.eq_ignore_ascii_case("fwm") => {
            let family = match words.get(2) {
                None => Family::Inet,
                Some(f) if f.eq_ignore_ascii_case("ipv6") => Family::Inet6,
                Some(_) => return Err(bad()),
            };
            let mark = mark.parse().map_err(|_| bad())?;
            ServiceKey::fwmark(mark, family).map_err(|e| format!("service {text:?}: {e}"))
        }
        _ => Err(bad()),
    }
}

fn from_hex(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return Err("state_hex: odd number of digits".into());
    }
    bytes
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| format!("state_hex: {:?} is not hex", String::from_utf8_lossy(pair)))
        })
        .collect()
}

/// Builds the evaluation input from the JSON described in the module doc.
pub fn parse_input(json: &str) -> Result<PolicyInput, String> {
    let j: JsonInput = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let key = parse_service_key(&j.service)?;
    let scheduler = j
        .scheduler
        .parse::<Scheduler>()
        .map_err(|e| format!("scheduler: {e}"))?;
    let health = j
        .servers
        .iter()
        .filter_map(|s| {
            let h = s.health.as_ref()?;
            let health = ServerHealth {
                up: h.up,
                last_passed: h.last_passed.unwrap_or(h.up),
                consecutive: h.consecutive,
                last_latency: h.latency_us.map(Duration::from_micros),
                since: Duration::from_millis(h.since_ms),
                reason: h.reason.clone(),
            };
            Some(((s.address, s.port), health))
        })
        .collect();
    let servers = j
        .servers
        .into_iter()
        .map(|s| {
            let mut dest = Destination::new(s.address, s.port);
            dest.weight = s.weight;
            dest.forward = match s.forward {
                JsonForward::Masquerade => ForwardMethod::Masquerade,
                JsonForward::Local => ForwardMethod::Local,
                JsonForward::Tunnel => ForwardMethod::Tunnel,
                JsonForward::DirectRoute => ForwardMethod::DirectRoute,
            };
            dest.upper_threshold = s.upper_threshold;
            dest.lower_threshold = s.lower_threshold;
            DestinationEntry {
                dest,
                active_conns: s.active,
                inactive_conns: s.inactive,
                persistent_conns: s.persistent,
                stats: Stats {
                    conns: s.conns,
                    cps: s.cps,
                    ..Stats::default()
                },
            }
        })
        .collect();
    let state = match (j.state, j.state_hex) {
        (Some(_), Some(_)) => return Err("give state or state_hex, not both".into()),
        (Some(text), None) => text.into_bytes(),
        (None, Some(h)) => from_hex(&h)?,
        (None, None) => Vec::new(),
    };
    let schedulers = match j.schedulers {
        None => Scheduler::KNOWN.to_vec(),
        Some(names) => names
            .iter()
            .map(|n| {
                n.parse::<Scheduler>()
                    .map_err(|e| format!("schedulers: {e}"))
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(PolicyInput {
        service: ServiceEntry {
            service: Service::new(key, scheduler),
            stats: Stats::default(),
        },
        servers,
        health,
        now: j
            .now_ms
            .map_or_else(SystemTime::now, |ms| UNIX_EPOCH + Duration::from_millis(ms)),
        sequence: j.sequence,
        params: match j.params {
            JsonParams::Pairs(p) => p,
            JsonParams::Map(m) => m.into_iter().collect(),
        },
        state,
        schedulers,
    })
}

/// The outcome of a test run, ready to print as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestReport {
    pub policy_sha256: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureView>,
    pub logs: Vec<LogLine>,
    pub stdout: String,
    pub stderr: String,
    /// Some output went past its limit and was dropped (counts below).
    pub output_truncated: bool,
    pub logs_dropped: usize,
    pub stdout_dropped: u64,
    pub stderr_dropped: u64,
    /// Fuel consumed; a lower bound when `fuel_is_lower_bound` (the deadline stopped it).
    pub fuel_used: u64,
    pub fuel_is_lower_bound: bool,
    pub elapsed_us: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionView {
    /// Only the weights that change.
    pub weights: Vec<WeightView>,
    pub scheduler: Option<String>,
    /// The new state as text (lossy) and as hex; absent when the state is kept.
    pub state: Option<String>,
    pub state_hex: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeightView {
    pub server: String,
    pub from: u32,
    pub to: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureView {
    pub kind: &'static str,
    pub message: String,
}

impl Failure {
    /// A stable, machine-readable name of the failure class.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::OutOfFuel { .. } => "out-of-fuel",
            Failure::Deadline { .. } => "deadline",
            Failure::StackOverflow => "stack-overflow",
            Failure::MemoryLimit { .. } => "memory-limit",
            Failure::Trap(_) => "trap",
            Failure::InvalidOutput(_) => "invalid-output",
            Failure::Instantiate(_) => "instantiate",
            Failure::Policy(_) => "policy-error",
        }
    }
}

impl TestReport {
    pub fn new(policy_sha256: String, e: Evaluation) -> Self {
        let output_truncated = e.output_truncated();
        let fuel_is_lower_bound = matches!(e.outcome, Err(Failure::Deadline { .. }));
        let (decision, failure) = match e.outcome {
            Ok(d) => (
                Some(DecisionView {
                    weights: d
                        .weights
                        .iter()
                        .map(|w| WeightView {
                            server: server_name(&w.dest),
                            from: w.from,
                            to: w.dest.weight,
                        })
                        .collect(),
                    scheduler: d.scheduler.map(|s| s.name().to_owned()),
                    state: d
                        .state
                        .as_ref()
                        .map(|s| String::from_utf8_lossy(s).into_owned()),
                    state_hex: d.state.as_deref().map(hex),
                    reason: d.reason,
                }),
                None,
            ),
            Err(f) => (
                None,
                Some(FailureView {
                    kind: f.kind(),
                    message: f.to_string(),
                }),
            ),
        };
        TestReport {
            policy_sha256,
            ok: decision.is_some(),
            decision,
            failure,
            logs: e.logs,
            stdout: String::from_utf8_lossy(&e.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&e.stderr).into_owned(),
            output_truncated,
            logs_dropped: e.logs_dropped,
            stdout_dropped: e.stdout_dropped,
            stderr_dropped: e.stderr_dropped,
            fuel_used: e.fuel_used,
            fuel_is_lower_bound,
            elapsed_us: u64::try_from(e.elapsed.as_micros()).unwrap_or(u64::MAX),
        }
    }
}

/// Evaluates `component` once against `input_json` under `limits`, as the agent would.
///
/// Blocking, like [`PolicyEngine::evaluate`]: from async code run it on a blocking thread
/// (`tokio::task::spawn_blocking`). On a runtime's worker thread, WASI output from the guest
/// would need a runtime inside the runtime, which tokio refuses with a panic.
pub fn test_component(
    component: &[u8],
    input_json: &str,
    limits: Limits,
) -> Result<TestReport, TestError> {
    let input = parse_input(input_json).map_err(TestError::Input)?;
    let engine = PolicyEngine::new(limits, None)?;
    let policy = engine.load(component)?;
    let evaluation = engine.evaluate(&policy, &input);
    Ok(TestReport::new(policy.hash_hex(), evaluation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_keys_in_ipvsadm_notation() {
        let ok = [
            ("TCP 10.0.0.1:80", "TCP 10.0.0.1:80"),
            ("udp [2001:db8::1]:53", "UDP [2001:db8::1]:53"),
            ("SCTP 10.0.0.1:9", "SCTP 10.0.0.1:9"),
            ("FWM 7", "FWM 7"),
            ("fwm 7 ipv6", "FWM 7 IPv6"),
        ];
        for (text, want) in ok {
            assert_eq!(
                parse_service_key(text).map(|k| k.to_string()),
                Ok(want.to_owned())
            );
        }
        assert_eq!(
            parse_service_key("ICMP 10.0.0.1:80"),
            Err(
                "service \"ICMP 10.0.0.1:80\": expected e.g. \"TCP 10.0.0.1:80\" or \"FWM 7\""
                    .into()
            )
        );
        assert_eq!(
            parse_service_key("FWM 0"),
            Err("service \"FWM 0\": fwmark must be a non-zero number".into())
        );
    }

    fn s_addr(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn full_input() -> Result<(), String> {
        let i = parse_input(
            r#"{"service": "TCP 10.0.0.1:80", "scheduler": "lc",
                "servers": [{"address": "10.0.0.2", "port": 8080, "weight": 5,
                             "forward": "masquerade", "active": 3, "inactive": 1,
                             "health": {"up": false, "latency_us": 1500, "reason": "timeout"}},
                            {"address": "10.0.0.3", "port": 8080}],
                "now_ms": 1000, "sequence": 4, "params": {"b": "2", "a": "1"},
                "state_hex": "0aff", "schedulers": ["rr", "lc"]}"#,
        )?;
        assert_eq!(i.service.service.scheduler, Scheduler::Lc);
        assert_eq!(i.servers.len(), 2);
        assert_eq!(
            i.health_of(s_addr("10.0.0.2"), 8080),
            Some(&ServerHealth {
                up: false,
                last_passed: false,
                consecutive: 1,
                last_latency: Some(Duration::from_micros(1500)),
                since: Duration::ZERO,
                reason: "timeout".into(),
            })
        );
        assert_eq!(i.health_of(s_addr("10.0.0.3"), 8080), None);
        let s = &i.servers[0];
        assert_eq!(
            (
                s.dest.weight,
                s.dest.forward,
                s.active_conns,
                s.inactive_conns
            ),
            (5, ForwardMethod::Masquerade, 3, 1)
        );
        assert_eq!(i.now, UNIX_EPOCH + Duration::from_millis(1000));
        assert_eq!(i.sequence, 4);
        assert_eq!(
            i.params,
            [
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "2".to_owned())
            ]
        );
        assert_eq!(i.state, [0x0a, 0xff]);
        assert_eq!(i.schedulers, [Scheduler::Rr, Scheduler::Lc]);
        Ok(())
    }

    #[test]
    fn defaults_and_errors() {
        let i = parse_input(r#"{"service": "FWM 3", "params": [["k", "v"]], "state": "x=1"}"#);
        assert!(i.as_ref().is_ok_and(|i| i.sequence == 1
            && i.service.service.scheduler == Scheduler::Wlc
            && i.params == [("k".to_owned(), "v".to_owned())]
            && i.state == b"x=1"
            && i.schedulers.len() == Scheduler::KNOWN.len()));
        let cases = [
            (
                r#"{"service": "TCP 10.0.0.1:80", "scheduler": "fast"}"#,
                "scheduler: unknown scheduler \"fast\"",
            ),
            (
                r#"{"service": "TCP 10.0.0.1:80", "state_hex": "abc"}"#,
                "state_hex: odd number of digits",
            ),
            (
                r#"{"service": "TCP 10.0.0.1:80", "state_hex": "zz"}"#,
                "state_hex: \"zz\" is not hex",
            ),
            (
                r#"{"service": "TCP 10.0.0.1:80", "state": "", "state_hex": ""}"#,
                "give state or state_hex, not both",
            ),
        ];
        for (json, want) in cases {
            assert_eq!(
                parse_input(json).map(|_| ()),
                Err(want.to_owned()),
                "{json}"
            );
        }
        assert!(
            parse_input(r#"{"service": "TCP 10.0.0.1:80", "bogus": 1}"#)
                .is_err_and(|e| e.starts_with("unknown field `bogus`"))
        );
    }
}
