//! The calibration score: a fixed single-precision matrix-product micro-benchmark run once
//! at worker start, so that reports can compare times and energies across machines.
//!
//! The work is fixed ([`SIZE`]×[`SIZE`] by [`SIZE`]×[`SIZE`] products through the same
//! `gemm` kernel the nets train on, on one thread, [`PRODUCTS_PER_RUN`] products a run);
//! only its time is measured. The score is the median GFLOP/s of [`RUNS`] runs after one
//! warm-up product. It takes a few tens of milliseconds on a current CPU.

use std::time::Instant;

use crate::nn::gemm::{Mat, matmul};

/// Side of the square matrices multiplied.
pub const SIZE: usize = 256;
/// Products timed together in one run.
pub const PRODUCTS_PER_RUN: usize = 8;
/// Timed runs; the score is their median.
pub const RUNS: usize = 5;

/// The calibration's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// Median single-thread GFLOP/s over the runs.
    pub gflops: f64,
    /// Each run's GFLOP/s, in the order run.
    pub runs: Vec<f64>,
}

/// Runs the benchmark on the calling thread.
pub fn run() -> Calibration {
    let n = SIZE;
    let a: Vec<f32> = (0..n * n)
        .map(|i| ((i % 97) as f32 * 0.013).sin())
        .collect();
    let b: Vec<f32> = (0..n * n)
        .map(|i| ((i % 89) as f32 * 0.017).cos())
        .collect();
    let mut out = vec![0.0f32; n * n];
    let (a, b) = (Mat::rows(&a, n, n), Mat::rows(&b, n, n));
    matmul(&mut out, false, a, b);
    let flops_per_run = (2 * n * n * n * PRODUCTS_PER_RUN) as f64;
    let mut runs = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        for _ in 0..PRODUCTS_PER_RUN {
            matmul(&mut out, false, a, b);
            std::hint::black_box(&mut out);
        }
        // A run shorter than the clock's resolution counts as one nanosecond.
        let seconds = started.elapsed().as_secs_f64().max(1e-9);
        runs.push(flops_per_run / seconds / 1e9);
    }
    let mut sorted = runs.clone();
    sorted.sort_by(f64::total_cmp);
    Calibration {
        gflops: sorted[RUNS / 2],
        runs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_score_is_a_positive_finite_median_of_the_runs_and_quick() {
        let started = Instant::now();
        let calibration = run();
        assert!(
            started.elapsed().as_secs_f64() < 5.0,
            "calibration must stay well under a second in release, and quick in tests"
        );
        assert_eq!(calibration.runs.len(), RUNS);
        assert!(
            calibration.gflops.is_finite() && calibration.gflops > 0.0,
            "{calibration:?}"
        );
        let below = calibration
            .runs
            .iter()
            .filter(|&&g| g < calibration.gflops)
            .count();
        let above = calibration
            .runs
            .iter()
            .filter(|&&g| g > calibration.gflops)
            .count();
        assert!(below <= RUNS / 2 && above <= RUNS / 2, "{calibration:?}");
    }
}
