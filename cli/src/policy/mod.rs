//! `ipvsctl policy ...`: WASM policies on the agent (upload, attach, watch) and one local
//! evaluation of a component file (`policy test`, in [`local`]).

mod local;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::{Parser, Subcommand};
use ipvs_proto::v1 as pb;
use ipvs_proto::v1::policy_service_client::PolicyServiceClient;
use serde_json::{Value, json};
use tokio_stream::StreamExt;

use crate::client::{self, AgentAddress};
use crate::exit::{self, Failure};
use crate::output::{OutputFormat, to_json};

/// The policy commands' command line.
#[derive(Debug, Parser)]
#[command(name = "ipvsctl", about = "WASM policies that steer weights and schedulers", after_help = exit::HELP)]
pub struct PolicyCli {
    /// The agent: unix:/path or http://host:port.
    #[arg(long, global = true, env = client::AGENT_ENV)]
    pub agent: Option<String>,
    /// Output of reads: text or json.
    #[arg(short = 'o', long = "output", global = true, value_parser = parse_output)]
    pub output: Option<OutputFormat>,
    #[command(subcommand)]
    pub object: Object,
}

fn parse_output(s: &str) -> Result<OutputFormat, String> {
    s.parse()
}

#[derive(Debug, Subcommand)]
pub enum Object {
    /// WASM policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCmd,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Uploads a component: `policy add FILE [--name N]`.
    Add {
        file: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Lists uploaded policies.
    #[command(alias = "list")]
    Ls,
    /// Deletes an uploaded policy (it must not be attached).
    #[command(alias = "del")]
    Rm { hash: String },
    /// Attaches a policy to a service.
    Attach {
        hash: String,
        /// A TCP service VIP:PORT.
        #[arg(short = 't', long = "tcp-service", group = "service")]
        tcp: Option<String>,
        /// A UDP service VIP:PORT.
        #[arg(short = 'u', long = "udp-service", group = "service")]
        udp: Option<String>,
        /// A firewall-mark service.
        #[arg(short = 'f', long = "fwmark-service", group = "service")]
        fwmark: Option<u32>,
        /// key=value, passed to the policy; repeatable.
        #[arg(long = "param")]
        params: Vec<String>,
        /// Time between evaluations, e.g. 2s, 500ms.
        #[arg(long, default_value = "2s")]
        interval: String,
        /// Evaluate and report, but write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Consecutive failures that quarantine it (the agent's default if unset).
        #[arg(long)]
        quarantine_after: Option<u32>,
    },
    /// Detaches an attachment; the weights it wrote stay.
    Detach { id: String },
    /// Shows one attachment's health, or lists them all.
    Status { id: Option<String> },
    /// Evaluates an attachment once now.
    Eval { id: String },
    /// Streams every decision and failure until interrupted.
    Events { id: Option<String> },
    /// Evaluates a component file locally against a JSON input, as the agent would.
    Test {
        file: String,
        /// The input as JSON, or @FILE to read it from a file.
        #[arg(long)]
        input: String,
    },
}

/// Whether `args` (after the program name) is a policy command line.
pub fn is_policy_command(args: &[String]) -> bool {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        match a.as_str() {
            "--agent" | "--output" | "-o" => i += 2,
            s if s.starts_with("--agent=") || s.starts_with("--output=") => i += 1,
            "policy" => return true,
            _ => return false,
        }
    }
    false
}

/// Parses a policy command line (with the program name first).
pub fn parse(args: &[String]) -> Result<PolicyCli, clap::Error> {
    PolicyCli::try_parse_from(args)
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::new(exit::USAGE, format!("ipvsctl: {}", message.into()))
}

/// `2s`, `500ms`, `1m`, or a bare number of seconds.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid interval {s:?} (e.g. 2s, 500ms, 1m)");
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    // Whole numbers are exact: through f64, large ones lose their last milliseconds.
    if let Ok(n) = num.parse::<u64>() {
        let exact = match unit {
            "ms" => Some(Duration::from_millis(n)),
            "s" => Some(Duration::from_secs(n)),
            "m" => n.checked_mul(60).map(Duration::from_secs),
            _ => None,
        };
        if let Some(d) = exact {
            return Ok(d);
        }
    }
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

