//! CIFAR-10's binary version: batches of 3,073-byte records (one label byte, then a 32×32
//! image as 1,024 red, 1,024 green and 1,024 blue bytes, each row-major).
//!
//! A folder holds `data_batch_1.bin` … `data_batch_5.bin` (the training split, in that
//! order) and `test_batch.bin`, directly or in a `cifar-10-batches-bin/` sub-folder (the
//! layout of the official archive).

use std::path::{Path, PathBuf};

use super::{DataError, Dataset};

/// Side of a CIFAR-10 image.
pub const SIDE: usize = 32;
/// Channels of a CIFAR-10 image (red, green, blue).
pub const CHANNELS: usize = 3;
/// Bytes of one record: the label and the image.
pub const RECORD_BYTES: usize = 1 + CHANNELS * SIDE * SIDE;
/// The training batches, in the order their images are concatenated.
pub const TRAIN_BATCHES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test batch.
pub const TEST_BATCH: &str = "test_batch.bin";
/// The sub-folder the official archive extracts to.
pub const ARCHIVE_DIR: &str = "cifar-10-batches-bin";
/// The class names, by label.
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// The folder holding the batches: `dir` itself or its `cifar-10-batches-bin/`, whichever
/// holds `test_batch.bin` or a training batch (`dir` first); `None` if neither does.
pub fn batches_dir(dir: &Path) -> Option<PathBuf> {
    [dir.to_path_buf(), dir.join(ARCHIVE_DIR)]
        .into_iter()
        .find(|candidate| {
            std::iter::once(TEST_BATCH)
                .chain(TRAIN_BATCHES)
                .any(|file| candidate.join(file).is_file())
        })
}

/// Loads the training split (every present `data_batch_N.bin`, N = 1 to 5, in order) and
/// the test split (`test_batch.bin`) of the folder [`batches_dir`] finds in `dir`.
pub fn load_cifar10(dir: &Path) -> Result<(Dataset, Dataset, PathBuf), DataError> {
    let source = batches_dir(dir).unwrap_or_else(|| dir.to_path_buf());
    let train_paths: Vec<PathBuf> = TRAIN_BATCHES
        .iter()
        .map(|file| source.join(file))
        .filter(|path| path.is_file())
        .collect();
    if train_paths.is_empty() {
        return Err(DataError::MissingCifarBatch {
            dir: source,
            missing: "training batch (data_batch_1.bin to data_batch_5.bin)".into(),
        });
    }
    let test_path = source.join(TEST_BATCH);
    if !test_path.is_file() {
        return Err(DataError::MissingCifarBatch {
            dir: source,
            missing: TEST_BATCH.into(),
        });
    }
    let mut train = empty_split();
    for path in &train_paths {
        let batch = read_cifar_batch(path)?;
        train.images.extend_from_slice(&batch.images);
        train.labels.extend_from_slice(&batch.labels);
    }
    let test = read_cifar_batch(&test_path)?;
    Ok((train, test, source))
}

/// Reads one batch file: every record, checking its length and label.
pub fn read_cifar_batch(path: &Path) -> Result<Dataset, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.is_empty() {
        return Err(DataError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let remainder = bytes.len() % RECORD_BYTES;
    if remainder != 0 {
        return Err(DataError::CifarTruncated {
            path: path.to_path_buf(),
            offset: (bytes.len() - remainder) as u64,
            present: remainder,
            record_bytes: RECORD_BYTES,
        });
    }
    let mut split = empty_split();
    let n_records = bytes.len() / RECORD_BYTES;
    split.labels.reserve(n_records);
    split.images.reserve(n_records * (RECORD_BYTES - 1));
    for (idx, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        let label = record[0];
        if usize::from(label) >= CLASSES.len() {
            return Err(DataError::CifarLabel {
                path: path.to_path_buf(),
                offset: (idx * RECORD_BYTES) as u64,
                label,
            });
        }
        split.labels.push(label);
        split.images.extend_from_slice(&record[1..]);
    }
    Ok(split)
}

/// Writes `split` (3×32×32 images) as a CIFAR-10 batch file.
pub fn write_cifar_batch(path: &Path, split: &Dataset) -> Result<(), DataError> {
    if (split.channels, split.rows, split.cols) != (CHANNELS, SIDE, SIDE) {
        return Err(DataError::BadWrite {
            path: path.to_path_buf(),
            reason: format!("CIFAR-10 images are 3×32×32, these are {}", split.shape()),
        });
    }
    let mut bytes = Vec::with_capacity(split.len() * RECORD_BYTES);
    for idx in 0..split.len() {
        bytes.push(split.labels[idx]);
        bytes.extend_from_slice(split.image(idx));
    }
    std::fs::write(path, bytes).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn empty_split() -> Dataset {
    Dataset {
        channels: CHANNELS,
        rows: SIDE,
        cols: SIDE,
        images: Vec::new(),
        labels: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
