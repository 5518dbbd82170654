//! The console protocol between the guest half of the benchmark and the host: one line per
//! fact, `bench: ` then `key=value` words, so that kernel messages on the same console are
//! simply not records and a half-printed run still says how far it got.

use std::collections::BTreeMap;

use crate::bench::input::Size;

pub const PREFIX: &str = "bench: ";

/// One fact from the guest.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// `start op=OP size=SxD`: an operation begins (for errors: the last one seen).
    Start { op: String, size: Size },
    /// `op=OP size=SxD tool=T secs=F`: one timed run.
    Time {
        op: String,
        size: Size,
        tool: String,
        secs: f64,
    },
    /// `rss size=SxD kb=K`: the agent's VmRSS after the declared apply.
    Rss { size: Size, kb: u64 },
    /// `leak size=SxD applies=K before_kb=B after_kb=A`: RSS around K no-op applies.
    Leak {
        size: Size,
        applies: u32,
        before_kb: u64,
        after_kb: u64,
    },
    /// `info KEY=VALUE` (the value may contain spaces).
    Info { key: String, value: String },
    /// `error MESSAGE`.
    Error(String),
    /// `done`: every measurement was printed.
    Done,
}

impl Record {
    /// The console line for this record.
    pub fn line(&self) -> String {
        let body = match self {
            Record::Start { op, size } => format!("start op={op} size={}", size.label()),
            Record::Time {
                op,
                size,
                tool,
                secs,
            } => format!("op={op} size={} tool={tool} secs={secs:.6}", size.label()),
            Record::Rss { size, kb } => format!("rss size={} kb={kb}", size.label()),
            Record::Leak {
                size,
                applies,
                before_kb,
                after_kb,
            } => format!(
                "leak size={} applies={applies} before_kb={before_kb} after_kb={after_kb}",
                size.label()
            ),
            Record::Info { key, value } => format!("info {key}={value}"),
            Record::Error(m) => format!("error {m}"),
            Record::Done => "done".to_string(),
        };
        format!("{PREFIX}{body}")
    }

    /// `None` for a line that is not a record; `Some(Err)` for one that is but is malformed.
    pub fn parse(line: &str) -> Option<Result<Record, String>> {
        let body = line.trim_end().strip_prefix(PREFIX)?;
        Some(parse_body(body).ok_or_else(|| format!("malformed result line {line:?}")))
    }
}

fn parse_body(body: &str) -> Option<Record> {
    let (first, rest) = body.split_once(' ').unwrap_or((body, ""));
    match first {
        "done" if rest.is_empty() => return Some(Record::Done),
        "error" => return Some(Record::Error(rest.to_string())),
        "info" => {
            let (key, value) = rest.split_once('=')?;
            return Some(Record::Info {
                key: key.to_string(),
                value: value.to_string(),
            });
        }
        _ => {}
    }
    let words = if first.contains('=') { body } else { rest };
    let kv: BTreeMap<&str, &str> = words
        .split_whitespace()
        .map(|w| w.split_once('='))
        .collect::<Option<_>>()?;
    let size = Size::parse(kv.get("size")?)?;
    let get_u64 = |k: &str| kv.get(k)?.parse::<u64>().ok();
    let record = match first {
        "start" => Record::Start {
            op: (*kv.get("op")?).to_string(),
            size,
        },
        "rss" => Record::Rss {
            size,
            kb: get_u64("kb")?,
        },
        "leak" => Record::Leak {
            size,
            applies: kv.get("applies")?.parse().ok()?,
            before_kb: get_u64("before_kb")?,
            after_kb: get_u64("after_kb")?,
        },
        _ => {
            let secs: f64 = kv.get("secs")?.parse().ok()?;
            if !secs.is_finite() || secs < 0.0 {
                return None;
            }
            Record::Time {
                op: (*kv.get("op")?).to_string(),
                size,
                tool: (*kv.get("tool")?).to_string(),
                secs,
            }
        }
    };
    Some(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Size = Size {
        services: 1000,
        dests: 4,
    };

    #[test]
    fn lines_parse() {
        let cases: &[(&str, Option<Result<Record, String>>)] = &[
            ("[   12.3] ip_vs: registered", None),
            ("lab: modprobe x failed", None),
            ("bench: done", Some(Ok(Record::Done))),
            ("bench: done\r", Some(Ok(Record::Done))),
            (
                "bench: start op=restore size=1000x4",
                Some(Ok(Record::Start {
                    op: "restore".into(),
                    size: S,
                })),
            ),
            (
                "bench: op=list size=1000x4 tool=ipvsadm secs=1.250000",
                Some(Ok(Record::Time {
                    op: "list".into(),
                    size: S,
                    tool: "ipvsadm".into(),
                    secs: 1.25,
                })),
            ),
            (
                "bench: rss size=1000x4 kb=26100",
                Some(Ok(Record::Rss { size: S, kb: 26100 })),
            ),
            (
                "bench: leak size=1000x4 applies=40 before_kb=100 after_kb=104",
                Some(Ok(Record::Leak {
                    size: S,
                    applies: 40,
                    before_kb: 100,
                    after_kb: 104,
                })),
            ),
            (
                "bench: info cpu=AMD EPYC 7B13 64-Core",
                Some(Ok(Record::Info {
                    key: "cpu".into(),
                    value: "AMD EPYC 7B13 64-Core".into(),
                })),
            ),
            (
                "bench: error ipvsctl -R failed: exit 2",
                Some(Ok(Record::Error("ipvsctl -R failed: exit 2".into()))),
            ),
            (
                "bench: op=list size=1000x4 tool=ipvsadm secs=-1",
                Some(Err(
                    "malformed result line \"bench: op=list size=1000x4 tool=ipvsadm secs=-1\""
                        .into(),
                )),
            ),
            (
                "bench: op=list size=1000 tool=ipvsadm secs=1",
                Some(Err(
                    "malformed result line \"bench: op=list size=1000 tool=ipvsadm secs=1\"".into(),
                )),
            ),
            (
                "bench: rss size=1000x4",
                Some(Err(
                    "malformed result line \"bench: rss size=1000x4\"".into()
                )),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(&Record::parse(line), want, "{line}");
        }
    }

    #[test]
    fn every_record_round_trips() {
        let records = [
            Record::Start {
                op: "export".into(),
                size: S,
            },
            Record::Time {
                op: "restore".into(),
                size: S,
                tool: "floor".into(),
                secs: 0.5,
            },
            Record::Rss { size: S, kb: 1 },
            Record::Leak {
                size: S,
                applies: 3,
                before_kb: 5,
                after_kb: 6,
            },
            Record::Info {
                key: "kernel".into(),
                value: "6.1.0-56-amd64".into(),
            },
            Record::Error("boom".into()),
            Record::Done,
        ];
        for r in records {
            assert_eq!(Record::parse(&r.line()), Some(Ok(r.clone())), "{r:?}");
        }
    }
}
