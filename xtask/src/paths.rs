//! Where the lab keeps its files: `.lab/` at the workspace root (ignored by git).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
}

impl Paths {
    pub fn new() -> Self {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest.parent().unwrap_or(manifest).to_path_buf();
        Self { root }
    }

    pub fn lab(&self) -> PathBuf {
        self.root.join(".lab")
    }

    /// Downloads, extracted kernels and base images: reused across runs.
    pub fn cache(&self) -> PathBuf {
        self.lab().join("cache")
    }

    /// State of the long-running node (`lab up`).
    pub fn node(&self) -> PathBuf {
        self.lab().join("node")
    }

    /// A fresh scratch directory for one run, removed when the guard drops.
    pub fn scratch(&self, what: &str) -> Result<Scratch> {
        let dir = self
            .lab()
            .join("runs")
            .join(format!("{what}-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch { dir })
    }
}

/// A directory removed on drop; runs of several people in one tree never share one.
#[derive(Debug)]
pub struct Scratch {
    pub dir: PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
