//! Batch norm over the channels of an NCHW tensor, optionally followed by ReLU.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, bail};

use crate::nn::conv::NormMode;
use crate::nn::norm::{add_sums, backward_coefs, norm_stats};
use crate::nn::par;
use crate::nn::raw::{self, needs_grad};

/// Floats of one chunk of images.
const CHUNK_BUDGET: usize = 1 << 18;

/// `relu?(γ · (x − μ)/σ + β)` per channel of `x` (n, c, h, w); `gamma` and `beta` are `(c,)`.
pub fn batch_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    relu: bool,
    norm: NormMode,
) -> Result<Tensor> {
    let op = BatchNorm {
        relu,
        norm,
        saved: Mutex::new((Vec::new(), Vec::new())),
    };
    x.contiguous()?
        .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)
}

#[derive(Debug)]
struct BatchNorm {
    relu: bool,
    norm: NormMode,
    /// Mean and 1/σ used by the forward.
    saved: Mutex<(Vec<f32>, Vec<f32>)>,
}

#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    hw: usize,
    len: usize,
}

impl Dims {
    fn of(layout: &Layout) -> Result<Self> {
        let (n, c, h, w) = raw::dims4(layout, "batch norm")?;
        Ok(Dims {
            n,
            c,
            hw: h * w,
            len: par::chunk_len(n, c * h * w, CHUNK_BUDGET),
        })
    }
    fn n_chunks(&self) -> usize {
        self.n.div_ceil(self.len)
    }
    fn per_image(&self) -> usize {
        self.c * self.hw
    }
}

impl BatchNorm {
    fn forward(&self, x: &[f32], gamma: &[f32], beta: &[f32], d: Dims) -> Vec<f32> {
        let chunks: Vec<&[f32]> = x.chunks(d.len * d.per_image()).collect();
        let sums = if self.norm.train {
            par::map(chunks.clone(), |xc| {
                let mut sums = vec![0.0; 2 * d.c];
                for img in xc.chunks(d.per_image()) {
                    for c in 0..d.c {
                        add_sums(&mut sums, d.c, c, &img[c * d.hw..][..d.hw]);
                    }
                }
                sums
            })
        } else {
            Vec::new()
        };
        let (mean, invstd) = norm_stats(&self.norm, &sums, d.n * d.hw, d.c);
        let scale: Vec<f32> = (0..d.c).map(|c| gamma[c] * invstd[c]).collect();
        let shift: Vec<f32> = (0..d.c).map(|c| beta[c] - mean[c] * scale[c]).collect();
        let mut out = par::zeros(x.len());
        let items: Vec<_> = par::chunks_mut(&mut out, d.per_image(), d.len, d.n_chunks())
            .into_iter()
            .zip(chunks)
            .collect();
        par::map(items, |(oc, xc)| {
            for (o_img, x_img) in oc.chunks_mut(d.per_image()).zip(xc.chunks(d.per_image())) {
                for c in 0..d.c {
                    let (s, t) = (scale[c], shift[c]);
                    let o = &mut o_img[c * d.hw..][..d.hw];
                    for (o, &v) in o.iter_mut().zip(&x_img[c * d.hw..][..d.hw]) {
                        let y = v * s + t;
                        *o = if self.relu { y.max(0.0) } else { y };
                    }
                }
            }
        });
        *self.saved.lock().expect("batch norm state") = (mean, invstd);
        out
    }

