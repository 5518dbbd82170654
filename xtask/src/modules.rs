//! Kernel module selection: the `modules.dep` closure of the modules the lab loads.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, bail};

/// Modules `/init` loads, in this order. `crc32c_generic` comes first: `libcrc32c` (needed by
/// `ip_vs`) only soft-depends on it and fails with "unknown symbol" without it.
/// Module parameters for `/init` are in [`PARAMS`].
pub const LOAD: &[&str] = &[
    "crc32c_generic",
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wrr",
    "ip_vs_lc",
    "ip_vs_wlc",
    "ip_vs_lblc",
    "ip_vs_lblcr",
    "ip_vs_dh",
    "ip_vs_sh",
    "ip_vs_sed",
    "ip_vs_nq",
    "ip_vs_fo",
    "ip_vs_ovf",
    "ip_vs_mh",
    "nf_conntrack_sip",
    "ip_vs_pe_sip",
    "dummy",
    "veth",
    "bridge",
    "ipip",
    "e1000",
    "nlmon",
];

/// Parameters `/init` passes to modprobe: no `dummy0` appears unless a test creates it.
pub const PARAMS: &[(&str, &str)] = &[("dummy", "numdummies=0")];

/// `/lab/modules`: one module per line, with its parameters.
pub fn load_list() -> String {
    let mut out = String::new();
    for m in LOAD {
        out.push_str(m);
        if let Some((_, p)) = PARAMS.iter().find(|(name, _)| name == m) {
            out.push(' ');
            out.push_str(p);
        }
        out.push('\n');
    }
    out
}

/// `modules.dep`: module path -> dependency paths, all relative to `/lib/modules/<version>`.
#[derive(Debug, Default)]
pub struct DepIndex {
    deps: BTreeMap<String, Vec<String>>,
    by_name: BTreeMap<String, String>,
}

impl DepIndex {
    pub fn parse(text: &str) -> Result<Self> {
        let mut index = Self::default();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let Some((path, deps)) = line.split_once(':') else {
                bail!("modules.dep line {}: missing ':': {line:?}", n + 1);
            };
            let path = path.trim().to_string();
            let deps = deps.split_whitespace().map(str::to_string).collect();
            index.by_name.insert(module_name(&path), path.clone());
            index.deps.insert(path, deps);
        }
        Ok(index)
    }

    /// Paths of `names` and everything they depend on.
    pub fn closure(&self, names: &[&str]) -> Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        let mut todo: Vec<String> = Vec::new();
        for name in names {
            let key = name.replace('-', "_");
            let Some(path) = self.by_name.get(&key) else {
                bail!("module {name} is not in modules.dep");
            };
            todo.push(path.clone());
        }
        while let Some(path) = todo.pop() {
            if !out.insert(path.clone()) {
                continue;
            }
            let Some(deps) = self.deps.get(&path) else {
                bail!("module {path} is a dependency but has no modules.dep line");
            };
            todo.extend(deps.iter().cloned());
        }
        Ok(out)
    }

    /// The `modules.dep` lines of `paths` only, so the guest's index names no missing file.
    pub fn subset(&self, paths: &BTreeSet<String>) -> String {
        let mut out = String::new();
        for path in paths {
            let deps = self.deps.get(path).map(Vec::as_slice).unwrap_or_default();
            out.push_str(path);
            out.push(':');
            for d in deps {
                out.push(' ');
                out.push_str(d);
            }
            out.push('\n');
        }
        out
    }
}

/// `kernel/net/netfilter/ipvs/ip_vs_rr.ko` -> `ip_vs_rr` (modprobe treats `-` and `_` alike).
fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|ext| base.strip_suffix(ext))
        .unwrap_or(base);
    stem.replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/net/netfilter/ipvs/ip_vs.ko: kernel/lib/libcrc32c.ko kernel/net/netfilter/nf_conntrack.ko
kernel/net/netfilter/ipvs/ip_vs_rr.ko: kernel/net/netfilter/ipvs/ip_vs.ko kernel/lib/libcrc32c.ko kernel/net/netfilter/nf_conntrack.ko
kernel/lib/libcrc32c.ko:
kernel/net/netfilter/nf_conntrack.ko: kernel/lib/libcrc32c.ko
kernel/crypto/crc32c_generic.ko:
kernel/drivers/net/dummy.ko.xz:
";

    #[test]
    fn load_list_has_parameters() {
        let list = load_list();
        assert!(list.starts_with("crc32c_generic\nip_vs\n"), "{list}");
        assert!(list.contains("\ndummy numdummies=0\n"), "{list}");
        assert_eq!(list.lines().count(), LOAD.len());
    }

    #[test]
    fn module_names() {
        let cases = [
            ("kernel/net/netfilter/ipvs/ip_vs_rr.ko", "ip_vs_rr"),
            ("kernel/drivers/net/dummy.ko.xz", "dummy"),
            ("kernel/crypto/crc32c-generic.ko", "crc32c_generic"),
            ("e1000.ko.zst", "e1000"),
        ];
        for (path, want) in cases {
            assert_eq!(module_name(path), want, "{path}");
        }
    }

    #[test]
    fn closure_follows_dependencies() -> Result<()> {
        let index = DepIndex::parse(DEP)?;
        let got = index.closure(&["ip_vs_rr", "crc32c-generic", "dummy"])?;
        let want: BTreeSet<String> = [
            "kernel/crypto/crc32c_generic.ko",
            "kernel/drivers/net/dummy.ko.xz",
            "kernel/lib/libcrc32c.ko",
            "kernel/net/netfilter/ipvs/ip_vs.ko",
            "kernel/net/netfilter/ipvs/ip_vs_rr.ko",
            "kernel/net/netfilter/nf_conntrack.ko",
        ]
        .into_iter()
        .map(str::to_string)
        .collect();
        assert_eq!(got, want);
        Ok(())
    }

    #[test]
    fn unknown_module_is_an_error() -> Result<()> {
        let index = DepIndex::parse(DEP)?;
        let err = index.closure(&["ip_vs_twos"]).map(|_| ());
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("module ip_vs_twos is not in modules.dep".to_string())
        );
        Ok(())
    }

    #[test]
    fn malformed_line_is_an_error() {
        let err = DepIndex::parse("kernel/a.ko\n").map(|_| ());
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("modules.dep line 1: missing ':': \"kernel/a.ko\"".to_string())
        );
    }

    #[test]
    fn subset_keeps_only_selected_lines() -> Result<()> {
        let index = DepIndex::parse(DEP)?;
        let paths = index.closure(&["nf_conntrack"])?;
        assert_eq!(
            index.subset(&paths),
            "kernel/lib/libcrc32c.ko:\n\
             kernel/net/netfilter/nf_conntrack.ko: kernel/lib/libcrc32c.ko\n"
        );
        Ok(())
    }
}
