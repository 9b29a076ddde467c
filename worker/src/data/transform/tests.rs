//! Tests of the transforms and the normalization statistics on known pixels.

use super::*;

fn split(channels: usize, side: usize, images: Vec<u8>) -> Dataset {
    let n = images.len() / (channels * side * side);
    Dataset {
        channels,
        rows: side,
        cols: side,
        images,
        labels: (0..n).map(|i| i as u8).collect(),
    }
}

fn gray() -> DataTransform {
    DataTransform {
        grayscale: true,
        ..DataTransform::default()
    }
}

#[test]
fn identity_returns_the_split_unchanged() {
    for channels in [1, 3] {
        let original = split(
            channels,
            3,
            (0..2 * channels * 9).map(|i| i as u8).collect(),
        );
        let same = apply_transform(&DataTransform::default(), original.clone()).unwrap();
        assert_eq!(same, original);
        let normalize_only = DataTransform {
            normalize: true,
            ..DataTransform::default()
        };
        assert_eq!(
            apply_transform(&normalize_only, original.clone()).unwrap(),
            original
        );
    }
}

#[test]
fn grayscale_is_bt601_luma_rounded() {
    // One 1×2 image: pixel 0 pure red 255, pixel 1 (10, 200, 30). Planes R, G, B.
    let rgb = Dataset {
        channels: 3,
        rows: 1,
        cols: 2,
        images: vec![255, 10, 0, 200, 0, 30],
        labels: vec![0],
    };
    let grey = apply_transform(&gray(), rgb).unwrap();
    // 0.299 × 255 = 76.245 → 76; 0.299 × 10 + 0.587 × 200 + 0.114 × 30 = 123.81 → 124.
    assert_eq!((grey.channels, grey.images.clone()), (1, vec![76, 124]));
    let white = split(3, 1, vec![255, 255, 255]);
    assert_eq!(apply_transform(&gray(), white).unwrap().images, vec![255]);
    let already_grey = split(1, 2, vec![1, 2, 3, 4]);
    assert_eq!(
        apply_transform(&gray(), already_grey.clone()).unwrap(),
        already_grey
    );
}

#[test]
fn one_to_three_channels_repeats_the_grey_plane() {
    let grey = split(1, 2, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    let to_rgb = DataTransform {
        channels: Some(3),
        ..DataTransform::default()
    };
    let rgb = apply_transform(&to_rgb, grey).unwrap();
    assert_eq!(rgb.channels, 3);
    assert_eq!(rgb.image(0), [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4]);
    assert_eq!(rgb.image(1), [5, 6, 7, 8, 5, 6, 7, 8, 5, 6, 7, 8]);
    let back = DataTransform {
        channels: Some(1),
        ..DataTransform::default()
    };
    assert_eq!(
        apply_transform(&back, rgb).unwrap().images,
        (1..=8).collect::<Vec<u8>>()
    );
}

#[test]
fn resize_of_a_constant_image_stays_constant() {
    let constant = split(3, 5, [vec![7; 25], vec![100; 25], vec![250; 25]].concat());
    for side in [2, 5, 12] {
        let resize = DataTransform {
            resize: Some(side),
            ..DataTransform::default()
        };
        let resized = apply_transform(&resize, constant.clone()).unwrap();
        let plane = (side * side) as usize;
        assert_eq!(
            (resized.channels, resized.rows, resized.cols),
            (3, plane.isqrt(), plane.isqrt())
        );
        assert_eq!(resized.images.len(), 3 * plane);
        assert!(resized.images[..plane].iter().all(|&v| v == 7));
        assert!(resized.images[plane..2 * plane].iter().all(|&v| v == 100));
        assert!(resized.images[2 * plane..].iter().all(|&v| v == 250));
    }
}

#[test]
fn pad_puts_zeros_around_after_resizing() {
    let image = split(1, 2, vec![1, 2, 3, 4]);
    let pad = DataTransform {
        pad: 1,
        ..DataTransform::default()
    };
    let padded = apply_transform(&pad, image).unwrap();
    assert_eq!((padded.rows, padded.cols), (4, 4));
    #[rustfmt::skip]
    let expected = [
        0, 0, 0, 0,
        0, 1, 2, 0,
        0, 3, 4, 0,
        0, 0, 0, 0,
    ];
    assert_eq!(padded.images, expected);
    let both = DataTransform {
        grayscale: true,
        resize: Some(3),
        pad: 2,
        ..DataTransform::default()
    };
    let out = apply_transform(&both, split(3, 8, vec![90; 3 * 64])).unwrap();
    assert_eq!(out.shape(), "1×7×7");
    assert_eq!(out.images[0], 0);
    assert_eq!(out.images[2 * 7 + 2], 90);
}

#[test]
fn impossible_transforms_are_errors() {
    let rgb = split(3, 2, vec![0; 12]);
    for bad in [
        DataTransform {
            channels: Some(2),
            ..DataTransform::default()
        },
        DataTransform {
            grayscale: true,
            channels: Some(3),
            ..DataTransform::default()
        },
        DataTransform {
            resize: Some(0),
            ..DataTransform::default()
        },
    ] {
        let err = apply_transform(&bad, rgb.clone()).unwrap_err();
        assert!(matches!(err, DataError::BadTransform(_)), "{err}");
    }
}

#[test]
fn normalization_of_a_known_split() {
    // Two 1×2 RGB images. Red: 0, 255, 0, 255 → mean 0.5, std 0.5. Green: all 51 → mean
    // 0.2, constant → std 1. Blue: 0, 0, 0, 255 → mean 0.25, std √(0.25 − 0.0625).
    let train = Dataset {
        channels: 3,
        rows: 1,
        cols: 2,
        images: vec![0, 255, 51, 51, 0, 0, 0, 255, 51, 51, 0, 255],
        labels: vec![0, 1],
    };
    let stats = Normalization::of(&train);
    let close = |a: f32, b: f32| (a - b).abs() < 1e-6;
    assert!(
        close(stats.mean[0], 0.5) && close(stats.std[0], 0.5),
        "{stats:?}"
    );
    assert!(
        close(stats.mean[1], 0.2) && close(stats.std[1], 1.0),
        "{stats:?}"
    );
    assert!(close(stats.mean[2], 0.25), "{stats:?}");
    assert!(close(stats.std[2], 0.1875f32.sqrt()), "{stats:?}");
    assert!(close(stats.apply(0, 255), 1.0));
    assert!(close(stats.apply(0, 0), -1.0));
}
