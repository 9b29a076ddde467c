//! The pre-activation conv: `[x, pool(conv(relu(bn(x)), w))]` as one candle op, for
//! DenseNet's layers (concatenated to their input) and transitions (then 2×2 average
//! pooling).
//!
//! Batch norm and ReLU are applied while the input is copied into the convolution's
//! padded layout, so the normalised input is never stored; its gradient is formed in
//! the buffer of the input's gradient and turned into the input's gradient in place,
//! to which the concatenated part's gradient is added: one gradient per op for candle.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, bail};

use super::direct::Pre;
use super::engine::Engine;
use super::{Geom, NormMode};
use crate::nn::elementwise::{affine_add, relu_mask_sums};
use crate::nn::norm::{add_sums, backward_coefs, norm_stats};
use crate::nn::pool::{self, Plane, Pool};
use crate::nn::raw::{self, needs_grad};
use crate::nn::{flops, par, scratch};

/// Floats (input and conv output, roughly) one chunk of images may use.
const CHUNK_BUDGET: usize = 1 << 18;

/// The convolution and what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreActSpec {
    /// Kernel side (stride 1).
    pub kernel: usize,
    /// Zeros on every side.
    pub padding: usize,
    /// Pooling after the convolution (`None` or `Avg2`).
    pub pool: Pool,
    /// Whether the output is the input followed by the new channels.
    pub concat: bool,
}

/// `[x, pool(conv(relu(bn(x)), w))]` (or without `x` when `spec.concat` is false) for `x`
/// (n, c, h, w), `w` (c_out, c, k, k) and `gb` = batch norm's stacked weight and bias (2, c).
pub fn preact_conv(
    x: &Tensor,
    w: &Tensor,
    gb: &Tensor,
    spec: PreActSpec,
    norm: NormMode,
) -> Result<Tensor> {
    let op = PreActConv {
        spec,
        norm,
        saved: Mutex::new((Vec::new(), Vec::new())),
    };
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &gb.contiguous()?, op)
}

#[derive(Debug)]
struct PreActConv {
    spec: PreActSpec,
    norm: NormMode,
    /// Mean and 1/σ of the forward.
    saved: Mutex<(Vec<f32>, Vec<f32>)>,
}

#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    g: Geom,
    len: usize,
    /// Channels and pixels of the output.
    out_c: usize,
    out_plane: usize,
}

impl Dims {
    fn chunk(&self, idx: usize) -> (usize, usize) {
        (idx * self.len, self.len.min(self.n - idx * self.len))
    }
    fn n_chunks(&self) -> usize {
        self.n.div_ceil(self.len)
    }
    fn hw(&self) -> usize {
        self.g.height * self.g.width
    }
}

impl PreActConv {
    fn dims(&self, x: &Layout, w: &Layout, gb: &Layout) -> Result<Dims> {
        let (n, c_in, h, wd) = raw::dims4(x, "pre-activation conv")?;
        let (c_out, wc, kh, kw) = raw::dims4(w, "pre-activation conv weight")?;
        let k = self.spec.kernel;
        if (wc, kh, kw) != (c_in, k, k) || gb.dims() != [2, c_in] {
            bail!(
                "pre-activation conv: weight {:?} and norm {:?} do not fit {c_in} channels and a {k}×{k} kernel",
                w.dims(),
                gb.dims()
            )
        }
        let g = Geom::new((c_in, h, wd), c_out, k, 1, self.spec.padding)?;
        let (ph, pw) = self.spec.pool.out_dims(g.out_h, g.out_w);
        if self.spec.concat && (self.spec.pool != Pool::None || (g.out_h, g.out_w) != (h, wd)) {
            bail!("pre-activation conv: concatenation needs an output of the input's size")
        }
        let per_image = g.in_len() + 2 * c_out * g.out_hw();
        Ok(Dims {
            n,
            g,
            len: par::chunk_len(n, per_image, CHUNK_BUDGET),
            out_c: if self.spec.concat { c_in } else { 0 } + c_out,
            out_plane: ph * pw,
        })
    }

    fn plane(&self, d: &Dims, rs: usize) -> Plane {
        Plane {
            height: d.g.out_h,
            width: d.g.out_w,
            row_stride: rs,
            scale: 1.0,
            shift: 0.0,
            relu: false,
        }
    }

