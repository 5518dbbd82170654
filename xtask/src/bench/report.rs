//! From the guest's records to the tables the benchmark prints: medians of the repeated
//! runs, ipvsadm/ipvsctl ratios, the kernel floor, and growth between consecutive sizes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::bench::input::Size;
use crate::bench::record::Record;

/// The tools a time can belong to.
pub const IPVSADM: &str = "ipvsadm";
pub const IPVSCTL: &str = "ipvsctl";
pub const FLOOR: &str = "floor";

/// The floor's two measurements: a pipelined fresh restore and a full table dump.
pub const FLOOR_RESTORE: &str = "restore";
pub const FLOOR_DUMP: &str = "dump";

/// The small-call measurement's op, measured once on a one-service table.
pub const SMALL_CALLS: &str = "small-calls";

/// One measured operation: its id in the records, its row label, and which floor bounds it.
#[derive(Debug, Clone, Copy)]
pub struct Op {
    pub id: &'static str,
    pub what: &'static str,
    pub floor: &'static str,
}

/// Every per-size operation, in the order the guest runs and the tables show them.
pub const OPS: &[Op] = &[
    Op {
        id: "restore",
        what: "restore into an empty table (-R)",
        floor: FLOOR_RESTORE,
    },
    Op {
        id: "save",
        what: "save (-Sn)",
        floor: FLOOR_DUMP,
    },
    Op {
        id: "list",
        what: "list (-Ln)",
        floor: FLOOR_DUMP,
    },
    Op {
        id: "list-stats",
        what: "list with counters (-Ln --stats)",
        floor: FLOOR_DUMP,
    },
    Op {
        id: "restore-same",
        what: "-R --replace of the same rules (no change)",
        floor: FLOOR_DUMP,
    },
    Op {
        id: "one-weight",
        what: "one weight changed (ipvsadm -C + -R; ipvsctl -R --replace)",
        floor: FLOOR_DUMP,
    },
    Op {
        id: "export",
        what: "export",
        floor: FLOOR_DUMP,
    },
    Op {
        id: "apply-fresh",
        what: "apply -f of the export into an empty table",
        floor: FLOOR_RESTORE,
    },
    Op {
        id: "apply-same",
        what: "apply -f of the same again (no change)",
        floor: FLOOR_DUMP,
    },
];

/// Everything the guest reported, gathered.
#[derive(Debug, Default)]
pub struct Results {
    /// Sizes in the order the guest measured them.
    pub sizes: Vec<Size>,
    times: BTreeMap<(Size, String, String), Vec<f64>>,
    rss: BTreeMap<Size, u64>,
    leaks: BTreeMap<Size, (u32, u64, u64)>,
    pub info: Vec<(String, String)>,
    pub errors: Vec<String>,
    /// The last `start` seen: what the guest was doing when it stopped.
    pub last_start: Option<(String, Size)>,
    pub done: bool,
}

impl Results {
    pub fn add(&mut self, r: Record) {
        let note = |size: Size, sizes: &mut Vec<Size>| {
            if size != SMALL && !sizes.contains(&size) {
                sizes.push(size);
            }
        };
        match r {
            Record::Start { op, size } => {
                note(size, &mut self.sizes);
                self.last_start = Some((op, size));
            }
            Record::Time {
                op,
                size,
                tool,
                secs,
            } => {
                note(size, &mut self.sizes);
                self.times.entry((size, op, tool)).or_default().push(secs);
            }
            Record::Rss { size, kb } => {
                self.rss.insert(size, kb);
            }
            Record::Leak {
                size,
                applies,
                before_kb,
                after_kb,
            } => {
                self.leaks.insert(size, (applies, before_kb, after_kb));
            }
            Record::Info { key, value } => self.info.push((key, value)),
            Record::Error(e) => self.errors.push(e),
            Record::Done => self.done = true,
        }
    }

