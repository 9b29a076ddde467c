//! Content-addressed artifacts (weights files): hashing a file, reading it in
//! chunks, and receiving one into a folder while checking its declared size
//! and SHA-256. Used by the coordinator's store and the worker's cache alike.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// Largest `data` of one artifact chunk on the wire: 1 MiB.
pub const ARTIFACT_CHUNK_BYTES: usize = 1 << 20;

/// What the first chunk of an artifact stream declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactHeader {
    /// SHA-256 of the content, 64 lowercase hex digits: the artifact's name in storage.
    pub sha256: String,
    /// Size of the content in bytes.
    pub size_bytes: u64,
    /// A human name: a file name, or `pretrain <job id>`.
    pub name: String,
}

/// A stream that does not deliver what its header declared, or a file that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The declared hash is not 64 lowercase hex digits.
    #[error("artifact {name:?}: {sha256:?} is not a SHA-256 (64 lowercase hex digits)")]
    BadSha {
        /// The artifact's human name.
        name: String,
        /// What was given.
        sha256: String,
    },
    /// The declared or received size is above the configured limit.
    #[error(
        "artifact {name:?} ({sha256}): {size_bytes} bytes is over the limit of {limit_bytes} bytes (--max-artifact-bytes)"
    )]
    TooLarge {
        /// The artifact's human name.
        name: String,
        /// Its declared hash.
        sha256: String,
        /// The declared size, or the bytes received so far.
        size_bytes: u64,
        /// The limit.
        limit_bytes: u64,
    },
    /// One chunk carried more than [`ARTIFACT_CHUNK_BYTES`].
    #[error(
        "artifact {name:?} ({sha256}): a chunk of {chunk_bytes} bytes is over the {ARTIFACT_CHUNK_BYTES}-byte chunk limit"
    )]
    ChunkTooLarge {
        /// The artifact's human name.
        name: String,
        /// Its declared hash.
        sha256: String,
        /// The chunk's size.
        chunk_bytes: usize,
    },
    /// The content is longer or shorter than declared.
    #[error(
        "artifact {name:?} ({sha256}): declared {declared_bytes} bytes but the stream {received}: resend the whole file"
    )]
    SizeMismatch {
        /// The artifact's human name.
        name: String,
        /// Its declared hash.
        sha256: String,
        /// The declared size.
        declared_bytes: u64,
        /// What was received, in words ("carried more", "ended after 12 bytes").
        received: String,
    },
    /// The content's hash is not the declared one.
    #[error(
        "artifact {name:?}: declared sha256 {declared} but the content hashes to {actual}: the file changed or was corrupted in transit"
    )]
    HashMismatch {
        /// The artifact's human name.
        name: String,
        /// The declared hash.
        declared: String,
        /// The hash of what arrived.
        actual: String,
    },
    /// A file or folder cannot be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("cannot write").
        action: &'static str,
        /// The file or folder.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// True for 64 lowercase hex digits, the only names artifacts are stored under.
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError {
    let path = path.display().to_string();
    move |source| ArtifactError::Io {
        action,
        path,
        source,
    }
}

