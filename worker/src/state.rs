//! The worker's state folder: one worker process at a time (a lock file), and the
//! worker's id, kept there so that a restarted worker is the same worker to the
//! coordinator: it may deliver the outcomes its outbox kept, for the leases it held.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// A state folder this process holds; the lock is released when it is dropped.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    _lock: File,
}

impl StateDir {
    /// Creates (if needed) and locks `dir`; refused when another worker holds it.
    pub fn lock(dir: &Path) -> anyhow::Result<StateDir> {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "cannot create the state folder {}: pass a writable --state-dir",
                dir.display()
            )
        })?;
        let path = dir.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another worker uses the state folder {}: give each worker on a machine its \
                 own --state-dir",
                dir.display()
            ),
            Err(std::fs::TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        Ok(StateDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// The worker's id: `given` if any (and then remembered), else the one remembered
    /// from an earlier run, else `fresh()`, remembered.
    pub fn worker_id(
        &self,
        given: Option<&str>,
        fresh: impl FnOnce() -> String,
    ) -> anyhow::Result<String> {
        let path = self.dir.join("worker-id");
        let remembered = std::fs::read_to_string(&path)
            .ok()
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty());
        let id = match (given, remembered) {
            (Some(id), _) => id.to_string(),
            (None, Some(id)) => return Ok(id),
            (None, None) => fresh(),
        };
        let tmp = self.dir.join("worker-id.tmp");
        let mut file =
            File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        writeln!(file, "{id}")?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_worker_per_folder_and_the_id_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateDir::lock(dir.path()).unwrap();
        let err = StateDir::lock(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("another worker uses the state folder"),
            "{err}"
        );
        let id = first.worker_id(None, || "host-1234".into()).unwrap();
        assert_eq!(id, "host-1234");
        drop(first);
        let again = StateDir::lock(dir.path()).unwrap();
        assert_eq!(
            again.worker_id(None, || "host-5678".into()).unwrap(),
            "host-1234",
            "a restart keeps the id"
        );
        assert_eq!(
            again.worker_id(Some("w9"), || unreachable!()).unwrap(),
            "w9"
        );
        assert_eq!(again.worker_id(None, || unreachable!()).unwrap(), "w9");
    }
}
