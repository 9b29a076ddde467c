//! Each op's gradients against central finite differences of Σ out·weights (in f64).
//!
//! Coordinates where the op is not smooth at the step's scale (a ReLU or a max-pool
//! winner flips) are recognised by two step sizes disagreeing, and skipped; most
//! coordinates must be checked.

use candle_core::{Device, Result, Tensor, Var};

use super::against_candle::train_mode;
use super::{random_tensor, random_var, run};
use crate::nn::conv::{BlockSpec, PreActSpec, conv_block, preact_conv};
use crate::nn::ops::{
    batch_norm, concat_channels, cross_entropy, global_avg_pool, linear, pool2x2,
};
use crate::nn::pool::Pool;

/// Step of the central difference.
const STEP: f32 = 2e-3;
/// Largest error allowed, relative to the largest gradient of the input.
const FD_TOLERANCE: f64 = 1e-2;

/// Σ out·weights in f64.
fn objective(f: &dyn Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor], weights: &[f32]) -> f64 {
    let out = super::flat(&f(inputs).unwrap());
    out.iter()
        .zip(weights)
        .map(|(&o, &w)| f64::from(o) * f64::from(w))
        .sum()
}

fn central(
    f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Var],
    weights: &[f32],
    which: usize,
    at: usize,
    step: f32,
) -> f64 {
    let base = super::flat(inputs[which].as_tensor());
    let eval = |delta: f32| {
        let mut values = base.clone();
        values[at] += delta;
        let moved = Tensor::from_vec(values, inputs[which].dims(), &Device::Cpu).unwrap();
        let tensors: Vec<Tensor> = inputs
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if i == which {
                    moved.clone()
                } else {
                    v.as_tensor().clone()
                }
            })
            .collect();
        objective(f, &tensors, weights)
    };
    (eval(step) - eval(-step)) / (2.0 * f64::from(step))
}

fn check(name: &str, f: &dyn Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Var]) {
    let (out, grads) = run(f, inputs, 7);
    let weights = super::flat(&random_tensor(&[out.len()], 7));
    for (which, grad) in grads.iter().enumerate() {
        let grad = grad
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: input {which} has no gradient"));
        let scale = grad.iter().map(|g| f64::from(g.abs())).fold(1e-3, f64::max);
        let stride = (grad.len() / 40).max(1);
        let (mut checked, mut skipped) = (0, 0);
        for at in (0..grad.len()).step_by(stride) {
            let fd = central(f, inputs, &weights, which, at, STEP);
            let fd_half = central(f, inputs, &weights, which, at, STEP / 2.0);
            if (fd - fd_half).abs() > FD_TOLERANCE * scale {
                skipped += 1;
                continue;
            }
            let err = (fd - f64::from(grad[at])).abs() / scale;
            assert!(
                err < FD_TOLERANCE,
                "{name}: input {which}[{at}]: analytic {} vs finite difference {fd} (error {err})",
                grad[at]
            );
            checked += 1;
        }
        assert!(
            checked >= 2 * skipped.max(1),
            "{name}: input {which}: only {checked} smooth coordinates ({skipped} skipped)"
        );
    }
}

fn block(kernel: usize, stride: usize, padding: usize, relu: bool, pool: Pool) -> BlockSpec {
    BlockSpec {
        kernel,
        stride,
        padding,
        relu,
        pool,
    }
}

#[test]
fn conv_blocks() {
    // The last two: stride 2 where the last window stops short of the edge.
    let cases = [
        (Pool::None, false, 1, 1, 7),
        (Pool::Max2, true, 1, 1, 7),
        (Pool::Avg2, true, 2, 0, 7),
        (Pool::Avg2, false, 1, 1, 7),
        (Pool::None, true, 2, 1, 8),
        (Pool::Max2, false, 2, 0, 10),
    ];
    for (pool, relu, s, p, side) in cases {
        let inputs = [
            random_var(&[2, 2, side, side], 1),
            random_var(&[3, 2, 3, 3], 2),
            random_var(&[3], 3),
        ];
        let f = move |t: &[Tensor]| {
            conv_block(&t[0], &t[1], Some(&t[2]), block(3, s, p, relu, pool), None)
        };
        check(&format!("conv block {pool:?} relu={relu}"), &f, &inputs);
    }
    let inputs = [
        random_var(&[3, 2, 6, 5], 4),
        random_var(&[4, 2, 3, 3], 5),
        random_var(&[4], 6),
        random_var(&[4], 7),
    ];
    let f = |t: &[Tensor]| {
        let gb = Tensor::stack(&[&t[2], &t[3]], 0)?;
        conv_block(
            &t[0],
            &t[1],
            Some(&gb),
            block(3, 1, 1, true, Pool::Max2),
            Some(train_mode()),
        )
    };
    check("conv block with batch norm", &f, &inputs);
}

#[test]
fn pre_activation_convs() {
    for (pool, concat, k, p) in [(Pool::None, true, 3, 1), (Pool::Avg2, false, 1, 0)] {
        let inputs = [
            random_var(&[3, 2, 6, 6], 1),
            random_var(&[2, 2, k, k], 2),
            random_var(&[2, 2], 3),
        ];
        let spec = PreActSpec {
            kernel: k,
            padding: p,
            pool,
            concat,
        };
        let f = move |t: &[Tensor]| preact_conv(&t[0], &t[1], &t[2], spec, train_mode());
        check(
            &format!("pre-activation conv {pool:?} concat={concat}"),
            &f,
            &inputs,
        );
    }
}

#[test]
fn batch_norm_pools_concat_linear_and_loss() {
    let inputs = [
        random_var(&[4, 3, 3, 5], 1),
        random_var(&[3], 2),
        random_var(&[3], 3),
    ];
    check(
        "batch norm",
        &|t: &[Tensor]| batch_norm(&t[0], &t[1], &t[2], true, train_mode()),
        &inputs,
    );
    let inputs = [random_var(&[2, 2, 5, 7], 4)];
    check(
        "max pool",
        &|t: &[Tensor]| pool2x2(&t[0], Pool::Max2),
        &inputs,
    );
    check(
        "avg pool",
        &|t: &[Tensor]| pool2x2(&t[0], Pool::Avg2),
        &inputs,
    );
    check(
        "global avg pool",
        &|t: &[Tensor]| global_avg_pool(&t[0]),
        &inputs,
    );
    let inputs = [random_var(&[2, 1, 3, 3], 5), random_var(&[2, 2, 3, 3], 6)];
    check(
        "concat",
        &|t: &[Tensor]| concat_channels(&t[0], &t[1]),
        &inputs,
    );
    let inputs = [
        random_var(&[4, 6], 7),
        random_var(&[5, 6], 8),
        random_var(&[5], 9),
    ];
    check(
        "linear",
        &|t: &[Tensor]| linear(&t[0], &t[1], &t[2], true),
        &inputs,
    );
    let labels = Tensor::from_slice(&[0u32, 4, 2, 1], 4, &Device::Cpu).unwrap();
    let inputs = [random_var(&[4, 5], 10)];
    check(
        "cross-entropy",
        &|t: &[Tensor]| cross_entropy(&t[0], &labels),
        &inputs,
    );
}
