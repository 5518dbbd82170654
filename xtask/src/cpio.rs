//! The initramfs archive: a file tree ([`Manifest`]) written as a `newc` cpio stream.
//!
//! The kernel unpacks every archive of a concatenated initrd in order, but creates no missing
//! parent directories, so the manifest adds them itself and writes parents before children.
//!
//! ```text
//! newc entry: "070701" + 13 fields of 8 hex digits (ino mode uid gid nlink mtime filesize
//!             devmajor devminor rdevmajor rdevminor namesize check)
//!             name NUL, padded to 4 bytes; data, padded to 4 bytes
//! archive:    entries ... "TRAILER!!!"
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// One node of the guest file tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    /// A host file copied at write time (symlinks followed).
    File {
        src: PathBuf,
        mode: u32,
    },
    Data {
        bytes: Vec<u8>,
        mode: u32,
    },
    Symlink(String),
    CharDev {
        major: u32,
        minor: u32,
    },
}

/// A guest file tree keyed by absolute guest path; a later insert at the same path wins.
#[derive(Debug, Default, Clone)]
pub struct Manifest {
    nodes: BTreeMap<String, Node>,
}

impl Manifest {
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts `node` at `path` (absolute, `/`-separated) and any missing parent directories.
    pub fn insert(&mut self, path: &str, node: Node) -> Result<()> {
        let rel = normalize(path)?;
        let mut parent = String::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            match self.nodes.get(&parent) {
                None => {
                    self.nodes.insert(parent.clone(), Node::Dir);
                }
                Some(Node::Dir) => {}
                Some(_) => bail!("/{parent} is not a directory (needed for {path})"),
            }
        }
        self.nodes.insert(rel, node);
        Ok(())
    }

    pub fn dir(&mut self, path: &str) -> Result<()> {
        self.insert(path, Node::Dir)
    }

    pub fn file(&mut self, path: &str, src: &Path, mode: u32) -> Result<()> {
        self.insert(
            path,
            Node::File {
                src: src.to_path_buf(),
                mode,
            },
        )
    }

    pub fn data(&mut self, path: &str, bytes: impl Into<Vec<u8>>, mode: u32) -> Result<()> {
        self.insert(
            path,
            Node::Data {
                bytes: bytes.into(),
                mode,
            },
        )
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        self.insert(path, Node::Symlink(target.to_string()))
    }

    pub fn contains(&self, path: &str) -> bool {
        normalize(path).is_ok_and(|rel| self.nodes.contains_key(&rel))
    }

    /// Paths in archive order (relative, parents first).
    #[cfg(test)]
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    /// A fingerprint of the tree, including the size and mtime of every host file, so a cached
    /// archive is rebuilt when any input changes.
    pub fn fingerprint(&self) -> Result<u64> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for (path, node) in &self.nodes {
            path.hash(&mut h);
            node_fingerprint(node, &mut h)?;
        }
        Ok(h.finish())
    }

    /// Writes the tree as a complete newc archive (with trailer) and returns the bytes written.
    pub fn write_cpio(&self, out: impl Write) -> Result<u64> {
        let mut w = Writer::new(out);
        for (path, node) in &self.nodes {
            match node {
                Node::Dir => w.entry(path, S_IFDIR | 0o755, 2, (0, 0), &mut io::empty(), 0)?,
                Node::File { src, mode } => {
                    let mut f =
                        File::open(src).with_context(|| format!("opening {}", src.display()))?;
                    let len = f.metadata()?.len();
                    w.entry(path, S_IFREG | mode, 1, (0, 0), &mut f, len)
                        .with_context(|| format!("archiving {}", src.display()))?;
                }
                Node::Data { bytes, mode } => w.entry(
                    path,
                    S_IFREG | mode,
                    1,
                    (0, 0),
                    &mut bytes.as_slice(),
                    bytes.len() as u64,
                )?,
                Node::Symlink(target) => w.entry(
                    path,
                    S_IFLNK | 0o777,
                    1,
                    (0, 0),
                    &mut target.as_bytes(),
                    target.len() as u64,
                )?,
                Node::CharDev { major, minor } => w.entry(
                    path,
                    S_IFCHR | 0o600,
                    1,
                    (*major, *minor),
                    &mut io::empty(),
                    0,
                )?,
            }
        }
        w.finish()
    }
}

fn node_fingerprint(node: &Node, h: &mut impl Hasher) -> Result<()> {
    match node {
        Node::Dir => 0u8.hash(h),
        Node::File { src, mode } => {
            1u8.hash(h);
            src.hash(h);
            mode.hash(h);
            let meta = std::fs::metadata(src).with_context(|| format!("{}", src.display()))?;
            meta.len().hash(h);
            meta.mtime().hash(h);
            meta.mtime_nsec().hash(h);
        }
        Node::Data { bytes, mode } => {
            2u8.hash(h);
            bytes.hash(h);
            mode.hash(h);
        }
        Node::Symlink(t) => {
            3u8.hash(h);
            t.hash(h);
        }
        Node::CharDev { major, minor } => {
            4u8.hash(h);
            major.hash(h);
            minor.hash(h);
        }
    }
    Ok(())
}