    fn backward(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let d = Dims::of(x.layout())?;
        let grad = grad.contiguous()?;
        let (xs, xl) = x.storage_and_layout();
        let xv = raw::storage_slice(&xs, xl, "batch norm")?;
        let (os, ol) = res.storage_and_layout();
        let out = raw::storage_slice(&os, ol, "batch norm")?;
        let (gs, gl) = grad.storage_and_layout();
        let dout = raw::storage_slice(&gs, gl, "batch norm")?;
        let gv = raw::to_vec(gamma, "batch norm")?;
        let (mean, invstd) = &*self.saved.lock().expect("batch norm state");
        let chunk = d.len * d.per_image();
        let items: Vec<_> = xv
            .chunks(chunk)
            .zip(out.chunks(chunk))
            .zip(dout.chunks(chunk))
            .collect();
        // Σdy and Σdy·x̂ per channel, dy being the gradient before ReLU.
        let parts = par::map(items.clone(), |((xc, oc), gc)| {
            let mut sums = vec![0.0f64; 2 * d.c];
            for img in 0..xc.len() / d.per_image() {
                for c in 0..d.c {
                    let at = img * d.per_image() + c * d.hw;
                    let (mut s, mut sx) = (0.0f32, 0.0f32);
                    for p in at..at + d.hw {
                        let g = if self.relu && oc[p] <= 0.0 {
                            0.0
                        } else {
                            gc[p]
                        };
                        s += g;
                        sx += g * (xc[p] - mean[c]);
                    }
                    sums[c] += f64::from(s);
                    sums[d.c + c] += f64::from(sx * invstd[c]);
                }
            }
            sums
        });
        let sums = par::sum_in_order_f64(parts);
        let (a, b, k) = backward_coefs(self.norm.train, &gv, invstd, &sums, d.n * d.hw);
        let dx = if needs_grad(x) {
            let mut dx = par::zeros(xv.len());
            let work: Vec<_> = par::chunks_mut(&mut dx, d.per_image(), d.len, d.n_chunks())
                .into_iter()
                .zip(items)
                .collect();
            par::map(work, |(dxc, ((xc, oc), gc))| {
                for (p0, dx_plane) in dxc.chunks_mut(d.hw).enumerate() {
                    let c = p0 % d.c;
                    let at = p0 * d.hw;
                    let (bx, k0) = (b[c] * invstd[c], k[c] - b[c] * invstd[c] * mean[c]);
                    let planes = xc[at..at + d.hw]
                        .iter()
                        .zip(&oc[at..at + d.hw])
                        .zip(&gc[at..at + d.hw]);
                    for (o, ((&xv, &ov), &gv)) in dx_plane.iter_mut().zip(planes) {
                        let g = if self.relu && ov <= 0.0 { 0.0 } else { gv };
                        *o = a[c] * g + bx * xv + k0;
                    }
                }
            });
            Some(raw::tensor(dx, x.shape().clone())?)
        } else {
            None
        };
        let dgamma: Vec<f32> = sums[d.c..].iter().map(|&v| v as f32).collect();
        let dbeta: Vec<f32> = sums[..d.c].iter().map(|&v| v as f32).collect();
        let dgamma = needs_grad(gamma)
            .then(|| raw::tensor(dgamma, d.c))
            .transpose()?;
        let dbeta = needs_grad(beta)
            .then(|| raw::tensor(dbeta, d.c))
            .transpose()?;
        Ok([dx, dgamma, dbeta])
    }
}

impl CustomOp3 for BatchNorm {
    fn name(&self) -> &'static str {
        "batch-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = Dims::of(l1)?;
        let (gamma, beta) = (
            raw::slice(s2, l2, "batch norm")?,
            raw::slice(s3, l3, "batch norm")?,
        );
        if gamma.len() != d.c || beta.len() != d.c {
            bail!(
                "batch norm: {} channels but weight {:?} and bias {:?}",
                d.c,
                l2.dims(),
                l3.dims()
            )
        }
        if !self.norm.train
            && (self.norm.running_mean.len() != d.c || self.norm.running_var.len() != d.c)
        {
            bail!(
                "batch norm: {} channels but {} running statistics",
                d.c,
                self.norm.running_mean.len()
            )
        }
        let out = self.forward(raw::slice(s1, l1, "batch norm")?, gamma, beta, d);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [dx, dg, db] = self.backward(x, gamma, beta, res, grad)?;
        Ok((dx, dg, db))
    }
}
