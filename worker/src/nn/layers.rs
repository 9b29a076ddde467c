//! Layers built from a `VarBuilder`, made of the fused ops: conv blocks (with bias or
//! batch norm), standalone batch norm, linear layers; and the seeded initialisation.
//!
//! Variables are named like PyTorch's: `<layer>.weight`, `<layer>.bias`, and for batch
//! norm `<layer>.weight`, `.bias`, `.running_mean`, `.running_var`.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, InplaceOp1, Layout, Result, Tensor, bail};
use candle_nn::{Init, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::conv::{BlockSpec, NormMode, PreActSpec, conv_block, preact_conv};
use super::ops;
use super::raw;

/// Added to the variance in every batch norm.
pub const BN_EPS: f32 = 1e-5;
/// Weight of the new batch in the running statistics.
pub const BN_MOMENTUM: f32 = 0.1;

/// Batch-norm parameters and running statistics over `n` channels.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    gamma: Tensor,
    beta: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
}

impl BatchNorm {
    /// Weight 1, bias 0, running mean 0 and variance 1.
    pub fn new(vb: VarBuilder, n: usize) -> Result<Self> {
        Ok(BatchNorm {
            gamma: vb.get_with_hints(n, "weight", Init::Const(1.0))?,
            beta: vb.get_with_hints(n, "bias", Init::Const(0.0))?,
            running_mean: vb.get_with_hints(n, "running_mean", Init::Const(0.0))?,
            running_var: vb.get_with_hints(n, "running_var", Init::Const(1.0))?,
        })
    }

    /// `relu?(bn(x))`, updating the running statistics when training.
    pub fn forward_t(&self, x: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        let mode = self.mode(train)?;
        let out = ops::batch_norm(x, &self.gamma, &self.beta, relu, mode.clone())?;
        self.update_running(&mode)?;
        Ok(out)
    }

    fn mode(&self, train: bool) -> Result<NormMode> {
        let (running_mean, running_var) = if train {
            (Vec::new(), Vec::new())
        } else {
            (
                raw::to_vec(&self.running_mean, "bn")?,
                raw::to_vec(&self.running_var, "bn")?,
            )
        };
        Ok(NormMode {
            train,
            eps: BN_EPS,
            running_mean,
            running_var,
            batch: Arc::new(Mutex::new(None)),
        })
    }

    /// Moves the running statistics towards the batch's, after a training forward.
    fn update_running(&self, mode: &NormMode) -> Result<()> {
        let Some(stats) = mode.batch.lock().expect("batch statistics").take() else {
            return Ok(());
        };
        self.running_mean.inplace_op1(&Lerp(&stats.mean))?;
        self.running_var.inplace_op1(&Lerp(&stats.var_unbiased))
    }
}

/// `running = (1 − momentum) · running + momentum · batch`, in place.
struct Lerp<'a>(&'a [f32]);

impl InplaceOp1 for Lerp<'_> {
    fn name(&self) -> &'static str {
        "running-stats"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let (CpuStorage::F32(data), Some((start, end))) = (storage, layout.contiguous_offsets())
        else {
            bail!("running statistics must be contiguous f32")
        };
        for (r, &b) in data[start..end].iter_mut().zip(self.0) {
            *r = (1.0 - BN_MOMENTUM) * *r + BN_MOMENTUM * b;
        }
        Ok(())
    }
}

/// What follows a convolution before ReLU: nothing, a bias, or batch norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affine {
    /// Nothing.
    None,
    /// A learned bias per output channel.
    Bias,
    /// Batch norm (its shift replaces the bias).
    BatchNorm,
}

/// A convolution with its affine map, ReLU and pooling, run as one fused op.
#[derive(Debug, Clone)]
pub struct ConvLayer {
    weight: Tensor,
    bias: Option<Tensor>,
    norm: Option<BatchNorm>,
    spec: BlockSpec,
}

impl ConvLayer {
    /// `c_in → c_out` channels; the weight is `vb`'s `weight`, the bias `bias`, batch norm
    /// under `vb.pp("bn")`.
    pub fn new(
        vb: VarBuilder,
        c_in: usize,
        c_out: usize,
        affine: Affine,
        spec: BlockSpec,
    ) -> Result<Self> {
        let norm_vb = vb.pp("bn");
        ConvLayer::with_norm_at(vb, norm_vb, c_in, c_out, affine, spec)
    }

