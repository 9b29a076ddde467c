//! AdamW that updates each variable and its two moments in place in one pass
//! (candle-nn's `AdamW` builds about ten temporary tensors per variable and step).
//! The same update as PyTorch's and candle-nn's AdamW, with the same defaults.

use std::cell::RefCell;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, InplaceOp2, Layout, Result, Tensor, Var, bail};
use candle_nn::{Optimizer, ParamsAdamW};

use super::raw;

/// AdamW over a set of variables; variables without a gradient in a step are left alone.
#[derive(Debug)]
pub struct FusedAdamW {
    vars: Vec<Moments>,
    params: ParamsAdamW,
    step_t: i32,
}

#[derive(Debug)]
struct Moments {
    var: Var,
    first: Vec<f32>,
    second: Vec<f32>,
}

impl Optimizer for FusedAdamW {
    type Config = ParamsAdamW;

    fn new(vars: Vec<Var>, params: ParamsAdamW) -> Result<Self> {
        let vars = vars
            .into_iter()
            .filter(|var| var.dtype().is_float())
            .map(|var| {
                let n = var.elem_count();
                Moments {
                    var,
                    first: vec![0.0; n],
                    second: vec![0.0; n],
                }
            })
            .collect();
        Ok(FusedAdamW {
            vars,
            params,
            step_t: 0,
        })
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step_t += 1;
        let p = &self.params;
        let step = Step {
            lr: p.lr as f32,
            decay: (1.0 - p.lr * p.weight_decay) as f32,
            beta1: p.beta1 as f32,
            beta2: p.beta2 as f32,
            scale_m: (1.0 / (1.0 - p.beta1.powi(self.step_t))) as f32,
            scale_v: (1.0 / (1.0 - p.beta2.powi(self.step_t))) as f32,
            eps: p.eps as f32,
        };
        let work: Vec<(&mut Moments, Tensor)> = self
            .vars
            .iter_mut()
            .filter_map(|m| grads.get(m.var.as_tensor()).map(|g| (m, g.clone())))
            .collect();
        let results = super::par::map(work, |(m, grad)| -> Result<()> {
            let op = StepOp {
                step,
                moments: RefCell::new((&mut m.first, &mut m.second)),
            };
            m.var.as_tensor().inplace_op2(&grad.contiguous()?, &op)
        });
        results.into_iter().collect()
    }

    fn learning_rate(&self) -> f64 {
        self.params.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }
}

#[derive(Debug, Clone, Copy)]
struct Step {
    lr: f32,
    decay: f32,
    beta1: f32,
    beta2: f32,
    scale_m: f32,
    scale_v: f32,
    eps: f32,
}

struct StepOp<'a> {
    step: Step,
    moments: RefCell<(&'a mut Vec<f32>, &'a mut Vec<f32>)>,
}

impl InplaceOp2 for StepOp<'_> {
    fn name(&self) -> &'static str {
        "adamw-step"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let grad = raw::slice(s2, l2, "adamw")?;
        let CpuStorage::F32(data) = s1 else {
            bail!("adamw: expected an f32 variable")
        };
        let Some((start, end)) = l1.contiguous_offsets() else {
            bail!("adamw: the variable is not contiguous")
        };
        let theta = &mut data[start..end];
        let mut moments = self.moments.borrow_mut();
        let (m, v) = &mut *moments;
        if theta.len() != grad.len() || m.len() != grad.len() {
            bail!(
                "adamw: variable of {} values, gradient of {}",
                theta.len(),
                grad.len()
            )
        }
        update(theta, m, v, grad, self.step);
        Ok(())
    }
}

super::simd::multiversion!(
    /// One AdamW step of a variable `theta` with moments `m` and `v`.
    fn update(theta: &mut [f32], m: &mut [f32], v: &mut [f32], grad: &[f32], s: Step) -> () = update_body;
);

#[inline(always)]
fn update_body(theta: &mut [f32], m: &mut [f32], v: &mut [f32], grad: &[f32], s: Step) {
    for (((t, m), v), &g) in theta
        .iter_mut()
        .zip(m.iter_mut())
        .zip(v.iter_mut())
        .zip(grad)
    {
        *m = s.beta1 * *m + (1.0 - s.beta1) * g;
        *v = s.beta2 * *v + (1.0 - s.beta2) * g * g;
        let update = (*m * s.scale_m) / ((*v * s.scale_v).sqrt() + s.eps);
        *t = *t * s.decay - s.lr * update;
    }
}
