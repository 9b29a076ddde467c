//! The models a job can train: a linear SVM (dual coordinate descent, or smartcore's SMO)
//! and three nets (CNN, DenseNet, VGG) on the fused ops of [`crate::nn`].
//!
//! Every model takes the training and test subsets and returns a [`TrainReport`]
//! (`ecobench_shared::TrainReport`); the nets share one training loop ([`net::fit`]).

pub mod cnn;
pub mod densenet;
pub mod net;
pub mod pool;
pub mod svm;
pub mod transfer;
pub mod vgg;

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use ecobench_shared::{EpochMetrics, ModelConfig, NetConfig, TrainReport};

pub use cnn::Cnn;
pub use densenet::Densenet;
pub use pool::max_pool2x2;
pub use svm::train_svm;
pub use vgg::Vgg;

use crate::data::{Dataset, Normalization, derive_seed};

/// Random stream (see `derive_seed`) of a net's initial weights.
const WEIGHTS_STREAM: u64 = 11;
/// Random stream of a net's per-epoch shuffling.
const SHUFFLE_STREAM: u64 = 12;

/// A net ready to train: its variables, the module, and its training settings.
pub struct BuiltNet {
    /// Every variable of the net (batch-norm running statistics included).
    pub varmap: VarMap,
    /// The network.
    pub module: Box<dyn Net>,
    /// Epochs, batch size, learning rate.
    pub net: NetConfig,
}

impl std::fmt::Debug for BuiltNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltNet")
            .field("net", &self.net)
            .finish_non_exhaustive()
    }
}

impl BuiltNet {
    /// The variables the optimizer updates: every one, or only the head's once frozen.
    pub fn trainable(&self, frozen: bool) -> Vec<candle_core::Var> {
        let vars = self.varmap.data().lock().expect("the variable map's lock");
        let head = format!("{}.", self.module.head());
        let mut named: Vec<(&String, &candle_core::Var)> = vars
            .iter()
            .filter(|(name, _)| !frozen || name.starts_with(&head))
            .collect();
        named.sort_by(|a, b| a.0.cmp(b.0));
        named.into_iter().map(|(_, var)| var.clone()).collect()
    }
}

/// What a net's input and output look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetShape {
    /// Image channels (1 grey, 3 colour).
    pub channels: usize,
    /// Image rows.
    pub rows: usize,
    /// Image columns.
    pub cols: usize,
    /// Classes of the head.
    pub n_classes: usize,
}

impl NetShape {
    /// The shape of grey `rows` × `cols` images in ten classes (Fashion-MNIST's).
    pub fn grey(rows: usize, cols: usize) -> NetShape {
        NetShape {
            channels: 1,
            rows,
            cols,
            n_classes: 10,
        }
    }
}

/// A net of this crate: a module with a classifier head that fine-tuning replaces.
pub trait Net: ModuleT + Send + Sync {
    /// The prefix of the head's variables (`fc2` → `fc2.weight`, `fc2.bias`).
    fn head(&self) -> &'static str;
    /// From now on only the head trains: the rest of the net runs as in evaluation
    /// (batch norm on its running statistics) and passes no gradient.
    fn freeze(&mut self);
}

/// Builds the net of `config` for `shape`, its weights drawn from `seed` (conv and
/// linear layers uniform in ±1/√fan_in, batch norm 1 and 0).
pub fn build_net(config: &ModelConfig, shape: NetShape, seed: u64) -> Result<BuiltNet, ModelError> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let (rows, cols) = (shape.rows, shape.cols);
    let too_small = |model, min_side| {
        if rows < min_side || cols < min_side {
            Err(ModelError::ImageTooSmall {
                model,
                rows,
                cols,
                min_side,
            })
        } else {
            Ok(())
        }
    };
    let (module, net): (Box<dyn Net>, NetConfig) = match config {
        ModelConfig::SvmLinear(_) => {
            return Err(ModelError::InvalidConfig {
                field: "kind",
                value: "svm-linear".into(),
                expected: "a net: cnn, densenet or vgg",
            });
        }
        ModelConfig::Cnn(net) => {
            too_small("cnn", cnn::MIN_IMAGE_SIDE)?;
            (Box::new(Cnn::new(vb, shape)?), net.clone())
        }
        ModelConfig::Densenet(dn) => {
            check_densenet(dn)?;
            too_small("densenet", densenet::min_image_side(dn.n_blocks))?;
            (Box::new(Densenet::new(vb, dn, shape)?), dn.net.clone())
        }
        ModelConfig::Vgg(v) => {
            check_vgg(v)?;
            (Box::new(Vgg::new(vb, v, shape)?), v.net.clone())
        }
    };
    crate::nn::layers::init_uniform(&varmap, derive_seed(seed, WEIGHTS_STREAM))?;
    Ok(BuiltNet {
        varmap,
        module,
        net,
    })
}

