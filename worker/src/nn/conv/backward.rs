//! The conv block's backward and its candle op impls.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::direct::Pre;
use super::engine::{Engine, ZLayout};
use super::{ConvBlock, Dims, Saved, for_each_row};
use crate::nn::elementwise::{self, affine2, centred_sums};
use crate::nn::raw::{self, needs_grad};
use crate::nn::{flops, norm, par, pool, scratch};

/// Gradients of (x, w, affine).
type Grads = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

/// Per channel: `dz = a·dy + b·ẑ + c` (batch norm's backward).
type Coefs = (Vec<f32>, Vec<f32>, Vec<f32>);

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
        let g = d.g;
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
        let engine = Engine::new(&g, d.len);
        let zl = engine.z_layout(d.len);
        let grad_weights = need_x.then(|| engine.grad_weights(wv));
        flops::add(
            (usize::from(need_x) + usize::from(need_w)) * d.n * g.c_out * g.k_dim() * g.out_hw(),
        );
        let c_out = g.c_out;
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
        let ctx = Ctx {
            d,
            zl,
            scale: &scale,
            shift: &shift,
            out,
            dout,
            saved: &saved,
        };
        // Batch norm needs Σdy and Σdy·ẑ over the whole batch before any dz: a first pass.
        let mut dy_full = Vec::new();
        let mut coefs: Option<Coefs> = None;
        let mut norm_grad = None;
        if let (Some(mode), Some(gb)) = (&self.norm, pv) {
            dy_full = par::zeros(d.n_chunks() * zl.chunk);
            let items: Vec<_> = par::chunks_mut(&mut dy_full, zl.chunk, 1, d.n_chunks())
                .into_iter()
                .enumerate()
                .collect();
            let parts = par::map(items, |(idx, dy)| {
                let (first, cnt) = d.chunk_images(idx);
                self.unpool_chunk(&ctx, idx, first, cnt, dy);
                dy_zhat_sums(&ctx, cnt, dy, &saved.z[idx * zl.chunk..][..zl.chunk])
            });
            let sums = par::sum_in_order_f64(parts);
            coefs = Some(norm::backward_coefs(
                mode.train,
                &gb[..c_out],
                &saved.invstd,
                &sums,
                d.n * g.out_hw(),
            ));
            let mut dgb: Vec<f32> = sums[c_out..].iter().map(|&v| v as f32).collect();
            dgb.extend(sums[..c_out].iter().map(|&v| v as f32));
            norm_grad = Some(dgb);
        }
        let mut dx = par::zeros(if need_x { d.n * g.in_len() } else { 0 });
        let items: Vec<_> = par::chunks_mut(&mut dx, g.in_len(), d.len, d.n_chunks())
            .into_iter()
            .enumerate()
            .collect();
        let parts = par::map(items, |(idx, dx_chunk)| {
            let (first, cnt) = d.chunk_images(idx);
            scratch::with_scratch([zl.chunk], |[dz]| {
                zl.zero_off_planes(&g, cnt, dz);
                match &coefs {
                    Some(coefs) => {
                        let at = idx * zl.chunk;
                        let (dy, z) = (&dy_full[at..][..zl.chunk], &saved.z[at..][..zl.chunk]);
                        apply_norm_backward(&ctx, cnt, coefs, dy, z, dz);
                    }
                    None => self.unpool_chunk(&ctx, idx, first, cnt, dz),
                }
                let mut db = vec![0.0; c_out];
                if coefs.is_none() && affine.is_some_and(needs_grad) {
                    for_each_row(&g, &zl, cnt, |c, row| db[c] += elementwise::sum(row), dz);
                }
                let mut dw = vec![0.0; if need_w { engine.grad_len() } else { 0 }];
                if need_w {
                    engine.weight_grad(&xv[first * g.in_len()..], dz, cnt, &mut dw, &Pre::Identity);
                }
                if let Some(gw) = &grad_weights {
                    engine.input_grad(gw, dz, cnt, dx_chunk);
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
            Some(raw::tensor(
                engine.finish_grad(par::sum_in_order(dws)),
                w.shape().clone(),
            )?)
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

    /// The gradient before pooling and ReLU of one chunk's images, into `dy` (zeroed, the
    /// engine's layout).
    fn unpool_chunk(&self, ctx: &Ctx<'_>, idx: usize, first: usize, cnt: usize, dy: &mut [f32]) {
        let (d, zl) = (&ctx.d, &ctx.zl);
        let len = zl.plane_len(&d.g);
        for i in 0..cnt {
            for co in 0..d.g.c_out {
                let at = ((first + i) * d.g.c_out + co) * d.out_plane;
                let plane = self.plane(d, zl, ctx.scale[co], ctx.shift[co]);
                let zi = zl.at(i, co);
                let saved = ctx.saved;
                let z = if saved.z.is_empty() {
                    None
                } else {
                    Some(&saved.z[idx * zl.chunk + zi..][..len])
                };
                let argmax = if saved.argmax.is_empty() {
                    &[][..]
                } else {
                    &saved.argmax[at..at + d.out_plane]
                };
                pool::backward(
                    self.spec.pool,
                    &plane,
                    &ctx.out[at..at + d.out_plane],
                    z,
                    &ctx.dout[at..at + d.out_plane],
                    argmax,
                    &mut dy[zi..zi + len],
                );
            }
        }
    }
}

/// What the backward's passes share.
struct Ctx<'a> {
    d: Dims,
    zl: ZLayout,
    scale: &'a [f32],
    shift: &'a [f32],
    out: &'a [f32],
    dout: &'a [f32],
    saved: &'a Saved,
}

/// `[Σdy…, Σdy·ẑ…]` per channel of one chunk, ẑ = (z − μ)/σ.
fn dy_zhat_sums(ctx: &Ctx<'_>, cnt: usize, dy: &[f32], z: &[f32]) -> Vec<f64> {
    let (g, zl, saved) = (&ctx.d.g, &ctx.zl, ctx.saved);
    let c_out = g.c_out;
    let mut sums = vec![0.0; 2 * c_out];
    for i in 0..cnt {
        for c in 0..c_out {
            // The junk columns of dy are zero: the whole plane's span can be summed.
            let (at, len) = (zl.at(i, c), zl.plane_len(g));
            let (s, sz) = centred_sums(&dy[at..][..len], &z[at..][..len], saved.mean[c]);
            sums[c] += f64::from(s);
            sums[c_out + c] += f64::from(sz * saved.invstd[c]);
        }
    }
    sums
}

/// `dz = a·dy + b·ẑ + c` per channel, on the output pixels only (junk columns stay zero).
fn apply_norm_backward(
    ctx: &Ctx<'_>,
    cnt: usize,
    coefs: &Coefs,
    dy: &[f32],
    z: &[f32],
    dz: &mut [f32],
) {
    let (g, zl, saved) = (&ctx.d.g, &ctx.zl, ctx.saved);
    let (a, b, c) = coefs;
    for i in 0..cnt {
        for ch in 0..g.c_out {
            let bz = b[ch] * saved.invstd[ch];
            let k = c[ch] - bz * saved.mean[ch];
            // Contiguous planes in one pass; rows one by one where junk columns must stay zero.
            let (rows, w) = if zl.rs == g.out_w {
                (1, g.out_hw())
            } else {
                (g.out_h, g.out_w)
            };
            for r in 0..rows {
                let at = zl.at(i, ch) + r * zl.rs;
                affine2(
                    &mut dz[at..][..w],
                    &dy[at..][..w],
                    &z[at..][..w],
                    a[ch],
                    bz,
                    k,
                );
            }
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
