//! Datasets: readers for IDX, CIFAR-10 and image folders, resolution of dataset names to
//! folders, transforms, normalization statistics, seeded stratified subsets.
//!
//! A dataset is a folder in one of three layouts, detected by [`load_dataset`]:
//! - IDX (the MNIST family): the four files `train-images-idx3-ubyte`,
//!   `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each
//!   gzipped or not, with or without a `.gz` suffix ([`idx`]);
//! - CIFAR-10 binary batches `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`,
//!   in the folder or its `cifar-10-batches-bin/` ([`cifar`]);
//! - an image folder: `train/<class>/*.png|jpg|jpeg` and `test/<class>/…` ([`folder`]).
//!
//! Every reader gives [`Dataset`]s of u8 images, each channel-major (C×H×W).

pub mod cifar;
mod error;
pub mod folder;
pub mod idx;
mod load;
mod resolve;
mod subset;
mod transform;

use std::path::Path;

pub use error::DataError;
pub use idx::{read_idx_images, read_idx_labels, write_idx_images, write_idx_labels};
pub use load::{DatasetFormat, LoadedDataset, detect_format, load_dataset, load_dataset_with};
pub use resolve::{KNOWN_DATASETS, SYSTEM_DATASETS_DIR, find_split_file, resolve_dataset};
pub use subset::{derive_seed, stratified_subset};
pub use transform::{Normalization, apply_transform};

/// Base names of the four files of a dataset folder: train images, train labels, test
/// images, test labels.
pub const SPLIT_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// One split of a dataset: `labels.len()` images of `channels` × `rows` × `cols` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Channels per image: 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Pixel rows per image.
    pub rows: usize,
    /// Pixel columns per image.
    pub cols: usize,
    /// Values, image after image, each channel-major then row-major
    /// (`len() * channels * rows * cols` bytes).
    pub images: Vec<u8>,
    /// One class label per image (0–9 for IDX and CIFAR-10, up to 254 for image folders).
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

    /// Values per image (`channels * rows * cols`).
    pub fn n_pixels(&self) -> usize {
        self.channels * self.rows * self.cols
    }

    /// The shape of an image as `channels×rows×cols`, for messages.
    pub fn shape(&self) -> String {
        format!("{}×{}×{}", self.channels, self.rows, self.cols)
    }

    /// The values of image `idx`.
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
            channels: self.channels,
            rows: self.rows,
            cols: self.cols,
            images,
            labels: indices.iter().map(|&idx| self.labels[idx]).collect(),
        }
    }
}

/// Loads the training and test splits of a folder of IDX files.
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
            train: train.shape(),
            test: test.shape(),
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
        channels: 1,
        rows: images.rows,
        cols: images.cols,
        images: images.pixels,
        labels,
    })
}

/// Writes a dataset folder: the four standard files for `train` and `test`, gzipped if
/// `gzip` (with a `.gz` suffix). The folder is created if needed; the splits must be grey.
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
    if let Some(split) = [train, test].into_iter().find(|split| split.channels != 1) {
        return Err(DataError::BadWrite {
            path: dir.to_path_buf(),
            reason: format!(
                "IDX holds grey images, these have {} channels",
                split.channels
            ),
        });
    }
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

/// SHA-256 (hex) of two decoded splits: their shapes (channels included), pixels and
/// labels. Two copies of a dataset with the same content have the same digest, gzipped or
/// not.
pub fn digest(train: &Dataset, test: &Dataset) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for split in [train, test] {
        for n in [split.len(), split.channels, split.rows, split.cols] {
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
