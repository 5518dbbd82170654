//! The schedulers this node's kernel offers. Each is the module `ip_vs_<name>`: registered
//! while its module is loaded (`/proc/modules`), and loadable on demand when the module is in
//! `/lib/modules/<release>` (its `modules.dep`) or built in (`modules.builtin`). The parsers
//! are pure; [`KernelSchedulers`] reads the files at start and again after [`REFRESH`],
//! re-parsing an index only when its modification time moved.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::types::Scheduler;

/// How long a reading stands before the files are looked at again.
pub const REFRESH: Duration = Duration::from_secs(10);

/// The scheduler module `module` provides (`ip_vs_rr` → rr). IPVS's other modules are not
/// schedulers: `ip_vs` itself, the FTP helper `ip_vs_ftp` and persistence engines `ip_vs_pe_*`.
pub fn scheduler_of(module: &str) -> Option<Scheduler> {
    let module = module.replace('-', "_");
    let name = module.strip_prefix("ip_vs_")?;
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !plain || name == "ftp" || name.starts_with("pe_") {
        return None;
    }
    Some(Scheduler::from_kernel(name))
}

/// Schedulers whose module is loaded, from `/proc/modules` lines such as
/// `ip_vs_rr 12288 2 - Live 0x0000000000000000`. A module being unloaded does not count.
pub fn loaded(proc_modules: &str) -> BTreeSet<Scheduler> {
    proc_modules
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next()?;
            let state = fields.nth(3);
            (state != Some("Unloading")).then_some(name)
        })
        .filter_map(scheduler_of)
        .collect()
}

/// Schedulers an index of module files names: `modules.dep` lines
/// (`kernel/net/netfilter/ipvs/ip_vs_rr.ko.xz: kernel/...`, only the module before the colon
/// counts) or `modules.builtin` lines (one path each).
pub fn indexed(index: &str) -> BTreeSet<Scheduler> {
    index
        .lines()
        .filter_map(|line| {
            let path = line.split(':').next()?.trim();
            let file = path.rsplit('/').next()?;
            let (module, _compression) = file.split_once(".ko")?;
            scheduler_of(module)
        })
        .collect()
}

/// What the kernel offers, from what could be read (`None`: the file could not be). With
/// nothing readable at all (no module support and no index) the kernel's schedulers cannot be
/// known, and every scheduler of [`Scheduler::KNOWN`] is assumed.
pub fn offered(proc_modules: Option<&str>, indexes: &[Option<&str>]) -> Vec<Scheduler> {
    if proc_modules.is_none() && indexes.iter().all(Option::is_none) {
        return Scheduler::KNOWN.to_vec();
    }
    let mut all = proc_modules.map(loaded).unwrap_or_default();
    for index in indexes.iter().flatten() {
        all.extend(indexed(index));
    }
    all.into_iter().collect()
}

/// Where the kernel's module lists are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulePaths {
    /// `/proc/modules`.
    pub loaded: PathBuf,
    /// `/proc/sys/kernel/osrelease`: names the directory under [`Self::modules`].
    pub release: PathBuf,
    /// `/lib/modules`.
    pub modules: PathBuf,
}

impl Default for ModulePaths {
    fn default() -> Self {
        ModulePaths {
            loaded: "/proc/modules".into(),
            release: "/proc/sys/kernel/osrelease".into(),
            modules: "/lib/modules".into(),
        }
    }
}

/// The index files of the running kernel, `modules.dep` and `modules.builtin`.
fn index_files(paths: &ModulePaths) -> Vec<PathBuf> {
    let Ok(release) = std::fs::read_to_string(&paths.release) else {
        return Vec::new();
    };
    let dir = paths.modules.join(release.trim());
    vec![dir.join("modules.dep"), dir.join("modules.builtin")]
}

/// One index file as last parsed.
#[derive(Debug, Default)]
struct Index {
    path: PathBuf,
    modified: Option<SystemTime>,
    text: Option<String>,
}

