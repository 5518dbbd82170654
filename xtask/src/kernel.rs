//! The guest kernel: Debian's current `linux-image-amd64`, downloaded once and cached by
//! version under `.lab/cache/kernel/<version>/`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::host;
use crate::paths::Paths;

#[derive(Debug, Clone)]
pub struct Kernel {
    /// The release string, as `uname -r` prints it in the guest (e.g. `6.1.0-56-amd64`).
    pub version: String,
    pub vmlinuz: PathBuf,
    /// `/lib/modules/<version>` of the extracted package, with `modules.dep`.
    pub modules: PathBuf,
}

/// Resolves, downloads (if not cached) and returns the kernel.
pub fn prepare(paths: &Paths) -> Result<Kernel> {
    let cache = paths.cache().join("kernel");
    let package = match resolve()? {
        Some(p) => Some(p),
        None if host::apt_update()? => resolve()?,
        None => None,
    };
    let Some(package) = package else {
        if let Some(k) = newest_cached(&cache) {
            eprintln!(
                "lab: cannot resolve linux-image-amd64; using cached kernel {}",
                k.version
            );
            return Ok(k);
        }
        bail!("apt-cache cannot resolve linux-image-amd64 and no kernel is cached");
    };
    let version = version_of(&package)?;
    if let Some(k) = cached(&cache, &version) {
        eprintln!("lab: kernel {version} cached");
        return Ok(k);
    }
    match fetch(&cache, &package, &version) {
        Ok(k) => Ok(k),
        // A stale package list names a version the mirror no longer has: refresh and retry.
        Err(e) if host::apt_update()? => {
            eprintln!("lab: download failed ({e:#}); retrying with fresh package lists");
            let package = resolve()?.context("apt-cache cannot resolve linux-image-amd64")?;
            let version = version_of(&package)?;
            match cached(&cache, &version) {
                Some(k) => Ok(k),
                None => fetch(&cache, &package, &version),
            }
        }
        Err(e) => Err(e),
    }
}

fn resolve() -> Result<Option<String>> {
    let out = std::process::Command::new("apt-cache")
        .args(["depends", "linux-image-amd64"])
        .stderr(std::process::Stdio::null())
        .output()
        .context("running apt-cache")?;
    Ok(parse_depends(&String::from_utf8_lossy(&out.stdout)))
}

/// The `linux-image-*` package that the `linux-image-amd64` metapackage depends on.
fn parse_depends(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let dep = l.trim().strip_prefix("Depends:")?.trim();
        (dep.starts_with("linux-image-") && !dep.starts_with('<')).then(|| dep.to_string())
    })
}

fn version_of(package: &str) -> Result<String> {
    match package.strip_prefix("linux-image-") {
        Some(v)
            if !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.+_".contains(c)) =>
        {
            Ok(v.to_string())
        }
        _ => bail!("unexpected kernel package name {package:?}"),
    }
}

fn layout(dir: &Path, version: &str) -> Kernel {
    Kernel {
        version: version.to_string(),
        vmlinuz: dir.join("boot").join(format!("vmlinuz-{version}")),
        modules: dir.join("lib/modules").join(version),
    }
}

fn cached(cache: &Path, version: &str) -> Option<Kernel> {
    let dir = cache.join(version);
    dir.join(".complete")
        .exists()
        .then(|| layout(&dir, version))
}

fn newest_cached(cache: &Path) -> Option<Kernel> {
    let mut versions: Vec<(std::time::SystemTime, String)> = fs::read_dir(cache)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(".complete").exists())
        .filter_map(|e| {
            let t = e.metadata().and_then(|m| m.modified()).ok()?;
            Some((t, e.file_name().to_string_lossy().into_owned()))
        })
        .collect();
    versions.sort();
    let (_, v) = versions.pop()?;
    cached(cache, &v)
}

/// Downloads and extracts into a private directory, runs depmod, then renames it into place,
/// so concurrent runs never see a half-extracted kernel.
fn fetch(cache: &Path, package: &str, version: &str) -> Result<Kernel> {
    eprintln!("lab: downloading {package}");
    let tmp = cache.join(format!(".tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir_all(&tmp)?;
    let result = (|| -> Result<Kernel> {
        host::run(
            host::apt("apt-get")
                .args(["download", "-qq", "-o", "APT::Sandbox::User=root", package])
                .current_dir(&tmp),
        )?;
        let deb = fs::read_dir(&tmp)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .context("apt-get download produced no .deb")?;
        let root = tmp.join("root");
        host::run(
            std::process::Command::new("dpkg-deb")
                .arg("-x")
                .arg(&deb)
                .arg(&root),
        )?;
        fs::remove_file(&deb)?;
        // Kernels of merged-/usr packages ship usr/lib/modules.
        let usr = root.join("usr/lib/modules");
        if !root.join("lib/modules").exists() && usr.exists() {
            fs::create_dir_all(root.join("lib"))?;
            fs::rename(&usr, root.join("lib/modules"))?;
        }
        let k = layout(&root, version);
        if !k.vmlinuz.exists() || !k.modules.exists() {
            bail!("{package} has no vmlinuz-{version} or /lib/modules/{version}");
        }
        host::run(
            std::process::Command::new("depmod")
                .arg("-b")
                .arg(&root)
                .arg(version),
        )?;
        fs::write(root.join(".complete"), package)?;
        let dest = cache.join(version);
        if fs::rename(&root, &dest).is_err() && !dest.join(".complete").exists() {
            bail!("cannot move the kernel into {}", dest.display());
        }
        eprintln!("lab: kernel {version} downloaded and cached");
        Ok(layout(&dest, version))
    })();
    let _ = fs::remove_dir_all(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_names_the_image_package() {
        let text = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
        assert_eq!(
            parse_depends(text).as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        assert_eq!(parse_depends("linux-image-amd64\n"), None);
        assert_eq!(
            parse_depends(
                "  Depends: <linux-image-virtual>\n  Depends: linux-image-6.12.1-amd64\n"
            )
            .as_deref(),
            Some("linux-image-6.12.1-amd64")
        );
    }

    #[test]
    fn version_from_package_name() {
        assert_eq!(
            version_of("linux-image-6.1.0-56-amd64").ok().as_deref(),
            Some("6.1.0-56-amd64")
        );
        for bad in ["linux-image-", "linux-headers-6.1", "linux-image-../x"] {
            assert_eq!(
                version_of(bad).map_err(|e| e.to_string()),
                Err(format!("unexpected kernel package name {bad:?}")),
                "{bad}"
            );
        }
    }
}
