//! Datasets: IDX files, resolution of dataset names to folders, seeded stratified subsets.
//!
//! A dataset is a folder holding the four standard MNIST-family files
//! (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
//! `t10k-labels-idx1-ubyte`), each gzipped or not, with or without a `.gz` suffix.

pub mod idx;
mod resolve;
mod subset;

use std::path::{Path, PathBuf};

pub use idx::{read_idx_images, read_idx_labels, write_idx_images, write_idx_labels};
pub use resolve::{KNOWN_DATASETS, SYSTEM_DATASETS_DIR, find_split_file, resolve_dataset};
pub use subset::{derive_seed, stratified_subset};

/// Base names of the four files of a dataset folder: train images, train labels, test
/// images, test labels.
pub const SPLIT_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// What can go wrong finding or reading a dataset. Every message names the file or folder.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Reading or writing a file failed.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file starts with the gzip magic bytes but does not decompress.
    #[error("{path} is not a valid gzip file ({source}): it may be truncated, download it again")]
    BadGzip {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: std::io::Error,
    },
    /// A file does not start with the expected IDX magic number.
    #[error(
        "{path} is not an IDX {kind} file (magic {}, expected {expected:#010x}): point the \
         campaign's dataset at a folder of IDX files",
        magic.map_or("missing".to_string(), |m| format!("{m:#010x}"))
    )]
    NotIdx {
        /// The file.
        path: PathBuf,
        /// `image` or `label`.
        kind: String,
        /// The first four bytes, big-endian, if the file has four bytes.
        magic: Option<u32>,
        /// The magic an IDX file of that kind starts with.
        expected: u32,
    },
    /// A file is shorter than its header says.
    #[error(
        "{path} is truncated: its header needs {expected_bytes} bytes, it has \
         {actual_bytes}: download it again"
    )]
    Truncated {
        /// The file (its decompressed size is meant when gzipped).
        path: PathBuf,
        /// Bytes the header announces.
        expected_bytes: u64,
        /// Bytes present.
        actual_bytes: u64,
    },
    /// A label file holds a label outside 0..=9.
    #[error("{path} holds label {label} at index {index}; labels must be 0 to 9")]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// Position of the first bad label.
        index: usize,
        /// Its value.
        label: u8,
    },
    /// An image file and its label file disagree on the number of samples.
    #[error(
        "{images_path} holds {n_images} images but {labels_path} holds {n_labels} labels: \
         the two files must come from the same split"
    )]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Images in it.
        n_images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// Labels in it.
        n_labels: usize,
    },
    /// The training and test images have different sizes.
    #[error(
        "{dir}: training images are {train_rows}×{train_cols} but test images are \
         {test_rows}×{test_cols}; both splits must have the same image size"
    )]
    SizeMismatch {
        /// The dataset folder.
        dir: PathBuf,
        /// Rows of a training image.
        train_rows: usize,
        /// Columns of a training image.
        train_cols: usize,
        /// Rows of a test image.
        test_rows: usize,
        /// Columns of a test image.
        test_cols: usize,
    },
    /// A dataset folder lacks one of the four files.
    #[error(
        "{dir} has no {file} (nor {file}.gz): a dataset folder needs train-images-idx3-ubyte, \
         train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte"
    )]
    MissingFile {
        /// The dataset folder.
        dir: PathBuf,
        /// The base name that is missing.
        file: String,
    },
    /// A dataset name was found nowhere.
    #[error("{0}")]
    NotFound(String),
    /// A write was asked with inconsistent arguments.
    #[error("cannot write {path}: {reason}")]
    BadWrite {
        /// The file.
        path: PathBuf,
        /// What was inconsistent.
        reason: String,
    },
}

/// One split of a dataset: `labels.len()` grey images of `rows` × `cols` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Pixel rows per image.
    pub rows: usize,
    /// Pixel columns per image.
    pub cols: usize,
    /// Pixels, image after image, row-major (`len() * rows * cols` bytes).
    pub images: Vec<u8>,
    /// One class label (0–9) per image.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels per image (`rows * cols`).
    pub fn n_pixels(&self) -> usize {
        self.rows * self.cols
    }

    /// The pixels of image `idx`.
    pub fn image(&self, idx: usize) -> &[u8] {
        let n_pixels = self.n_pixels();
        &self.images[idx * n_pixels..(idx + 1) * n_pixels]
    }

    /// A new dataset with the images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let mut images = Vec::with_capacity(indices.len() * self.n_pixels());
        for &idx in indices {
            images.extend_from_slice(self.image(idx));
        }
        Dataset {
            rows: self.rows,
            cols: self.cols,
            images,
            labels: indices.iter().map(|&idx| self.labels[idx]).collect(),
        }
    }
}

/// Loads the training and test splits of a dataset folder.
pub fn load_split(dir: &Path) -> Result<(Dataset, Dataset), DataError> {
    let [train_images, train_labels, test_images, test_labels] = SPLIT_FILES.map(|file| {
        find_split_file(dir, file).ok_or_else(|| DataError::MissingFile {
            dir: dir.to_path_buf(),
            file: file.to_string(),
        })
    });
    let train = load_pair(&train_images?, &train_labels?)?;
    let test = load_pair(&test_images?, &test_labels?)?;
    if (train.rows, train.cols) != (test.rows, test.cols) {
        return Err(DataError::SizeMismatch {
            dir: dir.to_path_buf(),
            train_rows: train.rows,
            train_cols: train.cols,
            test_rows: test.rows,
            test_cols: test.cols,
        });
    }
    Ok((train, test))
}

/// Loads one split from its image file and label file.
pub fn load_pair(images_path: &Path, labels_path: &Path) -> Result<Dataset, DataError> {
    let images = read_idx_images(images_path)?;
    let labels = read_idx_labels(labels_path)?;
    if images.n != labels.len() {
        return Err(DataError::CountMismatch {
            images_path: images_path.to_path_buf(),
            n_images: images.n,
            labels_path: labels_path.to_path_buf(),
            n_labels: labels.len(),
        });
    }
    Ok(Dataset {
        rows: images.rows,
        cols: images.cols,
        images: images.pixels,
        labels,
    })
}

/// Writes a dataset folder: the four standard files for `train` and `test`, gzipped if
/// `gzip` (with a `.gz` suffix). The folder is created if needed.
pub fn write_split(
    dir: &Path,
    train: &Dataset,
    test: &Dataset,
    gzip: bool,
) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let suffix = if gzip { ".gz" } else { "" };
    let path = |base: &str| dir.join(format!("{base}{suffix}"));
    for (split, [images_file, labels_file]) in [
        (train, [SPLIT_FILES[0], SPLIT_FILES[1]]),
        (test, [SPLIT_FILES[2], SPLIT_FILES[3]]),
    ] {
        let (n, rows, cols) = (split.len(), split.rows, split.cols);
        write_idx_images(&path(images_file), n, rows, cols, &split.images, gzip)?;
        write_idx_labels(&path(labels_file), &split.labels, gzip)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

/// SHA-256 (hex) of two decoded splits: their shapes, pixels and labels. Two
/// copies of a dataset with the same content have the same digest, gzipped or not.
pub fn digest(train: &Dataset, test: &Dataset) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for split in [train, test] {
        for n in [split.len(), split.rows, split.cols] {
            hasher.update((n as u64).to_be_bytes());
        }
        hasher.update(&split.images);
        hasher.update(&split.labels);
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