/// `VIP:PORT` with `[v6]:port` for IPv6.
fn endpoint(protocol: pb::Protocol, text: &str) -> Result<pb::ServiceKey, String> {
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| format!("invalid service address {text:?} (expected VIP:PORT)"))?;
    Ok(pb::ServiceKey {
        protocol: protocol.into(),
        address: addr.ip().to_string(),
        port: u32::from(addr.port()),
        fwmark: 0,
        family: if addr.is_ipv6() {
            pb::AddressFamily::Inet6
        } else {
            pb::AddressFamily::Inet
        }
        .into(),
    })
}

fn service_key(
    tcp: Option<&str>,
    udp: Option<&str>,
    fwmark: Option<u32>,
) -> Result<pb::ServiceKey, String> {
    match (tcp, udp, fwmark) {
        (Some(t), None, None) => endpoint(pb::Protocol::Tcp, t),
        (None, Some(u), None) => endpoint(pb::Protocol::Udp, u),
        (None, None, Some(mark)) => Ok(pb::ServiceKey {
            fwmark: mark,
            family: pb::AddressFamily::Inet.into(),
            ..Default::default()
        }),
        _ => Err("attach needs exactly one of -t, -u or -f".into()),
    }
}

fn param(text: &str) -> Result<pb::PolicyParam, String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok(pb::PolicyParam {
            key: k.into(),
            value: v.into(),
        }),
        _ => Err(format!("invalid --param {text:?} (expected key=value)")),
    }
}

/// A service key as ipvsadm prints it.
fn key_text(k: Option<&pb::ServiceKey>) -> String {
    match k {
        Some(k) if k.fwmark != 0 => format!("FWM {}", k.fwmark),
        Some(k) if !k.address.is_empty() => {
            let proto = match pb::Protocol::try_from(k.protocol) {
                Ok(pb::Protocol::Udp) => "UDP",
                Ok(pb::Protocol::Sctp) => "SCTP",
                _ => "TCP",
            };
            let ip = match k.address.parse::<IpAddr>() {
                Ok(IpAddr::V4(a)) => a.to_string(),
                Ok(IpAddr::V6(a)) => format!("[{a}]"),
                Err(_) => k.address.clone(),
            };
            format!("{proto} {ip}:{}", k.port)
        }
        _ => "-".into(),
    }
}

fn duration_text(d: Option<&prost_types::Duration>) -> String {
    match d {
        Some(d) => {
            let total = Duration::new(
                u64::try_from(d.seconds).unwrap_or(0),
                u32::try_from(d.nanos).unwrap_or(0),
            );
            format!("{total:?}")
        }
        None => "-".into(),
    }
}

fn mode_text(mode: i32) -> &'static str {
    match pb::PolicyMode::try_from(mode) {
        Ok(pb::PolicyMode::DryRun) => "dry-run",
        _ => "enforce",
    }
}

fn attachment_json(a: &pb::Attachment) -> Value {
    json!({
        "id": a.id,
        "policy": a.policy_hash,
        "services": a.services.iter().map(|k| key_text(Some(k))).collect::<Vec<_>>(),
        "params": a.params.iter().map(|p| (p.key.clone(), Value::String(p.value.clone()))).collect::<serde_json::Map<_, _>>(),
        "interval": duration_text(a.interval.as_ref()),
        "mode": mode_text(a.mode),
        "quarantine_after": a.quarantine_after,
    })
}

fn decision_json(d: &pb::PolicyDecision) -> Value {
    json!({
        "service": key_text(d.service.as_ref()),
        "weights": d.weights.iter().map(|w| json!({"server": w.server, "from": w.from, "to": w.to})).collect::<Vec<_>>(),
        "scheduler": (!d.scheduler.is_empty()).then(|| d.scheduler.clone()),
        "reason": d.reason,
        "applied": d.applied,
    })
}

fn result_json(r: &pb::EvaluationResult) -> Value {
    let time = r
        .time
        .as_ref()
        .map(|t| format!("{}.{:03}", t.seconds, t.nanos / 1_000_000));
    let mut v = json!({
        "time": time,
        "duration": duration_text(r.duration.as_ref()),
        "fuel_used": r.fuel_used,
    });
    // Only when it happened: a policy's output is rarely cut.
    if r.output_truncated {
        v["output_truncated"] = json!(true);
    }
    match &r.outcome {
        Some(pb::evaluation_result::Outcome::Decision(d)) => v["decision"] = decision_json(d),
        Some(pb::evaluation_result::Outcome::Failure(f)) => {
            v["failure"] = json!({"service": key_text(f.service.as_ref()), "kind": f.kind, "message": f.message})
        }
        None => {}
    }
    v
}