impl Index {
    /// Reads the file again only if its modification time moved.
    fn refresh(&mut self) {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if modified.is_none() || modified != self.modified {
            self.modified = modified;
            self.text = std::fs::read_to_string(&self.path).ok().map(|text| {
                // Only the lines that can name a scheduler are kept.
                text.lines()
                    .filter(|l| l.contains("ip_vs_"))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
}

#[derive(Debug)]
struct Reading {
    at: Instant,
    indexes: Vec<Index>,
    offered: Arc<[Scheduler]>,
}

/// The schedulers the kernel offers, read from the node and kept fresh, or a fixed list.
#[derive(Debug)]
pub struct KernelSchedulers {
    source: Source,
}

#[derive(Debug)]
enum Source {
    Fixed(Arc<[Scheduler]>),
    Node {
        paths: ModulePaths,
        reading: Mutex<Reading>,
    },
}

impl KernelSchedulers {
    /// This node's kernel, read now.
    pub fn node() -> Self {
        Self::read(ModulePaths::default())
    }

    /// The kernel whose module lists are at `paths`, read now.
    pub fn read(paths: ModulePaths) -> Self {
        let mut reading = Reading {
            at: Instant::now(),
            indexes: index_files(&paths)
                .into_iter()
                .map(|path| Index {
                    path,
                    ..Index::default()
                })
                .collect(),
            offered: Arc::from(Vec::new()),
        };
        refresh(&paths, &mut reading);
        KernelSchedulers {
            source: Source::Node {
                paths,
                reading: Mutex::new(reading),
            },
        }
    }

    /// Always `schedulers` (tests, nodes whose kernel is known).
    pub fn fixed(schedulers: Vec<Scheduler>) -> Self {
        KernelSchedulers {
            source: Source::Fixed(schedulers.into()),
        }
    }

    /// The schedulers offered now, looking at the node again if the last reading is older
    /// than [`REFRESH`].
    pub fn get(&self) -> Arc<[Scheduler]> {
        match &self.source {
            Source::Fixed(list) => list.clone(),
            Source::Node { paths, reading } => {
                let mut r = reading.lock().unwrap_or_else(|e| e.into_inner());
                if r.at.elapsed() >= REFRESH {
                    refresh(paths, &mut r);
                }
                r.offered.clone()
            }
        }
    }
}

fn refresh(paths: &ModulePaths, r: &mut Reading) {
    r.at = Instant::now();
    let loaded = std::fs::read_to_string(&paths.loaded).ok();
    for index in &mut r.indexes {
        index.refresh();
    }
    let indexes: Vec<Option<&str>> = r.indexes.iter().map(|i| i.text.as_deref()).collect();
    let offered = offered(loaded.as_deref(), &indexes);
    if *r.offered != *offered {
        tracing::info!(
            schedulers = %names(&offered),
            from = %source_text(paths, loaded.is_some(), &r.indexes),
            "the kernel offers these schedulers"
        );
        r.offered = offered.into();
    }
}

fn names(list: &[Scheduler]) -> String {
    list.iter()
        .map(Scheduler::name)
        .collect::<Vec<_>>()
        .join(" ")
}

fn source_text(paths: &ModulePaths, loaded: bool, indexes: &[Index]) -> String {
    let read: Vec<&Path> = std::iter::once(paths.loaded.as_path())
        .filter(|_| loaded)
        .chain(
            indexes
                .iter()
                .filter(|i| i.text.is_some())
                .map(|i| i.path.as_path()),
        )
        .collect();
    if read.is_empty() {
        "nothing readable: assuming every known scheduler".into()
    } else {
        read.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Scheduler::*;

    #[test]
    fn modules_and_their_schedulers() {
        let cases = [
            ("ip_vs_rr", Some(Rr)),
            ("ip_vs_wlc", Some(Wlc)),
            ("ip-vs-lblcr", Some(Lblcr)),
            ("ip_vs_twos", Some(Twos)),
            ("ip_vs_new2", Some(Other("new2".into()))),
            ("ip_vs", None),
            ("ip_vs_", None),
            ("ip_vs_ftp", None),
            ("ip_vs_pe_sip", None),
            ("xt_ipvs", None),
            ("nf_conntrack", None),
            ("ip_vs_RR", None),
            ("ip_vs_a.b", None),
        ];
        for (module, want) in cases {
            assert_eq!(scheduler_of(module), want, "{module}");
        }
    }

    #[test]
    fn loaded_modules() {
        let proc_modules = "\
ip_vs_mh 16384 0 - Live 0x0000000000000000
ip_vs_sh 16384 0 - Live 0x0000000000000000
ip_vs_ftp 16384 0 - Live 0x0000000000000000
ip_vs_pe_sip 16384 0 - Live 0x0000000000000000
ip_vs_rr 16384 2 - Live 0x0000000000000000
ip_vs_lc 16384 0 - Unloading 0x0000000000000000
ip_vs_sed 16384 0 - Loading 0x0000000000000000
ip_vs 204800 12 ip_vs_mh,ip_vs_sh,ip_vs_rr, Live 0x0000000000000000
nf_conntrack 188416 3 ip_vs,nf_nat,nf_conntrack_sip, Live 0x0000000000000000

garbage
";
        assert_eq!(
            loaded(proc_modules).into_iter().collect::<Vec<_>>(),
            [Rr, Sh, Sed, Mh]
        );
        assert!(loaded("").is_empty());
    }

    #[test]
    fn module_indexes() {
        let dep = "\
kernel/net/netfilter/xt_ipvs.ko: kernel/net/netfilter/ipvs/ip_vs.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/ipvs/ip_vs.ko: kernel/net/netfilter/nf_conntrack.ko
kernel/net/netfilter/ipvs/ip_vs_wrr.ko: kernel/net/netfilter/ipvs/ip_vs.ko
kernel/net/netfilter/ipvs/ip_vs_dh.ko.xz: kernel/net/netfilter/ipvs/ip_vs.ko.xz
kernel/net/netfilter/ipvs/ip_vs_nq.ko.zst:
updates/dkms/ip_vs_new2.ko.gz: kernel/net/netfilter/ipvs/ip_vs.ko
kernel/net/netfilter/ipvs/ip_vs_ftp.ko: kernel/net/netfilter/ipvs/ip_vs.ko
kernel/net/netfilter/ipvs/ip_vs_pe_sip.ko: kernel/net/netfilter/ipvs/ip_vs.ko
kernel/drivers/net/dummy.ko:
no colon or extension
";
        assert_eq!(
            indexed(dep).into_iter().collect::<Vec<_>>(),
            [Wrr, Dh, Nq, Other("new2".into())]
        );
        let builtin = "\
kernel/net/netfilter/ipvs/ip_vs.ko
kernel/net/netfilter/ipvs/ip_vs_rr.ko
kernel/net/netfilter/ipvs/ip_vs_fo.ko
";
        assert_eq!(indexed(builtin).into_iter().collect::<Vec<_>>(), [Rr, Fo]);
    }

    #[test]
    fn what_is_offered() {
        let loaded = Some("ip_vs_ovf 16384 0 - Live 0x0\nip_vs_rr 16384 0 - Live 0x0\n");
        let dep = Some("kernel/net/netfilter/ipvs/ip_vs_wlc.ko: x\n");
        let builtin = Some("kernel/net/netfilter/ipvs/ip_vs_rr.ko\n");
        type Case<'a> = (Option<&'a str>, Vec<Option<&'a str>>, Vec<Scheduler>);
        let cases: Vec<Case> = vec![
            // Loaded, loadable and built in, once each, in the kernel's documentation order.
            (loaded, vec![dep, builtin], vec![Rr, Wlc, Ovf]),
            // A container without /lib/modules: what is loaded.
            (loaded, vec![], vec![Rr, Ovf]),
            (loaded, vec![None, None], vec![Rr, Ovf]),
            // No module support, but an index.
            (None, vec![None, builtin], vec![Rr]),
            // A kernel that has modules but no IPVS at all.
            (Some("dummy 16384 0 - Live 0x0\n"), vec![Some("")], vec![]),
            // Nothing to go by.
            (None, vec![None, None], Scheduler::KNOWN.to_vec()),
            (None, vec![], Scheduler::KNOWN.to_vec()),
        ];
        for (loaded, indexes, want) in cases {
            assert_eq!(offered(loaded, &indexes), want, "{loaded:?} {indexes:?}");
        }
    }

    /// A scratch directory, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("ipvs-schedulers-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("lib/modules/6.1.0-test")).expect("scratch dir");
            Dir(dir)
        }

        fn write(&self, rel: &str, text: &str) {
            std::fs::write(self.0.join(rel), text).expect("write");
        }

        fn paths(&self) -> ModulePaths {
            ModulePaths {
                loaded: self.0.join("modules"),
                release: self.0.join("osrelease"),
                modules: self.0.join("lib/modules"),
            }
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn reads_the_running_kernels_lists() {
        let dir = Dir::new("read");
        dir.write("osrelease", "6.1.0-test\n");
        dir.write("modules", "ip_vs_rr 16384 0 - Live 0x0\n");
        dir.write(
            "lib/modules/6.1.0-test/modules.dep",
            "kernel/net/netfilter/ipvs/ip_vs_sed.ko: kernel/net/netfilter/ipvs/ip_vs.ko\n",
        );
        dir.write(
            "lib/modules/6.1.0-test/modules.builtin",
            "kernel/net/netfilter/ipvs/ip_vs_mh.ko\n",
        );
        let s = KernelSchedulers::read(dir.paths());
        assert_eq!(&*s.get(), [Rr, Sed, Mh]);
        // Within REFRESH the reading stands.
        dir.write(
            "modules",
            "ip_vs_rr 16384 0 - Live 0x0\nip_vs_lc 16384 0 - Live 0x0\n",
        );
        assert_eq!(&*s.get(), [Rr, Sed, Mh]);
        if let Source::Node { reading, .. } = &s.source {
            let mut r = reading.lock().expect("lock");
            r.at =
                r.at.checked_sub(REFRESH)
                    .expect("a clock older than REFRESH");
        }
        assert_eq!(&*s.get(), [Rr, Lc, Sed, Mh]);
    }

    #[test]
    fn another_release_or_no_lists() {
        let dir = Dir::new("release");
        dir.write("osrelease", "6.2.0-other\n");
        dir.write(
            "lib/modules/6.1.0-test/modules.dep",
            "kernel/net/netfilter/ipvs/ip_vs_sed.ko:\n",
        );
        dir.write("modules", "ip_vs_wrr 16384 0 - Live 0x0\n");
        assert_eq!(&*KernelSchedulers::read(dir.paths()).get(), [Wrr]);
        let empty = Dir::new("empty");
        assert_eq!(
            &*KernelSchedulers::read(empty.paths()).get(),
            Scheduler::KNOWN
        );
        assert_eq!(&*KernelSchedulers::fixed(vec![Lc]).get(), [Lc]);
    }
}
