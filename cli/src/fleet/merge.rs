//! One output for many nodes: their stdout merged into one table (or one JSON array), and a
//! per-node summary.
//!
//! Text: every stdout line of a node is printed as `NODE  line`, the name padded to the
//! longest, nodes in inventory order. A header is recognised by one simple rule: when every
//! node that printed anything printed at least two lines and the same first line, and that
//! line starts with a capital letter (titles do: `IP Virtual Server ...`, `HASH ...`; data
//! lines such as `1: dummy0: ...` or `-A -t ...` do not), the line is printed once, after
//! `NODE` (`NODE  IP Virtual Server version 1.2.1 (size=4096)`), and each node's lines follow
//! from its second. A one-line answer is never taken for a header.
//!
//! JSON: an array of `{"node": NAME, "result": JSON}`, a node's JSON embedded as it printed
//! it (key order kept); a node that failed also has `"error"` (its stderr's first line), and
//! a node whose output is not JSON has only `"error"`.

use super::runner::Outcome;

/// One node's name and what its command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeOutcome {
    pub name: String,
    pub outcome: Outcome,
}

/// The header a text table starts with: the first line every node printed, if the rule in the
/// module's doc holds.
fn common_header(results: &[NodeOutcome]) -> Option<&str> {
    let mut printed = results
        .iter()
        .map(|r| r.outcome.stdout.as_str())
        .filter(|s| !s.is_empty());
    let first = printed.next()?;
    let header = first
        .lines()
        .next()
        .filter(|h| h.starts_with(|c: char| c.is_ascii_uppercase()))?;
    let qualifies = |s: &str| {
        let mut lines = s.lines();
        lines.next() == Some(header) && lines.next().is_some()
    };
    (qualifies(first) && printed.all(qualifies)).then_some(header)
}

/// The nodes' stdout as one table with a NODE column.
pub fn text(results: &[NodeOutcome]) -> String {
    let header = common_header(results);
    let mut width = results.iter().map(|r| r.name.len()).max().unwrap_or(0);
    if header.is_some() {
        width = width.max("NODE".len());
    }
    let mut out = String::new();
    let mut line = |name: &str, text: &str| {
        if text.is_empty() {
            out.push_str(name);
        } else {
            out.push_str(&format!("{name:<width$}  {text}"));
        }
        out.push('\n');
    };
    if let Some(h) = header {
        line("NODE", h);
    }
    for r in results {
        let skip = usize::from(header.is_some());
        for l in r.outcome.stdout.lines().skip(skip) {
            line(&r.name, l);
        }
    }
    out
}

/// Why a node has no result, or failed: its stderr's first line, else its exit status.
fn error(outcome: &Outcome) -> String {
    match outcome.reason() {
        Some(reason) => reason.to_string(),
        None => format!("exit {}", outcome.status),
    }
}

