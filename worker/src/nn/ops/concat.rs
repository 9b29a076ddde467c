//! Concatenation of two NCHW tensors along the channels (a DenseNet layer's input and output).

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, bail};

use crate::nn::raw;

/// `[a, b]` along the channels: (n, ca, h, w) and (n, cb, h, w) give (n, ca + cb, h, w).
pub fn concat_channels(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.contiguous()?.apply_op2(&b.contiguous()?, ConcatChannels)
}

#[derive(Debug)]
struct ConcatChannels;

impl CustomOp2 for ConcatChannels {
    fn name(&self) -> &'static str {
        "concat-channels"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, ca, h, w) = raw::dims4(l1, "concat")?;
        let (nb, cb, hb, wb) = raw::dims4(l2, "concat")?;
        if (n, h, w) != (nb, hb, wb) {
            bail!(
                "concat: shapes {:?} and {:?} differ beyond the channels",
                l1.dims(),
                l2.dims()
            )
        }
        let (a, b) = (raw::slice(s1, l1, "concat")?, raw::slice(s2, l2, "concat")?);
        let (la, lb) = (ca * h * w, cb * h * w);
        let mut out = Vec::with_capacity(n * (la + lb));
        for i in 0..n {
            out.extend_from_slice(&a[i * la..][..la]);
            out.extend_from_slice(&b[i * lb..][..lb]);
        }
        Ok((CpuStorage::F32(out), Shape::from((n, ca + cb, h, w))))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, ca, h, w) = a.dims4()?;
        let cb = b.dim(1)?;
        let (la, lb) = (ca * h * w, cb * h * w);
        raw::with_slice(grad, "concat", |g| {
            let split = |offset: usize, len: usize, t: &Tensor| -> Result<Option<Tensor>> {
                if !raw::needs_grad(t) {
                    return Ok(None);
                }
                let mut part = Vec::with_capacity(n * len);
                for i in 0..n {
                    part.extend_from_slice(&g[i * (la + lb) + offset..][..len]);
                }
                Ok(Some(raw::tensor(part, t.shape().clone())?))
            };
            Ok((split(0, la, a)?, split(la, lb, b)?))
        })?
    }
}