    /// The median of the runs of `op` by `tool` at `size`.
    pub fn median(&self, size: Size, op: &str, tool: &str) -> Option<f64> {
        median(self.times.get(&(size, op.to_string(), tool.to_string()))?)
    }

    fn runs(&self, size: Size, op: &str, tool: &str) -> usize {
        self.times
            .get(&(size, op.to_string(), tool.to_string()))
            .map_or(0, Vec::len)
    }

    /// The size measured before `size` with as many real servers per service: what its
    /// growth is relative to.
    pub fn previous(&self, size: Size) -> Option<Size> {
        self.sizes
            .iter()
            .filter(|s| s.dests == size.dests && s.services < size.services)
            .max()
            .copied()
    }
}

/// The size the small-call measurement is recorded under.
pub const SMALL: Size = Size {
    services: 1,
    dests: 1,
};

pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// `a / b`, when both are measured and `b` is positive.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// How our own share grew: (total − floor) at the larger size over the same at the smaller.
/// None unless both shares are positive (a floor above the total is noise, not a share).
pub fn own_growth(
    now: Option<f64>,
    floor_now: Option<f64>,
    before: Option<f64>,
    floor_before: Option<f64>,
) -> Option<f64> {
    let share = |t: Option<f64>, f: Option<f64>| Some(t? - f?).filter(|s| *s > 0.0);
    ratio(share(now, floor_now), share(before, floor_before))
}

fn secs(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_string(), |x| format!("{x:.3}"))
}

fn times(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_string(), |x| format!("{x:.2}x"))
}

/// A markdown table with its columns padded, readable on a terminal as it is.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let width = |c: usize| {
        rows.iter()
            .map(|r| r[c].chars().count())
            .chain([header[c].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        out.push('|');
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            if i == 0 {
                let _ = write!(out, " {c}{} |", " ".repeat(pad));
            } else {
                let _ = write!(out, " {}{c} |", " ".repeat(pad));
            }
        }
        out.push('\n');
    };
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    line(&mut out, &header);
    out.push('|');
    for (i, w) in widths.iter().enumerate() {
        let dashes = "-".repeat(*w);
        if i == 0 {
            let _ = write!(out, " {dashes} |");
        } else {
            let _ = write!(out, " {}: |", &dashes[1..]);
        }
    }
    out.push('\n');
    for r in rows {
        line(&mut out, r);
    }
    out
}

/// One size's rows: medians, ratio ipvsadm/ipvsctl (> 1: ipvsctl is faster), the floor,
/// and growth from the previous size of the same shape.
fn size_rows(res: &Results, size: Size) -> Vec<Vec<String>> {
    let prev = res.previous(size);
    let mut rows = Vec::new();
    for op in OPS {
        let adm = res.median(size, op.id, IPVSADM);
        let ctl = res.median(size, op.id, IPVSCTL);
        let floor = res.median(size, op.floor, FLOOR);
        let mut row = vec![
            op.what.to_string(),
            secs(adm),
            secs(ctl),
            times(ratio(adm, ctl)),
            secs(floor),
        ];
        if let Some(p) = prev {
            let growth =
                |tool: &str, o: &str| ratio(res.median(size, o, tool), res.median(p, o, tool));
            row.extend([
                times(growth(IPVSADM, op.id)),
                times(growth(IPVSCTL, op.id)),
                times(growth(FLOOR, op.floor)),
                times(own_growth(
                    ctl,
                    floor,
                    res.median(p, op.id, IPVSCTL),
                    res.median(p, op.floor, FLOOR),
                )),
            ]);
        }
        rows.push(row);
    }
    rows
}

