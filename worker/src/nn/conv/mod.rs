//! The conv block: `pool(relu(affine(conv(x, w))))` as one candle op with its own backward.
//!
//! The convolution runs as im2col + one matrix product per chunk of images (forward
//! `Z = W · col`, backward `dW = dZ · colᵀ` and `dX = col2im(Wᵀ · dZ)`); `affine` is either
//! nothing, a bias, or batch norm (batch statistics in training, running statistics in
//! evaluation); ReLU and 2×2 pooling are applied in the same pass over Z. Chunks of a
//! batch run on the job's threads; the gradient of the input is skipped when the input
//! needs none (a network's images).

mod backward;
pub mod direct;
mod engine;
mod gather;
mod im2col;
mod preact;

use std::sync::{Arc, Mutex};

use candle_core::{Layout, Result, Shape, Tensor, bail};

use direct::Pre;
use engine::{Engine, ZLayout};
pub use im2col::{Geom, col2im, im2col};
pub use preact::{PreActSpec, preact_conv};

use super::norm::{add_sums, norm_stats};
use super::pool::{self, Plane, Pool};
use super::raw;
use super::{flops, par, scratch};

/// Floats (input and conv output, roughly) one chunk of images may use.
const CHUNK_BUDGET: usize = 1 << 18;

/// The convolution's shape parameters and what follows it in the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSpec {
    /// Kernel side (square kernels).
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
    /// Zeros added on every side of the input.
    pub padding: usize,
    /// Whether ReLU follows the affine map.
    pub relu: bool,
    /// The pooling after ReLU.
    pub pool: Pool,
}

/// Batch statistics of one training forward: what running statistics are updated from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchStats {
    /// Per-channel mean.
    pub mean: Vec<f32>,
    /// Per-channel unbiased variance (as PyTorch's running variance uses).
    pub var_unbiased: Vec<f32>,
}

/// Batch norm inside a conv block (or standalone): mode, epsilon, running statistics.
#[derive(Debug, Clone)]
pub struct NormMode {
    /// Training (batch statistics) or evaluation (running statistics).
    pub train: bool,
    /// Added to the variance.
    pub eps: f32,
    /// Running mean, used in evaluation.
    pub running_mean: Vec<f32>,
    /// Running variance, used in evaluation.
    pub running_var: Vec<f32>,
    /// Receives the batch statistics of a training forward.
    pub batch: Arc<Mutex<Option<BatchStats>>>,
}

/// `pool(relu(affine(conv(x, w))))` for `x` (n, c_in, h, w) and `w` (c_out, c_in, k, k).
///
/// `affine` is `None`, a bias `(c_out,)`, or with `norm` the stacked batch-norm weight
/// and bias `(2, c_out)`.
pub fn conv_block(
    x: &Tensor,
    w: &Tensor,
    affine: Option<&Tensor>,
    spec: BlockSpec,
    norm: Option<NormMode>,
) -> Result<Tensor> {
    let op = ConvBlock {
        spec,
        norm,
        saved: Mutex::new(Saved::default()),
    };
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    match affine {
        None if op.norm.is_some() => bail!("conv block: batch norm needs its weight and bias"),
        None => x.apply_op2(&w, op),
        Some(p) => x.apply_op3(&w, &p.contiguous()?, op),
    }
}

#[derive(Debug)]
struct ConvBlock {
    spec: BlockSpec,
    norm: Option<NormMode>,
    saved: Mutex<Saved>,
}

/// What the forward keeps for the backward.
#[derive(Debug, Default)]
struct Saved {
    /// Winning window positions (max pooling).
    argmax: Vec<u8>,
    /// The conv output in chunk layout (batch norm, or ReLU before average pooling).
    z: Vec<f32>,
    /// Per-channel mean and 1/σ used by batch norm.
    mean: Vec<f32>,
    invstd: Vec<f32>,
}

