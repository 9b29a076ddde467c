//! Each op against the same computation in candle's own ops.

use std::sync::{Arc, Mutex};

use candle_core::{D, Device, Result, Tensor, Var};

use super::{assert_same, random_tensor, random_var, run};
use crate::models::pool::max_pool2x2;
use crate::nn::conv::{BlockSpec, NormMode, PreActSpec, conv_block, preact_conv};
use crate::nn::ops::{
    batch_norm, concat_channels, cross_entropy, global_avg_pool, linear, pool2x2,
};
use crate::nn::pool::Pool;

/// (batch, c_in, height, width, c_out, kernel, stride, padding): odd sizes, batch 1,
/// stride 2, padding 0 and 1, 1×1 kernels. candle's own strided backward fails when the
/// last window does not end on the input's edge, so those shapes are left to the
/// finite-difference checks.
#[allow(clippy::type_complexity)] // one row per case reads best as a tuple
const CONV_SHAPES: [(usize, usize, usize, usize, usize, usize, usize, usize); 7] = [
    (1, 1, 5, 5, 2, 3, 1, 1),
    (2, 3, 7, 9, 4, 3, 2, 0),
    (3, 2, 9, 9, 5, 1, 1, 0),
    (2, 4, 7, 9, 3, 3, 2, 1),
    (1, 3, 8, 8, 4, 3, 1, 0),
    (9, 6, 11, 11, 7, 3, 1, 1),
    (2, 2, 9, 9, 3, 1, 2, 0),
];

fn spec(kernel: usize, stride: usize, padding: usize, relu: bool, pool: Pool) -> BlockSpec {
    BlockSpec {
        kernel,
        stride,
        padding,
        relu,
        pool,
    }
}

pub(super) fn train_mode() -> NormMode {
    NormMode {
        train: true,
        eps: 1e-5,
        running_mean: Vec::new(),
        running_var: Vec::new(),
        batch: Arc::new(Mutex::new(None)),
    }
}

/// candle's batch norm over (n, h, w) per channel, with batch statistics.
fn reference_bn(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    let c = x.dim(1)?;
    let per_channel = |t: &Tensor| t.mean_keepdim(0)?.mean_keepdim(2)?.mean_keepdim(3);
    let centred = x.broadcast_sub(&per_channel(x)?)?;
    let var = per_channel(&centred.sqr()?)?;
    centred
        .broadcast_div(&(var + 1e-5)?.sqrt()?)?
        .broadcast_mul(&gamma.reshape((1, c, 1, 1))?)?
        .broadcast_add(&beta.reshape((1, c, 1, 1))?)
}

fn reference_pool(x: &Tensor, pool: Pool) -> Result<Tensor> {
    match pool {
        Pool::None => Ok(x.clone()),
        Pool::Max2 => max_pool2x2(x),
        Pool::Avg2 => x.avg_pool2d(2),
    }
}

#[test]
fn plain_convolution_matches_candle_conv2d() {
    for (idx, &(n, ci, h, w, co, k, s, p)) in CONV_SHAPES.iter().enumerate() {
        let inputs = [
            random_var(&[n, ci, h, w], idx as u64),
            random_var(&[co, ci, k, k], 100 + idx as u64),
        ];
        let ours =
            |t: &[Tensor]| conv_block(&t[0], &t[1], None, spec(k, s, p, false, Pool::None), None);
        let reference = |t: &[Tensor]| t[0].conv2d(&t[1], p, s, 1, 1);
        assert_same(
            &format!("conv {:?}", CONV_SHAPES[idx]),
            &ours,
            &reference,
            &inputs,
        );
    }
}

#[test]
fn conv_bias_relu_and_pooling_match_candle_and_the_project_pool() {
    conv_bias_relu_pool_cases();
}

/// The conv and pre-activation cases again with each instruction set this CPU has (on
/// one thread, where the choice is made), so that machines without AVX-512 run the code
/// they will use.
#[test]
fn conv_ops_match_candle_on_every_instruction_set() {
    for isa in crate::nn::simd::available() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        pool.install(|| {
            crate::nn::simd::with_isa(isa, || {
                conv_bias_relu_pool_cases();
                pre_activation_cases();
            })
        });
    }
}

fn conv_bias_relu_pool_cases() {
    for pool in [Pool::None, Pool::Max2, Pool::Avg2] {
        for (idx, &(n, ci, h, w, co, k, s, p)) in CONV_SHAPES.iter().enumerate() {
            let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
            // candle's average-pool backward mishandles odd sizes: those are left to the
            // finite-difference checks.
            if oh < 2 || ow < 2 || (pool == Pool::Avg2 && (oh % 2 == 1 || ow % 2 == 1)) {
                continue;
            }
            let inputs = [
                random_var(&[n, ci, h, w], idx as u64),
                random_var(&[co, ci, k, k], 100 + idx as u64),
                random_var(&[co], 200 + idx as u64),
            ];
            let ours = |t: &[Tensor]| {
                conv_block(&t[0], &t[1], Some(&t[2]), spec(k, s, p, true, pool), None)
            };
            let reference = |t: &[Tensor]| {
                let z = t[0]
                    .conv2d(&t[1], p, s, 1, 1)?
                    .broadcast_add(&t[2].reshape((1, co, 1, 1))?)?;
                reference_pool(&z.relu()?, pool)
            };
            assert_same(
                &format!("conv+bias+relu+{pool:?} {:?}", CONV_SHAPES[idx]),
                &ours,
                &reference,
                &inputs,
            );
        }
    }
}