/// One size's table ([`size_rows`]) with its heading and the agent's memory.
pub fn size_table(res: &Results, size: Size) -> String {
    let prev = res.previous(size);
    let rows = size_rows(res, size);
    let runs = OPS
        .iter()
        .flat_map(|op| [IPVSADM, IPVSCTL].map(|t| res.runs(size, op.id, t)))
        .filter(|n| *n > 0)
        .max()
        .unwrap_or(0);
    let mut out = format!(
        "### {} services x {} real servers (seconds, median of {runs})\n\n",
        size.services, size.dests
    );
    let mut header = vec!["operation", "ipvsadm", "ipvsctl", "adm/ctl", "floor"];
    if prev.is_some() {
        header.extend([
            "ipvsadm growth",
            "ipvsctl growth",
            "floor growth",
            "ours-floor growth",
        ]);
    }
    out.push_str(&table(&header, &rows));
    if let Some(p) = prev {
        let _ = writeln!(
            out,
            "\ngrowth: time at {} / time at {}",
            size.label(),
            p.label()
        );
    }
    let mut notes = Vec::new();
    if let Some(kb) = res.rss.get(&size) {
        notes.push(format!(
            "agent RSS after the declared apply: {:.1} MB",
            mb(*kb)
        ));
    }
    if let Some((k, before, after)) = res.leaks.get(&size) {
        let delta = i128::from(*after) - i128::from(*before);
        notes.push(format!(
            "leak check: RSS {:.1} MB before, {:.1} MB after {k} no-op applies ({delta:+} kB)",
            mb(*before),
            mb(*after)
        ));
    }
    for n in notes {
        let _ = writeln!(out, "\n{n}");
    }
    out
}

fn mb(kb: u64) -> f64 {
    // kB to MB (10^6 bytes), as `ps` users read them.
    kb as f64 * 1024.0 / 1e6
}

/// The small-call table: 20 one-service listings, process start included.
pub fn small_table(res: &Results) -> Option<String> {
    let adm = res.median(SMALL, SMALL_CALLS, IPVSADM);
    let ctl = res.median(SMALL, SMALL_CALLS, IPVSCTL);
    if adm.is_none() && ctl.is_none() {
        return None;
    }
    let runs = res.runs(SMALL, SMALL_CALLS, IPVSCTL);
    let mut out = format!("### 20 x `-ln` on a one-service table (seconds, median of {runs})\n\n");
    out.push_str(&table(
        &["operation", "ipvsadm", "ipvsctl", "adm/ctl"],
        &[vec![
            "20 calls, process start included".to_string(),
            secs(adm),
            secs(ctl),
            times(ratio(adm, ctl)),
        ]],
    ));
    Some(out)
}

