//! Finished outcomes kept on disk until the coordinator has taken them, so that
//! a result survives a coordinator outage and a worker restart.
//!
//! One JSON file per outcome, `<job id>-<lease id>.json`, written to a temporary
//! name, synced and renamed, so that a file is either whole or absent.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::client::LeasedJob;
use crate::exec::Outcome;

/// A folder of undelivered outcomes.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

/// One stored outcome.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    job: LeasedJob,
    outcome: Outcome,
}

/// An outcome read back, with the file to remove once delivered.
#[derive(Debug)]
pub struct Stored {
    /// The file holding it.
    pub path: PathBuf,
    /// The lease it was produced under.
    pub job: LeasedJob,
    /// What happened.
    pub outcome: Outcome,
}

impl Outbox {
    /// Where a pretrain job's weights wait beside its outcome until delivered.
    pub fn weights_path(&self, spec: &ecobench_shared::JobSpec) -> PathBuf {
        self.dir.join(format!("{}.safetensors", spec.job_id()))
    }

    /// Opens (creating if needed) the outbox in `dir`.
    pub fn open(dir: &Path) -> std::io::Result<Outbox> {
        std::fs::create_dir_all(dir)?;
        Ok(Outbox {
            dir: dir.to_path_buf(),
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores an outcome durably; returns its file.
    pub fn put(&self, job: &LeasedJob, outcome: &Outcome) -> std::io::Result<PathBuf> {
        let name = format!("{}-{}.json", job.spec.job_id(), job.lease_id);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let entry = Entry {
            job: job.clone(),
            outcome: outcome.clone(),
        };
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec(&entry).expect("outcomes serialise"))?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }

    /// Every stored outcome, oldest file name first; unreadable files are
    /// reported and left in place for a person to look at.
    pub fn stored(&self) -> Vec<Stored> {
        let Ok(listing) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = listing
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .filter_map(|path| {
                let read = std::fs::read(&path).map_err(|e| e.to_string());
                match read.and_then(|bytes| serde_json::from_slice::<Entry>(&bytes).map_err(|e| e.to_string())) {
                    Ok(entry) => Some(Stored { path, job: entry.job, outcome: entry.outcome }),
                    Err(err) => {
                        warn!(path = %path.display(), error = %err, "unreadable outbox file; leaving it");
                        None
                    }
                }
            })
            .collect()
    }

    /// Forgets a delivered outcome.
    pub fn remove(&self, path: &Path) {
        if let Err(err) = std::fs::remove_file(path)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            warn!(path = %path.display(), error = %err, "cannot remove a delivered outcome");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecobench_shared::{JobSpec, ModelConfig, SvmConfig, SvmSolver};

    fn job(lease_id: u64) -> LeasedJob {
        LeasedJob {
            spec: JobSpec {
                campaign_id: "00000000000000cd".into(),
                job_idx: 1,
                dataset: "d".into(),
                train_samples: None,
                test_samples: None,
                seed: 1,
                threads: 0,
                model: ModelConfig::SvmLinear(SvmConfig::new(1.0, SvmSolver::Dcd)),
                stage: Default::default(),
                transform: Default::default(),
                expected_dataset_sha256: None,
            },
            lease_id,
            attempt: 1,
            worker_id: "w".into(),
        }
    }

    #[test]
    fn outcomes_survive_a_reopen_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(&dir.path().join("outbox")).unwrap();
        let failed = Outcome::Failed {
            reason: "boom".into(),
            retryable: true,
            energy: None,
        };
        let path = outbox.put(&job(7), &failed).unwrap();
        outbox.put(&job(8), &failed).unwrap();
        std::fs::write(outbox.dir().join("torn.json"), "{").unwrap();

        let reopened = Outbox::open(&dir.path().join("outbox")).unwrap();
        let stored = reopened.stored();
        let leases: Vec<u64> = stored.iter().map(|s| s.job.lease_id).collect();
        assert_eq!(leases, vec![7, 8], "the torn file is skipped");
        assert!(matches!(&stored[0].outcome, Outcome::Failed { reason, .. } if reason == "boom"));
        reopened.remove(&path);
        reopened.remove(&path);
        assert_eq!(reopened.stored().len(), 1);
    }
}