fn decision_text(d: &pb::PolicyDecision) -> String {
    let mut parts: Vec<String> = d
        .weights
        .iter()
        .map(|w| format!("{} {}->{}", w.server, w.from, w.to))
        .collect();
    if !d.scheduler.is_empty() {
        parts.push(format!("scheduler {}", d.scheduler));
    }
    if parts.is_empty() {
        parts.push("no change".into());
    }
    let applied = if d.applied { " (applied)" } else { "" };
    format!("{}{applied}: {}", parts.join(", "), d.reason)
}

fn result_text(r: &pb::EvaluationResult) -> String {
    match &r.outcome {
        Some(pb::evaluation_result::Outcome::Decision(d)) => {
            format!("{} {}", key_text(d.service.as_ref()), decision_text(d))
        }
        Some(pb::evaluation_result::Outcome::Failure(f)) => format!(
            "{} failed ({}): {}",
            key_text(f.service.as_ref()),
            f.kind,
            f.message
        ),
        None => "-".into(),
    }
}

fn status_text(s: &pb::AttachmentStatus) -> String {
    let a = s.attachment.clone().unwrap_or_default();
    let mut out = format!(
        "{} policy {} {} every {} on {}\n  evaluations {}, consecutive failures {}/{}{}\n",
        a.id,
        a.policy_hash,
        mode_text(a.mode),
        duration_text(a.interval.as_ref()),
        a.services
            .iter()
            .map(|k| key_text(Some(k)))
            .collect::<Vec<_>>()
            .join(", "),
        s.evaluations,
        s.consecutive_failures,
        a.quarantine_after,
        if s.quarantined { ", QUARANTINED" } else { "" },
    );
    if let Some(last) = &s.last {
        out.push_str(&format!(
            "  last: {} (took {}, fuel {}{})\n",
            result_text(last),
            duration_text(last.duration.as_ref()),
            last.fuel_used,
            if last.output_truncated {
                ", output truncated"
            } else {
                ""
            }
        ));
    }
    if let Some(d) = &s.last_decision {
        out.push_str(&format!("  last decision: {}\n", decision_text(d)));
    }
    out
}

fn status_json(s: &pb::AttachmentStatus) -> Value {
    json!({
        "attachment": s.attachment.as_ref().map(attachment_json),
        "last": s.last.as_ref().map(result_json),
        "last_decision": s.last_decision.as_ref().map(decision_json),
        "consecutive_failures": s.consecutive_failures,
        "quarantined": s.quarantined,
        "evaluations": s.evaluations,
    })
}

fn read_file(path: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| usage(format!("cannot read {path}: {e}")))
}