/// Every table, small calls first.
pub fn render(res: &Results) -> String {
    let mut parts: Vec<String> = small_table(res).into_iter().collect();
    parts.extend(res.sizes.iter().map(|s| size_table(res, *s)));
    parts.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(services: u32) -> Size {
        Size { services, dests: 4 }
    }

    fn time(op: &str, n: u32, tool: &str, secs: f64) -> Record {
        Record::Time {
            op: op.into(),
            size: size(n),
            tool: tool.into(),
            secs,
        }
    }

    #[test]
    fn markdown_table_is_padded() {
        let t = table(
            &["op", "a"],
            &[
                vec!["list".into(), "1.000".into()],
                vec!["x".into(), "—".into()],
            ],
        );
        assert_eq!(
            t,
            "| op   |     a |\n| ---- | ----: |\n| list | 1.000 |\n| x    |     — |\n"
        );
    }

    #[test]
    fn medians() {
        let cases: &[(&[f64], Option<f64>)] = &[
            (&[], None),
            (&[2.0], Some(2.0)),
            (&[3.0, 1.0, 2.0], Some(2.0)),
            (&[4.0, 1.0, 3.0, 2.0], Some(2.5)),
            (&[9.0, 1.0, 1.1], Some(1.1)),
        ];
        for (xs, want) in cases {
            assert_eq!(median(xs), *want, "{xs:?}");
        }
    }

    #[test]
    fn ratios_and_own_growth() {
        assert_eq!(ratio(Some(3.0), Some(1.5)), Some(2.0));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
        // (10 − 2) / (3 − 1) = 4.
        assert_eq!(
            own_growth(Some(10.0), Some(2.0), Some(3.0), Some(1.0)),
            Some(4.0)
        );
        // A floor above the total leaves no share to compare.
        assert_eq!(
            own_growth(Some(10.0), Some(2.0), Some(1.0), Some(1.5)),
            None
        );
        assert_eq!(own_growth(Some(10.0), None, Some(3.0), Some(1.0)), None);
    }

    #[test]
    fn previous_size_has_the_same_shape() {
        let mut res = Results::default();
        for n in [4000, 1000, 16_000] {
            res.add(time("list", n, IPVSADM, 1.0));
        }
        res.add(Record::Time {
            op: "list".into(),
            size: Size {
                services: 50_000,
                dests: 1,
            },
            tool: IPVSADM.into(),
            secs: 1.0,
        });
        assert_eq!(res.previous(size(16_000)), Some(size(4000)));
        assert_eq!(res.previous(size(4000)), Some(size(1000)));
        assert_eq!(res.previous(size(1000)), None);
        assert_eq!(
            res.previous(Size {
                services: 50_000,
                dests: 1
            }),
            None
        );
    }

    #[test]
    fn tables_show_medians_ratios_floor_and_growth() {
        let mut res = Results::default();
        for r in [
            time("restore", 100, IPVSADM, 2.0),
            time("restore", 100, IPVSADM, 4.0),
            time("restore", 100, IPVSADM, 3.0),
            time("restore", 100, IPVSCTL, 1.0),
            time("restore", 100, FLOOR, 0.5),
            time("restore", 400, IPVSADM, 12.0),
            time("restore", 400, IPVSCTL, 2.0),
            time("restore", 400, FLOOR, 1.0),
            time("export", 400, IPVSCTL, 1.5),
            Record::Rss {
                size: size(400),
                kb: 25_000,
            },
            Record::Leak {
                size: size(400),
                applies: 10,
                before_kb: 25_000,
                after_kb: 25_100,
            },
            Record::Time {
                op: SMALL_CALLS.into(),
                size: SMALL,
                tool: IPVSADM.into(),
                secs: 1.0,
            },
            Record::Time {
                op: SMALL_CALLS.into(),
                size: SMALL,
                tool: IPVSCTL.into(),
                secs: 2.0,
            },
            Record::Done,
        ] {
            res.add(r);
        }
        assert_eq!(res.sizes, [size(100), size(400)]);
        let small = small_table(&res).unwrap_or_default();
        assert!(
            small.contains("| 20 calls, process start included |   1.000 |   2.000 |   0.50x |"),
            "{small}"
        );
        let first = size_table(&res, size(100));
        assert!(first.starts_with("### 100 services x 4 real servers (seconds, median of 3)\n"));
        assert!(!first.contains("growth"), "{first}");
        assert_eq!(
            size_rows(&res, size(100))[0],
            [
                "restore into an empty table (-R)",
                "3.000",
                "1.000",
                "3.00x",
                "0.500"
            ]
        );
        // Growth: ipvsadm 12/3, ipvsctl 2/1, floor 1/0.5, ours (2 − 1)/(1 − 0.5).
        let rows = size_rows(&res, size(400));
        assert_eq!(
            rows[0][1..],
            [
                "12.000", "2.000", "6.00x", "1.000", "4.00x", "2.00x", "2.00x", "2.00x"
            ]
        );
        // Export: no ipvsadm figure, no earlier export, the dump floor never measured.
        assert_eq!(rows[6][1..], ["—", "1.500", "—", "—", "—", "—", "—", "—"]);
        let second = size_table(&res, size(400));
        assert!(second.contains("| export "), "{second}");
        assert!(second.contains("growth: time at 400x4 / time at 100x4"));
        assert!(second.contains("agent RSS after the declared apply: 25.6 MB"));
        assert!(
            second.contains(
                "leak check: RSS 25.6 MB before, 25.7 MB after 10 no-op applies (+100 kB)"
            )
        );
    }
}
