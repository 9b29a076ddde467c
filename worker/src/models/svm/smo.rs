//! The exact small-data solver: smartcore 0.7's `MultiClassSVC` (SMO-like solver,
//! one-vs-one voting).
//!
//! It is not deterministic: the same data and seed gave accuracies 0.811 and 0.813
//! (PITFALLS.md, smartcore 4; the vote is counted in a `HashMap`, so ties between classes
//! break in a random order). Compare its results with a tolerance. Its fit time grows with
//! about the square of the training samples (~30 s for 2,000 Fashion-MNIST images).

use std::time::Instant;

use ecobench_shared::{SvmConfig, TrainReport};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::svm::Kernels;
use smartcore::svm::svc::{MultiClassSVC, SVCParameters};

use crate::data::Dataset;
use crate::models::ModelError;

/// The `solver` named in the report.
pub const SOLVER: &str = "smartcore-smo-ovo";

/// Fits a linear SVM with penalty `config.c` on `train` (pixels scaled to [0, 1]) and
/// returns its accuracy on `test`. `seed` is passed to smartcore's solver.
///
/// The caller has checked the input ([`super::train_svm`] does): smartcore 0.7 panics
/// when there are not more training samples than features.
pub fn train_smo(
    train: &Dataset,
    test: &Dataset,
    config: &SvmConfig,
    seed: u64,
) -> Result<TrainReport, ModelError> {
    let train_x = to_matrix(train)?;
    let train_y: Vec<i32> = train.labels.iter().map(|&l| i32::from(l)).collect();
    let test_x = to_matrix(test)?;
    let params = SVCParameters::default()
        .with_c(config.c)
        .with_kernel(Kernels::linear())
        .with_seed(Some(seed));
    let fit_started = Instant::now();
    let svm = MultiClassSVC::fit(&train_x, &train_y, &params).map_err(smartcore_error)?;
    let train_s = fit_started.elapsed().as_secs_f64();
    let eval_started = Instant::now();
    let predicted = svm.predict(&test_x).map_err(smartcore_error)?;
    let eval_s = eval_started.elapsed().as_secs_f64();
    let n_correct = predicted
        .iter()
        .zip(&test.labels)
        .filter(|&(&p, &label)| p == f64::from(label))
        .count();
    tracing::debug!(train_s, eval_s, n_correct, "svm fitted");
    Ok(TrainReport {
        accuracy: n_correct as f64 / test.len() as f64,
        train_s,
        eval_s,
        samples_per_s: train.len() as f64 / train_s,
        n_train: train.len() as u32,
        n_test: test.len() as u32,
        solver: SOLVER.to_string(),
        dataset_sha256: String::new(),
        epochs: Vec::new(),
    })
}

/// The images as a row-major `n × pixels` matrix of f64 in [0, 1].
fn to_matrix(split: &Dataset) -> Result<DenseMatrix<f64>, ModelError> {
    let values: Vec<f64> = split.images.iter().map(|&p| f64::from(p) / 255.0).collect();
    DenseMatrix::new(split.len(), split.n_pixels(), values, false).map_err(smartcore_error)
}

fn smartcore_error(err: smartcore::error::Failed) -> ModelError {
    ModelError::Smartcore(err.to_string())
}
