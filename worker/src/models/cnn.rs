//! The study's CNN: three conv blocks (conv 3×3 pad 1 → ReLU → 2×2 max pool) and two
//! linear layers, on the fused ops of [`crate::nn`].
//!
//! Channels 1 → 16 → 32 → 64, then 128 hidden units and 10 classes. Any image of at least 8×8
//! pixels fits (28×28 pools to 14, 7, 3).

use candle_core::{Result, Tensor};
use candle_nn::{ModuleT, VarBuilder};

use super::{Net, NetShape};
use crate::nn::layers::{Affine, ConvLayer, Dense};
use crate::nn::{BlockSpec, Pool};

/// The smallest image side the three pooling layers accept.
pub const MIN_IMAGE_SIDE: usize = 8;
/// Output channels of the three conv blocks.
pub const CHANNELS: [usize; 3] = [16, 32, 64];
/// Units of the hidden linear layer.
pub const HIDDEN_UNITS: usize = 128;

/// The network; built from a `VarBuilder`, it implements `ModuleT` on `(batch, channels, h, w)` input.
#[derive(Debug)]
pub struct Cnn {
    convs: Vec<ConvLayer>,
    fc1: Dense,
    fc2: Dense,
    /// Only the head (`fc2`) trains; the rest runs as in evaluation.
    frozen: bool,
}

impl Cnn {
    /// Builds the network for `shape`'s images and classes.
    pub fn new(vb: VarBuilder, shape: NetShape) -> Result<Self> {
        let block = BlockSpec {
            kernel: 3,
            stride: 1,
            padding: 1,
            relu: true,
            pool: Pool::Max2,
        };
        let mut convs = Vec::new();
        let mut c_in = shape.channels;
        for (idx, &c_out) in CHANNELS.iter().enumerate() {
            let vb = vb.pp(format!("conv{}", idx + 1));
            convs.push(ConvLayer::new(vb, c_in, c_out, Affine::Bias, block)?);
            c_in = c_out;
        }
        let flat = CHANNELS[2] * (shape.rows / 8) * (shape.cols / 8);
        Ok(Self {
            convs,
            fc1: Dense::new(vb.pp("fc1"), flat, HIDDEN_UNITS, true)?,
            fc2: Dense::new(vb.pp(HEAD), HIDDEN_UNITS, shape.n_classes, false)?,
            frozen: false,
        })
    }
}

/// The classifier head's variables: `fc2.weight`, `fc2.bias`.
pub const HEAD: &str = "fc2";

impl ModuleT for Cnn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let features_train = train && !self.frozen;
        let mut xs = xs.clone();
        for conv in &self.convs {
            xs = conv.forward_t(&xs, features_train)?;
        }
        let hidden = self.fc1.forward(&xs.flatten_from(1)?)?;
        let hidden = if self.frozen { hidden.detach() } else { hidden };
        self.fc2.forward(&hidden)
    }
}

impl Net for Cnn {
    fn head(&self) -> &'static str {
        HEAD
    }

    fn freeze(&mut self) {
        self.frozen = true;
    }
}

#[cfg(test)]
mod tests;