/// The shapes of one call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    g: Geom,
    /// Images per chunk.
    len: usize,
    /// Output plane after pooling.
    out_plane: usize,
}

impl Dims {
    fn n_chunks(&self) -> usize {
        self.n.div_ceil(self.len)
    }
    fn chunk_images(&self, idx: usize) -> (usize, usize) {
        let first = idx * self.len;
        (first, self.len.min(self.n - first))
    }
}

impl ConvBlock {
    fn dims(&self, x: &Layout, w: &Layout) -> Result<Dims> {
        let (n, c_in, h, wd) = raw::dims4(x, "conv")?;
        let (c_out, wc, kh, kw) = raw::dims4(w, "conv weight")?;
        let k = self.spec.kernel;
        if (wc, kh, kw) != (c_in, k, k) {
            bail!(
                "conv: weight {:?} does not fit {c_in} input channels and a {k}×{k} kernel",
                w.dims()
            )
        }
        let g = Geom::new((c_in, h, wd), c_out, k, self.spec.stride, self.spec.padding)?;
        let (ph, pw) = self.spec.pool.out_dims(g.out_h, g.out_w);
        let per_image = (g.in_len() + 2 * c_out * g.out_hw()).max(1);
        Ok(Dims {
            n,
            g,
            len: par::chunk_len(n, per_image, CHUNK_BUDGET),
            out_plane: ph * pw,
        })
    }

    fn out_shape(&self, d: &Dims) -> Shape {
        let (ph, pw) = self.spec.pool.out_dims(d.g.out_h, d.g.out_w);
        Shape::from((d.n, d.g.c_out, ph, pw))
    }

    /// Checks the shape of the bias `(c_out,)` or of the batch-norm weight and bias `(2, c_out)`.
    fn check_affine(&self, d: &Dims, layout: &Layout) -> Result<()> {
        let c_out = d.g.c_out;
        let expected: &[usize] = if self.norm.is_some() {
            &[2, c_out]
        } else {
            &[c_out]
        };
        if layout.dims() != expected {
            bail!(
                "conv block: affine parameters {:?}, expected {expected:?}",
                layout.dims()
            )
        }
        Ok(())
    }

    fn keeps_z(&self) -> bool {
        self.norm.is_some() || self.spec.pool.mask_needs_input(self.spec.relu)
    }

