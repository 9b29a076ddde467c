//! Gradient checks: every op's output and gradients against candle's own (slow) ops
//! (max pooling against the project's `max_pool2x2`, since candle's gradient is wrong),
//! with relative error < 1e-4, and against central finite differences.

mod against_candle;
mod finite_diff;

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Largest relative error allowed against candle's ops (in the max norm).
const TOLERANCE: f32 = 1e-4;

/// A variable of the given shape with values uniform in [-1, 1).
fn random_var(dims: &[usize], seed: u64) -> Var {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = dims.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Var::from_vec(values, dims, &Device::Cpu).unwrap()
}

/// A constant tensor (no gradient) of the given shape, uniform in [-1, 1).
fn random_tensor(dims: &[usize], seed: u64) -> Tensor {
    random_var(dims, seed).as_tensor().detach()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// max |a − b| / max |b| (or the absolute error when b is all zeros).
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    let scale = b.iter().map(|y| y.abs()).fold(0.0, f32::max);
    if scale > 0.0 { diff / scale } else { diff }
}

/// The output of `f` on `inputs` and the gradients of Σ out·weights for each input.
fn run(
    f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Var],
    weights_seed: u64,
) -> (Vec<f32>, Vec<Option<Vec<f32>>>) {
    let tensors: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&tensors).unwrap();
    let weights = random_tensor(out.dims(), weights_seed);
    let loss = (&out * &weights).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let grads = tensors.iter().map(|t| grads.get(t).map(flat)).collect();
    (flat(&out), grads)
}

/// Asserts that `ours` and `reference` give the same output and gradients on `inputs`.
fn assert_same(
    name: &str,
    ours: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    reference: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Var],
) {
    let (out_a, grads_a) = run(ours, inputs, 99);
    let (out_b, grads_b) = run(reference, inputs, 99);
    let err = rel_err(&out_a, &out_b);
    assert!(err < TOLERANCE, "{name}: output relative error {err}");
    for (idx, (a, b)) in grads_a.iter().zip(&grads_b).enumerate() {
        match (a, b) {
            (Some(a), Some(b)) => {
                let err = rel_err(a, b);
                assert!(
                    err < TOLERANCE,
                    "{name}: gradient of input {idx}: relative error {err}"
                );
            }
            (None, None) => {}
            _ => panic!("{name}: input {idx} has a gradient on one side only"),
        }
    }
}
