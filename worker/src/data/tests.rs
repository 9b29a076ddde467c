//! Tests of dataset folders: loading, resolution by name, errors.

use super::*;

fn tiny_split(n: usize, offset: u8) -> Dataset {
    Dataset {
        channels: 1,
        rows: 2,
        cols: 3,
        images: (0..n * 6).map(|i| (i as u8).wrapping_add(offset)).collect(),
        labels: (0..n).map(|i| (i % 10) as u8).collect(),
    }
}

#[test]
fn write_then_load_split() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = (tiny_split(12, 0), tiny_split(5, 100));
    for gzip in [false, true] {
        let folder = dir.path().join(format!("gzip-{gzip}"));
        write_split(&folder, &train, &test, gzip).unwrap();
        assert_eq!(load_split(&folder).unwrap(), (train.clone(), test.clone()));
    }
}

#[test]
fn select_keeps_images_with_their_labels() {
    let split = tiny_split(4, 0);
    let picked = split.select(&[3, 1]);
    assert_eq!(picked.labels, vec![3, 1]);
    assert_eq!(picked.image(0), split.image(3));
    assert_eq!(picked.image(1), split.image(1));
}

#[test]
fn count_mismatch_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut train = tiny_split(12, 0);
    write_split(dir.path(), &train, &tiny_split(5, 0), false).unwrap();
    train.labels.pop();
    write_idx_labels(&dir.path().join(SPLIT_FILES[1]), &train.labels, false).unwrap();
    let message = load_split(dir.path()).unwrap_err().to_string();
    assert!(
        message.contains("12 images") && message.contains("11 labels"),
        "{message}"
    );
}

#[test]
fn missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_split(dir.path(), &tiny_split(3, 0), &tiny_split(3, 0), true).unwrap();
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let message = load_split(dir.path()).unwrap_err().to_string();
    assert!(
        message.contains("has no t10k-labels-idx1-ubyte"),
        "{message}"
    );
}

#[test]
fn resolves_a_directory_path_as_is() {
    let dir = tempfile::tempdir().unwrap();
    let name = dir.path().to_str().unwrap();
    assert_eq!(resolve_dataset(name, &[]).unwrap(), dir.path());
}

#[test]
fn resolves_a_name_in_data_dirs_in_order() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let split = tiny_split(3, 0);
    write_split(&second.path().join("mnist"), &split, &split, true).unwrap();
    let dirs = [first.path().to_path_buf(), second.path().to_path_buf()];
    assert_eq!(
        resolve_dataset("mnist", &dirs).unwrap(),
        second.path().join("mnist")
    );
    write_split(&first.path().join("mnist"), &split, &split, false).unwrap();
    assert_eq!(
        resolve_dataset("mnist", &dirs).unwrap(),
        first.path().join("mnist")
    );
}

#[test]
fn unknown_dataset_says_where_it_looked_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let dirs = [dir.path().to_path_buf()];
    let message = resolve_dataset("no-such-set", &dirs)
        .unwrap_err()
        .to_string();
    assert!(message.contains(&dir.path().join("no-such-set").display().to_string()));
    assert!(
        message.contains("/usr/share/datasets/no-such-set"),
        "{message}"
    );
    assert!(message.contains("known name"), "{message}");
    let message = resolve_dataset("/no/such/dir", &dirs)
        .unwrap_err()
        .to_string();
    assert!(message.contains("not an existing directory"), "{message}");
}

#[test]
fn the_digest_follows_the_content_not_the_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let train = crate::models::testdata::synthetic_split(50, 8, 1);
    let test = crate::models::testdata::synthetic_split(20, 8, 2);
    write_split(&dir.path().join("gz"), &train, &test, true).unwrap();
    write_split(&dir.path().join("plain"), &train, &test, false).unwrap();
    let (a_train, a_test) = load_split(&dir.path().join("gz")).unwrap();
    let (b_train, b_test) = load_split(&dir.path().join("plain")).unwrap();
    assert_eq!(digest(&a_train, &a_test), digest(&b_train, &b_test));
    assert_eq!(digest(&a_train, &a_test).len(), 64);
    let mut changed = train.clone();
    changed.images[0] ^= 1;
    assert_ne!(digest(&changed, &test), digest(&train, &test));
}