/// Where a net's first weights come from, where its last go, and how its inputs are scaled.
#[derive(Debug, Clone, Copy, Default)]
pub struct Weights<'a> {
    /// Pretrained weights to start from (every variable but the head's).
    pub init: Option<&'a Path>,
    /// Trains only the head (with `init`).
    pub freeze: bool,
    /// Where to save the trained weights (safetensors).
    pub save: Option<&'a Path>,
    /// Standardises every pixel with these statistics (`[transform] normalize`) instead
    /// of only scaling it to [0, 1].
    pub normalize: Option<&'a Normalization>,
}

/// Trains the net of `config` on `train` with AdamW and evaluates it on `test` after
/// every epoch. The seed fixes the initial weights and the shuffling; `on_epoch` gets
/// each epoch's metrics. `weights` may start it from pretrained weights (the head is
/// drawn from the seed), freeze all but the head, and save the result.
pub fn train_net(
    config: &ModelConfig,
    train: &Dataset,
    test: &Dataset,
    n_classes: usize,
    seed: u64,
    weights: Weights,
    on_epoch: &mut (dyn FnMut(&EpochMetrics) + Send),
) -> Result<TrainReport, ModelError> {
    let shape = NetShape {
        channels: train.channels,
        rows: train.rows,
        cols: train.cols,
        n_classes,
    };
    let mut built = build_net(config, shape, seed)?;
    if let Some(path) = weights.init {
        transfer::load(&built, config, path)?;
    }
    if weights.freeze {
        built.module.freeze();
    }
    let shuffle_seed = derive_seed(seed, SHUFFLE_STREAM);
    let report = net::fit(
        built.module.as_ref(),
        built.trainable(weights.freeze),
        train,
        test,
        &built.net,
        net::Feed {
            normalize: weights.normalize,
            shuffle_seed,
        },
        on_epoch,
    )?;
    if let Some(path) = weights.save {
        transfer::save(&built, path)?;
    }
    Ok(report)
}

fn check_densenet(config: &ecobench_shared::DensenetConfig) -> Result<(), ModelError> {
    for (field, value) in [
        ("growth_rate", config.growth_rate),
        ("n_blocks", config.n_blocks),
        ("layers_per_block", config.layers_per_block),
    ] {
        if value == 0 {
            return Err(ModelError::InvalidConfig {
                field,
                value: "0".into(),
                expected: "at least 1",
            });
        }
    }
    Ok(())
}

fn check_vgg(config: &ecobench_shared::VggConfig) -> Result<(), ModelError> {
    if !(config.width.is_finite() && config.width > 0.0) {
        return Err(ModelError::InvalidConfig {
            field: "width",
            value: config.width.to_string(),
            expected: "a positive multiplier of VGG-11's widths, e.g. 0.25",
        });
    }
    Ok(())
}

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
    /// The images are too small for the network's pooling layers.
    #[error(
        "{model} needs images of at least {min_side}×{min_side} pixels, the dataset's are \
         {rows}×{cols}: use another dataset"
    )]
    ImageTooSmall {
        /// The model kind.
        model: &'static str,
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
    /// Pretrained weights that do not fit the model, or cannot be read or written.
    #[error("weights {path}: {reason}")]
    Weights {
        /// The safetensors file.
        path: String,
        /// What is wrong, naming the tensor and shapes.
        reason: String,
    },
    /// The training loss stopped being a finite number: the same job diverges again
    /// (training is deterministic), so it is not retried.
    #[error(
        "diverged at epoch {epoch}, batch {batch}: the training loss is {loss}; lower the \
         learning_rate (or the batch_size)"
    )]
    Diverged {
        /// 1-based epoch.
        epoch: u32,
        /// 1-based batch within the epoch.
        batch: u64,
        /// The loss found (NaN or infinite).
        loss: f64,
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
