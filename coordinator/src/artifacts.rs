//! The coordinator's artifacts: content-addressed files (weights) kept in a
//! folder beside the database, `<db>.artifacts/<sha256>`, and recorded in the
//! store's `artifacts` tree once they are durable on disk.
//!
//! A put streams into a temporary file while hashing; only a complete stream
//! of the declared size and SHA-256 is synced, renamed to its hash, the folder
//! synced, and then recorded and flushed. A crash mid-put leaves only a
//! `*.tmp` file, swept when the store is next opened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ecobench_shared::artifact::{
    ArtifactError, ArtifactHeader, ArtifactWriter, FileChunks, TEMP_SUFFIX, is_sha256_hex,
};
use tracing::{info, instrument, warn};

use crate::coordinator::{CoordinatorError, now_unix_ms};
use crate::store::{ArtifactRecord, Store, StoreError};

/// Default largest artifact accepted: 2 GiB.
pub const DEFAULT_MAX_ARTIFACT_BYTES: u64 = 2 << 30;

/// The artifacts folder of the database at `db`: `<db>.artifacts`.
pub fn artifacts_dir(db: &Path) -> PathBuf {
    let mut dir = db.as_os_str().to_owned();
    dir.push(".artifacts");
    PathBuf::from(dir)
}

/// Stored artifacts: files in a folder, records in the store.
#[derive(Debug)]
pub struct ArtifactStore {
    /// Where the files are.
    dir: PathBuf,
    /// Where the records are.
    store: Store,
    /// Largest artifact accepted, in bytes.
    max_bytes: u64,
    /// Keeps the folder of [`ArtifactStore::temporary`] alive.
    #[cfg(test)]
    _temporary: Option<tempfile::TempDir>,
}

/// The answer to a put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    /// The stored record (the first one, when the content was already there).
    pub record: ArtifactRecord,
    /// True when the artifact was stored before this put.
    pub already_present: bool,
}

impl From<ArtifactError> for CoordinatorError {
    fn from(err: ArtifactError) -> Self {
        match err {
            ArtifactError::Io { .. } => CoordinatorError::Io(err.to_string()),
            _ => CoordinatorError::InvalidArgument(err.to_string()),
        }
    }
}

