//! Reading and writing IDX files (the MNIST family's format), gzipped or plain.
//!
//! An image file holds the magic `0x00000803`, the image count, rows and columns (big-endian
//! `u32`s), then one byte per pixel. A label file holds the magic `0x00000801`, the count,
//! then one byte per label. Gzip is detected by the stream's magic bytes, not by extension.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use super::DataError;

/// Magic number of an IDX file of unsigned-byte images (3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels (1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Labels must be below this: the datasets we read have ten classes.
pub const N_CLASSES: u8 = 10;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Images read from an IDX file: `n` images of `rows` × `cols` bytes, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub n: usize,
    /// Pixel rows per image.
    pub rows: usize,
    /// Pixel columns per image.
    pub cols: usize,
    /// `n * rows * cols` pixel values.
    pub pixels: Vec<u8>,
}

/// Reads an IDX image file (magic `0x00000803`), gzipped or not.
pub fn read_idx_images(path: &Path) -> Result<IdxImages, DataError> {
    let (bytes, gzipped) = read_maybe_gzipped(path)?;
    check_magic(path, &bytes, IMAGES_MAGIC, "image")?;
    let header = read_header(path, &bytes, 4, gzipped)?;
    let (n, rows, cols) = (header[1], header[2], header[3]);
    let body = body_of(path, &bytes, 16, [n, rows, cols], gzipped)?;
    Ok(IdxImages {
        n,
        rows,
        cols,
        pixels: body.to_vec(),
    })
}

/// Reads an IDX label file (magic `0x00000801`), gzipped or not, checking every label < 10.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let (bytes, gzipped) = read_maybe_gzipped(path)?;
    check_magic(path, &bytes, LABELS_MAGIC, "label")?;
    let n = read_header(path, &bytes, 2, gzipped)?[1];
    let labels = body_of(path, &bytes, 8, [n, 1, 1], gzipped)?;
    if let Some(index) = labels.iter().position(|&label| label >= N_CLASSES) {
        return Err(DataError::LabelOutOfRange {
            path: path.to_path_buf(),
            index,
            label: labels[index],
        });
    }
    Ok(labels.to_vec())
}

/// Writes `n` images of `rows` × `cols` pixels as an IDX image file, gzipped if `gzip`.
pub fn write_idx_images(
    path: &Path,
    n: usize,
    rows: usize,
    cols: usize,
    pixels: &[u8],
    gzip: bool,
) -> Result<(), DataError> {
    if pixels.len() != n * rows * cols {
        return Err(DataError::BadWrite {
            path: path.to_path_buf(),
            reason: format!(
                "{} pixels given for {n} images of {rows}×{cols} ({} expected)",
                pixels.len(),
                n * rows * cols
            ),
        });
    }
    let dims = [n, rows, cols].map(|d| to_u32(path, d));
    let mut header = IMAGES_MAGIC.to_be_bytes().to_vec();
    for dim in dims {
        header.extend_from_slice(&dim?.to_be_bytes());
    }
    write_file(path, &header, pixels, gzip)
}

/// Writes labels as an IDX label file, gzipped if `gzip`.
pub fn write_idx_labels(path: &Path, labels: &[u8], gzip: bool) -> Result<(), DataError> {
    let mut header = LABELS_MAGIC.to_be_bytes().to_vec();
    header.extend_from_slice(&to_u32(path, labels.len())?.to_be_bytes());
    write_file(path, &header, labels, gzip)
}

fn to_u32(path: &Path, value: usize) -> Result<u32, DataError> {
    u32::try_from(value).map_err(|_| DataError::BadWrite {
        path: path.to_path_buf(),
        reason: format!("dimension {value} does not fit the format's 32 bits"),
    })
}

fn write_file(path: &Path, header: &[u8], body: &[u8], gzip: bool) -> Result<(), DataError> {
    let io_err = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = BufWriter::new(File::create(path).map_err(io_err)?);
    if gzip {
        let mut encoder = GzEncoder::new(file, Compression::default());
        encoder.write_all(header).map_err(io_err)?;
        encoder.write_all(body).map_err(io_err)?;
        file = encoder.finish().map_err(io_err)?;
    } else {
        file.write_all(header).map_err(io_err)?;
        file.write_all(body).map_err(io_err)?;
    }
    file.flush().map_err(io_err)
}

/// Reads a whole file, decompressing it when it starts with the gzip magic bytes; says
/// whether it did.
fn read_maybe_gzipped(path: &Path) -> Result<(Vec<u8>, bool), DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok((raw, false));
    }
    let mut bytes = Vec::with_capacity(raw.len() * 2);
    if let Err(source) = GzDecoder::new(raw.as_slice()).read_to_end(&mut bytes) {
        return Err(DataError::BadGzip {
            path: path.to_path_buf(),
            decompressed_bytes: bytes.len() as u64,
            source,
        });
    }
    Ok((bytes, true))
}

fn check_magic(path: &Path, bytes: &[u8], expected: u32, kind: &str) -> Result<(), DataError> {
    let found = bytes
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    match found {
        Some(magic) if magic == expected => Ok(()),
        _ => Err(DataError::NotIdx {
            path: path.to_path_buf(),
            kind: kind.to_string(),
            magic: found,
            expected,
        }),
    }
}

