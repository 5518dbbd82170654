//! Which nodes a fleet command runs on: the inventory's agents, narrowed by `--agents` and
//! `--selector`, in inventory order; or, without an inventory, the addresses `--agents` lists.

use crate::client::AgentAddress;

use super::args::Selector;
use super::inventory::Inventory;

/// A node to run on: its name in output and its agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub address: AgentAddress,
}

/// A selection that names no usable node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("agent `{name}' is not in {file}")]
    Unknown { name: String, file: String },
    #[error("{reason} (without --fleet, --agents lists addresses)")]
    BadAddress { reason: String },
    #[error("no agent in {file} matches {selectors}")]
    NoMatch { file: String, selectors: String },
}

/// The inventory's agents named by `agents` (all if `None`) whose labels match every selector,
/// in inventory order, each once.
pub fn from_inventory(
    file: &str,
    inventory: &Inventory,
    agents: Option<&[String]>,
    selectors: &[Selector],
) -> Result<Vec<Node>, SelectError> {
    if let Some(names) = agents
        && let Some(unknown) = names
            .iter()
            .find(|n| !inventory.agents.iter().any(|a| &a.name == *n))
    {
        return Err(SelectError::Unknown {
            name: unknown.clone(),
            file: file.to_string(),
        });
    }
    let nodes: Vec<Node> = inventory
        .agents
        .iter()
        .filter(|a| agents.is_none_or(|names| names.contains(&a.name)))
        .filter(|a| {
            selectors
                .iter()
                .all(|s| a.labels.get(&s.key) == Some(&s.value))
        })
        .map(|a| Node {
            name: a.name.clone(),
            address: a.address.clone(),
        })
        .collect();
    if nodes.is_empty() {
        let mut selectors: Vec<String> = selectors
            .iter()
            .map(|s| format!("--selector {s}"))
            .collect();
        if let Some(names) = agents {
            selectors.insert(0, format!("--agents {}", names.join(",")));
        }
        return Err(SelectError::NoMatch {
            file: file.to_string(),
            selectors: selectors.join(" "),
        });
    }
    Ok(nodes)
}

/// `--agents` without an inventory: each item is an address, named by itself, in the order
/// given, each once.
pub fn from_addresses(addresses: &[String]) -> Result<Vec<Node>, SelectError> {
    let mut nodes: Vec<Node> = Vec::new();
    for a in addresses {
        let address = AgentAddress::parse(a).map_err(|e| SelectError::BadAddress {
            reason: e.to_string(),
        })?;
        if !nodes.iter().any(|n| &n.name == a) {
            nodes.push(Node {
                name: a.clone(),
                address,
            });
        }
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::inventory;

    const INVENTORY: &str = "
agents:
  - {name: lb1, address: 'unix:/run/a.sock', labels: {role: lb, zone: a}}
  - {name: lb2, address: 'unix:/run/b.sock', labels: {role: lb, zone: b}}
  - {name: db1, address: 'http://127.0.0.1:50051', labels: {role: db, zone: a}}
";

    fn names(nodes: Result<Vec<Node>, SelectError>) -> Result<Vec<String>, String> {
        nodes
            .map(|n| n.into_iter().map(|n| n.name).collect())
            .map_err(|e| e.to_string())
    }

    fn selectors(pairs: &[(&str, &str)]) -> Vec<Selector> {
        pairs
            .iter()
            .map(|(k, v)| Selector {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect()
    }

    #[test]
    fn agents_and_selectors_narrow_the_inventory_in_its_order() {
        let Ok(inv) = inventory::parse("inv.yaml", INVENTORY) else {
            panic!("test inventory is valid");
        };
        let list = |s: &str| -> Vec<String> { s.split(',').map(str::to_string).collect() };
        // (--agents, --selector, the nodes or the error)
        type Case<'a> = (
            Option<Vec<String>>,
            Vec<Selector>,
            Result<Vec<&'a str>, &'a str>,
        );
        let cases: &[Case<'_>] = &[
            (None, vec![], Ok(vec!["lb1", "lb2", "db1"])),
            (Some(list("db1,lb1")), vec![], Ok(vec!["lb1", "db1"])),
            (Some(list("lb2,lb2")), vec![], Ok(vec!["lb2"])),
            (None, selectors(&[("role", "lb")]), Ok(vec!["lb1", "lb2"])),
            (
                None,
                selectors(&[("role", "lb"), ("zone", "a")]),
                Ok(vec!["lb1"]),
            ),
            (
                Some(list("lb2,db1")),
                selectors(&[("zone", "a")]),
                Ok(vec!["db1"]),
            ),
            (
                None,
                selectors(&[("role", "lb"), ("zone", "c")]),
                Err("no agent in inv.yaml matches --selector role=lb --selector zone=c"),
            ),
            (
                None,
                selectors(&[("rack", "1")]),
                Err("no agent in inv.yaml matches --selector rack=1"),
            ),
            (
                Some(list("lb2")),
                selectors(&[("zone", "a")]),
                Err("no agent in inv.yaml matches --agents lb2 --selector zone=a"),
            ),
            (
                Some(list("lb1,lb9")),
                vec![],
                Err("agent `lb9' is not in inv.yaml"),
            ),
        ];
        for (agents, sel, want) in cases {
            let want = want
                .clone()
                .map(|v| v.into_iter().map(str::to_string).collect())
                .map_err(str::to_string);
            assert_eq!(
                names(from_inventory("inv.yaml", &inv, agents.as_deref(), sel)),
                want,
                "{agents:?} {sel:?}"
            );
        }
    }

    #[test]
    fn without_an_inventory_agents_are_addresses() {
        let list = |s: &str| -> Vec<String> { s.split(',').map(str::to_string).collect() };
        assert_eq!(
            from_addresses(&list("unix:/b.sock,http://127.0.0.1:1,unix:/b.sock")),
            Ok(vec![
                Node {
                    name: "unix:/b.sock".into(),
                    address: AgentAddress::Unix("/b.sock".into()),
                },
                Node {
                    name: "http://127.0.0.1:1".into(),
                    address: AgentAddress::Http("http://127.0.0.1:1".into()),
                },
            ])
        );
        assert_eq!(
            names(from_addresses(&list("unix:/a.sock,lb1"))),
            Err("invalid agent address `lb1': expected unix:/path or http://host:port (without --fleet, --agents lists addresses)".into())
        );
    }
}