#[test]
fn conv_with_batch_norm_relu_and_max_pool_matches_candle() {
    for (idx, &(n, ci, h, w, co, k, s, p)) in CONV_SHAPES.iter().enumerate() {
        for pool in [Pool::None, Pool::Max2] {
            let inputs = [
                random_var(&[n, ci, h, w], idx as u64),
                random_var(&[co, ci, k, k], 100 + idx as u64),
                random_var(&[co], 200 + idx as u64),
                random_var(&[co], 300 + idx as u64),
            ];
            let ours = |t: &[Tensor]| {
                let gb = Tensor::stack(&[&t[2], &t[3]], 0)?;
                conv_block(
                    &t[0],
                    &t[1],
                    Some(&gb),
                    spec(k, s, p, true, pool),
                    Some(train_mode()),
                )
            };
            let reference = |t: &[Tensor]| {
                let z = reference_bn(&t[0].conv2d(&t[1], p, s, 1, 1)?, &t[2], &t[3])?;
                reference_pool(&z.relu()?, pool)
            };
            assert_same(
                &format!("conv+bn+relu+{pool:?} {:?}", CONV_SHAPES[idx]),
                &ours,
                &reference,
                &inputs,
            );
        }
    }
}

#[test]
fn batch_norm_matches_candle_in_training_and_evaluation() {
    for (idx, dims) in [[1, 3, 5, 5], [4, 2, 3, 7], [8, 5, 6, 6]]
        .iter()
        .enumerate()
    {
        for relu in [false, true] {
            let c = dims[1];
            let inputs = [
                random_var(dims, idx as u64),
                random_var(&[c], 10 + idx as u64),
                random_var(&[c], 20 + idx as u64),
            ];
            let ours = |t: &[Tensor]| batch_norm(&t[0], &t[1], &t[2], relu, train_mode());
            let reference = |t: &[Tensor]| {
                let y = reference_bn(&t[0], &t[1], &t[2])?;
                if relu { y.relu() } else { Ok(y) }
            };
            assert_same(
                &format!("batch norm {dims:?} relu={relu}"),
                &ours,
                &reference,
                &inputs,
            );
            let mean: Vec<f32> = (0..c).map(|i| 0.1 * i as f32).collect();
            let var: Vec<f32> = (0..c).map(|i| 0.5 + i as f32).collect();
            let eval = NormMode {
                train: false,
                running_mean: mean.clone(),
                running_var: var.clone(),
                ..train_mode()
            };
            let ours = |t: &[Tensor]| batch_norm(&t[0], &t[1], &t[2], relu, eval.clone());
            let reference = |t: &[Tensor]| {
                let shape = (1, c, 1, 1);
                let m = Tensor::from_slice(&mean, shape, &Device::Cpu)?;
                let v = Tensor::from_slice(&var, shape, &Device::Cpu)?;
                let y = t[0]
                    .broadcast_sub(&m)?
                    .broadcast_div(&(v + 1e-5)?.sqrt()?)?
                    .broadcast_mul(&t[1].reshape(shape)?)?
                    .broadcast_add(&t[2].reshape(shape)?)?;
                if relu { y.relu() } else { Ok(y) }
            };
            assert_same(
                &format!("batch norm (eval) {dims:?} relu={relu}"),
                &ours,
                &reference,
                &inputs,
            );
        }
    }
}

#[test]
fn max_pool_matches_the_project_pool_with_odd_sizes_and_ties() {
    for (idx, dims) in [[1, 1, 2, 2], [2, 3, 5, 7], [1, 2, 9, 4]]
        .iter()
        .enumerate()
    {
        let inputs = [random_var(dims, idx as u64)];
        assert_same(
            "max pool",
            &|t: &[Tensor]| pool2x2(&t[0], Pool::Max2),
            &|t: &[Tensor]| max_pool2x2(&t[0]),
            &inputs,
        );
    }
    // Small integers: many windows hold tied maxima; the first one takes the gradient.
    let ties: Vec<f32> = (0..2 * 3 * 6 * 6).map(|i| ((i * 7) % 3) as f32).collect();
    let inputs = [Var::from_vec(ties, (2, 3, 6, 6), &Device::Cpu).unwrap()];
    assert_same(
        "max pool (ties)",
        &|t: &[Tensor]| pool2x2(&t[0], Pool::Max2),
        &|t: &[Tensor]| max_pool2x2(&t[0]),
        &inputs,
    );
    let x = Var::from_slice(&[4f32, 4., 1., 0.], (1, 1, 2, 2), &Device::Cpu).unwrap();
    let grads = pool2x2(x.as_tensor(), Pool::Max2)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(super::flat(grads.get(&x).unwrap()), vec![1., 0., 0., 0.]);
}

