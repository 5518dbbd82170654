//! The initrd: a cached, gzipped base archive (busybox, modules, host tools) followed by an
//! uncompressed per-run archive (project binaries, tests, `/init`). The kernel unpacks both in
//! order; the run archive is left uncompressed so the emulated guest does not inflate it.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::cpio::{Manifest, Node};
use crate::host;
use crate::kernel::Kernel;
use crate::modules::{self, DepIndex};
use crate::paths::Paths;

/// Guest directory of the project's binaries (`IPVS_E2E_BIN_DIR`).
pub const GUEST_BIN_DIR: &str = "/opt/ipvs/bin";
/// Guest directory of the test executables.
pub const GUEST_TEST_DIR: &str = "/opt/ipvs/tests";
/// Guest directory of the lab's own helpers (the exec server).
pub const GUEST_LAB_DIR: &str = "/opt/ipvs/lab";

/// Host tools copied into the guest at `/usr/sbin/<name>`, ahead of busybox on `PATH`.
const TOOLS: &[&str] = &["ipvsadm", "ip", "tcpdump"];

/// Bump when the base layout changes so cached archives are rebuilt.
const BASE_FORMAT: u32 = 3;

const BACKEND_PAGES: &[(&str, &str)] = &[
    (
        "/srv/backend1/index.html",
        "<h1>Response from Backend Server 1</h1>\n",
    ),
    (
        "/srv/backend2/index.html",
        "<h2>*** Response from Backend Server 2 ***</h2>\n",
    ),
];

