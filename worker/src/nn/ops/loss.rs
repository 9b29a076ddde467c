//! Softmax cross-entropy (`log_softmax` then the mean negative log-likelihood) as one op.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, bail};

use crate::nn::raw;

/// The mean over the batch of `−log softmax(logits)[label]`: `logits` (n, classes) f32,
/// `labels` (n,) u32. A scalar tensor.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let op = CrossEntropy {
        probs: Mutex::new(Vec::new()),
    };
    logits.contiguous()?.apply_op2(&labels.contiguous()?, op)
}

#[derive(Debug)]
struct CrossEntropy {
    /// softmax(logits) of the forward.
    probs: Mutex<Vec<f32>>,
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (&[n, k], &[nl]) = (l1.dims(), l2.dims()) else {
            bail!(
                "cross-entropy: logits {:?} and labels {:?}, expected (n, classes) and (n,)",
                l1.dims(),
                l2.dims()
            )
        };
        if n != nl || n == 0 {
            bail!("cross-entropy: {n} rows of logits and {nl} labels")
        }
        let logits = raw::slice(s1, l1, "cross-entropy")?;
        let labels = raw::slice_u32(s2, l2, "cross-entropy")?;
        let mut probs = vec![0.0; n * k];
        let mut loss = 0.0f64;
        for ((row, p), &label) in logits.chunks(k).zip(probs.chunks_mut(k)).zip(labels) {
            let label = label as usize;
            if label >= k {
                bail!("cross-entropy: label {label} but only {k} classes")
            }
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for (p, &v) in p.iter_mut().zip(row) {
                *p = (v - max).exp();
                sum += *p;
            }
            p.iter_mut().for_each(|v| *v /= sum);
            loss += f64::from(sum.ln() + max - row[label]);
        }
        *self.probs.lock().expect("cross-entropy state") = probs;
        Ok((
            CpuStorage::F32(vec![(loss / n as f64) as f32]),
            Shape::from(()),
        ))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        labels: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if !raw::needs_grad(logits) {
            return Ok((None, None));
        }
        let (n, k) = logits.dims2()?;
        let scale = grad.to_scalar::<f32>()? / n as f32;
        let labels = labels.to_vec1::<u32>()?;
        let mut d = self.probs.lock().expect("cross-entropy state").clone();
        for (row, &label) in d.chunks_mut(k).zip(&labels) {
            row[label as usize] -= 1.0;
            row.iter_mut().for_each(|v| *v *= scale);
        }
        Ok((Some(raw::tensor(d, (n, k))?), None))
    }
}
