//! Uploaded policies: the component bytes on disk by content hash (so they reload after a
//! restart) and compiled in memory.
//!
//! ```text
//! <dir>/<sha256>.wasm   the component as uploaded
//! <dir>/<sha256>.name   its operator-given name
//! ```

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::policy::{CompiledPolicy, LoadError, PolicyEngine};

/// A stored policy.
#[derive(Debug, Clone)]
pub struct StoredPolicy {
    pub hash: String,
    pub name: String,
    pub size: u64,
    pub compiled: Arc<CompiledPolicy>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("policy store {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no policy with hash {}", ipvs_types::quote(.0))]
    NotFound(String),
}

/// Policies by hash; `dir` is `None` for an agent that keeps them only in memory.
#[derive(Debug)]
pub struct PolicyStore {
    dir: Option<PathBuf>,
    policies: BTreeMap<String, StoredPolicy>,
}

impl PolicyStore {
    /// Opens `dir` (creating it 0700) and loads every component in it. A component the
    /// engine now refuses is skipped with a warning rather than stopping the agent.
    pub async fn open(dir: Option<PathBuf>, engine: &PolicyEngine) -> Result<Self, StoreError> {
        let mut store = PolicyStore {
            dir,
            policies: BTreeMap::new(),
        };
        let Some(dir) = store.dir.clone() else {
            return Ok(store);
        };
        let io_err = |source| StoreError::Io {
            path: dir.clone(),
            source,
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err)?;
        let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(io_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        paths.sort();
        for path in paths {
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read a stored policy");
                    continue;
                }
            };
            let name = fs::read_to_string(path.with_extension("name")).unwrap_or_default();
            match store.insert_compiled(engine, bytes, name).await {
                Ok(p) => tracing::info!(hash = %p.hash, name = %p.name, "policy loaded"),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "stored policy refused")
                }
            }
        }
        Ok(store)
    }

    async fn insert_compiled(
        &mut self,
        engine: &PolicyEngine,
        bytes: Vec<u8>,
        name: String,
    ) -> Result<StoredPolicy, StoreError> {
        let size = bytes.len() as u64;
        let compiled = engine.load_async(bytes).await?;
        Ok(self.insert(compiled, size, name))
    }

    fn insert(&mut self, compiled: Arc<CompiledPolicy>, size: u64, name: String) -> StoredPolicy {
        let policy = StoredPolicy {
            hash: compiled.hash_hex(),
            name,
            size,
            compiled,
        };
        self.policies.insert(policy.hash.clone(), policy.clone());
        policy
    }

    /// Stores `bytes`, already compiled by the engine (refused components never get here);
    /// an empty `name` keeps a stored one.
    pub fn add(
        &mut self,
        bytes: &[u8],
        compiled: Arc<CompiledPolicy>,
        name: String,
    ) -> Result<StoredPolicy, StoreError> {
        let hash = compiled.hash_hex();
        let name = match (name.is_empty(), self.policies.get(&hash)) {
            (true, Some(old)) => old.name.clone(),
            _ => name,
        };
        if let Some(dir) = &self.dir {
            write_atomic(&dir.join(format!("{hash}.wasm")), bytes)?;
            write_atomic(&dir.join(format!("{hash}.name")), name.as_bytes())?;
        }
        Ok(self.insert(compiled, bytes.len() as u64, name))
    }

    pub fn get(&self, hash: &str) -> Result<&StoredPolicy, StoreError> {
        self.policies
            .get(hash)
            .ok_or_else(|| StoreError::NotFound(hash.to_owned()))
    }

    /// Every policy, sorted by hash.
    pub fn list(&self) -> Vec<StoredPolicy> {
        self.policies.values().cloned().collect()
    }

    /// Forgets a policy and removes its files.
    pub fn remove(&mut self, hash: &str) -> Result<(), StoreError> {
        self.policies
            .remove(hash)
            .ok_or_else(|| StoreError::NotFound(hash.to_owned()))?;
        if let Some(dir) = &self.dir {
            for ext in ["wasm", "name"] {
                let path = dir.join(format!("{hash}.{ext}"));
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => return Err(StoreError::Io { path, source }),
                }
            }
        }
        Ok(())
    }
}

/// Writes through a synced temporary file so a crash never leaves half a component.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    crate::durable::write_atomic(path, bytes).map_err(|source| StoreError::Io {
        path: path.to_owned(),
        source,
    })
}
