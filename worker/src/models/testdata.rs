//! Tiny synthetic image sets for tests: each class a fixed bright pattern plus noise.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::Dataset;

/// `n` images of `side` × `side` pixels, labels cycling 0–9. Class k lights a fixed random
/// quarter of the pixels (the same for every `seed`); `seed` draws the noise.
pub(crate) fn synthetic_split(n: usize, side: usize, seed: u64) -> Dataset {
    let n_pixels = side * side;
    let patterns: Vec<Vec<bool>> = (0..10u64)
        .map(|class| {
            let mut rng = ChaCha8Rng::seed_from_u64(1000 + class);
            (0..n_pixels).map(|_| rng.random_bool(0.25)).collect()
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let mut images = Vec::with_capacity(n * n_pixels);
    for &label in &labels {
        for &lit in &patterns[usize::from(label)] {
            let base: i32 = if lit { 200 } else { 30 };
            let noisy = base + rng.random_range(-60..=60);
            images.push(noisy.clamp(0, 255) as u8);
        }
    }
    Dataset {
        channels: 1,
        rows: side,
        cols: side,
        images,
        labels,
    }
}
