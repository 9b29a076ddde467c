//! The linear SVM: smartcore 0.7's `MultiClassSVC` (SMO-like solver, one-vs-one voting).
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

use super::{ModelError, check_not_empty, n_classes};
use crate::data::Dataset;

/// The `solver` named in the report.
pub const SOLVER: &str = "smartcore-smo-ovo";
/// The model kind, as in campaign files.
const MODEL: &str = "svm-linear";

/// Fits a linear SVM with penalty `config.c` on `train` (pixels scaled to [0, 1]) and
/// returns its accuracy on `test`. `seed` is passed to smartcore's solver.
///
/// Fails before calling smartcore when there are not more training samples than features
/// (smartcore 0.7 panics then) or fewer than two classes.
pub fn train_svm(
    train: &Dataset,
    test: &Dataset,
    config: &SvmConfig,
    seed: u64,
) -> Result<TrainReport, ModelError> {
    check_input(train, test, config)?;
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

/// The checks smartcore would otherwise answer with a panic or a vague error.
fn check_input(train: &Dataset, test: &Dataset, config: &SvmConfig) -> Result<(), ModelError> {
    if !(config.c.is_finite() && config.c > 0.0) {
        return Err(ModelError::InvalidConfig {
            field: "c",
            value: config.c.to_string(),
            expected: "a positive number",
        });
    }
    check_not_empty(train.len(), test.len())?;
    if train.len() <= train.n_pixels() {
        return Err(ModelError::TooFewSamples {
            model: MODEL,
            n_train: train.len(),
            n_features: train.n_pixels(),
        });
    }
    let n_classes = n_classes(&train.labels);
    if n_classes < 2 {
        return Err(ModelError::TooFewClasses {
            model: MODEL,
            n_classes,
        });
    }
    Ok(())
}

/// The images as a row-major `n × pixels` matrix of f64 in [0, 1].
fn to_matrix(split: &Dataset) -> Result<DenseMatrix<f64>, ModelError> {
    let values: Vec<f64> = split.images.iter().map(|&p| f64::from(p) / 255.0).collect();
    DenseMatrix::new(split.len(), split.n_pixels(), values, false).map_err(smartcore_error)
}

fn smartcore_error(err: smartcore::error::Failed) -> ModelError {
    ModelError::Smartcore(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testdata::synthetic_split;

    #[test]
    fn too_few_samples_fail_before_smartcore() {
        let train = synthetic_split(300, 28, 1);
        let test = synthetic_split(20, 28, 2);
        let err = train_svm(&train, &test, &SvmConfig { c: 1.0 }, 0).unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(
            err.to_string(),
            "svm-linear needs more training samples (300) than features (784): \
             raise train_samples to at least 785"
        );
    }

    #[test]
    fn learns_a_small_synthetic_set() {
        let train = synthetic_split(200, 8, 3);
        let test = synthetic_split(100, 8, 4);
        let report = train_svm(&train, &test, &SvmConfig { c: 1.0 }, 0).unwrap();
        assert!(report.accuracy > 0.5, "accuracy {}", report.accuracy);
        assert_eq!((report.n_train, report.n_test), (200, 100));
        assert_eq!(report.solver, SOLVER);
        assert!(report.epochs.is_empty());
    }
}