    fn forward(&self, x: &[f32], w: &[f32], affine: Option<&[f32]>, d: Dims) -> Result<Vec<f32>> {
        let (g, n_chunks) = (d.g, d.n_chunks());
        let engine = Engine::new(&g, d.len);
        let packed = engine.pack(w);
        flops::add(d.n * g.c_out * g.k_dim() * g.out_hw());
        let zl = engine.z_layout(d.len);
        let mut out = par::zeros(d.n * g.c_out * d.out_plane);
        let mut argmax = vec![
            0u8;
            if self.spec.pool == Pool::Max2 {
                out.len()
            } else {
                0
            }
        ];
        let mut z = par::zeros(if self.keeps_z() {
            n_chunks * zl.chunk
        } else {
            0
        });
        let conv_chunk = |idx: usize, z_out: &mut [f32]| {
            let (first, cnt) = d.chunk_images(idx);
            engine.forward(
                &packed,
                &x[first * g.in_len()..],
                cnt,
                z_out,
                &Pre::Identity,
            );
        };
        let mut saved = Saved::default();
        let (scale, shift) = if let Some(norm) = &self.norm {
            let items: Vec<_> = par::chunks_mut(&mut z, zl.chunk, 1, n_chunks)
                .into_iter()
                .enumerate()
                .collect();
            let sums = par::map(items, |(idx, z_chunk)| {
                conv_chunk(idx, z_chunk);
                let mut sums = vec![0.0; 2 * g.c_out];
                for_each_row(
                    &g,
                    &zl,
                    d.chunk_images(idx).1,
                    |c, row| {
                        add_sums(&mut sums, g.c_out, c, row);
                    },
                    z_chunk,
                );
                sums
            });
            let gb = affine.expect("batch norm has its weight and bias");
            let (mean, invstd) = norm_stats(norm, &sums, d.n * g.out_hw(), g.c_out);
            let scale: Vec<f32> = (0..g.c_out).map(|c| gb[c] * invstd[c]).collect();
            let shift = (0..g.c_out)
                .map(|c| gb[g.c_out + c] - mean[c] * scale[c])
                .collect();
            (saved.mean, saved.invstd) = (mean, invstd);
            (scale, shift)
        } else {
            (
                vec![1.0; g.c_out],
                affine.map_or_else(|| vec![0.0; g.c_out], <[f32]>::to_vec),
            )
        };
        let items: Vec<_> = par::chunks_mut(&mut out, g.c_out * d.out_plane, d.len, n_chunks)
            .into_iter()
            .zip(par::chunks_mut(
                &mut argmax,
                g.c_out * d.out_plane,
                d.len,
                n_chunks,
            ))
            .zip(par::chunks_mut(&mut z, zl.chunk, 1, n_chunks))
            .enumerate()
            .collect();
        let normed = self.norm.is_some();
        par::map(items, |(idx, ((out_c, am_c), z_c))| {
            let (_, cnt) = d.chunk_images(idx);
            if normed {
                self.epilogue(&d, &zl, cnt, z_c, &scale, &shift, out_c, am_c);
            } else {
                scratch::with_scratch([zl.chunk], |[zs]| {
                    conv_chunk(idx, zs);
                    if !z_c.is_empty() {
                        z_c.copy_from_slice(zs);
                    }
                    self.epilogue(&d, &zl, cnt, zs, &scale, &shift, out_c, am_c);
                });
            }
        });
        (saved.argmax, saved.z) = (argmax, z);
        *self.saved.lock().expect("conv block state") = saved;
        Ok(out)
    }

    /// Affine map, ReLU and pooling of one chunk's conv output into its output images.
    #[allow(clippy::too_many_arguments)]
    fn epilogue(
        &self,
        d: &Dims,
        zl: &ZLayout,
        cnt: usize,
        z: &[f32],
        scale: &[f32],
        shift: &[f32],
        out: &mut [f32],
        argmax: &mut [u8],
    ) {
        let g = d.g;
        for i in 0..cnt {
            for co in 0..g.c_out {
                let plane = self.plane(d, zl, scale[co], shift[co]);
                let at = (i * g.c_out + co) * d.out_plane;
                let am = if argmax.is_empty() {
                    &mut [][..]
                } else {
                    &mut argmax[at..at + d.out_plane]
                };
                let zp = &z[zl.at(i, co)..][..zl.plane_len(&g)];
                pool::forward(
                    self.spec.pool,
                    &plane,
                    zp,
                    &mut out[at..at + d.out_plane],
                    am,
                );
            }
        }
    }

    fn plane(&self, d: &Dims, zl: &ZLayout, scale: f32, shift: f32) -> Plane {
        Plane {
            height: d.g.out_h,
            width: d.g.out_w,
            row_stride: zl.rs,
            scale,
            shift,
            relu: self.spec.relu,
        }
    }
}

/// Calls `f(channel, row)` on every output row (junk columns left out; a contiguous
/// plane as one row) of `cnt` images in layout `zl`.
fn for_each_row(g: &Geom, zl: &ZLayout, cnt: usize, mut f: impl FnMut(usize, &[f32]), z: &[f32]) {
    // A contiguous plane is one row.
    let (rows, w) = if zl.rs == g.out_w {
        (1, g.out_hw())
    } else {
        (g.out_h, g.out_w)
    };
    for i in 0..cnt {
        for c in 0..g.c_out {
            for r in 0..rows {
                f(c, &z[zl.at(i, c) + r * zl.rs..][..w]);
            }
        }
    }
}
