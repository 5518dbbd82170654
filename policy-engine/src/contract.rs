//! Checks a component's top-level imports and exports against the policy contract before
//! anything is compiled: cheap, and the refusals name exactly what is wrong. Types are
//! checked afterwards, when the compiled component is linked.

use wasmtime::wasmparser::{ComponentTypeRef, Encoding, Parser, Payload};

use super::error::LoadError;

/// The only export a policy needs.
pub const EXPORT: &str = "evaluate";

/// The policy's own interfaces, by name without version.
const OWN: &[&str] = &["ipvs:policy/host", "ipvs:policy/types"];

/// A version of the contract (`ipvs:policy@X`) that the engine runs. A component is run with
/// the version it was built against: its imports of the policy's own interfaces name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// The first contract.
    V1_0,
    /// 1.0.0 plus each real server's `health`.
    V1_1,
}

impl Version {
    /// Every version, newest first.
    pub const ALL: [Version; 2] = [Version::V1_1, Version::V1_0];
    /// What new policies are built against.
    pub const LATEST: Version = Version::V1_1;

    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1_0 => "1.0.0",
            Version::V1_1 => "1.1.0",
        }
    }

    fn parse(version: &str) -> Option<Self> {
        Version::ALL.into_iter().find(|v| v.as_str() == version)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WASI 0.2 interfaces a guest may import: they are linked to an empty sandbox (no preopened
/// directories, no environment, no arguments, empty stdin, bounded stdout/stderr). Sockets and
/// HTTP are not among them.
pub const WASI_ALLOWED: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
];

/// What the top level of a component asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// The largest initial size of a memory any core module defines, in bytes: an instance
    /// needs at least this much linear memory.
    pub memory_min_bytes: u64,
}

impl Shape {
    /// True when the component imports any WASI interface (and so needs a `WasiCtx`).
    pub fn uses_wasi(&self) -> bool {
        self.imports.iter().any(|i| i.starts_with("wasi:"))
    }

    /// The contract version the component's imports of `ipvs:policy/*` name (a component
    /// from wit-bindgen or componentize-py imports at least `ipvs:policy/types`, whose types
    /// its `evaluate` uses), or `None` when it imports none of them: then only the type of
    /// its `evaluate` can tell. Imports of two versions are refused.
    pub fn version(&self) -> Result<Option<Version>, LoadError> {
        let mut found: Option<Version> = None;
        for import in &self.imports {
            let Some((base, version)) = import.split_once('@') else {
                continue;
            };
            if !OWN.contains(&base) {
                continue;
            }
            let Some(version) = Version::parse(version) else {
                return Err(LoadError::DisallowedImport(import.clone()));
            };
            match found {
                Some(v) if v != version => {
                    return Err(LoadError::Contract(format!(
                        "imports ipvs:policy at both {v} and {version}"
                    )));
                }
                _ => found = Some(version),
            }
        }
        Ok(found)
    }
}

