//! The linear SVM, with two solvers chosen by [`SvmConfig::solver`]:
//!
//! - [`dcd`] (`dcd`, the default): dual coordinate descent as in liblinear, one-vs-rest
//!   (the default) or one-vs-one ([`dcd::ovo`]) by [`SvmConfig::multiclass`],
//!   deterministic, seconds on the full 60,000 Fashion-MNIST images.
//! - [`smo`] (`smo`): smartcore's exact SMO, one-vs-one only; its time grows with the
//!   square of the samples, so it is for small subsets only.
//!
//! Every report names the solver that ran (`TrainReport::solver`: `dcd-ovr-l1`,
//! `dcd-ovo-l1`, `smartcore-smo-ovo`).

pub mod dcd;
mod kernel;
pub mod smo;

use std::time::Instant;

use ecobench_shared::{SvmConfig, SvmMulticlass, SvmSolver, TrainReport};

use super::{ModelError, check_not_empty, n_classes};
use crate::data::Dataset;
use dcd::ovo::OvoModel;
use dcd::{DcdModel, DcdOptions, Features};

/// The model kind, as in campaign files.
const MODEL: &str = "svm-linear";

/// A fitted and evaluated SVM: the report, and what the solver says about its run.
#[derive(Debug, Clone, PartialEq)]
pub struct SvmFit {
    /// What every model reports.
    pub report: TrainReport,
    /// Passes over the data (dcd only).
    pub n_epochs: Option<u32>,
    /// Whether the stopping criterion was met before the epoch cap (dcd only).
    pub converged: Option<bool>,
}

/// Fits a linear SVM with penalty `config.c` by `config.solver` on `train` (pixels scaled
/// to [0, 1]) and returns its accuracy on `test`. `seed` fixes the solver's randomness.
///
/// Fails before fitting on bad input: C not positive, an empty subset, fewer than two
/// classes, smo with one-vs-rest, or (smo only) not more training samples than features,
/// where smartcore 0.7 would panic.
pub fn train_svm(
    train: &Dataset,
    test: &Dataset,
    config: &SvmConfig,
    seed: u64,
) -> Result<TrainReport, ModelError> {
    fit_svm(train, test, config, &DcdOptions::default(), seed).map(|fit| fit.report)
}

/// [`train_svm`] with the dual coordinate descent's settings `dcd_options` (used when
/// `config.solver` is dcd), also returning what the solver says about its run.
pub fn fit_svm(
    train: &Dataset,
    test: &Dataset,
    config: &SvmConfig,
    dcd_options: &DcdOptions,
    seed: u64,
) -> Result<SvmFit, ModelError> {
    check_input(train, test, config)?;
    match config.solver {
        SvmSolver::Dcd => Ok(train_dcd(train, test, config, dcd_options, seed)),
        SvmSolver::Smo => Ok(SvmFit {
            report: smo::train_smo(train, test, config, seed)?,
            n_epochs: None,
            converged: None,
        }),
    }
}

/// Fits by dual coordinate descent with `options`, one-vs-rest or one-vs-one as
/// `config.multiclass` says. `train_s` includes turning the training pixels into `f32`
/// features; `eval_s` includes it for the test images.
fn train_dcd(
    train: &Dataset,
    test: &Dataset,
    config: &SvmConfig,
    options: &DcdOptions,
    seed: u64,
) -> SvmFit {
    let fit_started = Instant::now();
    let train_x = Features::from_dataset(train);
    let model = match config.multiclass {
        SvmMulticlass::Ovr => {
            Fitted::Ovr(dcd::fit(&train_x, &train.labels, config.c, options, seed))
        }
        SvmMulticlass::Ovo => Fitted::Ovo(dcd::ovo::fit(
            &train_x,
            &train.labels,
            config.c,
            options,
            seed,
        )),
    };
    let train_s = fit_started.elapsed().as_secs_f64();
    drop(train_x);
    let eval_started = Instant::now();
    let predicted = model.predict(&Features::from_dataset(test));
    let eval_s = eval_started.elapsed().as_secs_f64();
    let n_correct = predicted
        .iter()
        .zip(&test.labels)
        .filter(|(p, l)| p == l)
        .count();
    let (n_epochs, pg_gap, converged) = model.run();
    if !converged {
        tracing::warn!(
            n_epochs,
            pg_gap,
            "dcd stopped at its epoch cap before meeting its tolerance"
        );
    }
    SvmFit {
        report: TrainReport {
            accuracy: n_correct as f64 / test.len() as f64,
            train_s,
            eval_s,
            samples_per_s: train.len() as f64 / train_s,
            n_train: train.len() as u32,
            n_test: test.len() as u32,
            solver: options.loss.solver_name(config.multiclass).to_string(),
            dataset_sha256: String::new(),
            epochs: Vec::new(),
        },
        n_epochs: Some(n_epochs),
        converged: Some(converged),
    }
}

/// A model fitted by dual coordinate descent, of either scheme.
enum Fitted {
    Ovr(DcdModel),
    Ovo(OvoModel),
}

impl Fitted {
    fn predict(&self, x: &Features) -> Vec<u8> {
        match self {
            Fitted::Ovr(model) => model.predict(x),
            Fitted::Ovo(model) => model.predict(x),
        }
    }

    /// Epochs (of the longest binary problem), largest final PG gap, whether all converged.
    fn run(&self) -> (u32, f64, bool) {
        match self {
            Fitted::Ovr(m) => (m.n_epochs, m.pg_gap, m.converged),
            Fitted::Ovo(m) => (m.n_epochs, m.pg_gap, m.converged),
        }
    }
}

/// The checks the solvers would otherwise answer with a panic or a vague error.
fn check_input(train: &Dataset, test: &Dataset, config: &SvmConfig) -> Result<(), ModelError> {
    if !(config.c.is_finite() && config.c > 0.0) {
        return Err(ModelError::InvalidConfig {
            field: "c",
            value: config.c.to_string(),
            expected: "a positive, finite number, e.g. c = 1.0",
        });
    }
    if !config.solver.supports(config.multiclass) {
        return Err(ModelError::InvalidConfig {
            field: "multiclass",
            value: config.multiclass.as_str().to_string(),
            expected: "\"ovo\" with solver smo, which is one-vs-one only \
                       (solver = \"dcd\" does one-vs-rest)",
        });
    }
    check_not_empty(train.len(), test.len())?;
    if config.solver == SvmSolver::Smo && train.len() <= train.n_pixels() {
        return Err(ModelError::TooFewSamples {
            model: "svm-linear with solver smo",
            n_train: train.len(),
            n_features: train.n_pixels(),
        });
    }
    if let Some(&label) = train
        .labels
        .iter()
        .find(|&&l| usize::from(l) >= dcd::MAX_CLASSES)
    {
        return Err(ModelError::LabelTooLarge {
            model: MODEL,
            label,
            max_label: dcd::MAX_CLASSES - 1,
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

#[cfg(test)]
mod tests;
