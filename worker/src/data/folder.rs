//! Image folders: `train/<class>/*.png|jpg|jpeg` and `test/<class>/…`, decoded with the
//! `image` crate.
//!
//! The classes are the sorted names of the sub-folders of `train/` (label = position);
//! `test/` must have the same. Files are read in name order. Grey images give 1 channel,
//! colour ones 3 (alpha dropped). Every image of a split must have one shape unless the
//! job's transform says what to convert them to ([`FolderOptions`]).

use std::path::{Path, PathBuf};

use ecobench_shared::DataTransform;

use super::{DataError, Dataset, apply_transform};

/// Extensions read (case-insensitive); other files are skipped.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];
/// Most classes an image folder may have (labels are bytes).
pub const MAX_CLASSES: usize = 255;
/// The training split's folder.
pub const TRAIN_DIR: &str = "train";
/// The test split's folder.
pub const TEST_DIR: &str = "test";

/// What a split whose images differ in shape is converted to. A split of one shape is
/// kept as decoded, so its fingerprint does not depend on the transform.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FolderOptions {
    /// Square side every image is resized to.
    pub side: Option<u32>,
    /// Channels every image is converted to (1 or 3).
    pub channels: Option<usize>,
}

impl FolderOptions {
    /// The conversions `transform` will make anyway (its resize and channel count).
    pub fn from_transform(transform: &DataTransform) -> FolderOptions {
        let channels = match (transform.channels, transform.grayscale) {
            (Some(channels), _) => Some(channels as usize),
            (None, true) => Some(1),
            (None, false) => None,
        };
        FolderOptions {
            side: transform.resize,
            channels,
        }
    }
}

/// Whether `dir` looks like an image folder: a `train/` holding at least one sub-folder.
pub fn is_image_folder(dir: &Path) -> bool {
    sub_folders(&dir.join(TRAIN_DIR)).is_ok_and(|classes| !classes.is_empty())
}

/// Loads both splits of an image folder and the class names.
pub fn load_image_folder(
    dir: &Path,
    options: FolderOptions,
) -> Result<(Dataset, Dataset, Vec<String>), DataError> {
    let train_dir = dir.join(TRAIN_DIR);
    let classes = sub_folders(&train_dir)?;
    if classes.is_empty() || classes.len() > MAX_CLASSES {
        return Err(DataError::BadClasses {
            dir: train_dir,
            problem: format!(
                "{} class sub-folders; an image folder needs 1 to {MAX_CLASSES} (one per \
                 class, holding its .png/.jpg/.jpeg images)",
                classes.len()
            ),
        });
    }
    let test_dir = dir.join(TEST_DIR);
    let test_classes = sub_folders(&test_dir)?;
    if test_classes != classes {
        return Err(DataError::BadClasses {
            dir: test_dir,
            problem: format!(
                "its class sub-folders [{}] differ from train/'s [{}]: both splits need the \
                 same class folders",
                test_classes.join(", "),
                classes.join(", ")
            ),
        });
    }
    let train = load_split_dir(&train_dir, &classes, options)?;
    let test = load_split_dir(&test_dir, &classes, options)?;
    Ok((train, test, classes))
}

/// One decoded image, channel-major.
struct Decoded {
    path: PathBuf,
    image: Dataset,
}

fn load_split_dir(
    split_dir: &Path,
    classes: &[String],
    options: FolderOptions,
) -> Result<Dataset, DataError> {
    let mut decoded = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        for path in image_files(&split_dir.join(class))? {
            let mut image = decode(&path)?;
            image.labels = vec![label as u8];
            decoded.push(Decoded { path, image });
        }
    }
    let Some(first) = decoded.first() else {
        return Err(DataError::BadClasses {
            dir: split_dir.to_path_buf(),
            problem: "its class folders hold no .png, .jpg or .jpeg image".into(),
        });
    };
    let shape = |d: &Decoded| (d.image.channels, d.image.rows, d.image.cols);
    let first_shape = shape(first);
    if let Some(other) = decoded.iter().find(|d| shape(d) != first_shape) {
        let sizes_differ =
            other.image.rows != first.image.rows || other.image.cols != first.image.cols;
        let channels_differ = other.image.channels != first.image.channels;
        if (sizes_differ && options.side.is_none())
            || (channels_differ && options.channels.is_none())
        {
            return Err(DataError::ImageShapeMismatch {
                first: first.path.clone(),
                first_shape: first.image.shape(),
                other: other.path.clone(),
                other_shape: other.image.shape(),
            });
        }
        let to = DataTransform {
            resize: options.side,
            channels: options.channels.map(|c| c as u32),
            ..DataTransform::default()
        };
        for d in &mut decoded {
            let image = std::mem::replace(&mut d.image, empty(1));
            d.image = apply_transform(&to, image)?;
        }
    }
    let mut split = empty(decoded[0].image.channels);
    (split.rows, split.cols) = (decoded[0].image.rows, decoded[0].image.cols);
    for d in decoded {
        split.images.extend_from_slice(&d.image.images);
        split.labels.extend_from_slice(&d.image.labels);
    }
    Ok(split)
}

/// Decodes one file (its format guessed from its content) into a one-image dataset.
fn decode(path: &Path) -> Result<Dataset, DataError> {
    let bad = |message: String| DataError::BadImage {
        path: path.to_path_buf(),
        message,
    };
    let reader = image::ImageReader::open(path)
        .and_then(|reader| reader.with_guessed_format())
        .map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let image = reader.decode().map_err(|err| bad(err.to_string()))?;
    let (cols, rows) = (image.width() as usize, image.height() as usize);
    let (channels, interleaved) = if image.color().has_color() {
        (3, image.to_rgb8().into_raw())
    } else {
        (1, image.to_luma8().into_raw())
    };
    let plane = rows * cols;
    let mut images = vec![0u8; channels * plane];
    for (pixel, values) in interleaved.chunks_exact(channels).enumerate() {
        for (channel, &value) in values.iter().enumerate() {
            images[channel * plane + pixel] = value;
        }
    }
    Ok(Dataset {
        channels,
        rows,
        cols,
        images,
        labels: vec![0],
    })
}

/// The image files of a class folder, sorted by name.
fn image_files(class_dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut files: Vec<PathBuf> = entries(class_dir)?
        .into_iter()
        .filter(|path| path.is_file())
        .filter(|path| {
            path.extension()
                .and_then(|ext| ext.to_str())
                .is_some_and(|ext| IMAGE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The sorted names of the sub-folders of `dir` (hidden ones skipped).
fn sub_folders(dir: &Path) -> Result<Vec<String>, DataError> {
    let mut names: Vec<String> = entries(dir)?
        .into_iter()
        .filter(|path| path.is_dir())
        .filter_map(|path| path.file_name()?.to_str().map(str::to_string))
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let io_err = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::read_dir(dir)
        .map_err(io_err)?
        .map(|entry| entry.map(|e| e.path()).map_err(io_err))
        .collect()
}

fn empty(channels: usize) -> Dataset {
    Dataset {
        channels,
        rows: 0,
        cols: 0,
        images: Vec::new(),
        labels: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
