//! The one training loop for every net: AdamW, seeded shuffling, per-epoch evaluation.

use std::time::Instant;

use candle_core::Var;
use candle_core::{D, DType, Device, Tensor};
use candle_nn::{ModuleT, Optimizer, ParamsAdamW};
use ecobench_shared::{EpochMetrics, NetConfig, TrainReport};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{ModelError, check_not_empty, n_classes};
use crate::data::{Dataset, Normalization};
use crate::nn::FusedAdamW;
use crate::nn::ops::cross_entropy;

/// The `solver` named in the report of every net.
pub const SOLVER: &str = "ecobench-nn-adamw";
/// Images per forward pass when evaluating: candle keeps every activation of a forward
/// alive until its output is dropped, so this bounds evaluation's memory.
const EVAL_BATCH: usize = 128;

/// Seconds spent in each part of the training steps.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepTimes {
    /// Forward passes, loss included.
    pub forward_s: f64,
    /// Backward passes (gradients).
    pub backward_s: f64,
    /// Optimizer steps.
    pub optimizer_s: f64,
}

impl StepTimes {
    /// All three together.
    pub fn total_s(&self) -> f64 {
        self.forward_s + self.backward_s + self.optimizer_s
    }
}

/// A net, its optimizer and its batch size: runs training epochs and times their parts.
pub struct Trainer<'a> {
    model: &'a dyn ModuleT,
    optimizer: FusedAdamW,
    batch_size: usize,
    /// Accumulated over every step so far.
    pub times: StepTimes,
}

impl std::fmt::Debug for Trainer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("batch_size", &self.batch_size)
            .field("times", &self.times)
            .finish_non_exhaustive()
    }
}

impl<'a> Trainer<'a> {
    /// AdamW (learning rate from `config`, PyTorch's other defaults) over `vars`.
    pub fn new(
        model: &'a dyn ModuleT,
        vars: Vec<Var>,
        config: &NetConfig,
    ) -> Result<Self, ModelError> {
        let params = ParamsAdamW {
            lr: config.learning_rate,
            ..Default::default()
        };
        Ok(Trainer {
            model,
            optimizer: FusedAdamW::new(vars, params)?,
            batch_size: config.batch_size as usize,
            times: StepTimes::default(),
        })
    }

    /// Epoch `epoch` (1-based, for the error): one pass over the images in `order`;
    /// returns the mean training loss. A loss that is not finite stops it at once with
    /// [`ModelError::Diverged`], naming the epoch and the batch.
    pub fn epoch(
        &mut self,
        epoch: u32,
        images: &Tensor,
        labels: &Tensor,
        order: &[u32],
    ) -> Result<f64, ModelError> {
        let mut loss_sum = 0.0;
        for (index, batch) in order.chunks(self.batch_size).enumerate() {
            let loss = self.step(images, labels, batch)?;
            if !loss.is_finite() {
                return Err(ModelError::Diverged {
                    epoch,
                    batch: index as u64 + 1,
                    loss,
                });
            }
            loss_sum += loss * batch.len() as f64;
        }
        Ok(loss_sum / order.len() as f64)
    }

    /// One optimisation step on the images at `batch`; returns the batch's mean loss.
    pub fn step(
        &mut self,
        images: &Tensor,
        labels: &Tensor,
        batch: &[u32],
    ) -> Result<f64, ModelError> {
        let started = Instant::now();
        let idx = Tensor::from_slice(batch, batch.len(), &Device::Cpu)?;
        let logits = self.model.forward_t(&images.index_select(&idx, 0)?, true)?;
        let loss = cross_entropy(&logits, &labels.index_select(&idx, 0)?)?;
        let forward_done = Instant::now();
        let grads = loss.backward()?;
        let backward_done = Instant::now();
        self.optimizer.step(&grads)?;
        let t = &mut self.times;
        t.forward_s += (forward_done - started).as_secs_f64();
        t.backward_s += (backward_done - forward_done).as_secs_f64();
        t.optimizer_s += backward_done.elapsed().as_secs_f64();
        Ok(f64::from(loss.to_scalar::<f32>()?))
    }
}

/// How the images reach the net: their scaling and the order of every epoch.
#[derive(Debug, Clone, Copy)]
pub struct Feed<'a> {
    /// Standardise with these statistics (`[transform] normalize`), else scale to [0, 1].
    pub normalize: Option<&'a Normalization>,
    /// Fixes the order of the images in every epoch.
    pub shuffle_seed: u64,
}

