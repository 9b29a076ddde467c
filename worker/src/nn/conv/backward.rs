//! The conv block's backward and its candle op impls.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::{ConvBlock, Dims, col2im, im2col};
use crate::nn::gemm::{Mat, matmul};
use crate::nn::raw::{self, needs_grad};
use crate::nn::{norm, par, pool, scratch};

/// Gradients of (x, w, affine).
type Grads = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

impl ConvBlock {
    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        affine: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<Grads> {
        let d = self.dims(x.layout(), w.layout())?;
        let (g, ohw) = (d.g, d.g.out_hw());
        let grad = grad.contiguous()?;
        let (xs, xl) = x.storage_and_layout();
        let xv = raw::storage_slice(&xs, xl, "conv")?;
        let (ws, wl) = w.storage_and_layout();
        let wv = raw::storage_slice(&ws, wl, "conv")?;
        let (os, ol) = res.storage_and_layout();
        let out = raw::storage_slice(&os, ol, "conv")?;
        let (gs, gl) = grad.storage_and_layout();
        let dout = raw::storage_slice(&gs, gl, "conv")?;
        let affine_guard = affine.map(|p| p.storage_and_layout());
        let pv = match &affine_guard {
            Some((s, l)) => Some(raw::storage_slice(s, l, "conv")?),
            None => None,
        };
        let saved = self.saved.lock().expect("conv block state");
        let (need_x, need_w) = (needs_grad(x), needs_grad(w));
        let c_out = g.c_out;
        // Per channel: the affine map of the forward, and dz = a·dy + b·ẑ + c.
        let (scale, shift) = match (&self.norm, pv) {
            (Some(_), Some(gb)) => {
                let scale: Vec<f32> = (0..c_out).map(|c| gb[c] * saved.invstd[c]).collect();
                let shift = (0..c_out)
                    .map(|c| gb[c_out + c] - saved.mean[c] * scale[c])
                    .collect();
                (scale, shift)
            }
            (_, bias) => (
                vec![1.0; c_out],
                bias.map_or_else(|| vec![0.0; c_out], <[f32]>::to_vec),
            ),
        };
        let mut coefs = None;
        // Batch norm needs Σdy and Σdy·ẑ over the whole batch before any dz: a first pass.
        let mut dy_full = Vec::new();
        let mut norm_grad = None;
        if let (Some(norm), Some(gb)) = (&self.norm, pv) {
            dy_full = vec![0.0; d.n * d.z_per_image()];
            let items: Vec<_> = par::chunks_mut(&mut dy_full, d.z_per_image(), d.len, d.n_chunks())
                .into_iter()
                .enumerate()
                .collect();
            let parts = par::map(items, |(idx, dy)| {
                let (first, cnt) = d.chunk_images(idx);
                self.unpool_chunk(&d, first, cnt, &scale, &shift, out, dout, &saved, dy);
                let z = &saved.z[first * d.z_per_image()..][..cnt * d.z_per_image()];
                dy_zhat_sums(dy, z, &saved.mean, &saved.invstd)
            });
            let sums = par::sum_in_order_f64(parts);
            let (a, b, c) =
                norm::backward_coefs(norm.train, &gb[..c_out], &saved.invstd, &sums, d.n * ohw);
            let mut dgb: Vec<f32> = sums[c_out..].iter().map(|&v| v as f32).collect();
            dgb.extend(sums[..c_out].iter().map(|&v| v as f32));
            norm_grad = Some(dgb);
            coefs = Some((a, b, c));
        }
        let mut dx = vec![0.0; if need_x { d.n * g.in_len() } else { 0 }];
        let items: Vec<_> = par::chunks_mut(&mut dx, g.in_len(), d.len, d.n_chunks())
            .into_iter()
            .enumerate()
            .collect();
        let parts = par::map(items, |(idx, dx_chunk)| {
            let (first, cnt) = d.chunk_images(idx);
            let ncol = cnt * ohw;
            let col_len = if need_w || need_x {
                g.k_dim() * ncol
            } else {
                0
            };
            scratch::with_scratch([c_out * ncol, col_len], |[dz, col]| {
                match &coefs {
                    Some((a, b, c)) => {
                        let dy = &dy_full[first * d.z_per_image()..][..cnt * d.z_per_image()];
                        let z = &saved.z[first * d.z_per_image()..][..cnt * d.z_per_image()];
                        apply_norm_backward(dz, dy, z, &saved.mean, &saved.invstd, a, b, c);
                    }
                    None => {
                        self.unpool_chunk(&d, first, cnt, &scale, &shift, out, dout, &saved, dz)
                    }
                }
                let db: Vec<f32> = dz.chunks(ncol).map(|row| row.iter().sum()).collect();
                let mut dw = vec![0.0; if need_w { c_out * g.k_dim() } else { 0 }];
                if need_w {
                    im2col(&g, &xv[first * g.in_len()..], cnt, col);
                    matmul(
                        &mut dw,
                        false,
                        Mat::rows(dz, c_out, ncol),
                        Mat::rows(col, g.k_dim(), ncol).t(),
                    );
                }
                if need_x {
                    matmul(
                        col,
                        false,
                        Mat::rows(wv, c_out, g.k_dim()).t(),
                        Mat::rows(dz, c_out, ncol),
                    );
                    col2im(&g, col, cnt, dx_chunk);
                }
                (dw, db)
            })
        });
        let (dws, dbs): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
        let dx = if need_x {
            Some(raw::tensor(dx, x.shape().clone())?)
        } else {
            None
        };
        let dw = if need_w {
            Some(raw::tensor(par::sum_in_order(dws), w.shape().clone())?)
        } else {
            None
        };
        let dp = match (affine, norm_grad) {
            (Some(p), _) if !needs_grad(p) => None,
            (Some(p), Some(dgb)) => Some(raw::tensor(dgb, p.shape().clone())?),
            (Some(p), None) => Some(raw::tensor(par::sum_in_order(dbs), p.shape().clone())?),
            (None, _) => None,
        };
        Ok((dx, dw, dp))
    }

