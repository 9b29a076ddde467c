//! The study's CNN: three conv blocks (conv 3×3 → ReLU → 2×2 max pool) and two linear layers.
//!
//! Channels 1 → 16 → 32 → 64, then 128 hidden units and 10 classes. Any image of at least 8×8
//! pixels fits (28×28 pools to 14, 7, 3). The initial weights come from the job's seed, not
//! from candle's unseedable CPU generator, so the same seed trains the same network.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, VarBuilder, VarMap, conv2d, linear};
use ecobench_shared::{EpochMetrics, NetConfig, TrainReport};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::pool::max_pool2x2;
use super::{ModelError, net};
use crate::data::{Dataset, derive_seed};

/// The smallest image side the three pooling layers accept.
pub const MIN_IMAGE_SIDE: usize = 8;
/// Output classes.
pub const N_CLASSES: usize = 10;
/// Output channels of the three conv blocks.
pub const CHANNELS: [usize; 3] = [16, 32, 64];
/// Units of the hidden linear layer.
pub const HIDDEN_UNITS: usize = 128;
/// Random stream (see `derive_seed`) of the initial weights.
const WEIGHTS_STREAM: u64 = 11;
/// Random stream of the per-epoch shuffling.
const SHUFFLE_STREAM: u64 = 12;

/// The network; built from a `VarBuilder`, it implements `Module` on `(batch, 1, h, w)` input.
#[derive(Debug)]
pub struct Cnn {
    convs: [Conv2d; 3],
    fc1: Linear,
    fc2: Linear,
}

impl Cnn {
    /// Builds the network for `rows` × `cols` grey images (both at least [`MIN_IMAGE_SIDE`]).
    pub fn new(vb: VarBuilder, rows: usize, cols: usize) -> Result<Self> {
        let padded = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let conv1 = conv2d(1, CHANNELS[0], 3, padded, vb.pp("conv1"))?;
        let conv2 = conv2d(CHANNELS[0], CHANNELS[1], 3, padded, vb.pp("conv2"))?;
        let conv3 = conv2d(CHANNELS[1], CHANNELS[2], 3, padded, vb.pp("conv3"))?;
        let flat = CHANNELS[2] * (rows / 8) * (cols / 8);
        Ok(Self {
            convs: [conv1, conv2, conv3],
            fc1: linear(flat, HIDDEN_UNITS, vb.pp("fc1"))?,
            fc2: linear(HIDDEN_UNITS, N_CLASSES, vb.pp("fc2"))?,
        })
    }
}

impl Module for Cnn {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut xs = xs.clone();
        for conv in &self.convs {
            xs = max_pool2x2(&conv.forward(&xs)?.relu()?)?;
        }
        let xs = self.fc1.forward(&xs.flatten_from(1)?)?.relu()?;
        self.fc2.forward(&xs)
    }
}

/// Overwrites every variable, in sorted name order, with uniform values in ±1/√fan_in drawn
/// from a `ChaCha8Rng` seeded with `seed` (PyTorch's default initialisation for conv and
/// linear layers). A bias takes the fan-in of its layer's weight.
pub fn init_weights(varmap: &VarMap, seed: u64) -> Result<()> {
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("the variable map's lock is poisoned".to_string()))?;
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for name in names {
        let var = &vars[name];
        let weight_name = name
            .strip_suffix(".bias")
            .map(|layer| format!("{layer}.weight"));
        let weight_dims = match weight_name.as_ref().and_then(|w| vars.get(w)) {
            Some(weight) => weight.dims().to_vec(),
            None => var.dims().to_vec(),
        };
        let fan_in: usize = weight_dims.iter().skip(1).product();
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        let values: Vec<f32> = (0..var.elem_count())
            .map(|_| rng.random_range(-bound..bound) as f32)
            .collect();
        var.set(&Tensor::from_vec(values, var.dims(), var.device())?)?;
    }
    Ok(())
}

/// Trains the CNN on `train` with AdamW and evaluates it on `test` after every epoch.
///
/// The seed fixes the initial weights and the shuffling; `on_epoch` gets each epoch's metrics.
pub fn train_cnn(
    train: &Dataset,
    test: &Dataset,
    config: &NetConfig,
    seed: u64,
    on_epoch: &mut dyn FnMut(&EpochMetrics),
) -> std::result::Result<TrainReport, ModelError> {
    if train.rows < MIN_IMAGE_SIDE || train.cols < MIN_IMAGE_SIDE {
        return Err(ModelError::ImageTooSmall {
            rows: train.rows,
            cols: train.cols,
            min_side: MIN_IMAGE_SIDE,
        });
    }
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = Cnn::new(vb, train.rows, train.cols)?;
    init_weights(&varmap, derive_seed(seed, WEIGHTS_STREAM))?;
    let shuffle_seed = derive_seed(seed, SHUFFLE_STREAM);
    net::fit(&model, &varmap, train, test, config, shuffle_seed, on_epoch)
}

#[cfg(test)]
mod tests;
