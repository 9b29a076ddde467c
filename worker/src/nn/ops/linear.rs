//! A fully connected layer `relu?(x · wᵀ + b)` as one op.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, bail};

use crate::nn::gemm::{Mat, matmul};
use crate::nn::raw::{self, needs_grad};

/// `relu?(x · wᵀ + b)` for `x` (n, in), `w` (out, in), `b` (out,).
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor, relu: bool) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, Linear { relu })
}

#[derive(Debug)]
struct Linear {
    relu: bool,
}

fn dims(x: &Layout, w: &Layout, b: &Layout) -> Result<(usize, usize, usize)> {
    match (x.dims(), w.dims(), b.dims()) {
        (&[n, i], &[o, wi], &[bo]) if i == wi && o == bo => Ok((n, i, o)),
        (xd, wd, bd) => bail!(
            "linear: input {xd:?}, weight {wd:?} and bias {bd:?} do not fit (n, in), (out, in), (out,)"
        ),
    }
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "linear"
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
        let (n, i, o) = dims(l1, l2, l3)?;
        let (x, w, b) = (
            raw::slice(s1, l1, "linear")?,
            raw::slice(s2, l2, "linear")?,
            raw::slice(s3, l3, "linear")?,
        );
        crate::nn::flops::add(n * i * o);
        let mut out: Vec<f32> = (0..n).flat_map(|_| b.iter().copied()).collect();
        matmul(&mut out, true, Mat::rows(x, n, i), Mat::rows(w, o, i).t());
        if self.relu {
            out.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        Ok((CpuStorage::F32(out), Shape::from((n, o))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, i, o) = dims(x.layout(), w.layout(), b.layout())?;
        let mut dy = raw::to_vec(grad, "linear")?;
        if self.relu {
            raw::with_slice(res, "linear", |out| {
                for (g, &y) in dy.iter_mut().zip(out) {
                    if y <= 0.0 {
                        *g = 0.0;
                    }
                }
            })?;
        }
        let dy_m = Mat::rows(&dy, n, o);
        crate::nn::flops::add(
            (usize::from(needs_grad(x)) + usize::from(needs_grad(w))) * n * i * o,
        );
        let dx = if needs_grad(x) {
            let mut dx = vec![0.0; n * i];
            raw::with_slice(w, "linear", |w| {
                matmul(&mut dx, false, dy_m, Mat::rows(w, o, i))
            })?;
            Some(raw::tensor(dx, (n, i))?)
        } else {
            None
        };
        let dw = if needs_grad(w) {
            let mut dw = vec![0.0; o * i];
            raw::with_slice(x, "linear", |x| {
                matmul(&mut dw, false, dy_m.t(), Mat::rows(x, n, i))
            })?;
            Some(raw::tensor(dw, (o, i))?)
        } else {
            None
        };
        let db = if needs_grad(b) {
            let mut db = vec![0.0; o];
            for row in dy.chunks(o) {
                db.iter_mut().zip(row).for_each(|(d, g)| *d += g);
            }
            Some(raw::tensor(db, o)?)
        } else {
            None
        };
        Ok((dx, dw, db))
    }
}