    /// The gradient before pooling and ReLU (chunk layout) of one chunk's images.
    #[allow(clippy::too_many_arguments)]
    fn unpool_chunk(
        &self,
        d: &Dims,
        first: usize,
        cnt: usize,
        scale: &[f32],
        shift: &[f32],
        out: &[f32],
        dout: &[f32],
        saved: &super::Saved,
        dy: &mut [f32],
    ) {
        let (g, ohw) = (d.g, d.g.out_hw());
        for i in 0..cnt {
            for co in 0..g.c_out {
                let at = ((first + i) * g.c_out + co) * d.out_plane;
                let plane = self.plane(d, scale[co], shift[co]);
                let zi = (co * cnt + i) * ohw;
                let z = if saved.z.is_empty() {
                    None
                } else {
                    Some(&saved.z[first * d.z_per_image() + zi..][..ohw])
                };
                let argmax = if saved.argmax.is_empty() {
                    &[][..]
                } else {
                    &saved.argmax[at..at + d.out_plane]
                };
                pool::backward(
                    self.spec.pool,
                    &plane,
                    &out[at..at + d.out_plane],
                    z,
                    &dout[at..at + d.out_plane],
                    argmax,
                    &mut dy[zi..zi + ohw],
                );
            }
        }
    }
}

/// `[Σdy…, Σdy·ẑ…]` per channel of one chunk (chunk layout), ẑ = (z − μ)/σ.
fn dy_zhat_sums(dy: &[f32], z: &[f32], mean: &[f32], invstd: &[f32]) -> Vec<f64> {
    let c_out = mean.len();
    let row = dy.len() / c_out;
    let mut sums = vec![0.0; 2 * c_out];
    for c in 0..c_out {
        let (dy, z) = (&dy[c * row..][..row], &z[c * row..][..row]);
        let (mut s, mut sz) = (0.0f32, 0.0f32);
        for (&g, &v) in dy.iter().zip(z) {
            s += g;
            sz += g * (v - mean[c]);
        }
        sums[c] = f64::from(s);
        sums[c_out + c] = f64::from(sz * invstd[c]);
    }
    sums
}

/// `dz = a·dy + b·ẑ + c` per channel (chunk layout).
#[allow(clippy::too_many_arguments)]
fn apply_norm_backward(
    dz: &mut [f32],
    dy: &[f32],
    z: &[f32],
    mean: &[f32],
    invstd: &[f32],
    a: &[f32],
    b: &[f32],
    c: &[f32],
) {
    let c_out = mean.len();
    let row = dy.len() / c_out;
    for ch in 0..c_out {
        let (bz, k) = (b[ch] * invstd[ch], c[ch] - b[ch] * invstd[ch] * mean[ch]);
        for ((o, &g), &v) in dz[ch * row..][..row]
            .iter_mut()
            .zip(&dy[ch * row..][..row])
            .zip(&z[ch * row..][..row])
        {
            *o = a[ch] * g + bz * v + k;
        }
    }
}

impl CustomOp2 for ConvBlock {
    fn name(&self) -> &'static str {
        "conv-block"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = self.dims(l1, l2)?;
        let out = self.forward(
            raw::slice(s1, l1, "conv")?,
            raw::slice(s2, l2, "conv")?,
            None,
            d,
        )?;
        Ok((CpuStorage::F32(out), self.out_shape(&d)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.backward(x, w, None, res, grad)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for ConvBlock {
    fn name(&self) -> &'static str {
        "conv-block"
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
        let d = self.dims(l1, l2)?;
        let p = raw::slice(s3, l3, "conv")?;
        self.check_affine(&d, l3)?;
        let out = self.forward(
            raw::slice(s1, l1, "conv")?,
            raw::slice(s2, l2, "conv")?,
            Some(p),
            d,
        )?;
        Ok((CpuStorage::F32(out), self.out_shape(&d)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        p: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<Grads> {
        self.backward(x, w, Some(p), res, grad)
    }
}
