//! The worker's artifact cache: weights files fetched from the coordinator,
//! kept under `<state-dir>/artifacts/<sha256>` and checked against their hash
//! before every use.

use std::path::{Path, PathBuf};

use ecobench_shared::artifact::{ArtifactError, is_sha256_hex, sha256_file};
use tracing::{info, warn};

use crate::client::{Client, ClientError};

/// Artifacts on this machine, by SHA-256.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    /// The folder holding them: `<state-dir>/artifacts`.
    dir: PathBuf,
}

impl ArtifactCache {
    /// The cache of the worker whose state folder is `state_dir`.
    pub fn new(state_dir: &Path) -> ArtifactCache {
        ArtifactCache {
            dir: state_dir.join("artifacts"),
        }
    }

    /// The folder holding the cached files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the artifact `sha256`: the cached file when its hash
    /// verifies, else (deleting a corrupt copy) a fresh one from the coordinator.
    pub async fn fetch(&self, client: &mut Client, sha256: &str) -> Result<PathBuf, ClientError> {
        if !is_sha256_hex(sha256) {
            return Err(ArtifactError::BadSha {
                name: "requested".into(),
                sha256: sha256.into(),
            }
            .into());
        }
        let path = self.dir.join(sha256);
        let (dir, wanted) = (self.dir.clone(), sha256.to_string());
        let cached = blocking(move || cached(&dir, &wanted)).await?;
        if let Some(path) = cached {
            return Ok(path);
        }
        let fetched = client.fetch_artifact(sha256, &self.dir).await?;
        info!(sha256, path = %path.display(), "artifact fetched");
        Ok(fetched)
    }
}

/// The cached copy if its hash verifies; a copy that does not is deleted.
fn cached(dir: &Path, sha256: &str) -> Result<Option<PathBuf>, ArtifactError> {
    std::fs::create_dir_all(dir).map_err(|source| ArtifactError::Io {
        action: "cannot create the artifact cache",
        path: dir.display().to_string(),
        source,
    })?;
    let path = dir.join(sha256);
    if !path.exists() {
        return Ok(None);
    }
    let (actual, _) = sha256_file(&path)?;
    if actual == sha256 {
        return Ok(Some(path));
    }
    warn!(path = %path.display(), %actual, "cached artifact is corrupt; fetching it again");
    std::fs::remove_file(&path).map_err(|source| ArtifactError::Io {
        action: "cannot delete the corrupt artifact",
        path: path.display().to_string(),
        source,
    })?;
    Ok(None)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ArtifactError> + Send + 'static,
) -> Result<T, ArtifactError> {
    tokio::task::spawn_blocking(work)
        .await
        .expect("artifact file work does not panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_copy_is_used_only_when_its_hash_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::new(dir.path());
        std::fs::create_dir_all(cache.dir()).unwrap();
        let source = dir.path().join("w");
        std::fs::write(&source, b"weights").unwrap();
        let (sha256, _) = sha256_file(&source).unwrap();
        assert_eq!(cached(cache.dir(), &sha256).unwrap(), None);

        let path = cache.dir().join(&sha256);
        std::fs::copy(&source, &path).unwrap();
        assert_eq!(cached(cache.dir(), &sha256).unwrap(), Some(path.clone()));

        std::fs::write(&path, b"corrupt").unwrap();
        assert_eq!(cached(cache.dir(), &sha256).unwrap(), None);
        assert!(!path.exists(), "the corrupt copy is deleted");
    }
}
