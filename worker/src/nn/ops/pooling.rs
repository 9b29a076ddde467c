//! Standalone 2×2 max and average pooling (stride 2) and global average pooling.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, bail};

use crate::nn::pool::{self, Plane, Pool};
use crate::nn::raw;

/// 2×2 max or average pooling with stride 2 of `x` (n, c, h, w); an odd last row or
/// column is dropped. Max pooling sends the gradient wholly to the first maximum.
pub fn pool2x2(x: &Tensor, kind: Pool) -> Result<Tensor> {
    if kind == Pool::None {
        return Ok(x.clone());
    }
    let op = Pool2 {
        kind,
        argmax: Mutex::new(Vec::new()),
    };
    x.contiguous()?.apply_op1(op)
}

/// The mean over the height and width of `x` (n, c, h, w): an (n, c) tensor.
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(GlobalAvgPool)
}

#[derive(Debug)]
struct Pool2 {
    kind: Pool,
    argmax: Mutex<Vec<u8>>,
}

fn plane(h: usize, w: usize) -> Plane {
    Plane {
        height: h,
        width: w,
        row_stride: w,
        scale: 1.0,
        shift: 0.0,
        relu: false,
    }
}

impl CustomOp1 for Pool2 {
    fn name(&self) -> &'static str {
        "pool2x2"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = raw::dims4(layout, "pool2x2")?;
        if h < 2 || w < 2 {
            bail!("pool2x2: the input is {h}×{w}, smaller than the 2×2 window")
        }
        let x = raw::slice(storage, layout, "pool2x2")?;
        let (ph, pw) = self.kind.out_dims(h, w);
        let mut out = vec![0.0; n * c * ph * pw];
        let mut argmax = vec![
            0u8;
            if self.kind == Pool::Max2 {
                out.len()
            } else {
                0
            }
        ];
        let p = plane(h, w);
        for (idx, z) in x.chunks(h * w).enumerate() {
            let am = if argmax.is_empty() {
                &mut [][..]
            } else {
                &mut argmax[idx * ph * pw..][..ph * pw]
            };
            pool::forward(self.kind, &p, z, &mut out[idx * ph * pw..][..ph * pw], am);
        }
        *self.argmax.lock().expect("pool state") = argmax;
        Ok((CpuStorage::F32(out), Shape::from((n, c, ph, pw))))
    }

    fn bwd(&self, x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        if !raw::needs_grad(x) {
            return Ok(None);
        }
        let (_, _, h, w) = x.dims4()?;
        let (ph, pw) = self.kind.out_dims(h, w);
        let out = raw::to_vec(res, "pool2x2")?;
        let dout = raw::to_vec(grad, "pool2x2")?;
        let argmax = self.argmax.lock().expect("pool state");
        let mut dx = vec![0.0; x.elem_count()];
        let p = plane(h, w);
        for (idx, dy) in dx.chunks_mut(h * w).enumerate() {
            let at = idx * ph * pw;
            let am = if argmax.is_empty() {
                &[][..]
            } else {
                &argmax[at..at + ph * pw]
            };
            pool::backward(
                self.kind,
                &p,
                &out[at..at + ph * pw],
                None,
                &dout[at..at + ph * pw],
                am,
                dy,
            );
        }
        Ok(Some(raw::tensor(dx, x.shape().clone())?))
    }
}

#[derive(Debug)]
struct GlobalAvgPool;

impl CustomOp1 for GlobalAvgPool {
    fn name(&self) -> &'static str {
        "global-avg-pool"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = raw::dims4(layout, "global average pool")?;
        let x = raw::slice(storage, layout, "global average pool")?;
        let inv = 1.0 / (h * w) as f32;
        let out = x
            .chunks(h * w)
            .map(|plane| plane.iter().sum::<f32>() * inv)
            .collect();
        Ok((CpuStorage::F32(out), Shape::from((n, c))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        if !raw::needs_grad(x) {
            return Ok(None);
        }
        let (_, _, h, w) = x.dims4()?;
        let inv = 1.0 / (h * w) as f32;
        let dout = raw::to_vec(grad, "global average pool")?;
        let dx = dout
            .iter()
            .flat_map(|&g| std::iter::repeat_n(g * inv, h * w))
            .collect();
        Ok(Some(raw::tensor(dx, x.shape().clone())?))
    }
}
