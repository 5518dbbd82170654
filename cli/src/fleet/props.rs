//! Properties of the fleet's inputs: inventories, fleet flags and selections. Any input gives
//! a result or a typed error, never a panic; a valid inventory reads as what it says.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::args::{self, Selector};
use super::inventory::{self, Agent, Inventory, InventoryError};
use super::select;
use crate::client::AgentAddress;

const KEYS: &[&str] = &["agents", "name", "address", "labels", "tls", "bogus", ""];

const TEXTS: &[&str] = &[
    "node-1",
    "a b",
    "a,b",
    "",
    "unix:/run/ipvs-agent/agent.sock",
    "unix:///run/a.sock",
    "unix:relative",
    "http://10.0.0.1:50051",
    "http://",
    "http://[::1]:1",
    "https://x:1",
    "http://a b",
    "rack",
    "eu-west",
    "true",
    "1",
    "~",
    "null",
];

/// A value of any shape, leaning on the inventory's keys and words.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        4 => proptest::sample::select(TEXTS).prop_map(|s| Value::String(s.into())),
        1 => any::<String>().prop_map(Value::String),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
    ];
    leaf.prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        4 => proptest::sample::select(KEYS).prop_map(String::from),
                        1 => any::<String>(),
                    ],
                    inner,
                ),
                0..5,
            )
            .prop_map(|kvs| Value::Object(kvs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Mostly `agents:` with a list of agent-like maps.
fn document() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::collection::vec(value(), 0..4).prop_map(|agents| {
            let doc = serde_json::json!({ "agents": agents });
            serde_norway::to_string(&doc).unwrap_or_default()
        }),
        1 => value().prop_map(|v| serde_norway::to_string(&v).unwrap_or_default()),
        1 => any::<String>(),
        1 => (1usize..3000).prop_map(|n| format!("agents:\n{}", "- ".repeat(n))),
    ]
}

/// A valid inventory: unique names, addresses of both kinds, string labels.
fn inventory() -> impl Strategy<Value = Vec<(String, String, BTreeMap<String, String>)>> {
    let agent = (
        any::<bool>(),
        0u16..=65535,
        proptest::collection::btree_map("[a-z][a-z0-9./_-]{0,10}", "[ -~]{0,10}", 0..4),
    );
    proptest::collection::vec(agent, 1..6).prop_map(|agents| {
        agents
            .into_iter()
            .enumerate()
            .map(|(i, (unix, port, labels))| {
                let address = if unix {
                    format!("unix:/run/agent-{i}.sock")
                } else {
                    format!("http://10.0.0.{i}:{port}")
                };
                (format!("node-{i}"), address, labels)
            })
            .collect()
    })
}

/// Fleet flags, their values and the commands after them.
fn argv() -> impl Strategy<Value = Vec<String>> {
    let word = prop_oneof![
        4 => proptest::sample::select(&[
            "--fleet", "--agents", "--selector", "--max-parallel", "--fleet=f.yaml",
            "--agents=a,b", "--agents=a,,b", "--selector=rack=1", "--selector==", "--max-parallel=0",
            "--max-parallel=99999999999999999999", "--agent", "--agent=x", "-ln", "apply",
            "f.yaml", "a,b", "k=v", "k=", "=v", "3", "", "-",
        ][..]).prop_map(String::from),
        1 => any::<String>(),
    ];
    proptest::collection::vec(word, 0..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any inventory text reads or is refused with a message.
    #[test]
    fn any_inventory_reads_or_is_refused(text in document()) {
        match inventory::parse("fleet.yaml", &text) {
            Ok(inv) => prop_assert!(!inv.agents.is_empty()),
            Err(e) => {
                prop_assert!(e.to_string().starts_with("fleet.yaml: "), "{e}");
                if let InventoryError::Agent { reason, .. } = &e {
                    prop_assert!(!reason.is_empty());
                }
            }
        }
    }

    /// A valid inventory reads as what was written, in order.
    #[test]
    fn valid_inventory_reads_as_written(agents in inventory()) {
        let doc = serde_json::json!({
            "agents": agents
                .iter()
                .map(|(name, address, labels)| serde_json::json!({
                    "name": name,
                    "address": address,
                    "labels": labels,
                }))
                .collect::<Vec<_>>(),
        });
        let text = serde_norway::to_string(&doc)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let read = inventory::parse("fleet.yaml", &text)
            .map_err(|e| TestCaseError::fail(format!("{text}\nrefused: {e}")))?;
        let want = agents
            .into_iter()
            .map(|(name, address, labels)| {
                let address = AgentAddress::parse(&address)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                Ok(Agent { name, address, labels })
            })
            .collect::<Result<Vec<_>, TestCaseError>>()?;
        prop_assert_eq!(read, Inventory { agents: want });
    }

    /// Any fleet command line parses or is refused; a selector reads back as written.
    #[test]
    fn any_fleet_flags_parse_or_are_refused(
        args in argv(),
        key in "[^=\\s]{1,8}",
        value in "[^\\s]{1,8}",
    ) {
        if let Err(e) = args::parse(&args) {
            prop_assert!(!e.to_string().is_empty());
        }
        let selector = format!("{key}={value}");
        let line: Vec<String> = ["--fleet", "f.yaml", "--selector", &selector, "-ln"]
            .map(String::from)
            .into();
        let parsed = args::parse(&line).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed.selectors, vec![Selector { key, value }]);
    }

    /// A selection is the agents named and matching every selector, in inventory order, or
    /// an error when there are none.
    #[test]
    fn selection_keeps_matching_agents_in_order(
        agents in inventory(),
        names in proptest::option::of(proptest::collection::vec("node-[0-7]", 0..4)),
        selectors in proptest::collection::vec(("[a-z]", "[ -~]{0,2}"), 0..3),
        addresses in proptest::collection::vec(
            prop_oneof![
                proptest::sample::select(TEXTS).prop_map(String::from),
                any::<String>(),
            ],
            0..4,
        ),
    ) {
        let inv = Inventory {
            agents: agents
                .into_iter()
                .filter_map(|(name, address, labels)| {
                    Some(Agent { name, address: AgentAddress::parse(&address).ok()?, labels })
                })
                .collect(),
        };
        let selectors: Vec<Selector> =
            selectors.into_iter().map(|(key, value)| Selector { key, value }).collect();
        let want: Vec<&str> = inv
            .agents
            .iter()
            .filter(|a| names.as_ref().is_none_or(|n| n.contains(&a.name)))
            .filter(|a| selectors.iter().all(|s| a.labels.get(&s.key) == Some(&s.value)))
            .map(|a| a.name.as_str())
            .collect();
        let unknown = names
            .as_ref()
            .is_some_and(|n| n.iter().any(|n| !inv.agents.iter().any(|a| &a.name == n)));
        match select::from_inventory("fleet.yaml", &inv, names.as_deref(), &selectors) {
            Ok(nodes) => {
                prop_assert!(!unknown);
                let got: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
                prop_assert_eq!(got, want);
            }
            Err(_) => prop_assert!(unknown || want.is_empty()),
        }
        if let Ok(nodes) = select::from_addresses(&addresses) {
            prop_assert!(nodes.len() <= addresses.len());
        }
    }
}
