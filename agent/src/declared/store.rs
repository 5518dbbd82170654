//! Revisions on disk, one file each, written so a crash or power loss never leaves a torn
//! one ([`crate::durable`]). The newest readable file is the current revision.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// How many revisions are kept for rollback.
pub const KEEP: usize = 64;

/// The directory holding the revisions.
#[derive(Debug, Clone)]
pub struct RevisionStore {
    dir: PathBuf,
}

fn file_name(revision: u64) -> String {
    format!("r{revision:020}.pb")
}

fn revision_of(name: &str) -> Option<u64> {
    name.strip_prefix('r')?.strip_suffix(".pb")?.parse().ok()
}

impl RevisionStore {
    /// Creates the directory (mode 0700) if needed.
    pub fn open(dir: PathBuf) -> io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        Ok(RevisionStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes one revision atomically, then drops the oldest beyond [`KEEP`].
    pub fn save(&self, revision: u64, bytes: &[u8]) -> io::Result<()> {
        crate::durable::write_atomic(&self.dir.join(file_name(revision)), bytes)?;
        let all = self.revisions()?;
        for old in all.iter().take(all.len().saturating_sub(KEEP)) {
            // A leftover old revision costs only disk space.
            let _ = fs::remove_file(self.dir.join(file_name(*old)));
        }
        Ok(())
    }

    /// Revision numbers on disk, oldest first.
    pub fn revisions(&self) -> io::Result<Vec<u64>> {
        let mut out: Vec<u64> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| revision_of(&e.file_name().to_string_lossy()))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    pub fn load(&self, revision: u64) -> io::Result<Vec<u8>> {
        fs::read(self.dir.join(file_name(revision)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_lists_and_keeps_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RevisionStore::open(dir.path().join("revisions")).expect("open");
        for r in 1..=(KEEP as u64 + 3) {
            store.save(r, &r.to_le_bytes()).expect("save");
        }
        let revs = store.revisions().expect("list");
        assert_eq!(revs.len(), KEEP);
        assert_eq!(revs.first(), Some(&4));
        assert_eq!(revs.last(), Some(&(KEEP as u64 + 3)));
        assert_eq!(store.load(5).expect("load"), 5u64.to_le_bytes());
        // No temporary file is left behind.
        let names: Vec<String> = fs::read_dir(store.dir())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| n.starts_with('r')), "{names:?}");
    }

    #[test]
    fn file_names_sort_by_revision() {
        assert_eq!(file_name(42), "r00000000000000000042.pb");
        assert_eq!(revision_of(&file_name(42)), Some(42));
        assert_eq!(revision_of("r12.tmp"), None);
        assert_eq!(revision_of(".r00000000000000000042.pb.tmp"), None);
    }
}
