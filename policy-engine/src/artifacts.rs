//! Compiled policies kept across restarts, so a component is compiled once per engine build.
//!
//! Loading a compiled artifact runs native code from it, so only files this agent wrote are
//! ever read back: the directory must be a 0700 directory owned by the agent's user, every
//! file must be a regular file of that user, not writable by others, and carry a header
//! naming the component it came from and a digest of its body.
//!
//! ```text
//! <dir>/<sha256 of component>-<engine hash>.cwasm
//! ┌──────────────┬──────────────────────────┬──────────────────────────┬───────────────┐
//! │ "IPVSCWA1" 8 │ sha256(component)     32 │ sha256(artifact)      32 │ artifact ...  │
//! └──────────────┴──────────────────────────┴──────────────────────────┴───────────────┘
//! ```

use std::fs::{self, DirBuilder};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::EngineError;

const MAGIC: &[u8; 8] = b"IPVSCWA1";
const HEADER: usize = 8 + 32 + 32;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

pub fn sha256(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

pub fn hex(hash: &[u8]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Names one compiled artifact: the component's digest and the engine's compatibility hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArtifactKey {
    pub component: Hash,
    pub engine: Hash,
}

/// A directory of compiled artifacts private to this agent.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    dir: PathBuf,
    uid: u32,
}

impl ArtifactStore {
    /// Opens (creating it 0700 if needed) `dir`; refuses a directory others could write to.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, EngineError> {
        let dir = dir.into();
        let io = |source| EngineError::Store {
            path: dir.clone(),
            source,
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io)?;
        let meta = fs::symlink_metadata(&dir).map_err(io)?;
        let uid = nix::unistd::geteuid().as_raw();
        if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
            return Err(EngineError::StoreNotPrivate(dir));
        }
        Ok(ArtifactStore { dir, uid })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, key: &ArtifactKey) -> PathBuf {
        self.dir.join(format!(
            "{}-{}.cwasm",
            hex(&key.component),
            &hex(&key.engine)[..16]
        ))
    }

    /// The artifact for `key`, if this agent wrote one and it is intact.
    pub fn load(&self, key: &ArtifactKey) -> Option<Vec<u8>> {
        let path = self.path(key);
        let meta = fs::symlink_metadata(&path).ok()?;
        if !meta.is_file() || meta.uid() != self.uid || meta.mode() & 0o022 != 0 {
            tracing::warn!(path = %path.display(), "ignoring a compiled policy this agent did not write");
            return None;
        }
        let bytes = fs::read(&path).ok()?;
        match parse(&bytes, &key.component) {
            Some(body) => Some(body.to_vec()),
            None => {
                tracing::warn!(path = %path.display(), "ignoring a damaged compiled policy");
                None
            }
        }
    }

    /// Stores `artifact` for `key` atomically ([`ipvs_types::durable`]).
    pub fn save(&self, key: &ArtifactKey, artifact: &[u8]) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(HEADER + artifact.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&key.component);
        bytes.extend_from_slice(&sha256(artifact));
        bytes.extend_from_slice(artifact);
        ipvs_types::durable::write_atomic(&self.path(key), &bytes)
    }
}

/// The body of a stored artifact if its header matches `component` and its digest.
fn parse<'a>(bytes: &'a [u8], component: &Hash) -> Option<&'a [u8]> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC || &bytes[8..40] != component {
        return None;
    }
    let body = &bytes[HEADER..];
    (bytes[40..HEADER] == sha256(body)).then_some(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn key(n: u8) -> ArtifactKey {
        ArtifactKey {
            component: sha256(&[n]),
            engine: sha256(b"engine"),
        }
    }

    #[test]
    fn round_trip_and_private_files() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let store =
            ArtifactStore::open(tmp.path().join("artifacts")).map_err(std::io::Error::other)?;
        let mode = fs::metadata(store.dir())?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(store.load(&key(1)), None);
        store.save(&key(1), b"compiled")?;
        assert_eq!(store.load(&key(1)), Some(b"compiled".to_vec()));
        assert_eq!(
            fs::metadata(store.path(&key(1)))?.permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(store.load(&key(2)), None);
        Ok(())
    }

    #[test]
    fn damaged_or_foreign_files_are_not_loaded() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let store = ArtifactStore::open(tmp.path().join("a")).map_err(std::io::Error::other)?;
        store.save(&key(1), b"compiled")?;
        let path = store.path(&key(1));

        // A flipped byte in the body.
        let mut bytes = fs::read(&path)?;
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes)?;
        assert_eq!(store.load(&key(1)), None);

        // A file renamed to another component's name.
        store.save(&key(1), b"compiled")?;
        fs::rename(&path, store.path(&key(2)))?;
        assert_eq!(store.load(&key(2)), None);

        // Group-writable.
        store.save(&key(1), b"compiled")?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o620))?;
        assert_eq!(store.load(&key(1)), None);

        // A symlink to an intact artifact.
        store.save(&key(3), b"compiled")?;
        fs::remove_file(&path)?;
        std::os::unix::fs::symlink(store.path(&key(3)), &path)?;
        assert_eq!(store.load(&key(1)), None);
        Ok(())
    }

    #[test]
    fn a_shared_directory_is_refused() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("shared");
        fs::create_dir(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777))?;
        assert!(matches!(
            ArtifactStore::open(&dir),
            Err(EngineError::StoreNotPrivate(p)) if p == dir
        ));
        Ok(())
    }
}
