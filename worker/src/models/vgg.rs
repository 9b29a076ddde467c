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

use super::{Net, NetShape};
use crate::nn::layers::{Affine, ConvLayer, Dense};
use crate::nn::{BlockSpec, Pool};

pub use ecobench_shared::pretrain::VGG11_LAYOUT as LAYOUT;
pub use ecobench_shared::pretrain::vgg_scaled as scaled;
pub use ecobench_shared::pretrain::vgg_torchvision_indices as torchvision_indices;
/// The side images are padded to.
pub const INPUT_SIDE: usize = 32;

/// The network; built from a `VarBuilder`, it implements `ModuleT` on
/// `(batch, channels, h, w)` input.
///
/// Variables are named as torchvision's `vgg11` / `vgg11_bn` name them, so that their
/// weights load as they are: the convolution at `features.N` (`weight`, and `bias`
/// without batch norm), its batch norm at `features.N+1` (`weight`, `bias`,
/// `running_mean`, `running_var`). The classifier is ours (`classifier.weight`, `.bias`).
#[derive(Debug)]
pub struct Vgg {
    convs: Vec<ConvLayer>,
    classifier: Dense,
    /// Rows and columns of zeros added before, and after, the image.
    pad: [(usize, usize); 2],
    /// Only the classifier trains; the rest runs as in evaluation.
    frozen: bool,
}

/// The classifier head's variables: `classifier.weight`, `classifier.bias`.
pub const HEAD: &str = "classifier";

impl Vgg {
    /// Builds the network for `shape`'s images and classes.
    pub fn new(vb: VarBuilder, config: &VggConfig, shape: NetShape) -> Result<Self> {
        let affine = if config.batch_norm {
            Affine::BatchNorm
        } else {
            Affine::Bias
        };
        let mut convs = Vec::new();
        let mut c_in = shape.channels;
        let mut at = torchvision_indices(config.batch_norm).into_iter();
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
            let n = at.next().expect("one index per convolution");
            convs.push(ConvLayer::with_norm_at(
                vb.pp(format!("features.{n}")),
                vb.pp(format!("features.{}", n + 1)),
                c_in,
                c_out,
                affine,
                spec,
            )?);
            c_in = c_out;
        }
        let (rows, cols) = (shape.rows, shape.cols);
        let (h, w) = (rows.max(INPUT_SIDE), cols.max(INPUT_SIDE));
        let pad = [(h - rows) / 2, (w - cols) / 2];
        Ok(Vgg {
            convs,
            classifier: Dense::new(
                vb.pp(HEAD),
                c_in * (h / 32) * (w / 32),
                shape.n_classes,
                false,
            )?,
            pad: [(pad[0], h - rows - pad[0]), (pad[1], w - cols - pad[1])],
            frozen: false,
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
            xs = conv.forward_t(&xs, train && !self.frozen)?;
        }
        let features = xs.flatten_from(1)?;
        let features = if self.frozen {
            features.detach()
        } else {
            features
        };
        self.classifier.forward(&features)
    }
}

impl Net for Vgg {
    fn head(&self) -> &'static str {
        HEAD
    }

    fn freeze(&mut self) {
        self.frozen = true;
    }
}
