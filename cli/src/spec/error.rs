//! Why a node file cannot be read or a spec cannot be written.

/// A node file refused, or a spec that has no node-file form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The file is not well-formed YAML/TOML, or a value has the wrong type or an unknown key.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// As `Syntax`, where the parser gave no position.
    #[error("{file}: {message}")]
    Unplaced { file: String, message: String },
    /// Well-formed, but a value breaks a rule: `path` is where, e.g. `services[2].scheduler`.
    #[error("{file}: {path}: {reason}")]
    Invalid {
        file: String,
        path: String,
        reason: String,
    },
    /// The file's name does not say which format it is in.
    #[error("{file}: unknown file type (use .yaml, .yml or .toml, or - for YAML on stdin)")]
    UnknownFormat { file: String },
    /// The spec holds something the node file cannot say, e.g. a scheduler this client does
    /// not know.
    #[error("cannot write the spec as a node file: {path}: {reason}")]
    Unexportable { path: String, reason: String },
    /// The serialiser refused the document.
    #[error("cannot write the spec as {format}: {message}")]
    Encode {
        format: &'static str,
        message: String,
    },
}

/// A rule broken at `path` inside a document or spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub path: String,
    pub reason: String,
}

impl Invalid {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