    fn forward(&self, x: &[f32], w: &[f32], gb: &[f32], d: Dims) -> Vec<f32> {
        let (g, hw) = (d.g, d.hw());
        let chunks: Vec<&[f32]> = x.chunks(d.len * g.in_len()).collect();
        let sums = if self.norm.train {
            par::map(chunks.clone(), |xc| {
                let mut sums = vec![0.0; 2 * g.c_in];
                for (p, plane) in xc.chunks(hw).enumerate() {
                    add_sums(&mut sums, g.c_in, p % g.c_in, plane);
                }
                sums
            })
        } else {
            Vec::new()
        };
        let (mean, invstd) = norm_stats(&self.norm, &sums, d.n * hw, g.c_in);
        let scale: Vec<f32> = (0..g.c_in).map(|c| gb[c] * invstd[c]).collect();
        let shift: Vec<f32> = (0..g.c_in)
            .map(|c| gb[g.c_in + c] - mean[c] * scale[c])
            .collect();
        let pre = Pre::BnRelu {
            scale: &scale,
            shift: &shift,
        };
        let engine = Engine::new(&g, d.len);
        let (packed, zl) = (engine.pack(w), engine.z_layout(d.len));
        flops::add(d.n * g.c_out * g.k_dim() * g.out_hw());
        let mut out = par::zeros(d.n * d.out_c * d.out_plane);
        let items: Vec<_> = par::chunks_mut(&mut out, d.out_c * d.out_plane, d.len, d.n_chunks())
            .into_iter()
            .zip(chunks)
            .collect();
        let first_new = d.out_c - g.c_out;
        par::map(items, |(oc, xc)| {
            let cnt = xc.len() / g.in_len();
            scratch::with_scratch([zl.chunk], |[z]| {
                engine.forward(&packed, xc, cnt, z, &pre);
                let plane = self.plane(&d, zl.rs);
                for i in 0..cnt {
                    let img = &mut oc[i * d.out_c * d.out_plane..][..d.out_c * d.out_plane];
                    if self.spec.concat {
                        img[..g.in_len()].copy_from_slice(&xc[i * g.in_len()..][..g.in_len()]);
                    }
                    for co in 0..g.c_out {
                        let o = &mut img[(first_new + co) * d.out_plane..][..d.out_plane];
                        pool::forward(
                            self.spec.pool,
                            &plane,
                            &z[zl.at(i, co)..][..zl.plane_len(&g)],
                            o,
                            &mut [],
                        );
                    }
                }
            });
        });
        *self.saved.lock().expect("pre-activation state") = (mean, invstd);
        out
    }

    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        gb: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let d = self.dims(x.layout(), w.layout(), gb.layout())?;
        let (g, hw) = (d.g, d.hw());
        let grad = grad.contiguous()?;
        let (xs, xl) = x.storage_and_layout();
        let xv = raw::storage_slice(&xs, xl, "pre-activation conv")?;
        let (ws, wl) = w.storage_and_layout();
        let wv = raw::storage_slice(&ws, wl, "pre-activation conv")?;
        let (gs, gl) = grad.storage_and_layout();
        let dout = raw::storage_slice(&gs, gl, "pre-activation conv")?;
        let gbv = raw::to_vec(gb, "pre-activation conv")?;
        let (mean, invstd) = &*self.saved.lock().expect("pre-activation state");
        let scale: Vec<f32> = (0..g.c_in).map(|c| gbv[c] * invstd[c]).collect();
        let shift: Vec<f32> = (0..g.c_in)
            .map(|c| gbv[g.c_in + c] - mean[c] * scale[c])
            .collect();
        let pre = Pre::BnRelu {
            scale: &scale,
            shift: &shift,
        };
        let (need_x, need_w, need_gb) = (needs_grad(x), needs_grad(w), needs_grad(gb));
        let need_dy = need_x || need_gb;
        let engine = Engine::new(&g, d.len);
        let zl = engine.z_layout(d.len);
        let grad_weights = need_dy.then(|| engine.grad_weights(wv));
        flops::add(
            (usize::from(need_dy) + usize::from(need_w)) * d.n * g.c_out * g.k_dim() * g.out_hw(),
        );
        let first_new = d.out_c - g.c_out;
        // dy (the gradient before ReLU and batch norm) is formed in the input gradient's buffer.
        let mut dx = par::zeros(if need_dy { d.n * g.in_len() } else { 0 });
        let items: Vec<_> = par::chunks_mut(&mut dx, g.in_len(), d.len, d.n_chunks())
            .into_iter()
            .enumerate()
            .collect();
        let parts = par::map(items, |(idx, dy)| {
            let (first, cnt) = d.chunk(idx);
            let xc = &xv[first * g.in_len()..][..cnt * g.in_len()];
            scratch::with_scratch([zl.chunk], |[dz]| {
                zl.zero_off_planes(&g, cnt, dz);
                let plane = self.plane(&d, zl.rs);
                for i in 0..cnt {
                    for co in 0..g.c_out {
                        let at = ((first + i) * d.out_c + first_new + co) * d.out_plane;
                        let go = &dout[at..][..d.out_plane];
                        let dzp = &mut dz[zl.at(i, co)..][..zl.plane_len(&g)];
                        pool::backward(self.spec.pool, &plane, go, None, go, &[], dzp);
                    }
                }
                let mut dw = vec![0.0; if need_w { engine.grad_len() } else { 0 }];
                if need_w {
                    engine.weight_grad(xc, dz, cnt, &mut dw, &pre);
                }
                let mut sums = vec![0.0f64; 2 * g.c_in];
                if let Some(gw) = &grad_weights {
                    engine.input_grad(gw, dz, cnt, dy);
                    for (p, (dy_plane, x_plane)) in dy.chunks_mut(hw).zip(xc.chunks(hw)).enumerate()
                    {
                        let c = p % g.c_in;
                        let (s, sx) =
                            relu_mask_sums(dy_plane, x_plane, scale[c], shift[c], mean[c]);
                        sums[c] += f64::from(s);
                        sums[g.c_in + c] += f64::from(sx * invstd[c]);
                    }
                }
                (dw, sums)
            })
        });
        let (dws, sums): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
        let sums = par::sum_in_order_f64(sums);
        let dgb = need_gb.then(|| {
            let mut dgb: Vec<f32> = sums[g.c_in..].iter().map(|&v| v as f32).collect();
            dgb.extend(sums[..g.c_in].iter().map(|&v| v as f32));
            dgb
        });
        if need_x {
            let (a, b, k) =
                backward_coefs(self.norm.train, &gbv[..g.c_in], invstd, &sums, d.n * hw);
            let items: Vec<_> = par::chunks_mut(&mut dx, g.in_len(), d.len, d.n_chunks())
                .into_iter()
                .enumerate()
                .collect();
            par::map(items, |(idx, dxc)| {
                let (first, _) = d.chunk(idx);
                for (p, dx_plane) in dxc.chunks_mut(hw).enumerate() {
                    let (i, c) = (first + p / g.c_in, p % g.c_in);
                    let x_plane = &xv[(i * g.c_in + c) * hw..][..hw];
                    let (bx, k0) = (b[c] * invstd[c], k[c] - b[c] * invstd[c] * mean[c]);
                    let passed = if self.spec.concat {
                        &dout[(i * d.out_c + c) * d.out_plane..][..hw]
                    } else {
                        &[][..]
                    };
                    affine_add(dx_plane, x_plane, a[c], bx, k0, passed);
                }
            });
        }
        let dx = need_x
            .then(|| raw::tensor(dx, x.shape().clone()))
            .transpose()?;
        let dw = need_w
            .then(|| {
                raw::tensor(
                    engine.finish_grad(par::sum_in_order(dws)),
                    w.shape().clone(),
                )
            })
            .transpose()?;
        let dgb = dgb
            .map(|v| raw::tensor(v, gb.shape().clone()))
            .transpose()?;
        Ok([dx, dw, dgb])
    }
}

impl CustomOp3 for PreActConv {
    fn name(&self) -> &'static str {
        "pre-activation-conv"
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
        let d = self.dims(l1, l2, l3)?;
        let name = "pre-activation conv";
        if !self.norm.train && self.norm.running_mean.len() != d.g.c_in {
            bail!(
                "{name}: {} channels but {} running statistics",
                d.g.c_in,
                self.norm.running_mean.len()
            )
        }
        let out = self.forward(
            raw::slice(s1, l1, name)?,
            raw::slice(s2, l2, name)?,
            raw::slice(s3, l3, name)?,
            d,
        );
        let (ph, pw) = self.spec.pool.out_dims(d.g.out_h, d.g.out_w);
        Ok((CpuStorage::F32(out), Shape::from((d.n, d.out_c, ph, pw))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        gb: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, dgb] = self.backward(x, w, gb, grad)?;
        Ok((dx, dw, dgb))
    }
}
