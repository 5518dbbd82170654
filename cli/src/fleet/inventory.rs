//! The fleet inventory: a YAML file naming the agents, their addresses and labels.
//!
//! ```yaml
//! agents:
//!   - name: lb1
//!     address: http://10.0.0.1:50051   # or unix:/run/ipvs-agent/agent.sock
//!     labels: {role: lb, zone: a}
//! ```
//!
//! Names are unique and free of whitespace and commas (`--agents` lists them with commas).
//! The agent has no TLS yet, so a `tls:` block, at the top or in an agent, is refused rather
//! than silently ignored.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny};
use serde_norway::Value;

use crate::client::AgentAddress;

/// A validated inventory, agents in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub agents: Vec<Agent>,
}

/// One agent of the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub name: String,
    pub address: AgentAddress,
    pub labels: BTreeMap<String, String>,
}

/// An inventory that cannot be used; every message names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read inventory {file}: {reason}")]
    Read { file: String, reason: String },
    #[error("{file}: {reason}")]
    Syntax { file: String, reason: String },
    #[error("{file}: no agents")]
    Empty { file: String },
    #[error("{file}: TLS is not supported yet")]
    Tls { file: String },
    /// A problem with the `index`-th agent (from 1), named if it has a usable name.
    #[error("{file}: agent {index}{}: {reason}", name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default())]
    Agent {
        file: String,
        index: usize,
        name: Option<String>,
        reason: String,
    },
}

/// Whether a key was present at all, whatever its value (even `tls:` with nothing after it).
#[derive(Debug, Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Present(true))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    agents: Vec<RawAgent>,
    #[serde(default)]
    tls: Present,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    name: String,
    address: String,
    #[serde(default)]
    labels: BTreeMap<String, Value>,
    #[serde(default)]
    tls: Present,
}

/// Reads and validates the inventory at `path`.
pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| InventoryError::Read {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    parse(&file, &text)
}

/// Parses and validates inventory `text`; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Inventory, InventoryError> {
    let raw: RawInventory = serde_norway::from_str(text).map_err(|e| InventoryError::Syntax {
        file: file.to_string(),
        reason: e.to_string(),
    })?;
    if raw.tls.0 {
        return Err(InventoryError::Tls {
            file: file.to_string(),
        });
    }
    if raw.agents.is_empty() {
        return Err(InventoryError::Empty {
            file: file.to_string(),
        });
    }
    let mut agents: Vec<Agent> = Vec::with_capacity(raw.agents.len());
    for (i, entry) in raw.agents.into_iter().enumerate() {
        let index = i + 1;
        let fail = |name: Option<&str>, reason: String| InventoryError::Agent {
            file: file.to_string(),
            index,
            name: name.map(str::to_string),
            reason,
        };
        let name = entry.name;
        if name.is_empty() {
            return Err(fail(None, "the name is empty".into()));
        }
        if name.contains(|c: char| c.is_whitespace() || c == ',') {
            return Err(fail(
                None,
                format!("name `{name}' must not contain whitespace or commas"),
            ));
        }
        if let Some(first) = agents.iter().position(|a| a.name == name) {
            return Err(fail(
                Some(&name),
                format!("duplicate name, first used by agent {}", first + 1),
            ));
        }
        if entry.tls.0 {
            return Err(fail(Some(&name), "TLS is not supported yet".into()));
        }
        let address =
            AgentAddress::parse(&entry.address).map_err(|e| fail(Some(&name), e.to_string()))?;
        let mut labels = BTreeMap::new();
        for (key, value) in entry.labels {
            let value = match value {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(fail(
                        Some(&name),
                        format!("label `{key}' must be a string, number or boolean"),
                    ));
                }
            };
            labels.insert(key, value);
        }
        agents.push(Agent {
            name,
            address,
            labels,
        });
    }
    Ok(Inventory { agents })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_inventory_keeps_file_order_and_labels() {
        let text = "
agents:
  - name: lb2
    address: http://127.0.0.1:50052
    labels: {role: lb, zone: b, rack: 7, canary: true}
  - name: lb1
    address: unix:/run/ipvs-agent/agent.sock
";
        let inventory = parse("inv.yaml", text);
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            inventory,
            Ok(Inventory {
                agents: vec![
                    Agent {
                        name: "lb2".into(),
                        address: AgentAddress::Http("http://127.0.0.1:50052".into()),
                        labels: labels(&[
                            ("canary", "true"),
                            ("rack", "7"),
                            ("role", "lb"),
                            ("zone", "b")
                        ]),
                    },
                    Agent {
                        name: "lb1".into(),
                        address: AgentAddress::Unix("/run/ipvs-agent/agent.sock".into()),
                        labels: BTreeMap::new(),
                    },
                ]
            })
        );
    }

    #[test]
    fn bad_inventories_say_which_file_and_which_agent() {
        let cases: &[(&str, &str)] = &[
            (
                "agents:\n  - name: lb1\n    address: tcp://10.0.0.1:1\n",
                "inv.yaml: agent 1 (lb1): invalid agent address `tcp://10.0.0.1:1': expected unix:/path or http://host:port",
            ),
            (
                "agents:\n  - name: lb1\n    address: unix:/a\n  - name: lb2\n    address: unix:/b\n  - name: lb1\n    address: unix:/c\n",
                "inv.yaml: agent 3 (lb1): duplicate name, first used by agent 1",
            ),
            (
                "agents:\n  - name: ''\n    address: unix:/a\n",
                "inv.yaml: agent 1: the name is empty",
            ),
            (
                "agents:\n  - name: lb1\n    address: unix:/a\n  - name: lb 2\n    address: unix:/b\n",
                "inv.yaml: agent 2: name `lb 2' must not contain whitespace or commas",
            ),
            (
                "agents:\n  - name: a,b\n    address: unix:/a\n",
                "inv.yaml: agent 1: name `a,b' must not contain whitespace or commas",
            ),
            (
                "agents:\n  - name: lb1\n    address: unix:/a\n    labels: {zone: [a, b]}\n",
                "inv.yaml: agent 1 (lb1): label `zone' must be a string, number or boolean",
            ),
            (
                "tls:\n  ca: /etc/ca.pem\nagents:\n  - name: lb1\n    address: unix:/a\n",
                "inv.yaml: TLS is not supported yet",
            ),
            (
                "tls:\nagents:\n  - name: lb1\n    address: unix:/a\n",
                "inv.yaml: TLS is not supported yet",
            ),
            (
                "agents:\n  - name: lb1\n    address: unix:/a\n    tls: {cert: c.pem}\n",
                "inv.yaml: agent 1 (lb1): TLS is not supported yet",
            ),
            ("agents: []\n", "inv.yaml: no agents"),
            (
                "agents:\n  - name: lb1\n",
                "inv.yaml: agents[0]: missing field `address` at line 2 column 5",
            ),
            (
                "agents:\n  - name: lb1\n    adress: unix:/a\n",
                "inv.yaml: agents[0]: unknown field `adress`, expected one of `name`, `address`, `labels`, `tls` at line 3 column 5",
            ),
            ("", "inv.yaml: missing field `agents`"),
            (
                "agents: lb1\n",
                "inv.yaml: agents: invalid type: string \"lb1\", expected a sequence at line 1 column 9",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse("inv.yaml", text).map_err(|e| e.to_string()),
                Err(want.to_string()),
                "{text}"
            );
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        assert_eq!(
            load(Path::new("/nonexistent/ipvsctl/inv.yaml")).map_err(|e| e.to_string()),
            Err("cannot read inventory /nonexistent/ipvsctl/inv.yaml: No such file or directory (os error 2)".into())
        );
    }
}
