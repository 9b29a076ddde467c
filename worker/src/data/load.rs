//! One entry point for every dataset layout: [`load_dataset`] detects the format of a
//! folder by the files it holds and reads both splits.

use std::path::{Path, PathBuf};

use ecobench_shared::DataTransform;

use super::folder::{self, FolderOptions};
use super::resolve::holds_split_files;
use super::{DataError, Dataset, cifar, idx, load_split};

/// The layouts the worker reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetFormat {
    /// The MNIST family's four IDX files.
    Idx,
    /// CIFAR-10's binary batches.
    Cifar10,
    /// `train/<class>/…` and `test/<class>/…` image files.
    ImageFolder,
}

impl DatasetFormat {
    /// The name used in logs: `idx`, `cifar-10`, `image-folder`.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetFormat::Idx => "idx",
            DatasetFormat::Cifar10 => "cifar-10",
            DatasetFormat::ImageFolder => "image-folder",
        }
    }
}

/// Both splits of a dataset as decoded from its files, before any transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedDataset {
    /// The training split.
    pub train: Dataset,
    /// The test split.
    pub test: Dataset,
    /// The layout it was read from.
    pub format: DatasetFormat,
    /// Class names by label: `"0"`–`"9"` for IDX, CIFAR-10's ten names, the sub-folder
    /// names of an image folder.
    pub classes: Vec<String>,
    /// The folder the files were read from (a CIFAR-10 folder's `cifar-10-batches-bin/`
    /// when the batches are there).
    pub source: PathBuf,
}

impl LoadedDataset {
    /// Number of classes (labels are below it).
    pub fn n_classes(&self) -> usize {
        self.classes.len()
    }
}

/// The format of the dataset folder `dir`, if it is one: the four IDX files, else CIFAR-10
/// batches (in `dir` or its `cifar-10-batches-bin/`), else a `train/` with class folders.
pub fn detect_format(dir: &Path) -> Option<DatasetFormat> {
    if holds_split_files(dir) {
        Some(DatasetFormat::Idx)
    } else if cifar::batches_dir(dir).is_some() {
        Some(DatasetFormat::Cifar10)
    } else if folder::is_image_folder(dir) {
        Some(DatasetFormat::ImageFolder)
    } else {
        None
    }
}

/// Loads both splits of the dataset folder `dir`, whatever its format; an image folder
/// must then hold images of one shape per split (see [`load_dataset_with`]).
pub fn load_dataset(dir: &Path) -> Result<LoadedDataset, DataError> {
    load_dataset_with(dir, &DataTransform::default())
}

/// Loads both splits of `dir` for a job that will apply `transform`: the splits may then
/// differ in what the transform makes uniform (size when it resizes, channels when it sets
/// them), and an image folder whose images differ in those is converted while decoding.
/// The transform itself is not applied ([`super::apply_transform`] does it).
pub fn load_dataset_with(
    dir: &Path,
    transform: &DataTransform,
) -> Result<LoadedDataset, DataError> {
    let format = detect_format(dir).ok_or_else(|| DataError::UnknownFormat {
        dir: dir.to_path_buf(),
    })?;
    let loaded = match format {
        DatasetFormat::Idx => {
            let (train, test) = load_split(dir)?;
            let classes = (0..idx::N_CLASSES).map(|k| k.to_string()).collect();
            LoadedDataset {
                train,
                test,
                format,
                classes,
                source: dir.to_path_buf(),
            }
        }
        DatasetFormat::Cifar10 => {
            let (train, test, source) = cifar::load_cifar10(dir)?;
            let classes = cifar::CLASSES.map(str::to_string).to_vec();
            LoadedDataset {
                train,
                test,
                format,
                classes,
                source,
            }
        }
        DatasetFormat::ImageFolder => {
            let options = FolderOptions::from_transform(transform);
            let (train, test, classes) = folder::load_image_folder(dir, options)?;
            LoadedDataset {
                train,
                test,
                format,
                classes,
                source: dir.to_path_buf(),
            }
        }
    };
    check_same_shape(&loaded, transform)?;
    Ok(loaded)
}

/// Both splits must have one image shape, except where `transform` makes them agree.
fn check_same_shape(loaded: &LoadedDataset, transform: &DataTransform) -> Result<(), DataError> {
    let (train, test) = (&loaded.train, &loaded.test);
    let sizes_agree =
        (train.rows, train.cols) == (test.rows, test.cols) || transform.resize.is_some();
    let sets_channels = transform.grayscale || transform.channels.is_some();
    let channels_agree = train.channels == test.channels || sets_channels;
    if sizes_agree && channels_agree {
        return Ok(());
    }
    Err(DataError::SizeMismatch {
        dir: loaded.source.clone(),
        train: train.shape(),
        test: test.shape(),
    })
}