/// Returns the gzipped base archive for `kernel`, building it if its inputs changed.
pub fn base(paths: &Paths, kernel: &Kernel) -> Result<PathBuf> {
    let manifest = base_manifest(kernel)?;
    let key = manifest.fingerprint()? ^ u64::from(BASE_FORMAT);
    let cache = paths.cache();
    fs::create_dir_all(&cache)?;
    let name = format!("base-{}-{key:016x}.cpio.gz", kernel.version);
    let path = cache.join(&name);
    if path.exists() {
        eprintln!("lab: base image cached");
        return Ok(path);
    }
    eprintln!("lab: building base image");
    let tmp = cache.join(format!(".{name}.{}", std::process::id()));
    write_gzip(&manifest, &tmp)?;
    fs::rename(&tmp, &path)?;
    // Older base archives are never used again.
    for entry in fs::read_dir(&cache)?.filter_map(|e| e.ok()) {
        let n = entry.file_name().to_string_lossy().into_owned();
        if n.starts_with("base-") && n.ends_with(".cpio.gz") && n != name {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(path)
}

fn base_manifest(kernel: &Kernel) -> Result<Manifest> {
    let mut m = Manifest::new();
    for dir in [
        "/proc",
        "/sys",
        "/dev",
        "/tmp",
        "/run",
        "/root",
        "/etc",
        "/srv",
        "/var",
        "/lab",
        GUEST_BIN_DIR,
        GUEST_TEST_DIR,
        GUEST_LAB_DIR,
    ] {
        m.dir(dir)?;
    }
    m.insert("/dev/console", Node::CharDev { major: 5, minor: 1 })?;
    m.symlink("/var/run", "../run")?;
    m.symlink("/var/tmp", "../tmp")?;

    // busybox and its applets
    let busybox = host::find_program("busybox")?;
    if !libraries(&busybox)?.is_empty() {
        bail!(
            "{} is dynamically linked: install busybox-static",
            busybox.display()
        );
    }
    m.file("/bin/busybox", &busybox, 0o755)?;
    let list = host::output(Command::new(&busybox).arg("--list"))?;
    for applet in list.split_whitespace() {
        if applet != "busybox" && !applet.contains('/') {
            m.symlink(&format!("/bin/{applet}"), "busybox")?;
        }
    }
    for dir in ["/sbin", "/usr/bin", "/usr/sbin"] {
        m.dir(dir)?;
    }
    // Debian's busybox-static shell runs its own applets ahead of PATH, so `sh -c 'ip ...'`
    // would get busybox's ip rather than iproute2's. dash (Debian's /bin/sh) follows PATH.
    let dash = fs::canonicalize(host::find_program("dash")?)?;
    add_binary(&mut m, "/bin/sh", &dash)?;

    // host tools and their libraries
    for tool in TOOLS {
        let src = fs::canonicalize(host::find_program(tool)?)?;
        add_binary(&mut m, &format!("/usr/sbin/{tool}"), &src)?;
    }

    // /etc
    m.data("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644)?;
    m.data("/etc/group", "root:x:0:\n", 0o644)?;
    m.data("/etc/hosts", "127.0.0.1 localhost\n::1 localhost\n", 0o644)?;
    m.data(
        "/etc/nsswitch.conf",
        "passwd: files\ngroup: files\nhosts: files\nservices: files\nprotocols: files\n",
        0o644,
    )?;
    for f in ["/etc/services", "/etc/protocols"] {
        if Path::new(f).is_file() {
            m.file(f, Path::new(f), 0o644)?;
        }
    }

    // web roots of the two seed backends
    for (path, page) in BACKEND_PAGES {
        m.data(path, *page, 0o644)?;
    }

    // kernel modules: the closure of what /init loads, with a matching modules.dep
    let dep_text = fs::read_to_string(kernel.modules.join("modules.dep"))
        .with_context(|| format!("reading modules.dep of {}", kernel.version))?;
    let index = DepIndex::parse(&dep_text)?;
    let closure = index.closure(modules::LOAD)?;
    let guest_mod = format!("/lib/modules/{}", kernel.version);
    for rel in &closure {
        m.file(
            &format!("{guest_mod}/{rel}"),
            &kernel.modules.join(rel),
            0o644,
        )?;
    }
    m.data(
        &format!("{guest_mod}/modules.dep"),
        index.subset(&closure),
        0o644,
    )?;
    for extra in ["modules.builtin", "modules.order"] {
        let src = kernel.modules.join(extra);
        if src.is_file() {
            m.file(&format!("{guest_mod}/{extra}"), &src, 0o644)?;
        }
    }
    m.data("/lab/modules", modules::load_list(), 0o644)?;
    Ok(m)
}

/// Adds an executable at `guest` and every shared library `ldd` lists for it, at the same
/// paths as on the host.
pub fn add_binary(m: &mut Manifest, guest: &str, src: &Path) -> Result<()> {
    m.file(guest, src, 0o755)?;
    for lib in libraries(src)? {
        let real = fs::canonicalize(&lib).with_context(|| format!("{}", lib.display()))?;
        let guest_lib = lib.to_string_lossy().into_owned();
        if !m.contains(&guest_lib) {
            m.file(&guest_lib, &real, 0o755)?;
        }
    }
    Ok(())
}

/// Shared libraries of `bin`, empty for a static executable.
fn libraries(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(bin)
        .stdin(Stdio::null())
        .output()
        .context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if text.contains("not a dynamic executable") || err.contains("not a dynamic executable") {
            return Ok(Vec::new());
        }
        bail!("ldd {} failed: {}", bin.display(), err.trim());
    }
    parse_ldd(&text)
}

/// Library paths from `ldd` output.
fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.contains("statically linked") {
            continue;
        }
        if line.contains("=> not found") {
            bail!("missing shared library: {line}");
        }
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

fn write_gzip(m: &Manifest, dest: &Path) -> Result<()> {
    let file = File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut gz = Command::new("gzip")
        .arg("-1")
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .context("starting gzip")?;
    let stdin = gz.stdin.take().context("gzip stdin")?;
    let written = m.write_cpio(BufWriter::new(stdin));
    let status = gz.wait()?;
    written?;
    if !status.success() {
        bail!("gzip failed: {status}");
    }
    Ok(())
}

/// Writes `base` followed by the uncompressed run archive to `dest`; returns its size.
pub fn assemble(base: &Path, run: &Manifest, dest: &Path) -> Result<u64> {
    let mut out = BufWriter::new(File::create(dest)?);
    let mut base_file = File::open(base)?;
    let mut len = std::io::copy(&mut base_file, &mut out)?;
    // The kernel looks for the next archive's magic at a 4-byte boundary.
    let pad = (4 - len % 4) % 4;
    out.write_all(&[0u8; 3][..pad as usize])?;
    len += pad;
    len += run.write_cpio(&mut out)?;
    out.flush()?;
    Ok(len)
}

/// Guest memory for an initrd of `initrd_bytes`: it is held twice (image and unpacked files)
/// and the tests need room besides.
pub fn memory_mb(initrd_bytes: u64) -> u64 {
    let mb = initrd_bytes.div_ceil(1 << 20);
    (512 + 3 * mb).max(1024).div_ceil(128) * 128
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_lists_library_paths() -> Result<()> {
        let text = "\tlinux-vdso.so.1 (0x00007ffc)\n\
            \tlibnl-genl-3.so.200 => /lib/x86_64-linux-gnu/libnl-genl-3.so.200 (0x00007f)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(text)?,
            [
                "/lib/x86_64-linux-gnu/libnl-genl-3.so.200",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        Ok(())
    }

    #[test]
    fn ldd_missing_library_is_an_error() {
        let err = parse_ldd("\tlibfoo.so.1 => not found\n").map(|_| ());
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("missing shared library: libfoo.so.1 => not found".to_string())
        );
    }

    #[test]
    fn memory_grows_with_the_initrd() {
        let cases = [
            (0, 1024),
            (100 << 20, 1024),
            (200 << 20, 1152),
            (400 << 20, 1792),
        ];
        for (bytes, want) in cases {
            assert_eq!(memory_mb(bytes), want, "{bytes}");
        }
    }
}
