//! Policy components made from a core module in WAT, for behaviours no example policy has.

use anyhow::Result;

/// A core module of the policy world (`policies/wit/policy.wit`), wrapped as a component.
pub fn component(core: &str) -> Result<Vec<u8>> {
    let mut resolve = wit_parser::Resolve::default();
    let pkg = resolve.push_str("policy.wit", include_str!("../../policies/wit/policy.wit"))?;
    let world = resolve.select_world(&[pkg], Some("policy"))?;
    let mut module = wat::parse_str(core)?;
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )?;
    wit_component::ComponentEncoder::default()
        .module(&module)?
        .validate(true)
        .encode()
}