/// JSON `text` as a value nested `depth` levels deep in pretty output: JSON text has no raw
/// newlines inside strings, so indenting every line after the first is exact.
fn indent(text: &str, depth: usize) -> String {
    text.replace('\n', &format!("\n{}", "  ".repeat(depth)))
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// The nodes' stdout as one JSON array.
pub fn json(results: &[NodeOutcome]) -> String {
    let entries: Vec<String> = results
        .iter()
        .map(|r| {
            let printed = r.outcome.stdout.trim();
            let is_json = !printed.is_empty()
                && serde_json::from_str::<serde::de::IgnoredAny>(printed).is_ok();
            let mut fields = vec![format!("\"node\": {}", quote(&r.name))];
            if is_json {
                fields.push(format!("\"result\": {}", indent(printed, 2)));
            } else if r.outcome.ok() && printed.is_empty() {
                fields.push("\"result\": null".to_string());
            }
            if !r.outcome.ok() {
                fields.push(format!("\"error\": {}", quote(&error(&r.outcome))));
            } else if !is_json && !printed.is_empty() {
                let first = printed.lines().next().unwrap_or_default();
                fields.push(format!(
                    "\"error\": {}",
                    quote(&format!("output is not JSON: {first}"))
                ));
            }
            format!("  {{\n    {}\n  }}", fields.join(",\n    "))
        })
        .collect();
    if entries.is_empty() {
        return "[]\n".to_string();
    }
    format!("[\n{}\n]\n", entries.join(",\n"))
}

/// `lb1: ok` / `lb2: failed (exit 3): REASON` per node, then `fleet: N of M nodes ok`.
pub fn summary(results: &[NodeOutcome]) -> String {
    let mut out = String::new();
    for r in results {
        let o = &r.outcome;
        let line = match (o.ok(), o.reason()) {
            (true, _) => format!("{}: ok", r.name),
            (false, Some(reason)) => format!("{}: failed (exit {}): {reason}", r.name, o.status),
            (false, None) => format!("{}: failed (exit {})", r.name, o.status),
        };
        out.push_str(&line);
        out.push('\n');
    }
    let ok = results.iter().filter(|r| r.outcome.ok()).count();
    out.push_str(&format!("fleet: {ok} of {} nodes ok\n", results.len()));
    out
}

/// 0 if every node succeeded, else the highest exit status of a node.
pub fn exit_status(results: &[NodeOutcome]) -> u8 {
    results.iter().map(|r| r.outcome.status).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::runner::fake::outcome;

    /// (node, exit status, stdout, stderr)
    type Row<'a> = (&'a str, u8, &'a str, &'a str);

    fn results(rows: &[Row<'_>]) -> Vec<NodeOutcome> {
        rows.iter()
            .map(|(name, status, stdout, stderr)| NodeOutcome {
                name: name.to_string(),
                outcome: outcome(*status, stdout, stderr),
            })
            .collect()
    }

    const LN_HEAD: &str =
        "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n";

    #[test]
    fn text_prefixes_every_line_with_its_node() {
        let ln1 = format!("{LN_HEAD}TCP  10.0.0.1:80 rr\n");
        let ln2 = format!("{LN_HEAD}TCP  10.0.0.2:80 wlc\n");
        let cases: Vec<(Vec<NodeOutcome>, String)> = vec![
            // Same first line everywhere and more after it: a header.
            (
                results(&[("lb1", 0, &ln1, ""), ("lb-long", 0, &ln2, "")]),
                "NODE     IP Virtual Server version 1.2.1 (size=4096)
lb1      Prot LocalAddress:Port Scheduler Flags
lb1      TCP  10.0.0.1:80 rr
lb-long  Prot LocalAddress:Port Scheduler Flags
lb-long  TCP  10.0.0.2:80 wlc
"
                .to_string(),
            ),
            // A node that printed nothing (it failed) does not stop the header; NODE widens
            // the column past short names.
            (
                results(&[("a", 0, &ln1, ""), ("b", 3, "", "ipvsctl: cannot reach"), ("c", 0, &ln2, "")]),
                "NODE  IP Virtual Server version 1.2.1 (size=4096)
a     Prot LocalAddress:Port Scheduler Flags
a     TCP  10.0.0.1:80 rr
c     Prot LocalAddress:Port Scheduler Flags
c     TCP  10.0.0.2:80 wlc
"
                .to_string(),
            ),
            // One node is enough for a header.
            (
                results(&[("lb1", 0, &ln1, "")]),
                "NODE  IP Virtual Server version 1.2.1 (size=4096)
lb1   Prot LocalAddress:Port Scheduler Flags
lb1   TCP  10.0.0.1:80 rr
"
                .to_string(),
            ),
            // First lines differ: no header.
            (
                results(&[("lb1", 0, "Links\n1: dummy0: <UP>\n", ""), ("lb2", 0, "Addresses\n1: lo\n", "")]),
                "lb1  Links\nlb1  1: dummy0: <UP>\nlb2  Addresses\nlb2  1: lo\n".to_string(),
            ),
            // The same data line first on every node is not a title.
            (
                results(&[("lb1", 0, "1: lo: <UP>\n2: dummy0\n", ""), ("lb2", 0, "1: lo: <UP>\n2: dummy1\n", "")]),
                "lb1  1: lo: <UP>\nlb1  2: dummy0\nlb2  1: lo: <UP>\nlb2  2: dummy1\n".to_string(),
            ),
            (
                results(&[("lb1", 0, "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80\n", ""), ("lb2", 0, "-A -t 10.0.0.1:80 -s rr\n", "")]),
                "lb1  -A -t 10.0.0.1:80 -s rr\nlb1  -a -t 10.0.0.1:80 -r 10.1.0.1:80\nlb2  -A -t 10.0.0.1:80 -s rr\n".to_string(),
            ),
            // One-line answers, even identical, are data.
            (
                results(&[("lb1", 0, "Timeout (tcp tcpfin udp): 900 120 300\n", ""), ("lb2", 0, "Timeout (tcp tcpfin udp): 900 120 300\n", "")]),
                "lb1  Timeout (tcp tcpfin udp): 900 120 300\nlb2  Timeout (tcp tcpfin udp): 900 120 300\n".to_string(),
            ),
            // One node with a one-line answer and one with more: no header.
            (
                results(&[("lb1", 0, "X\n", ""), ("lb2", 0, "X\ny\n", "")]),
                "lb1  X\nlb2  X\nlb2  y\n".to_string(),
            ),
            // Empty lines keep the node name; trailing blanks of a line are kept.
            (
                results(&[("lb1", 0, "a  \n\nb", "")]),
                "lb1  a  \nlb1\nlb1  b\n".to_string(),
            ),
            (results(&[("lb1", 3, "", "x"), ("lb2", 3, "", "y")]), String::new()),
        ];
        for (input, want) in cases {
            assert_eq!(text(&input), want, "{input:?}");
        }
    }

    #[test]
    fn json_is_one_array_in_node_order() {
        let input = results(&[
            ("lb1", 0, "{\n  \"services\": [],\n  \"b\": 1\n}\n", ""),
            (
                "lb2",
                3,
                "",
                "ipvsctl: cannot reach agent at unix:/x: gone\n",
            ),
            ("lb3", 0, "", ""),
            ("lb4", 0, "IP Virtual Server\n", ""),
            ("lb5", 1, "{\"changes\": [1]}", "ipvsctl: differs\n"),
            ("lb\"6", 2, "", ""),
        ]);
        let want = r#"[
  {
    "node": "lb1",
    "result": {
      "services": [],
      "b": 1
    }
  },
  {
    "node": "lb2",
    "error": "cannot reach agent at unix:/x: gone"
  },
  {
    "node": "lb3",
    "result": null
  },
  {
    "node": "lb4",
    "error": "output is not JSON: IP Virtual Server"
  },
  {
    "node": "lb5",
    "result": {"changes": [1]},
    "error": "differs"
  },
  {
    "node": "lb\"6",
    "error": "exit 2"
  }
]
"#;
        let got = json(&input);
        assert_eq!(got, want);
        // And it is JSON.
        assert!(
            serde_json::from_str::<serde_json::Value>(&got).is_ok(),
            "{got}"
        );
    }

    #[test]
    fn summary_and_exit_status() {
        let input = results(&[
            ("lb1", 0, "x", "a warning\n"),
            (
                "lb2",
                3,
                "",
                "ipvsctl: cannot reach agent at unix:/x: gone\nmore\n",
            ),
            ("lb3", 255, "", ""),
        ]);
        assert_eq!(
            summary(&input),
            "lb1: ok\nlb2: failed (exit 3): cannot reach agent at unix:/x: gone\nlb3: failed (exit 255)\nfleet: 1 of 3 nodes ok\n"
        );
        let cases: &[(&[Row<'_>], u8)] = &[
            (&[("a", 0, "", ""), ("b", 0, "", "")], 0),
            (&[("a", 0, "", ""), ("b", 3, "", "")], 3),
            (
                &[("a", 255, "", ""), ("b", 3, "", ""), ("c", 0, "", "")],
                255,
            ),
        ];
        for (rows, want) in cases {
            assert_eq!(exit_status(&results(rows)), *want, "{rows:?}");
        }
    }
}