impl ArtifactStore {
    /// Opens (creating it if needed) the folder `dir`, and deletes the
    /// temporary files that puts interrupted by a crash left there.
    pub fn open(
        dir: PathBuf,
        store: Store,
        max_bytes: u64,
    ) -> Result<ArtifactStore, ArtifactError> {
        let io = |action| {
            let path = dir.display().to_string();
            move |source| ArtifactError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(&dir).map_err(io("cannot create the artifacts folder"))?;
        for entry in std::fs::read_dir(&dir).map_err(io("cannot list the artifacts folder"))? {
            let path = entry
                .map_err(io("cannot list the artifacts folder"))?
                .path();
            if path.to_string_lossy().ends_with(TEMP_SUFFIX) {
                warn!(path = %path.display(), "removing an artifact left unfinished by a crash");
                std::fs::remove_file(&path).map_err(io("cannot clean the artifacts folder"))?;
            }
        }
        Ok(ArtifactStore {
            dir,
            store,
            max_bytes,
            #[cfg(test)]
            _temporary: None,
        })
    }

    /// An artifact store in a temporary folder, removed when dropped.
    #[cfg(test)]
    pub fn temporary(store: Store, max_bytes: u64) -> ArtifactStore {
        let temp = tempfile::tempdir().expect("a temporary folder");
        let mut artifacts = ArtifactStore::open(temp.path().into(), store, max_bytes).unwrap();
        artifacts._temporary = Some(temp);
        artifacts
    }

    /// The folder holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The record of an artifact, if it is stored.
    pub fn get(&self, sha256: &str) -> Result<Option<ArtifactRecord>, StoreError> {
        self.store.artifact(sha256)
    }

    /// Where the artifact `sha256` lives; `None` when `sha256` is not 64 lowercase hex digits.
    pub fn path(&self, sha256: &str) -> Option<PathBuf> {
        is_sha256_hex(sha256).then(|| self.dir.join(sha256))
    }

    /// Starts a put; refuses at once a header with a bad hash or a size over the limit.
    #[instrument(skip_all, fields(sha256 = %header.sha256, name = %header.name))]
    pub fn begin_put(&self, header: ArtifactHeader) -> Result<Upload, CoordinatorError> {
        let writer = ArtifactWriter::create(&self.dir, header, self.max_bytes)?;
        Ok(Upload {
            writer: Some(writer),
            store: self.store.clone(),
        })
    }

    /// The record and the chunks of a stored artifact.
    pub fn read(&self, sha256: &str) -> Result<(ArtifactRecord, FileChunks), CoordinatorError> {
        let not_found = || {
            CoordinatorError::NotFound(format!(
                "no artifact with sha256 {sha256:?} on this coordinator: put it first (or check the hash)"
            ))
        };
        let path = self.path(sha256).ok_or_else(not_found)?;
        let record = self.get(sha256)?.ok_or_else(not_found)?;
        let file = std::fs::File::open(&path).map_err(|source| {
            CoordinatorError::NotFound(format!(
                "artifact {:?} ({sha256}) is recorded but its file {} cannot be opened ({source}): put it again",
                record.name,
                path.display()
            ))
        })?;
        Ok((record, FileChunks::new(file)))
    }
}

/// A put in progress: dropping it before [`finish`](Upload::finish) removes its temporary file.
#[derive(Debug)]
pub struct Upload {
    /// `None` only while a chunk is being written off the async threads.
    writer: Option<ArtifactWriter>,
    store: Store,
}

impl Upload {
    /// Checks and writes one chunk.
    pub async fn write(&mut self, data: Vec<u8>) -> Result<(), CoordinatorError> {
        let mut writer = self.writer.take().expect("one write at a time");
        let (writer, written) = tokio::task::spawn_blocking(move || {
            let written = writer.write(&data);
            (writer, written)
        })
        .await
        .expect("writing a chunk does not panic");
        self.writer = Some(writer);
        Ok(written?)
    }

    /// Checks that the whole declared content arrived, makes it durable, then records it.
    pub async fn finish(mut self) -> Result<PutOutcome, CoordinatorError> {
        let writer = self.writer.take().expect("one write at a time");
        let header = writer.header().clone();
        tokio::task::spawn_blocking(move || writer.commit())
            .await
            .expect("committing an artifact does not panic")?;
        let record = ArtifactRecord {
            sha256: header.sha256.clone(),
            size: header.size_bytes,
            name: header.name,
            created_unix_ms: now_unix_ms(),
        };
        let created = self.store.insert_artifact(&record)?;
        self.store.flush().await?;
        let record = match created {
            true => record,
            false => self.store.artifact(&header.sha256)?.unwrap_or(record),
        };
        info!(sha256 = %record.sha256, size = record.size, name = %record.name, already_present = !created, "artifact stored");
        Ok(PutOutcome {
            record,
            already_present: !created,
        })
    }
}

/// The tensors of a safetensors file, name → shape, from its header alone (8 bytes of
/// little-endian header length, then that much JSON; `__metadata__` skipped).
pub fn safetensors_shapes(path: &Path) -> Result<BTreeMap<String, Vec<usize>>, String> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path).map_err(|err| format!("cannot open it: {err}"))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| "it is shorter than a safetensors header (8 bytes)".to_string())?;
    let len = u64::from_le_bytes(len);
    if len > 100 * 1024 * 1024 {
        return Err(format!(
            "its header claims {len} bytes: not a safetensors file"
        ));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|_| format!("its header is cut short (it claims {len} bytes)"))?;
    let entries: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|err| format!("its header is not the JSON of a safetensors file: {err}"))?;
    let mut shapes = BTreeMap::new();
    for (name, entry) in entries {
        if name == "__metadata__" {
            continue;
        }
        let shape = entry
            .get("shape")
            .and_then(|s| serde_json::from_value::<Vec<usize>>(s.clone()).ok())
            .ok_or_else(|| format!("tensor `{name}` has no shape in the header"))?;
        shapes.insert(name, shape);
    }
    Ok(shapes)
}

#[cfg(test)]
mod tests;
