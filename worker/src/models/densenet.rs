//! A small DenseNet for grey images, on the fused ops of [`crate::nn`].
//!
//! A stem conv 3×3 (1 → 2k channels); `n_blocks` dense blocks of `layers_per_block`
//! layers, each BN → ReLU → conv 3×3 with k outputs concatenated to its input; between
//! two blocks a transition BN → ReLU → conv 1×1 to half the channels → 2×2 average pool;
//! then BN → ReLU → global average pool → linear to the classes. Convolutions have no
//! bias (batch norm follows them). The image is used at its own size (28×28 as is).
//! Each layer and each transition is one fused op ([`PreActConv`]).

use candle_core::{Result, Tensor};
use candle_nn::{ModuleT, VarBuilder};
use ecobench_shared::DensenetConfig;

use super::{Net, NetShape};
use crate::nn::conv::PreActSpec;
use crate::nn::layers::{Affine, BatchNorm, ConvLayer, Dense, PreActConv};
use crate::nn::ops::global_avg_pool;
use crate::nn::{BlockSpec, Pool};

/// The network; built from a `VarBuilder`, it implements `ModuleT` on `(batch, channels, h, w)` input.
#[derive(Debug)]
pub struct Densenet {
    stem: ConvLayer,
    stages: Vec<PreActConv>,
    norm: BatchNorm,
    fc: Dense,
    /// Only the head (`fc`) trains; the rest runs as in evaluation.
    frozen: bool,
}

/// The classifier head's variables: `fc.weight`, `fc.bias`.
pub const HEAD: &str = "fc";

/// The stem: conv 3×3 pad 1, nothing after it.
const STEM: BlockSpec = BlockSpec {
    kernel: 3,
    stride: 1,
    padding: 1,
    relu: false,
    pool: Pool::None,
};
/// A dense layer: conv 3×3 pad 1, concatenated to its input.
const LAYER: PreActSpec = PreActSpec {
    kernel: 3,
    padding: 1,
    pool: Pool::None,
    concat: true,
};
/// A transition: conv 1×1, then 2×2 average pooling.
const TRANSITION: PreActSpec = PreActSpec {
    kernel: 1,
    padding: 0,
    pool: Pool::Avg2,
    concat: false,
};

impl Densenet {
    /// Builds the network for `shape`'s images and classes; the smallest side must
    /// survive the `n_blocks − 1` transitions ([`min_image_side`]).
    pub fn new(vb: VarBuilder, config: &DensenetConfig, shape: NetShape) -> Result<Self> {
        let k = config.growth_rate as usize;
        let mut channels = 2 * k;
        let stem = ConvLayer::new(vb.pp("stem"), shape.channels, channels, Affine::None, STEM)?;
        let mut stages = Vec::new();
        for block in 0..config.n_blocks as usize {
            for layer in 0..config.layers_per_block as usize {
                let vb = vb.pp(format!("block{}.layer{}", block + 1, layer + 1));
                stages.push(PreActConv::new(vb, channels, k, LAYER)?);
                channels += k;
            }
            if block + 1 < config.n_blocks as usize {
                let vb = vb.pp(format!("transition{}", block + 1));
                let half = channels / 2;
                stages.push(PreActConv::new(vb, channels, half, TRANSITION)?);
                channels = half;
            }
        }
        Ok(Densenet {
            stem,
            stages,
            norm: BatchNorm::new(vb.pp("norm"), channels)?,
            fc: Dense::new(vb.pp(HEAD), channels, shape.n_classes, false)?,
            frozen: false,
        })
    }
}

/// The smallest image side a DenseNet of `n_blocks` blocks accepts (each transition halves it).
pub fn min_image_side(n_blocks: u32) -> usize {
    1 << n_blocks.saturating_sub(1).min(16)
}

impl ModuleT for Densenet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let train = train && !self.frozen;
        let mut xs = self.stem.forward_t(xs, train)?;
        for stage in &self.stages {
            xs = stage.forward_t(&xs, train)?;
        }
        let pooled = global_avg_pool(&self.norm.forward_t(&xs, train, true)?)?;
        let pooled = if self.frozen { pooled.detach() } else { pooled };
        self.fc.forward(&pooled)
    }
}

impl Net for Densenet {
    fn head(&self) -> &'static str {
        HEAD
    }

    fn freeze(&mut self) {
        self.frozen = true;
    }
}