/// Runs a policy command; the result is what goes to stdout.
pub async fn run(
    command: PolicyCmd,
    agent: &AgentAddress,
    output: OutputFormat,
) -> Result<String, Failure> {
    if let PolicyCmd::Test { file, input } = &command {
        return local::test_locally(file, input).await;
    }
    let json_out = output == OutputFormat::Json;
    // A watch lasts until interrupted: no request timeout. An upload compiles the component
    // to native code, which takes a slow node a while.
    let timeout = match command {
        PolicyCmd::Events { .. } => Duration::from_secs(u64::from(u32::MAX)),
        PolicyCmd::Add { .. } => Duration::from_secs(600),
        _ => Duration::from_secs(60),
    };
    let channel = client::connect_with_timeout(agent, timeout)
        .await
        .map_err(|e| Failure::new(exit::UNREACHABLE, format!("ipvsctl: {e}")))?;
    let mut api = PolicyServiceClient::new(channel);
    let fail = |s: tonic::Status| {
        if client::is_transport_failure(&s) {
            Failure::new(
                exit::UNREACHABLE,
                format!(
                    "ipvsctl: cannot reach agent at {agent}: {}",
                    client::root_cause(&s)
                ),
            )
        } else if s.code() == tonic::Code::Unimplemented {
            Failure::new(
                exit::UNSUPPORTED,
                "ipvsctl: the agent does not serve policies",
            )
        } else {
            Failure::new(exit::REFUSED, format!("ipvsctl: {}", s.message()))
        }
    };
    match command {
        PolicyCmd::Add { file, name } => {
            let component = read_file(&file)?;
            let p = api
                .upload_policy(pb::UploadPolicyRequest {
                    component,
                    name: name.unwrap_or_default(),
                })
                .await
                .map_err(fail)?
                .into_inner()
                .policy
                .unwrap_or_default();
            Ok(if json_out {
                to_json(&json!({"hash": p.hash, "name": p.name, "size": p.size}))
            } else {
                format!("{}\n", p.hash)
            })
        }
        PolicyCmd::Ls => {
            let list = api
                .list_policies(pb::ListPoliciesRequest {})
                .await
                .map_err(fail)?
                .into_inner();
            Ok(if json_out {
                to_json(
                    &list
                        .policies
                        .iter()
                        .map(|p| json!({"hash": p.hash, "name": p.name, "size": p.size}))
                        .collect::<Vec<_>>(),
                )
            } else {
                let mut out = format!("{:<64}  {:>9}  NAME\n", "HASH", "SIZE");
                for p in &list.policies {
                    out.push_str(&format!("{:<64}  {:>9}  {}\n", p.hash, p.size, p.name));
                }
                out
            })
        }
        PolicyCmd::Rm { hash } => {
            api.delete_policy(pb::DeletePolicyRequest { hash })
                .await
                .map_err(fail)?;
            Ok(String::new())
        }
        PolicyCmd::Attach {
            hash,
            tcp,
            udp,
            fwmark,
            params,
            interval,
            dry_run,
            quarantine_after,
        } => {
            let key = service_key(tcp.as_deref(), udp.as_deref(), fwmark).map_err(usage)?;
            let params = params
                .iter()
                .map(|p| param(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(usage)?;
            let interval = parse_interval(&interval).map_err(usage)?;
            let a = api
                .attach(pb::AttachRequest {
                    policy_hash: hash,
                    services: vec![key],
                    params,
                    interval: Some(crate::durations::std_to_pb(interval)),
                    mode: if dry_run {
                        pb::PolicyMode::DryRun
                    } else {
                        pb::PolicyMode::Enforce
                    }
                    .into(),
                    quarantine_after: quarantine_after.unwrap_or(0),
                })
                .await
                .map_err(fail)?
                .into_inner()
                .attachment
                .unwrap_or_default();
            Ok(if json_out {
                to_json(&attachment_json(&a))
            } else {
                format!("{}\n", a.id)
            })
        }
        PolicyCmd::Detach { id } => {
            api.detach(pb::DetachRequest { id }).await.map_err(fail)?;
            Ok(String::new())
        }
        PolicyCmd::Status { id: Some(id) } => {
            let s = api
                .get_status(pb::GetStatusRequest { id })
                .await
                .map_err(fail)?
                .into_inner()
                .status
                .unwrap_or_default();
            Ok(if json_out {
                to_json(&status_json(&s))
            } else {
                status_text(&s)
            })
        }
        PolicyCmd::Status { id: None } => {
            let list = api
                .list_attachments(pb::ListAttachmentsRequest {})
                .await
                .map_err(fail)?
                .into_inner();
            let mut all = Vec::new();
            for a in &list.attachments {
                let s = api
                    .get_status(pb::GetStatusRequest { id: a.id.clone() })
                    .await
                    .map_err(fail)?
                    .into_inner()
                    .status
                    .unwrap_or_default();
                all.push(s);
            }
            Ok(if json_out {
                to_json(&all.iter().map(status_json).collect::<Vec<_>>())
            } else {
                all.iter().map(status_text).collect()
            })
        }
        PolicyCmd::Eval { id } => {
            let r = api
                .evaluate(pb::EvaluateRequest { id })
                .await
                .map_err(fail)?
                .into_inner();
            Ok(if json_out {
                to_json(&r.results.iter().map(result_json).collect::<Vec<_>>())
            } else {
                r.results
                    .iter()
                    .map(|r| format!("{}\n", result_text(r)))
                    .collect()
            })
        }
        PolicyCmd::Events { id } => {
            let mut stream = api
                .watch_policy_events(pb::WatchPolicyEventsRequest {
                    id: id.unwrap_or_default(),
                })
                .await
                .map_err(fail)?
                .into_inner();
            while let Some(event) = stream.next().await {
                let e = event.map_err(fail)?;
                let line = if json_out {
                    let mut v = json!({
                        "attachment": e.attachment_id,
                        "quarantined": e.quarantined,
                        "missed": e.missed,
                    });
                    if let Some(r) = &e.result {
                        v["result"] = result_json(r);
                    }
                    format!("{v}\n")
                } else {
                    let r = e.result.as_ref().map(result_text).unwrap_or_default();
                    let q = if e.quarantined { " QUARANTINED" } else { "" };
                    format!("{} {r}{q}\n", e.attachment_id)
                };
                // Each event as it comes, not at the end.
                crate::output::write_stdout(&line)
                    .map_err(|e| Failure::new(exit::LIST_FAILED, format!("ipvsctl: {e}")))?;
            }
            Ok(String::new())
        }
        PolicyCmd::Test { .. } => Ok(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        let cases = [
            ("2s", Ok(Duration::from_secs(2))),
            ("500ms", Ok(Duration::from_millis(500))),
            ("1m", Ok(Duration::from_secs(60))),
            ("3", Ok(Duration::from_secs(3))),
            (
                "1220765534803ms",
                Ok(Duration::from_millis(1_220_765_534_803)),
            ),
            (
                "2h",
                Err("invalid interval \"2h\" (e.g. 2s, 500ms, 1m)".to_owned()),
            ),
            (
                "s",
                Err("invalid interval \"s\" (e.g. 2s, 500ms, 1m)".to_owned()),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_interval(text), want, "{text}");
        }
    }

    #[test]
    fn service_keys_and_params() {
        assert_eq!(
            service_key(Some("10.0.0.1:80"), None, None).map(|k| key_text(Some(&k))),
            Ok("TCP 10.0.0.1:80".to_owned())
        );
        assert_eq!(
            service_key(None, Some("[fd00::1]:53"), None).map(|k| key_text(Some(&k))),
            Ok("UDP [fd00::1]:53".to_owned())
        );
        assert_eq!(
            service_key(None, None, Some(7)).map(|k| key_text(Some(&k))),
            Ok("FWM 7".to_owned())
        );
        assert_eq!(key_text(None), "-");
        assert_eq!(key_text(Some(&pb::ServiceKey::default())), "-");
        assert_eq!(
            service_key(Some("10.0.0.1"), None, None),
            Err("invalid service address \"10.0.0.1\" (expected VIP:PORT)".to_owned())
        );
        assert_eq!(
            service_key(None, None, None),
            Err("attach needs exactly one of -t, -u or -f".to_owned())
        );
        assert_eq!(
            param("limit=3"),
            Ok(pb::PolicyParam {
                key: "limit".into(),
                value: "3".into()
            })
        );
        assert_eq!(
            param("=3"),
            Err("invalid --param \"=3\" (expected key=value)".to_owned())
        );
    }

    #[test]
    fn truncated_output_is_shown_only_when_it_happened() {
        let mut r = pb::EvaluationResult {
            fuel_used: 7,
            ..pb::EvaluationResult::default()
        };
        assert_eq!(result_json(&r).get("output_truncated"), None);
        r.output_truncated = true;
        assert_eq!(result_json(&r)["output_truncated"], json!(true));
        let status = pb::AttachmentStatus {
            last: Some(r),
            ..pb::AttachmentStatus::default()
        };
        let text = status_text(&status);
        assert!(
            text.contains("  last: - (took -, fuel 7, output truncated)\n"),
            "{text}"
        );
    }

    #[test]
    fn command_lines() {
        let argv = |s: &str| -> Vec<String> { s.split(' ').map(String::from).collect() };
        assert!(is_policy_command(&argv("-o json policy ls")[..]));
        assert!(!is_policy_command(&argv("-L -n")[..]));
        let cli = parse(&argv(
            "ipvsctl policy attach abc -t 10.0.0.1:80 --param a=1 --dry-run --interval 500ms",
        ))
        .expect("parses");
        let Object::Policy {
            command:
                PolicyCmd::Attach {
                    hash,
                    tcp,
                    params,
                    dry_run,
                    interval,
                    ..
                },
        } = cli.object
        else {
            panic!("not attach");
        };
        assert_eq!(
            (
                hash.as_str(),
                tcp.as_deref(),
                params,
                dry_run,
                interval.as_str()
            ),
            (
                "abc",
                Some("10.0.0.1:80"),
                vec!["a=1".to_owned()],
                true,
                "500ms"
            )
        );
        let err = parse(&argv("ipvsctl policy attach abc -t 10.0.0.1:80 -f 3"))
            .expect_err("two services");
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}