/// `/usr/bin/ip` -> `usr/bin/ip`; rejects relative, empty and `..` paths.
fn normalize(path: &str) -> Result<String> {
    let Some(rel) = path.strip_prefix('/') else {
        bail!("guest path must be absolute: {path:?}");
    };
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|p| *p == "." || *p == "..") {
        bail!("invalid guest path: {path:?}");
    }
    Ok(parts.join("/"))
}

/// Streams newc entries.
struct Writer<W: Write> {
    out: W,
    ino: u32,
    offset: u64,
}

impl<W: Write> Writer<W> {
    fn new(out: W) -> Self {
        Self {
            out,
            ino: 0,
            offset: 0,
        }
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &mut dyn Read,
        len: u64,
    ) -> Result<()> {
        let Ok(size) = u32::try_from(len) else {
            bail!("{name}: {len} bytes is too large for a newc archive");
        };
        self.ino += 1;
        let header = header(self.ino, mode, nlink, size, rdev, name);
        self.put(&header)?;
        let copied = io::copy(&mut data.take(len), &mut self.out)?;
        if copied != len {
            bail!("{name}: expected {len} bytes, read {copied}");
        }
        self.offset += copied;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> Result<()> {
        let pad = (4 - (self.offset % 4) as usize) % 4;
        self.put(&[0u8; 3][..pad])
    }

    fn finish(mut self) -> Result<u64> {
        let trailer = header(0, 0, 1, 0, (0, 0), "TRAILER!!!");
        self.put(&trailer)?;
        self.out.flush()?;
        Ok(self.offset)
    }
}

/// The header plus the NUL-terminated name, padded so the data starts 4-byte aligned.
fn header(ino: u32, mode: u32, nlink: u32, size: u32, rdev: (u32, u32), name: &str) -> Vec<u8> {
    let namesize = name.len() as u32 + 1;
    let fields = [
        ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0,
    ];
    let mut out = b"070701".to_vec();
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_accepts_absolute_paths_only() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("/bin/sh", Ok("bin/sh")),
            ("//usr//bin/", Ok("usr/bin")),
            ("bin/sh", Err("guest path must be absolute: \"bin/sh\"")),
            ("/", Err("invalid guest path: \"/\"")),
            ("/a/../b", Err("invalid guest path: \"/a/../b\"")),
        ];
        for (input, want) in cases {
            let got = normalize(input).map_err(|e| e.to_string());
            assert_eq!(
                got,
                want.map(str::to_string).map_err(str::to_string),
                "{input}"
            );
        }
    }

    #[test]
    fn insert_adds_parents_before_children() -> Result<()> {
        let mut m = Manifest::new();
        m.data("/usr/sbin/ipvsadm", "x", 0o755)?;
        m.symlink("/bin/sh", "busybox")?;
        m.dir("/bin-extra")?;
        let paths: Vec<&str> = m.paths().collect();
        assert_eq!(
            paths,
            [
                "bin",
                "bin-extra",
                "bin/sh",
                "usr",
                "usr/sbin",
                "usr/sbin/ipvsadm"
            ]
        );
        Ok(())
    }

    #[test]
    fn insert_under_a_file_is_an_error() -> Result<()> {
        let mut m = Manifest::new();
        m.data("/etc", "x", 0o644)?;
        let err = m.data("/etc/hosts", "y", 0o644).map(|_| ());
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("/etc is not a directory (needed for /etc/hosts)".to_string())
        );
        Ok(())
    }

    #[test]
    fn header_layout_matches_newc() {
        let h = header(7, S_IFREG | 0o644, 1, 5, (0, 0), "etc/hosts");
        let text = String::from_utf8_lossy(&h);
        assert!(text.starts_with("070701"), "{text}");
        // ino
        assert_eq!(&text[6..14], "00000007");
        // mode 0100644
        assert_eq!(&text[14..22], "000081a4");
        // filesize
        assert_eq!(&text[54..62], "00000005");
        // namesize includes the NUL
        assert_eq!(&text[94..102], "0000000a");
        assert_eq!(&h[110..119], b"etc/hosts");
        assert_eq!(h.len() % 4, 0);
        assert_eq!(h.len(), 120);
    }

    #[test]
    fn archive_entries_are_aligned_and_terminated() -> Result<()> {
        let mut m = Manifest::new();
        m.data("/init", "#!/bin/sh\n", 0o755)?;
        m.insert("/dev/console", Node::CharDev { major: 5, minor: 1 })?;
        let mut out = Vec::new();
        let n = m.write_cpio(&mut out)?;
        assert_eq!(n as usize, out.len());
        assert_eq!(out.len() % 4, 0);
        let text = String::from_utf8_lossy(&out);
        // dev, dev/console, init, trailer
        assert_eq!(text.matches("070701").count(), 4);
        assert!(text.contains("dev/console"));
        assert!(text.ends_with("TRAILER!!!\0\0\0\0"), "{text:?}");
        let init = text.find("init\0").expect("init entry");
        assert!(text[init..].contains("#!/bin/sh\n"));
        Ok(())
    }

    #[test]
    fn fingerprint_follows_content() -> Result<()> {
        let mut a = Manifest::new();
        a.data("/init", "one", 0o755)?;
        let mut b = a.clone();
        assert_eq!(a.fingerprint()?, b.fingerprint()?);
        b.data("/init", "two", 0o755)?;
        assert_ne!(a.fingerprint()?, b.fingerprint()?);
        Ok(())
    }
}
