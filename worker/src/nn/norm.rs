//! Batch normalisation: statistics shared by the conv block and the standalone op.
//!
//! Training normalises with the batch's mean and biased variance and hands the batch
//! statistics to the layer, which updates its running mean and unbiased variance with
//! momentum 0.1 (as PyTorch); evaluation normalises with the running statistics.

use super::conv::{BatchStats, NormMode};

/// Adds the sum and the sum of squares of `values` to channel `c` of `sums`
/// (`[Σ…, Σ²…]`, 2 × n_channels, in f64 across calls so that large batches keep their
/// precision; one call's values, a plane or a row, are summed in f32 lanes).
pub fn add_sums(sums: &mut [f64], n_channels: usize, c: usize, values: &[f32]) {
    let (s, s2) = super::elementwise::sum_and_squares(values);
    sums[c] += f64::from(s);
    sums[n_channels + c] += f64::from(s2);
}

/// Per-channel sums of a chunk in chunk layout (`n_channels` rows of contiguous values).
pub fn channel_sums(z: &[f32], n_channels: usize) -> Vec<f64> {
    let mut sums = vec![0.0; 2 * n_channels];
    let row = z.len() / n_channels.max(1);
    for c in 0..n_channels {
        add_sums(&mut sums, n_channels, c, &z[c * row..(c + 1) * row]);
    }
    sums
}

/// The mean and 1/σ to normalise with: from the chunks' sums over `count` values per
/// channel in training (and then the batch statistics are handed to `norm.batch`), from
/// the running statistics in evaluation.
pub fn norm_stats(
    norm: &NormMode,
    sums: &[Vec<f64>],
    count: usize,
    n_channels: usize,
) -> (Vec<f32>, Vec<f32>) {
    if !norm.train {
        let invstd = norm
            .running_var
            .iter()
            .map(|&v| 1.0 / (v + norm.eps).sqrt())
            .collect();
        return (norm.running_mean.clone(), invstd);
    }
    let mut total = vec![0.0f64; 2 * n_channels];
    for part in sums {
        for (t, p) in total.iter_mut().zip(part) {
            *t += p;
        }
    }
    let m = count as f64;
    let mut stats = BatchStats::default();
    let mut invstd = Vec::with_capacity(n_channels);
    for c in 0..n_channels {
        let mean = total[c] / m;
        let var = (total[n_channels + c] / m - mean * mean).max(0.0);
        invstd.push((1.0 / (var + f64::from(norm.eps)).sqrt()) as f32);
        stats.mean.push(mean as f32);
        let unbiased = if count > 1 { var * m / (m - 1.0) } else { var };
        stats.var_unbiased.push(unbiased as f32);
    }
    let mean = stats.mean.clone();
    *norm.batch.lock().expect("batch statistics") = Some(stats);
    (mean, invstd)
}

/// Coefficients of the batch-norm backward per channel, `dz = a·dy + b·ẑ + c` with
/// ẑ = (z − μ)/σ: from Σdy and Σdy·ẑ (`[Σdy…, Σdy·ẑ…]`) over `count` values.
pub fn backward_coefs(
    train: bool,
    gamma: &[f32],
    invstd: &[f32],
    sums: &[f64],
    count: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n_channels = gamma.len();
    let m = count as f64;
    let mut coefs = (Vec::new(), Vec::new(), Vec::new());
    for c in 0..n_channels {
        let a = f64::from(gamma[c]) * f64::from(invstd[c]);
        let (b, k) = if train {
            (-a * sums[n_channels + c] / m, -a * sums[c] / m)
        } else {
            (0.0, 0.0)
        };
        coefs.0.push(a as f32);
        coefs.1.push(b as f32);
        coefs.2.push(k as f32);
    }
    coefs
}