/// Trains `model`, updating `vars` (all its variables, or those not frozen), on `train` for `config.n_epochs`
/// epochs, evaluating on `test` after each and passing the metrics to `on_epoch`.
///
/// Pixels are scaled to [0, 1] or standardised (`feed.normalize`); the loss is softmax
/// cross-entropy; `feed.shuffle_seed` fixes the order of the images in every epoch. In the report, `train_s` counts only the
/// epochs' optimisation (no evaluation) and `eval_s` the final evaluation.
pub fn fit(
    model: &dyn ModuleT,
    vars: Vec<Var>,
    train: &Dataset,
    test: &Dataset,
    config: &NetConfig,
    feed: Feed<'_>,
    on_epoch: &mut (dyn FnMut(&EpochMetrics) + Send),
) -> Result<TrainReport, ModelError> {
    check_inputs(train, test, config)?;
    let (train_x, train_y) = to_tensors(train, feed.normalize)?;
    let (test_x, test_y) = to_tensors(test, feed.normalize)?;
    let mut trainer = Trainer::new(model, vars, config)?;
    let mut rng = ChaCha8Rng::seed_from_u64(feed.shuffle_seed);
    let mut order: Vec<u32> = (0..train.len() as u32).collect();
    let started = Instant::now();
    let (mut train_s, mut eval_s, mut accuracy) = (0.0, 0.0, 0.0);
    let mut epochs = Vec::with_capacity(config.n_epochs as usize);
    for epoch in 1..=config.n_epochs {
        order.shuffle(&mut rng);
        let epoch_started = Instant::now();
        let loss = trainer.epoch(epoch, &train_x, &train_y, &order)?;
        let epoch_s = epoch_started.elapsed().as_secs_f64();
        let eval_started = Instant::now();
        accuracy = evaluate(model, &test_x, &test_y)?;
        eval_s = eval_started.elapsed().as_secs_f64();
        train_s += epoch_s;
        let metrics = EpochMetrics {
            epoch,
            loss,
            test_accuracy: accuracy,
            samples_per_s: train.len() as f64 / epoch_s,
            elapsed_s: started.elapsed().as_secs_f64(),
            energy_kwh: None,
        };
        tracing::debug!(
            epoch,
            loss,
            accuracy,
            samples_per_s = metrics.samples_per_s,
            "epoch done"
        );
        on_epoch(&metrics);
        epochs.push(metrics);
    }
    Ok(TrainReport {
        accuracy,
        train_s,
        eval_s,
        samples_per_s: (train.len() * config.n_epochs as usize) as f64 / train_s,
        n_train: train.len() as u32,
        n_test: test.len() as u32,
        solver: SOLVER.to_string(),
        dataset_sha256: String::new(),
        epochs,
    })
}

/// Accuracy of `model` (in evaluation mode) on `images` (`(n, 1, h, w)`, f32) against
/// `labels` (`(n,)`, u32), computed in batches of [`EVAL_BATCH`] images.
pub fn evaluate(model: &dyn ModuleT, images: &Tensor, labels: &Tensor) -> Result<f64, ModelError> {
    let n = labels.dim(0)?;
    let mut n_correct = 0u64;
    for start in (0..n).step_by(EVAL_BATCH) {
        let len = EVAL_BATCH.min(n - start);
        let predicted = model
            .forward_t(&images.narrow(0, start, len)?, false)?
            .argmax(D::Minus1)?;
        let correct = predicted.eq(&labels.narrow(0, start, len)?)?;
        n_correct += correct
            .to_dtype(DType::U32)?
            .sum_all()?
            .to_scalar::<u32>()? as u64;
    }
    Ok(n_correct as f64 / n as f64)
}

/// The images as a `(n, channels, rows, cols)` f32 tensor and the labels as `(n,)` u32.
/// Pixels are scaled to [0, 1], or standardised per channel with `normalize` (the
/// training split's statistics, applied to both splits).
pub fn to_tensors(
    split: &Dataset,
    normalize: Option<&Normalization>,
) -> Result<(Tensor, Tensor), ModelError> {
    let pixels: Vec<f32> = match normalize {
        None => split.images.iter().map(|&p| f32::from(p) / 255.0).collect(),
        Some(stats) => {
            let plane = (split.rows * split.cols).max(1);
            split
                .images
                .iter()
                .enumerate()
                .map(|(i, &p)| stats.apply((i / plane) % split.channels.max(1), p))
                .collect()
        }
    };
    let shape = (split.len(), split.channels, split.rows, split.cols);
    let images = Tensor::from_vec(pixels, shape, &Device::Cpu)?;
    let labels: Vec<u32> = split.labels.iter().map(|&l| u32::from(l)).collect();
    let labels = Tensor::from_vec(labels, split.len(), &Device::Cpu)?;
    Ok((images, labels))
}

fn check_inputs(train: &Dataset, test: &Dataset, config: &NetConfig) -> Result<(), ModelError> {
    check_config(config)?;
    check_not_empty(train.len(), test.len())?;
    let n_classes = n_classes(&train.labels);
    if n_classes < 2 {
        return Err(ModelError::TooFewClasses {
            model: "a net",
            n_classes,
        });
    }
    Ok(())
}

fn check_config(config: &NetConfig) -> Result<(), ModelError> {
    let invalid = |field, value: String, expected| ModelError::InvalidConfig {
        field,
        value,
        expected,
    };
    if config.n_epochs == 0 {
        return Err(invalid("n_epochs", "0".into(), "at least 1"));
    }
    if config.batch_size == 0 {
        return Err(invalid("batch_size", "0".into(), "at least 1"));
    }
    let lr = config.learning_rate;
    if !(lr.is_finite() && lr > 0.0) {
        return Err(invalid(
            "learning_rate",
            lr.to_string(),
            "a positive number",
        ));
    }
    Ok(())
}
