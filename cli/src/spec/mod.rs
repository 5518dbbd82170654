//! The node file: a node's declared state (links, services with their real servers, policy
//! attachments, drift mode) as YAML or TOML, read into and written from the agent's
//! [`NodeSpec`](ipvs_proto::v1::NodeSpec). `docs/node-file.md` describes the format.
//!
//! - [`document`]: the file's shape (serde types, kebab-case keys, unknown keys refused).
//! - [`scalar`]: values that may be written as a string, a number or a boolean.
//! - [`text`]: service keys, references, real server addresses and intervals as written.
//! - [`decode`]: a document into a `NodeSpec`, checked with ipvsadm's rules; errors name the
//!   path (`services[2].servers[0].weight`).
//! - [`encode`]: a `NodeSpec` into a document, defaults left out.
//! - [`syntax`]: YAML and TOML in and out; syntax errors name the line and column.
//!
//! Everything here is pure: reading and writing files is the command's business.

pub mod decode;
pub mod document;
pub mod encode;
pub mod error;
pub mod scalar;
pub mod syntax;
pub mod text;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use ipvs_proto::v1 as pb;

pub use error::SpecError;
pub use syntax::Format;

/// Reads node file `text` (named `file` in errors) in `format` as a checked `NodeSpec`.
pub fn parse(file: &str, text: &str, format: Format) -> Result<pb::NodeSpec, SpecError> {
    let doc = syntax::read(file, text, format)?;
    decode::node(&doc).map_err(|e| SpecError::Invalid {
        file: file.to_string(),
        path: e.path,
        reason: e.reason,
    })
}

/// Writes `spec` as a node file in `format`; parsing the result gives `spec` back (in the
/// canonical form [`parse`] produces).
pub fn render(spec: &pb::NodeSpec, format: Format) -> Result<String, SpecError> {
    let doc = encode::node(spec).map_err(|e| SpecError::Unexportable {
        path: e.path,
        reason: e.reason,
    })?;
    syntax::write(&doc, format)
}
