//! What can go wrong finding, reading or transforming a dataset: every message names the
//! file or folder, where in it (byte offset, index), and what to do.

use std::path::PathBuf;

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
    #[error(
        "{path} is not a valid gzip file ({source}; it fails after {decompressed_bytes} \
         decompressed bytes): it may be truncated, download it again"
    )]
    BadGzip {
        /// The file.
        path: PathBuf,
        /// Bytes decompressed before the error: the decompressed offset where it fails.
        decompressed_bytes: u64,
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
    /// An IDX file is shorter than its header says.
    #[error(
        "{path} is truncated: its data ends at byte offset {actual_bytes}{} but its header \
         needs {expected_bytes} bytes: download it again",
        if *decompressed { " (decompressed)" } else { "" }
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header announces.
        expected_bytes: u64,
        /// Bytes present: the offset where the data ends.
        actual_bytes: u64,
        /// Whether the sizes are of the decompressed stream (a gzipped file).
        decompressed: bool,
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
    /// The training and test images have different shapes (channels × rows × columns).
    #[error(
        "{dir}: training images are {train}, test images are {test} (channels×rows×columns); \
         both splits must have the same shape: for an image folder set `[transform] resize` \
         (and `grayscale` or `channels`) in the campaign"
    )]
    SizeMismatch {
        /// The dataset folder.
        dir: PathBuf,
        /// Shape of a training image, as `3×32×32`.
        train: String,
        /// Shape of a test image.
        test: String,
    },
    /// A dataset folder lacks one of the four IDX files.
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
    /// A file that must hold records is empty.
    #[error("{path} is empty: download it again")]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// A CIFAR-10 batch ends in the middle of a record.
    #[error(
        "{path} is truncated: the record at byte offset {offset} is incomplete ({present} of \
         {record_bytes} bytes): download the CIFAR-10 binary version again"
    )]
    CifarTruncated {
        /// The batch file.
        path: PathBuf,
        /// Byte offset of the incomplete record.
        offset: u64,
        /// Bytes of it present.
        present: usize,
        /// Bytes a record has (3073).
        record_bytes: usize,
    },
    /// A CIFAR-10 record's label byte is not 0–9.
    #[error(
        "{path} holds label {label} at byte offset {offset}; CIFAR-10 labels are 0 to 9: the \
         file is corrupt or not a CIFAR-10 binary batch (CIFAR-100 has another layout), \
         download the CIFAR-10 binary version again"
    )]
    CifarLabel {
        /// The batch file.
        path: PathBuf,
        /// Byte offset of the label byte.
        offset: u64,
        /// Its value.
        label: u8,
    },
    /// A CIFAR-10 folder lacks its training or test batches.
    #[error(
        "{dir} has no {missing}: a CIFAR-10 folder (the binary version, \
         cifar-10-batches-bin) needs data_batch_1.bin to data_batch_5.bin (at least one) and \
         test_batch.bin"
    )]
    MissingCifarBatch {
        /// The folder.
        dir: PathBuf,
        /// What is missing.
        missing: String,
    },
    /// An image of an image folder does not decode.
    #[error("{path} is not a readable image ({message}): replace or delete the file")]
    BadImage {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
    /// Two images of one split differ in size or channels.
    #[error(
        "{first} is {first_shape} but {other} is {other_shape} (channels×rows×columns): \
         every image of a split must have the same shape; set `[transform] resize` (and \
         `grayscale` or `channels`) in the campaign to convert them"
    )]
    ImageShapeMismatch {
        /// The split's first image.
        first: PathBuf,
        /// Its shape, as `3×32×32`.
        first_shape: String,
        /// The first image that differs.
        other: PathBuf,
        /// Its shape.
        other_shape: String,
    },
    /// The class folders of an image folder are wrong (none, too many, train and test differ).
    #[error("{dir}: {problem}")]
    BadClasses {
        /// The split folder.
        dir: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
    /// A folder is none of the dataset layouts the worker reads.
    #[error(
        "{dir} is not a dataset folder: expected the four IDX files \
         (train-images-idx3-ubyte, …, each may be gzipped), CIFAR-10 binary batches \
         (data_batch_1.bin … and test_batch.bin, or a cifar-10-batches-bin folder holding \
         them), or an image folder (train/<class>/*.png|jpg and test/<class>/…)"
    )]
    UnknownFormat {
        /// The folder.
        dir: PathBuf,
    },
    /// A transform cannot apply to the images.
    #[error("cannot apply the transform: {0}")]
    BadTransform(String),
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
