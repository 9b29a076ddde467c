//! A job's [`DataTransform`] applied to a split (channels, then resize, then pad), and the
//! per-channel [`Normalization`] statistics of a training split.

use ecobench_shared::DataTransform;
use image::imageops::{self, FilterType};

use super::{DataError, Dataset};

/// Applies `transform` to every image of `split`: first the channel count (`grayscale` or
/// `channels`: 3 → 1 by ITU-R BT.601 luma, 1 → 3 by repeating the grey plane), then
/// `resize` (bilinear, to a square), then `pad` (a zero border on each side).
/// `normalize` changes no pixel (see [`Normalization`]). The identity returns `split`
/// unchanged.
pub fn apply_transform(transform: &DataTransform, split: Dataset) -> Result<Dataset, DataError> {
    check(transform, &split)?;
    let target = transform.output_channels(split.channels as u32) as usize;
    let mut split = match (split.channels, target) {
        (3, 1) => map_images(split, 1, |image, out, d| luma(image, out, d.rows * d.cols)),
        (1, 3) => map_images(split, 3, |image, out, _| {
            (0..3).for_each(|_| out.extend_from_slice(image))
        }),
        _ => split,
    };
    if let Some(side) = transform.resize {
        split = resize(split, side as usize);
    }
    if transform.pad > 0 {
        split = pad(split, transform.pad as usize);
    }
    Ok(split)
}

/// Per-channel mean and standard deviation of a training split, in [0, 1] pixel units
/// (value / 255), for the nets to standardise their inputs with: `(x/255 - mean) / std`.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalization {
    /// Mean of each channel.
    pub mean: Vec<f32>,
    /// Population standard deviation of each channel; 1 where a channel is constant, so
    /// dividing by it is always safe.
    pub std: Vec<f32>,
}

impl Normalization {
    /// The statistics of every pixel of `train`, channel by channel (0 and 1 for an empty
    /// split).
    pub fn of(train: &Dataset) -> Normalization {
        let plane = train.rows * train.cols;
        let mut sums = vec![(0u64, 0u64); train.channels];
        for image in train.images.chunks_exact(train.n_pixels().max(1)) {
            for (channel, values) in image.chunks_exact(plane.max(1)).enumerate() {
                let (sum, sum_sq) = &mut sums[channel];
                for &value in values {
                    *sum += u64::from(value);
                    *sum_sq += u64::from(value) * u64::from(value);
                }
            }
        }
        let count = (train.len() * plane) as f64;
        let (mean, std) = sums
            .iter()
            .map(|&(sum, sum_sq)| {
                if count == 0.0 {
                    return (0.0, 1.0);
                }
                let mean = sum as f64 / count / 255.0;
                let var = (sum_sq as f64 / count / (255.0 * 255.0) - mean * mean).max(0.0);
                let std = if var > 1e-12 { var.sqrt() } else { 1.0 };
                (mean as f32, std as f32)
            })
            .unzip();
        Normalization { mean, std }
    }

    /// A pixel `value` of `channel`, standardised.
    pub fn apply(&self, channel: usize, value: u8) -> f32 {
        (f32::from(value) / 255.0 - self.mean[channel]) / self.std[channel]
    }
}

/// Refuses what cannot apply: a channel count other than 1 or 3 asked or found, a
/// contradiction, a zero side.
fn check(transform: &DataTransform, split: &Dataset) -> Result<(), DataError> {
    if let Some(channels) = transform.channels
        && !(channels == 1 || channels == 3)
    {
        return Err(DataError::BadTransform(format!(
            "channels = {channels}: use 1 or 3"
        )));
    }
    if transform.grayscale && transform.channels == Some(3) {
        return Err(DataError::BadTransform(
            "grayscale = true with channels = 3: drop one of the two".into(),
        ));
    }
    if transform.resize == Some(0) {
        return Err(DataError::BadTransform(
            "resize = 0: use a positive side".into(),
        ));
    }
    let target = transform.output_channels(split.channels as u32) as usize;
    if target != split.channels && !matches!(split.channels, 1 | 3) {
        return Err(DataError::BadTransform(format!(
            "the images have {} channels; channel conversion takes 1 or 3",
            split.channels
        )));
    }
    Ok(())
}

/// A split whose every image is rewritten by `f(image, out, split)` into `channels`
/// channels of the same size.
fn map_images(
    split: Dataset,
    channels: usize,
    f: impl Fn(&[u8], &mut Vec<u8>, &Dataset),
) -> Dataset {
    let mut images = Vec::with_capacity(split.len() * channels * split.rows * split.cols);
    for idx in 0..split.len() {
        f(split.image(idx), &mut images, &split);
    }
    Dataset {
        channels,
        images,
        ..split
    }
}

/// ITU-R BT.601 luma of a channel-major RGB image, rounded half up:
/// `(299 R + 587 G + 114 B + 500) / 1000`.
fn luma(image: &[u8], out: &mut Vec<u8>, plane: usize) {
    let (red, rest) = image.split_at(plane);
    let (green, blue) = rest.split_at(plane);
    out.extend(red.iter().zip(green).zip(blue).map(|((&r, &g), &b)| {
        let weighted = 299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b);
        ((weighted + 500) / 1000) as u8
    }));
}

/// Every plane resized to `side` × `side` with `image`'s triangle (bilinear) filter; a
/// split already of that size is returned as it is.
fn resize(split: Dataset, side: usize) -> Dataset {
    if (split.rows, split.cols) == (side, side) {
        return split;
    }
    let plane = split.rows * split.cols;
    let mut images = Vec::with_capacity(split.len() * split.channels * side * side);
    for values in split.images.chunks_exact(plane.max(1)) {
        let source =
            image::GrayImage::from_raw(split.cols as u32, split.rows as u32, values.to_vec())
                .expect("a plane holds rows × cols values");
        let resized = imageops::resize(&source, side as u32, side as u32, FilterType::Triangle);
        images.extend_from_slice(resized.as_raw());
    }
    Dataset {
        rows: side,
        cols: side,
        images,
        ..split
    }
}

/// Every plane with `pad` zero rows and columns added on each side.
fn pad(split: Dataset, pad: usize) -> Dataset {
    let (rows, cols) = (split.rows + 2 * pad, split.cols + 2 * pad);
    let plane = split.rows * split.cols;
    let mut images = vec![0u8; split.len() * split.channels * rows * cols];
    for (values, out) in split
        .images
        .chunks_exact(plane.max(1))
        .zip(images.chunks_exact_mut(rows * cols))
    {
        for (row, source) in values.chunks_exact(split.cols.max(1)).enumerate() {
            let start = (row + pad) * cols + pad;
            out[start..start + split.cols].copy_from_slice(source);
        }
    }
    Dataset {
        rows,
        cols,
        images,
        ..split
    }
}

#[cfg(test)]
mod tests;
