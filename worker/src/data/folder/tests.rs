//! Tests of the image-folder reader on PNG and JPEG files written with the `image` crate.

use super::*;
use crate::data::{DatasetFormat, load_dataset, load_dataset_with};
use image::{GrayImage, Luma, Rgb, RgbImage};

fn grey(side: u32, seed: u8) -> GrayImage {
    GrayImage::from_fn(side, side, |x, y| Luma([(x * 13 + y * 7) as u8 ^ seed]))
}

fn rgb(side: u32, seed: u8) -> RgbImage {
    RgbImage::from_fn(side, side, |x, y| {
        Rgb([(x * 11) as u8 ^ seed, (y * 5) as u8, (x + y) as u8 ^ seed])
    })
}

fn class_dir(root: &Path, split: &str, class: &str) -> PathBuf {
    let dir = root.join(split).join(class);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn reads_grey_png_exactly_with_sorted_classes_and_files() {
    let dir = tempfile::tempdir().unwrap();
    for split in [TRAIN_DIR, TEST_DIR] {
        // Created out of order: classes and files are sorted by name.
        grey(4, 3)
            .save(class_dir(dir.path(), split, "zebra").join("b.png"))
            .unwrap();
        grey(4, 1)
            .save(class_dir(dir.path(), split, "zebra").join("a.png"))
            .unwrap();
        grey(4, 2)
            .save(class_dir(dir.path(), split, "ant").join("x.PNG"))
            .unwrap();
        std::fs::write(
            class_dir(dir.path(), split, "ant").join("notes.txt"),
            "skip",
        )
        .unwrap();
    }
    let loaded = load_dataset(dir.path()).unwrap();
    assert_eq!(loaded.format, DatasetFormat::ImageFolder);
    assert_eq!(loaded.classes, vec!["ant", "zebra"]);
    let train = &loaded.train;
    assert_eq!((train.channels, train.rows, train.cols), (1, 4, 4));
    assert_eq!(train.labels, vec![0, 1, 1]);
    for (idx, seed) in [2u8, 1, 3].into_iter().enumerate() {
        assert_eq!(train.image(idx), grey(4, seed).as_raw().as_slice());
    }
}

#[test]
fn reads_rgb_png_channel_major_and_jpeg_approximately() {
    let dir = tempfile::tempdir().unwrap();
    let source = rgb(8, 5);
    source
        .save(class_dir(dir.path(), TRAIN_DIR, "a").join("0.png"))
        .unwrap();
    source
        .save(class_dir(dir.path(), TRAIN_DIR, "a").join("1.jpg"))
        .unwrap();
    source
        .save(class_dir(dir.path(), TEST_DIR, "a").join("0.jpeg"))
        .unwrap();
    let loaded = load_dataset(dir.path()).unwrap();
    let train = &loaded.train;
    assert_eq!((train.channels, train.rows, train.cols), (3, 8, 8));
    let png = train.image(0);
    for (pixel, value) in source.pixels().enumerate() {
        for channel in 0..3 {
            assert_eq!(png[channel * 64 + pixel], value.0[channel]);
        }
    }
    let jpeg = train.image(1);
    let mean_error: f64 = png
        .iter()
        .zip(jpeg)
        .map(|(&a, &b)| f64::from(a.abs_diff(b)))
        .sum::<f64>()
        / png.len() as f64;
    assert!(mean_error < 20.0, "jpeg mean error {mean_error}");
    assert_eq!(loaded.test.len(), 1);
}

#[test]
fn size_mismatch_names_both_files_unless_resized() {
    let dir = tempfile::tempdir().unwrap();
    let train = class_dir(dir.path(), TRAIN_DIR, "a");
    grey(4, 0).save(train.join("a.png")).unwrap();
    grey(6, 0).save(train.join("b.png")).unwrap();
    grey(4, 0)
        .save(class_dir(dir.path(), TEST_DIR, "a").join("a.png"))
        .unwrap();
    let message = load_dataset(dir.path()).unwrap_err().to_string();
    assert!(
        message.contains(&train.join("a.png").display().to_string()),
        "{message}"
    );
    assert!(
        message.contains(&train.join("b.png").display().to_string()),
        "{message}"
    );
    assert!(
        message.contains("1×4×4") && message.contains("1×6×6"),
        "{message}"
    );
    assert!(message.contains("`[transform] resize`"), "{message}");
    let resize = DataTransform {
        resize: Some(5),
        ..DataTransform::default()
    };
    let loaded = load_dataset_with(dir.path(), &resize).unwrap();
    assert_eq!(loaded.train.shape(), "1×5×5");
    assert_eq!(
        loaded.test.shape(),
        "1×4×4",
        "a uniform split is kept as decoded"
    );
}

#[test]
fn mixed_channels_need_a_channel_transform() {
    let dir = tempfile::tempdir().unwrap();
    let train = class_dir(dir.path(), TRAIN_DIR, "a");
    grey(4, 0).save(train.join("a.png")).unwrap();
    rgb(4, 0).save(train.join("b.png")).unwrap();
    grey(4, 0)
        .save(class_dir(dir.path(), TEST_DIR, "a").join("a.png"))
        .unwrap();
    let message = load_dataset(dir.path()).unwrap_err().to_string();
    assert!(
        message.contains("1×4×4") && message.contains("3×4×4"),
        "{message}"
    );
    let gray = DataTransform {
        grayscale: true,
        ..DataTransform::default()
    };
    assert_eq!(
        load_dataset_with(dir.path(), &gray).unwrap().train.shape(),
        "1×4×4"
    );
}

#[test]
fn corrupt_image_names_the_file_and_the_decoder_message() {
    let dir = tempfile::tempdir().unwrap();
    let train = class_dir(dir.path(), TRAIN_DIR, "a");
    grey(4, 0).save(train.join("a.png")).unwrap();
    let bad = train.join("b.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\ngarbage that is not a png").unwrap();
    grey(4, 0)
        .save(class_dir(dir.path(), TEST_DIR, "a").join("a.png"))
        .unwrap();
    let err = load_dataset(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::BadImage { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(&bad.display().to_string()), "{message}");
    assert!(message.contains("not a readable image ("), "{message}");
}

#[test]
fn test_classes_must_match_train_classes() {
    let dir = tempfile::tempdir().unwrap();
    grey(4, 0)
        .save(class_dir(dir.path(), TRAIN_DIR, "cat").join("a.png"))
        .unwrap();
    grey(4, 0)
        .save(class_dir(dir.path(), TRAIN_DIR, "dog").join("a.png"))
        .unwrap();
    grey(4, 0)
        .save(class_dir(dir.path(), TEST_DIR, "cat").join("a.png"))
        .unwrap();
    let message = load_dataset(dir.path()).unwrap_err().to_string();
    assert!(
        message.contains("[cat] differ from train/'s [cat, dog]"),
        "{message}"
    );
}