/// Reads the top-level imports and exports; refuses core modules and non-WebAssembly.
pub fn shape(bytes: &[u8]) -> Result<Shape, LoadError> {
    if !bytes.starts_with(b"\0asm") {
        return Err(LoadError::NotWasm);
    }
    let mut shape = Shape {
        imports: Vec::new(),
        exports: Vec::new(),
        memory_min_bytes: 0,
    };
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| LoadError::Malformed(e.to_string()))?;
        match payload {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding == Encoding::Module {
                    return Err(LoadError::NotAComponent);
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(|e| LoadError::Malformed(e.to_string()))?;
                    // Type imports (`use types.{input}` in the world) grant nothing.
                    if matches!(import.ty, ComponentTypeRef::Type(_)) {
                        continue;
                    }
                    shape.imports.push(import.name.name.to_owned());
                }
            }
            Payload::MemorySection(reader) => {
                for memory in reader {
                    let memory = memory.map_err(|e| LoadError::Malformed(e.to_string()))?;
                    let page = 1u64 << memory.page_size_log2.unwrap_or(16);
                    let bytes = memory.initial.saturating_mul(page);
                    shape.memory_min_bytes = shape.memory_min_bytes.max(bytes);
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(|e| LoadError::Malformed(e.to_string()))?;
                    shape.exports.push(export.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok(shape)
}

/// Whether a policy may import `name` (`namespace:package/interface@version`).
pub fn import_allowed(name: &str) -> bool {
    let (base, version) = name.split_once('@').unwrap_or((name, ""));
    if OWN.contains(&base) {
        return Version::parse(version).is_some();
    }
    WASI_ALLOWED.contains(&base) && version.starts_with("0.2.")
}

/// Checks `shape` against the contract: the export is there, every import is allowed.
pub fn check(shape: &Shape) -> Result<(), LoadError> {
    if let Some(bad) = shape.imports.iter().find(|i| !import_allowed(i)) {
        return Err(LoadError::DisallowedImport(bad.clone()));
    }
    if !shape.exports.iter().any(|e| e == EXPORT) {
        return Err(LoadError::MissingExport(EXPORT.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(wat: &str) -> Result<Shape, LoadError> {
        let bytes = wat::parse_str(wat).map_err(|e| LoadError::Malformed(e.to_string()))?;
        shape(&bytes)
    }

    #[test]
    fn imports_allowed_and_refused() {
        let cases = [
            ("ipvs:policy/host@1.0.0", true),
            ("ipvs:policy/types@1.0.0", true),
            ("ipvs:policy/host@1.1.0", true),
            ("ipvs:policy/types@1.1.0", true),
            ("ipvs:policy/host@1.2.0", false),
            ("ipvs:policy/host@2.0.0", false),
            ("ipvs:policy/host", false),
            ("wasi:cli/environment@0.2.6", true),
            ("wasi:io/streams@0.2.0", true),
            ("wasi:filesystem/preopens@0.2.3", true),
            ("wasi:io/streams@0.3.0", false),
            ("wasi:sockets/tcp@0.2.6", false),
            ("wasi:http/outgoing-handler@0.2.6", false),
            ("evil", false),
        ];
        for (name, want) in cases {
            assert_eq!(import_allowed(name), want, "{name}");
        }
    }

    #[test]
    fn core_module_and_garbage_are_refused() {
        assert_eq!(parse("(module)"), Err(LoadError::NotAComponent));
        assert_eq!(shape(b"hello"), Err(LoadError::NotWasm));
        assert!(matches!(
            shape(b"\0asm\x0d\x00\x01\x00\xff"),
            Err(LoadError::Malformed(_))
        ));
    }

    #[test]
    fn top_level_names_only() {
        let shape = parse(
            r#"(component
                (import "wasi:sockets/tcp@0.2.6" (instance))
                (import "input" (type (sub resource)))
                (component $inner (import "inner-import" (func)))
                (core module $m (memory 3) (func (export "f")))
                (core module $n (memory 2))
                (core instance $i (instantiate $m))
                (func $f (canon lift (core func $i "f")))
                (export "evaluate" (func $f)))"#,
        );
        assert_eq!(
            shape,
            Ok(Shape {
                imports: vec!["wasi:sockets/tcp@0.2.6".into()],
                exports: vec!["evaluate".into()],
                memory_min_bytes: 3 << 16,
            })
        );
    }

    #[test]
    fn check_names_the_problem() {
        let s = |imports: &[&str], exports: &[&str]| Shape {
            imports: imports.iter().map(|s| (*s).to_owned()).collect(),
            exports: exports.iter().map(|s| (*s).to_owned()).collect(),
            memory_min_bytes: 0,
        };
        assert_eq!(
            check(&s(&["ipvs:policy/host@1.0.0"], &["evaluate"])),
            Ok(())
        );
        assert_eq!(
            check(&s(&["wasi:sockets/tcp@0.2.6"], &["evaluate"])),
            Err(LoadError::DisallowedImport("wasi:sockets/tcp@0.2.6".into()))
        );
        assert_eq!(
            check(&s(&[], &["run"])),
            Err(LoadError::MissingExport("evaluate".into()))
        );
        assert!(s(&["wasi:io/error@0.2.0"], &[]).uses_wasi());
        assert!(!s(&["ipvs:policy/host@1.0.0"], &[]).uses_wasi());
    }

    #[test]
    fn version_is_named_by_the_policy_imports() {
        let v = |imports: &[&str]| {
            Shape {
                imports: imports.iter().map(|s| (*s).to_owned()).collect(),
                exports: vec![EXPORT.into()],
                memory_min_bytes: 0,
            }
            .version()
        };
        assert_eq!(v(&["ipvs:policy/types@1.0.0"]), Ok(Some(Version::V1_0)));
        assert_eq!(
            v(&[
                "wasi:io/error@0.2.0",
                "ipvs:policy/types@1.1.0",
                "ipvs:policy/host@1.1.0"
            ]),
            Ok(Some(Version::V1_1))
        );
        assert_eq!(v(&["wasi:io/error@0.2.0"]), Ok(None));
        assert_eq!(
            v(&["ipvs:policy/types@1.1.0", "ipvs:policy/host@1.0.0"]),
            Err(LoadError::Contract(
                "imports ipvs:policy at both 1.1.0 and 1.0.0".into()
            ))
        );
        assert_eq!(
            v(&["ipvs:policy/types@1.2.0"]),
            Err(LoadError::DisallowedImport(
                "ipvs:policy/types@1.2.0".into()
            ))
        );
        assert_eq!(Version::LATEST, Version::ALL[0]);
    }
}