    /// As [`ConvLayer::new`], with the batch norm's variables under `norm_vb`.
    pub fn with_norm_at(
        vb: VarBuilder,
        norm_vb: VarBuilder,
        c_in: usize,
        c_out: usize,
        affine: Affine,
        spec: BlockSpec,
    ) -> Result<Self> {
        let k = spec.kernel;
        Ok(ConvLayer {
            weight: vb.get_with_hints((c_out, c_in, k, k), "weight", Init::Const(0.0))?,
            bias: (affine == Affine::Bias)
                .then(|| vb.get_with_hints(c_out, "bias", Init::Const(0.0)))
                .transpose()?,
            norm: (affine == Affine::BatchNorm)
                .then(|| BatchNorm::new(norm_vb, c_out))
                .transpose()?,
            spec,
        })
    }

    /// Runs the block; batch norm uses batch statistics when `train`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match &self.norm {
            None => conv_block(x, &self.weight, self.bias.as_ref(), self.spec, None),
            Some(bn) => {
                let mode = bn.mode(train)?;
                let gb = Tensor::stack(&[&bn.gamma, &bn.beta], 0)?;
                let out = conv_block(x, &self.weight, Some(&gb), self.spec, Some(mode.clone()))?;
                bn.update_running(&mode)?;
                Ok(out)
            }
        }
    }
}

/// Batch norm → ReLU → convolution (stride 1, no bias) → pooling, optionally
/// concatenated to its input, run as one fused op: DenseNet's layers and transitions.
#[derive(Debug, Clone)]
pub struct PreActConv {
    norm: BatchNorm,
    weight: Tensor,
    spec: PreActSpec,
}

impl PreActConv {
    /// `c_in → c_out` channels; batch norm (over `c_in`) under `vb.pp("bn")`, the weight
    /// under `vb.pp("conv")`.
    pub fn new(vb: VarBuilder, c_in: usize, c_out: usize, spec: PreActSpec) -> Result<Self> {
        let k = spec.kernel;
        Ok(PreActConv {
            norm: BatchNorm::new(vb.pp("bn"), c_in)?,
            weight: vb.pp("conv").get_with_hints(
                (c_out, c_in, k, k),
                "weight",
                Init::Const(0.0),
            )?,
            spec,
        })
    }

    /// Runs the layer; batch norm uses batch statistics when `train`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mode = self.norm.mode(train)?;
        let gb = Tensor::stack(&[&self.norm.gamma, &self.norm.beta], 0)?;
        let out = preact_conv(x, &self.weight, &gb, self.spec, mode.clone())?;
        self.norm.update_running(&mode)?;
        Ok(out)
    }
}

/// A fully connected layer, optionally followed by ReLU.
#[derive(Debug, Clone)]
pub struct Dense {
    weight: Tensor,
    bias: Tensor,
    relu: bool,
}

impl Dense {
    /// `n_in → n_out` units.
    pub fn new(vb: VarBuilder, n_in: usize, n_out: usize, relu: bool) -> Result<Self> {
        Ok(Dense {
            weight: vb.get_with_hints((n_out, n_in), "weight", Init::Const(0.0))?,
            bias: vb.get_with_hints(n_out, "bias", Init::Const(0.0))?,
            relu,
        })
    }

    /// `relu?(x · wᵀ + b)` for `x` (n, n_in).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::linear(x, &self.weight, &self.bias, self.relu)
    }
}

/// Draws every conv and linear weight and bias, in sorted name order, uniformly in
/// ±1/√fan_in from a `ChaCha8Rng` seeded with `seed` (PyTorch's default initialisation);
/// batch-norm variables keep their constants. A bias takes its layer's weight's fan-in.
pub fn init_uniform(varmap: &VarMap, seed: u64) -> Result<()> {
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("the variable map's lock is poisoned".to_string()))?;
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for name in names {
        let layer = name.rsplit_once('.').map_or("", |(layer, _)| layer);
        if vars.contains_key(&format!("{layer}.running_mean")) {
            continue;
        }
        let var = &vars[name];
        let weight_dims = match vars.get(&format!("{layer}.weight")) {
            Some(weight) if name.ends_with(".bias") => weight.dims().to_vec(),
            _ => var.dims().to_vec(),
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
