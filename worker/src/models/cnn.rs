//! The study's CNN: three conv blocks (conv 3×3 pad 1 → ReLU → 2×2 max pool) and two
//! linear layers, on the fused ops of [`crate::nn`].
//!
//! Channels 1 → 16 → 32 → 64, then 128 hidden units and 10 classes. Any image of at least 8×8
//! pixels fits (28×28 pools to 14, 7, 3).

use candle_core::{Result, Tensor};
use candle_nn::{ModuleT, VarBuilder};

use crate::nn::layers::{Affine, ConvLayer, Dense};
use crate::nn::{BlockSpec, Pool};

/// The smallest image side the three pooling layers accept.
pub const MIN_IMAGE_SIDE: usize = 8;
/// Output classes.
pub const N_CLASSES: usize = 10;
/// Output channels of the three conv blocks.
pub const CHANNELS: [usize; 3] = [16, 32, 64];
/// Units of the hidden linear layer.
pub const HIDDEN_UNITS: usize = 128;

/// The network; built from a `VarBuilder`, it implements `ModuleT` on `(batch, 1, h, w)` input.
#[derive(Debug)]
pub struct Cnn {
    convs: Vec<ConvLayer>,
    fc1: Dense,
    fc2: Dense,
}

impl Cnn {
    /// Builds the network for `rows` × `cols` grey images (both at least [`MIN_IMAGE_SIDE`]).
    pub fn new(vb: VarBuilder, rows: usize, cols: usize) -> Result<Self> {
        let block = BlockSpec {
            kernel: 3,
            stride: 1,
            padding: 1,
            relu: true,
            pool: Pool::Max2,
        };
        let mut convs = Vec::new();
        let mut c_in = 1;
        for (idx, &c_out) in CHANNELS.iter().enumerate() {
            let vb = vb.pp(format!("conv{}", idx + 1));
            convs.push(ConvLayer::new(vb, c_in, c_out, Affine::Bias, block)?);
            c_in = c_out;
        }
        let flat = CHANNELS[2] * (rows / 8) * (cols / 8);
        Ok(Self {
            convs,
            fc1: Dense::new(vb.pp("fc1"), flat, HIDDEN_UNITS, true)?,
            fc2: Dense::new(vb.pp("fc2"), HIDDEN_UNITS, N_CLASSES, false)?,
        })
    }
}

impl ModuleT for Cnn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let mut xs = xs.clone();
        for conv in &self.convs {
            xs = conv.forward_t(&xs, train)?;
        }
        self.fc2.forward(&self.fc1.forward(&xs.flatten_from(1)?)?)
    }
}

#[cfg(test)]
mod tests;
