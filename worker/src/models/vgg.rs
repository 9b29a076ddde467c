//! VGG-11 with a width multiplier, from scratch, on the fused ops of [`crate::nn`].
//!
//! The layout [64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M] with every width ×
//! `width` (at least 1 channel); each conv 3×3 pad 1 → batch norm (or a bias without it)
//! → ReLU, the max pools (M) fused into the conv before them. One grey channel; images
//! smaller than 32×32 are zero-padded to 32×32 (centred). The classifier is one linear
//! layer from the last width (× the remaining pixels) to the classes.

use candle_core::{Result, Tensor};
use candle_nn::{ModuleT, VarBuilder};
use ecobench_shared::VggConfig;

use super::cnn::N_CLASSES;
use crate::nn::layers::{Affine, ConvLayer, Dense};
use crate::nn::{BlockSpec, Pool};

/// VGG-11's widths; 0 marks a 2×2 max pool.
const LAYOUT: [usize; 13] = [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0];
/// The side images are padded to.
pub const INPUT_SIDE: usize = 32;

/// The network; built from a `VarBuilder`, it implements `ModuleT` on `(batch, 1, h, w)` input.
#[derive(Debug)]
pub struct Vgg {
    convs: Vec<ConvLayer>,
    fc: Dense,
    /// Rows and columns of zeros added before, and after, the image.
    pad: [(usize, usize); 2],
}

/// The channels of a VGG-11 width scaled by `width`.
pub fn scaled(channels: usize, width: f64) -> usize {
    ((channels as f64 * width).round() as usize).max(1)
}

impl Vgg {
    /// Builds the network for `rows` × `cols` grey images.
    pub fn new(vb: VarBuilder, config: &VggConfig, rows: usize, cols: usize) -> Result<Self> {
        let affine = if config.batch_norm {
            Affine::BatchNorm
        } else {
            Affine::Bias
        };
        let mut convs = Vec::new();
        let mut c_in = 1;
        for (idx, &width) in LAYOUT.iter().enumerate() {
            if width == 0 {
                continue;
            }
            let pool = if LAYOUT.get(idx + 1) == Some(&0) {
                Pool::Max2
            } else {
                Pool::None
            };
            let spec = BlockSpec {
                kernel: 3,
                stride: 1,
                padding: 1,
                relu: true,
                pool,
            };
            let c_out = scaled(width, config.width);
            convs.push(ConvLayer::new(
                vb.pp(format!("features.{idx}")),
                c_in,
                c_out,
                affine,
                spec,
            )?);
            c_in = c_out;
        }
        let (h, w) = (rows.max(INPUT_SIDE), cols.max(INPUT_SIDE));
        let pad = [(h - rows) / 2, (w - cols) / 2];
        Ok(Vgg {
            convs,
            fc: Dense::new(vb.pp("fc"), c_in * (h / 32) * (w / 32), N_CLASSES, false)?,
            pad: [(pad[0], h - rows - pad[0]), (pad[1], w - cols - pad[1])],
        })
    }
}

impl ModuleT for Vgg {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let [(top, bottom), (left, right)] = self.pad;
        let mut xs = xs
            .pad_with_zeros(2, top, bottom)?
            .pad_with_zeros(3, left, right)?;
        for conv in &self.convs {
            xs = conv.forward_t(&xs, train)?;
        }
        self.fc.forward(&xs.flatten_from(1)?)
    }
}
