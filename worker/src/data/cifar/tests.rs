//! Tests of the CIFAR-10 reader on batch files written in the real format.

use super::*;
use crate::data::{DatasetFormat, load_dataset};

/// `n` records whose pixels depend on the record, the channel and the position, so that any
/// mix-up of channels or records shows.
fn records(n: usize, first_label: u8, salt: u8) -> Dataset {
    let mut split = empty_split();
    for record in 0..n {
        split.labels.push((first_label + record as u8) % 10);
        for channel in 0..CHANNELS {
            for pixel in 0..SIDE * SIDE {
                let value = record * 31 + channel * 97 + pixel * 7 + usize::from(salt);
                split.images.push((value % 256) as u8);
            }
        }
    }
    split
}

fn write_folder(dir: &Path) -> (Dataset, Dataset, Dataset) {
    let (batch_1, batch_2, test) = (records(3, 0, 1), records(2, 5, 2), records(4, 2, 3));
    write_cifar_batch(&dir.join("data_batch_1.bin"), &batch_1).unwrap();
    write_cifar_batch(&dir.join("data_batch_2.bin"), &batch_2).unwrap();
    write_cifar_batch(&dir.join(TEST_BATCH), &test).unwrap();
    (batch_1, batch_2, test)
}

#[test]
fn reads_batches_in_order_with_exact_pixels_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let (batch_1, batch_2, test) = write_folder(dir.path());
    let loaded = load_dataset(dir.path()).unwrap();
    assert_eq!(loaded.format, DatasetFormat::Cifar10);
    assert_eq!(loaded.classes[0], "airplane");
    assert_eq!(loaded.n_classes(), 10);
    assert_eq!(loaded.source, dir.path());
    let train = &loaded.train;
    assert_eq!((train.channels, train.rows, train.cols), (3, 32, 32));
    assert_eq!(train.labels, vec![0, 1, 2, 5, 6]);
    assert_eq!(train.image(0), batch_1.image(0));
    assert_eq!(train.image(4), batch_2.image(1));
    assert_eq!(loaded.test, test);
    // The record layout: label byte, then the red plane, then green, then blue.
    let raw = std::fs::read(dir.path().join("data_batch_2.bin")).unwrap();
    assert_eq!(raw[RECORD_BYTES], 6);
    assert_eq!(raw[RECORD_BYTES + 1 + 1024], batch_2.image(1)[1024]);
}

#[test]
fn finds_the_archive_sub_folder() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join(ARCHIVE_DIR);
    std::fs::create_dir(&inner).unwrap();
    let (_, _, test) = write_folder(&inner);
    let loaded = load_dataset(dir.path()).unwrap();
    assert_eq!(loaded.source, inner);
    assert_eq!(loaded.test, test);
}

#[test]
fn truncated_batch_names_the_file_and_the_record_offset() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path());
    let path = dir.path().join("data_batch_2.bin");
    let raw = std::fs::read(&path).unwrap();
    std::fs::write(&path, &raw[..RECORD_BYTES + 100]).unwrap();
    let message = load_dataset(dir.path()).unwrap_err().to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains("record at byte offset 3073 is incomplete (100 of 3073 bytes)"),
        "{message}"
    );
}

#[test]
fn bad_label_gives_its_byte_offset() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path());
    let path = dir.path().join(TEST_BATCH);
    let mut raw = std::fs::read(&path).unwrap();
    raw[2 * RECORD_BYTES] = 42;
    std::fs::write(&path, raw).unwrap();
    let message = load_dataset(dir.path()).unwrap_err().to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains("label 42 at byte offset 6146"),
        "{message}"
    );
}

#[test]
fn empty_and_missing_batches_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(dir.path());
    std::fs::write(dir.path().join(TEST_BATCH), b"").unwrap();
    let message = load_dataset(dir.path()).unwrap_err().to_string();
    assert!(message.contains("test_batch.bin is empty"), "{message}");
    std::fs::remove_file(dir.path().join(TEST_BATCH)).unwrap();
    let message = load_dataset(dir.path()).unwrap_err().to_string();
    assert!(message.contains("has no test_batch.bin"), "{message}");
    let only_test = tempfile::tempdir().unwrap();
    write_cifar_batch(&only_test.path().join(TEST_BATCH), &records(1, 0, 0)).unwrap();
    let message = load_dataset(only_test.path()).unwrap_err().to_string();
    assert!(message.contains("has no training batch"), "{message}");
}

#[test]
fn resolves_cifar_10_by_name_in_its_archive_layout() {
    let data = tempfile::tempdir().unwrap();
    let inner = data.path().join("cifar-10").join(ARCHIVE_DIR);
    std::fs::create_dir_all(&inner).unwrap();
    write_folder(&inner);
    let dirs = [data.path().to_path_buf()];
    let found = crate::data::resolve_dataset("cifar-10", &dirs).unwrap();
    assert_eq!(found, data.path().join("cifar-10"));
    assert_eq!(load_dataset(&found).unwrap().source, inner);
}