#[test]
fn average_and_global_pools_match_candle() {
    let inputs = [random_var(&[3, 4, 6, 8], 1)];
    assert_same(
        "avg pool",
        &|t: &[Tensor]| pool2x2(&t[0], Pool::Avg2),
        &|t: &[Tensor]| t[0].avg_pool2d(2),
        &inputs,
    );
    let inputs = [random_var(&[3, 4, 5, 7], 2)];
    assert_same(
        "global avg pool",
        &|t: &[Tensor]| global_avg_pool(&t[0]),
        &|t: &[Tensor]| t[0].flatten_from(2)?.mean(D::Minus1),
        &inputs,
    );
}

#[test]
fn channel_concatenation_matches_candle_cat() {
    let inputs = [random_var(&[2, 3, 4, 5], 1), random_var(&[2, 6, 4, 5], 2)];
    assert_same(
        "concat",
        &|t: &[Tensor]| concat_channels(&t[0], &t[1]),
        &|t: &[Tensor]| Tensor::cat(&[&t[0], &t[1]], 1),
        &inputs,
    );
}

#[test]
fn linear_and_cross_entropy_match_candle() {
    for relu in [false, true] {
        let inputs = [
            random_var(&[5, 7], 1),
            random_var(&[3, 7], 2),
            random_var(&[3], 3),
        ];
        let reference = |t: &[Tensor]| {
            let y = t[0].matmul(&t[1].t()?)?.broadcast_add(&t[2])?;
            if relu { y.relu() } else { Ok(y) }
        };
        assert_same(
            "linear",
            &|t: &[Tensor]| linear(&t[0], &t[1], &t[2], relu),
            &reference,
            &inputs,
        );
    }
    let labels = Tensor::from_slice(&[0u32, 2, 1, 2, 0, 1], 6, &Device::Cpu).unwrap();
    let inputs = [random_var(&[6, 3], 4)];
    assert_same(
        "cross-entropy",
        &|t: &[Tensor]| cross_entropy(&(&t[0] * 3.0)?, &labels),
        &|t: &[Tensor]| candle_nn::loss::cross_entropy(&(&t[0] * 3.0)?, &labels),
        &inputs,
    );
}

#[test]
fn a_network_input_gets_no_gradient() {
    let x = random_tensor(&[2, 1, 6, 6], 1);
    let w = random_var(&[3, 1, 3, 3], 2);
    let f = |t: &[Tensor]| conv_block(&x, &t[0], None, spec(3, 1, 1, true, Pool::Max2), None);
    let (_, grads) = run(&f, std::slice::from_ref(&w), 5);
    assert!(grads[0].is_some());
    let out = f(&[w.as_tensor().clone()]).unwrap();
    let all = out.sum_all().unwrap().backward().unwrap();
    assert!(all.get(&x).is_none(), "the images got a gradient");
}

#[test]
fn pre_activation_conv_matches_candle_with_concat_and_average_pool() {
    pre_activation_cases();
}

fn pre_activation_cases() {
    // (batch, channels, side, c_out, kernel, padding, pool, concat): DenseNet's layer and
    // transition shapes, odd sizes, batch 1, planes small enough for the im2col engine.
    let cases = [
        (3, 5, 9, 4, 3, 1, Pool::None, true),
        (1, 3, 6, 2, 3, 1, Pool::None, true),
        (4, 6, 8, 3, 1, 0, Pool::Avg2, false),
        (2, 4, 5, 3, 3, 0, Pool::None, false),
        (9, 7, 3, 4, 3, 1, Pool::None, true),
    ];
    for (idx, &(n, c, side, co, k, p, pool, concat)) in cases.iter().enumerate() {
        let seed = idx as u64;
        let inputs = [
            random_var(&[n, c, side, side], seed),
            random_var(&[co, c, k, k], 100 + seed),
            random_var(&[c], 200 + seed),
            random_var(&[c], 300 + seed),
        ];
        let spec = PreActSpec {
            kernel: k,
            padding: p,
            pool,
            concat,
        };
        let ours = |t: &[Tensor]| {
            preact_conv(
                &t[0],
                &t[1],
                &Tensor::stack(&[&t[2], &t[3]], 0)?,
                spec,
                train_mode(),
            )
        };
        let reference = |t: &[Tensor]| {
            let y = reference_pool(
                &reference_bn(&t[0], &t[2], &t[3])?
                    .relu()?
                    .conv2d(&t[1], p, 1, 1, 1)?,
                pool,
            )?;
            if concat {
                Tensor::cat(&[&t[0], &y], 1)
            } else {
                Ok(y)
            }
        };
        assert_same(
            &format!("pre-activation conv {:?}", cases[idx]),
            &ours,
            &reference,
            &inputs,
        );
    }
}