/// SHA-256 (hex) and size of a file, read in chunks.
pub fn sha256_file(path: &Path) -> Result<(String, u64), ArtifactError> {
    let file = File::open(path).map_err(io_error("cannot open", path))?;
    let mut hasher = Sha256::new();
    let mut size_bytes = 0u64;
    for chunk in FileChunks::new(file) {
        let chunk = chunk.map_err(io_error("cannot read", path))?;
        size_bytes += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((hex(&hasher.finalize()), size_bytes))
}

/// The chunks of a file, each [`ARTIFACT_CHUNK_BYTES`] long but the last.
#[derive(Debug)]
pub struct FileChunks {
    file: File,
    done: bool,
}

impl FileChunks {
    /// Chunks of `file` from its current position.
    pub fn new(file: File) -> FileChunks {
        FileChunks { file, done: false }
    }
}

impl Iterator for FileChunks {
    type Item = std::io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut chunk = Vec::with_capacity(ARTIFACT_CHUNK_BYTES);
        match (&mut self.file)
            .take(ARTIFACT_CHUNK_BYTES as u64)
            .read_to_end(&mut chunk)
        {
            Ok(0) => {
                self.done = true;
                None
            }
            Ok(n) => {
                self.done = n < ARTIFACT_CHUNK_BYTES;
                Some(Ok(chunk))
            }
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }
}

/// Checks a stream of chunks against its header: size, chunk size, limit, hash.
#[derive(Debug)]
pub struct Verifier {
    header: ArtifactHeader,
    limit_bytes: u64,
    hasher: Sha256,
    received_bytes: u64,
}

impl Verifier {
    /// Refuses at once a header with a bad hash or a size over `limit_bytes`.
    pub fn new(header: ArtifactHeader, limit_bytes: u64) -> Result<Verifier, ArtifactError> {
        if !is_sha256_hex(&header.sha256) {
            return Err(ArtifactError::BadSha {
                name: header.name,
                sha256: header.sha256,
            });
        }
        if header.size_bytes > limit_bytes {
            return Err(ArtifactError::TooLarge {
                size_bytes: header.size_bytes,
                name: header.name,
                sha256: header.sha256,
                limit_bytes,
            });
        }
        Ok(Verifier {
            header,
            limit_bytes,
            hasher: Sha256::new(),
            received_bytes: 0,
        })
    }

    /// The header being checked against.
    pub fn header(&self) -> &ArtifactHeader {
        &self.header
    }

    /// Takes one chunk; refuses it when it is too big or goes past the declared size.
    pub fn update(&mut self, data: &[u8]) -> Result<(), ArtifactError> {
        let header = &self.header;
        if data.len() > ARTIFACT_CHUNK_BYTES {
            return Err(ArtifactError::ChunkTooLarge {
                name: header.name.clone(),
                sha256: header.sha256.clone(),
                chunk_bytes: data.len(),
            });
        }
        let received_bytes = self.received_bytes + data.len() as u64;
        if received_bytes > self.limit_bytes {
            return Err(ArtifactError::TooLarge {
                name: header.name.clone(),
                sha256: header.sha256.clone(),
                size_bytes: received_bytes,
                limit_bytes: self.limit_bytes,
            });
        }
        if received_bytes > header.size_bytes {
            return Err(self.size_mismatch(format!("carried more ({received_bytes} bytes so far)")));
        }
        self.received_bytes = received_bytes;
        self.hasher.update(data);
        Ok(())
    }

    /// Checks that the whole declared content arrived and hashes to the declared hash.
    pub fn finish(&self) -> Result<(), ArtifactError> {
        if self.received_bytes != self.header.size_bytes {
            let received = format!("ended after {} bytes", self.received_bytes);
            return Err(self.size_mismatch(received));
        }
        let actual = hex(&self.hasher.clone().finalize());
        if actual != self.header.sha256 {
            return Err(ArtifactError::HashMismatch {
                name: self.header.name.clone(),
                declared: self.header.sha256.clone(),
                actual,
            });
        }
        Ok(())
    }

    fn size_mismatch(&self, received: String) -> ArtifactError {
        ArtifactError::SizeMismatch {
            name: self.header.name.clone(),
            sha256: self.header.sha256.clone(),
            declared_bytes: self.header.size_bytes,
            received,
        }
    }
}

/// Receives an artifact into `<dir>/<sha256>` through a temporary file
/// (`<dir>/<sha256>.<pid>.<n>.tmp`), removed if the writer is dropped before
/// [`commit`](ArtifactWriter::commit) succeeds.
#[derive(Debug)]
pub struct ArtifactWriter {
    verifier: Verifier,
    dir: PathBuf,
    temp_path: PathBuf,
    file: Option<File>,
}

/// Suffix of the temporary files of unfinished artifacts.
pub const TEMP_SUFFIX: &str = ".tmp";

impl ArtifactWriter {
    /// Starts receiving the artifact `header` describes into `dir`.
    pub fn create(
        dir: &Path,
        header: ArtifactHeader,
        limit_bytes: u64,
    ) -> Result<ArtifactWriter, ArtifactError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let verifier = Verifier::new(header, limit_bytes)?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let temp_name = format!(
            "{}.{}.{n}{TEMP_SUFFIX}",
            verifier.header().sha256,
            std::process::id()
        );
        let temp_path = dir.join(temp_name);
        let file = File::create(&temp_path).map_err(io_error("cannot create", &temp_path))?;
        Ok(ArtifactWriter {
            verifier,
            dir: dir.to_path_buf(),
            temp_path,
            file: Some(file),
        })
    }

    /// The header being received.
    pub fn header(&self) -> &ArtifactHeader {
        self.verifier.header()
    }

    /// Checks and writes one chunk.
    pub fn write(&mut self, data: &[u8]) -> Result<(), ArtifactError> {
        self.verifier.update(data)?;
        let file = self.file.as_mut().expect("the file is open until commit");
        file.write_all(data)
            .map_err(io_error("cannot write", &self.temp_path))
    }

    /// Checks size and hash, syncs the file, renames it to `<dir>/<sha256>` and
    /// syncs the folder; returns the final path.
    pub fn commit(mut self) -> Result<PathBuf, ArtifactError> {
        self.verifier.finish()?;
        let file = self.file.take().expect("the file is open until commit");
        file.sync_all()
            .map_err(io_error("cannot sync", &self.temp_path))?;
        drop(file);
        let path = self.dir.join(&self.verifier.header().sha256);
        std::fs::rename(&self.temp_path, &path).map_err(io_error("cannot rename", &path))?;
        sync_dir(&self.dir)?;
        self.temp_path = PathBuf::new();
        Ok(path)
    }
}

impl Drop for ArtifactWriter {
    fn drop(&mut self) {
        if !self.temp_path.as_os_str().is_empty() {
            self.file = None;
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }
}

/// Syncs a folder, so that a rename in it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), ArtifactError> {
    File::open(dir)
        .and_then(|folder| folder.sync_all())
        .map_err(io_error("cannot sync the folder", dir))
}

#[cfg(test)]
mod tests;