/// The first `n_words` big-endian `u32`s of the file (the magic included).
fn read_header(
    path: &Path,
    bytes: &[u8],
    n_words: usize,
    gzipped: bool,
) -> Result<Vec<usize>, DataError> {
    let header = bytes
        .get(..4 * n_words)
        .ok_or_else(|| DataError::Truncated {
            path: path.to_path_buf(),
            expected_bytes: 4 * n_words as u64,
            actual_bytes: bytes.len() as u64,
            decompressed: gzipped,
        })?;
    Ok(header
        .chunks_exact(4)
        .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]) as usize)
        .collect())
}

/// The data after a header of `offset` bytes, which must hold the product of `dims` bytes.
fn body_of<'a>(
    path: &Path,
    bytes: &'a [u8],
    offset: usize,
    dims: [usize; 3],
    gzipped: bool,
) -> Result<&'a [u8], DataError> {
    let body_len = dims.iter().map(|&d| d as u64).product::<u64>();
    let expected_bytes = offset as u64 + body_len;
    if (bytes.len() as u64) < expected_bytes {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected_bytes,
            actual_bytes: bytes.len() as u64,
            decompressed: gzipped,
        });
    }
    Ok(&bytes[offset..expected_bytes as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images_fixture() -> (usize, usize, usize, Vec<u8>) {
        let (n, rows, cols) = (3, 2, 4);
        let pixels = (0..n * rows * cols).map(|i| (i * 7 % 256) as u8).collect();
        (n, rows, cols, pixels)
    }

    #[test]
    fn round_trip_plain_and_gzipped() {
        let dir = tempfile::tempdir().unwrap();
        let (n, rows, cols, pixels) = images_fixture();
        for gzip in [false, true] {
            let images_path = dir.path().join(format!("images-{gzip}"));
            let labels_path = dir.path().join(format!("labels-{gzip}"));
            write_idx_images(&images_path, n, rows, cols, &pixels, gzip).unwrap();
            write_idx_labels(&labels_path, &[0, 9, 4], gzip).unwrap();
            let raw = std::fs::read(&images_path).unwrap();
            assert_eq!(raw.starts_with(&GZIP_MAGIC), gzip);
            let images = read_idx_images(&images_path).unwrap();
            assert_eq!((images.n, images.rows, images.cols), (n, rows, cols));
            assert_eq!(images.pixels, pixels);
            assert_eq!(read_idx_labels(&labels_path).unwrap(), vec![0, 9, 4]);
        }
    }

    #[test]
    fn not_idx_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train-images-idx3-ubyte.gz");
        std::fs::write(&path, b"<html>not found</html>").unwrap();
        let message = read_idx_images(&path).unwrap_err().to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("magic 0x3c68746d"), "{message}");
        assert!(message.contains("expected 0x00000803"), "{message}");
    }

    #[test]
    fn labels_file_read_as_images_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels");
        write_idx_labels(&path, &[1, 2], true).unwrap();
        let err = read_idx_images(&path).unwrap_err();
        assert!(matches!(
            err,
            DataError::NotIdx {
                magic: Some(LABELS_MAGIC),
                ..
            }
        ));
    }

    #[test]
    fn truncated_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (n, rows, cols, pixels) = images_fixture();
        let path = dir.path().join("images");
        write_idx_images(&path, n, rows, cols, &pixels, false).unwrap();
        let raw = std::fs::read(&path).unwrap();
        std::fs::write(&path, &raw[..raw.len() - 5]).unwrap();
        let err = read_idx_images(&path).unwrap_err();
        assert!(matches!(
            err,
            DataError::Truncated {
                expected_bytes: 40,
                actual_bytes: 35,
                ..
            }
        ));
        let message = err.to_string();
        assert!(message.contains("truncated"), "{message}");
        assert!(message.contains("ends at byte offset 35 but"), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
    }

    #[test]
    fn truncated_decompressed_data_gives_the_decompressed_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (n, rows, cols, pixels) = images_fixture();
        let path = dir.path().join("images.gz");
        write_idx_images(
            &path,
            n + 1,
            rows,
            cols,
            &[pixels.clone(), vec![0; 8]].concat(),
            false,
        )
        .unwrap();
        let raw = std::fs::read(&path).unwrap();
        write_file(&path, &raw[..16], &pixels, true).unwrap();
        let message = read_idx_images(&path).unwrap_err().to_string();
        assert!(
            message.contains("ends at byte offset 40 (decompressed)"),
            "{message}"
        );
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (n, rows, cols, pixels) = images_fixture();
        let path = dir.path().join("images.gz");
        write_idx_images(&path, n, rows, cols, &pixels, true).unwrap();
        let raw = std::fs::read(&path).unwrap();
        std::fs::write(&path, &raw[..raw.len() / 2]).unwrap();
        let err = read_idx_images(&path).unwrap_err();
        assert!(matches!(err, DataError::BadGzip { .. }), "{err}");
        assert!(err.to_string().contains("decompressed bytes"), "{err}");
    }

    #[test]
    fn label_out_of_range_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels");
        write_idx_labels(&path, &[1, 10, 2], false).unwrap();
        let err = read_idx_labels(&path).unwrap_err();
        assert!(matches!(
            err,
            DataError::LabelOutOfRange {
                index: 1,
                label: 10,
                ..
            }
        ));
    }
}
