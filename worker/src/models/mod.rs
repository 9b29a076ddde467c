//! The models a job can train: a linear SVM (dual coordinate descent, or smartcore's SMO)
//! and a CNN (candle).
//!
//! Every model takes the training and test subsets and returns a [`TrainReport`]
//! (`ecobench_shared::TrainReport`); the nets share one training loop ([`net::fit`]).

pub mod cnn;
pub mod net;
pub mod pool;
pub mod svm;

pub use cnn::{Cnn, train_cnn};
pub use pool::max_pool2x2;
pub use svm::train_svm;

/// What can go wrong training a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The training subset has too few samples for the model.
    #[error(
        "{model} needs more training samples ({n_train}) than features ({n_features}): \
         raise train_samples to at least {}, or use solver = \"dcd\"", n_features + 1
    )]
    TooFewSamples {
        /// The model kind and solver (`svm-linear with solver smo`).
        model: &'static str,
        /// Training samples given.
        n_train: usize,
        /// Features per sample (pixels).
        n_features: usize,
    },
    /// The training subset holds fewer than two classes.
    #[error(
        "{model} needs at least two classes in the training subset, it has {n_classes}: \
         raise train_samples"
    )]
    TooFewClasses {
        /// The model kind.
        model: &'static str,
        /// Distinct labels in the training subset.
        n_classes: usize,
    },
    /// A training label is larger than the model handles.
    #[error(
        "{model} handles labels 0 to {max_label}, the training subset has label {label}: \
         use a dataset with fewer classes"
    )]
    LabelTooLarge {
        /// The model kind.
        model: &'static str,
        /// The first label out of range.
        label: u8,
        /// The largest label handled.
        max_label: usize,
    },
    /// The training or the test subset is empty.
    #[error("the {split} subset is empty: set {field} to at least 1 (or leave it unset)")]
    EmptySubset {
        /// `training` or `test`.
        split: &'static str,
        /// The campaign field that sizes it.
        field: &'static str,
    },
    /// The images are too small for the network's three pooling layers.
    #[error(
        "cnn needs images of at least {min_side}×{min_side} pixels, the dataset's are \
         {rows}×{cols}: use another dataset"
    )]
    ImageTooSmall {
        /// Rows of an image.
        rows: usize,
        /// Columns of an image.
        cols: usize,
        /// The smallest side accepted.
        min_side: usize,
    },
    /// A hyper-parameter is out of range.
    #[error("invalid {field} = {value}: {expected}")]
    InvalidConfig {
        /// The campaign field.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// candle failed (an internal error, worth a retry).
    #[error("candle failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// smartcore failed (an internal error, worth a retry).
    #[error("smartcore failed: {0}")]
    Smartcore(String),
}

impl ModelError {
    /// Whether running the same job again may succeed: true for internal failures, false
    /// for bad input (too few samples, bad hyper-parameters, unsuitable images).
    pub fn is_retryable(&self) -> bool {
        matches!(self, ModelError::Candle(_) | ModelError::Smartcore(_))
    }
}

/// Fails unless both subsets hold at least one sample.
fn check_not_empty(n_train: usize, n_test: usize) -> Result<(), ModelError> {
    if n_train == 0 {
        return Err(ModelError::EmptySubset {
            split: "training",
            field: "train_samples",
        });
    }
    if n_test == 0 {
        return Err(ModelError::EmptySubset {
            split: "test",
            field: "test_samples",
        });
    }
    Ok(())
}

/// Distinct labels in `labels`.
fn n_classes(labels: &[u8]) -> usize {
    let mut seen = [false; 256];
    labels
        .iter()
        .for_each(|&label| seen[usize::from(label)] = true);
    seen.iter().filter(|&&s| s).count()
}

#[cfg(test)]
pub(crate) mod testdata;
