//! One-vs-rest linear SVM by dual coordinate descent (Hsieh et al., ICML 2008: the
//! algorithm of liblinear's `-s 1` and `-s 3`), written for dense images; [`ovo`] runs the
//! same solver one-vs-one.
//!
//! Every class k gets its own binary problem (label k against the rest) with dual
//! variables α_ik, but all classes go through the data together: for each sample i the
//! margins w_k·x_i of every class still being solved are computed in one pass over x_i,
//! then each α_ik takes its closed-form coordinate step and w_k += Δα_ik y_ik x_i.
//! Samples are visited in a fresh random order each epoch (`ChaCha8Rng` from the seed, so
//! a fit is deterministic on one machine). Pixels are `f32` in [0, 1], followed by a
//! constant feature 1 whose weight is the bias (regularised, as liblinear's `-B 1` and
//! scikit-learn's `LinearSVC(intercept_scaling=1)`).
//!
//! A class stops when liblinear's criterion holds over a full epoch: the spread of the
//! projected gradient, max PG − min PG, is at most `eps`. Shrinking (as liblinear) skips a
//! pair (i, k) whose α sits at a bound with a gradient pushing it outwards, and checks all
//! pairs again before a class is declared done. An epoch cap bounds the run.
//!
//! The defaults ([`DcdOptions::default`]) were chosen by measurement on Fashion-MNIST at
//! C = 1 (`bench/README.md`): the hinge loss (`dcd-ovr-l1`) was as fast as the squared
//! hinge and more accurate (10,000 images: 0.8205 against 0.809); liblinear's tolerance
//! 0.1 with a cap of 1,000 epochs, scikit-learn's `max_iter`. On these images neither we
//! nor liblinear reach 0.1 within 1,000 epochs at C = 1 (the gap falls slowly, to ~0.5),
//! so the cap is what stops a fit there; accuracy no longer moves by then (10,000 images:
//! 0.8175 after 300 epochs, 0.8205 after 1,000; the full set: 0.837 and 0.840).

use ecobench_shared::SvmMulticlass;

use super::kernel::{Kernel, LANES};
use crate::data::Dataset;

pub mod ovo;
pub(super) mod solve;

/// Most classes a fit handles (labels 0 to 63): each sample keeps its active classes as
/// the bits of a `u64`.
pub const MAX_CLASSES: usize = 64;

/// The loss of the binary problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// max(0, 1 − y w·x): dual box 0 ≤ α ≤ C (liblinear `-s 3`, "L1-loss").
    Hinge,
    /// max(0, 1 − y w·x)²: dual α ≥ 0 with 1/(2C) added to the diagonal (liblinear `-s 1`,
    /// "L2-loss", scikit-learn's `LinearSVC` default).
    SquaredHinge,
}

impl Loss {
    /// The solver name reported for this loss and `multiclass` scheme (`dcd-ovr-l1`,
    /// `dcd-ovo-l2`, …).
    pub fn solver_name(self, multiclass: SvmMulticlass) -> &'static str {
        match (multiclass, self) {
            (SvmMulticlass::Ovr, Loss::Hinge) => "dcd-ovr-l1",
            (SvmMulticlass::Ovr, Loss::SquaredHinge) => "dcd-ovr-l2",
            (SvmMulticlass::Ovo, Loss::Hinge) => "dcd-ovo-l1",
            (SvmMulticlass::Ovo, Loss::SquaredHinge) => "dcd-ovo-l2",
        }
    }

    /// The loss of one margin `y w·x`.
    fn of_margin(self, margin: f64) -> f64 {
        let slack = (1.0 - margin).max(0.0);
        match self {
            Loss::Hinge => slack,
            Loss::SquaredHinge => slack * slack,
        }
    }
}

/// Settings of the solver that are not hyper-parameters of the model (defaults: hinge
/// loss, `eps` 0.1, 1,000 epochs, shrinking on).
#[derive(Debug, Clone, PartialEq)]
pub struct DcdOptions {
    /// The loss.
    pub loss: Loss,
    /// Stopping tolerance on max PG − min PG per class (liblinear's default is 0.1).
    pub eps: f64,
    /// Most passes over the data.
    pub max_epochs: u32,
    /// Whether to skip pairs whose α is settled at a bound (liblinear's shrinking).
    pub shrinking: bool,
}

impl Default for DcdOptions {
    fn default() -> Self {
        DcdOptions {
            loss: Loss::Hinge,
            eps: 0.1,
            max_epochs: 1000,
            shrinking: true,
        }
    }
}

/// Samples as rows of bytes: the pixels, a 255 (the bias feature), then zeros up to a
/// multiple of 16. A row is read as `f32` values × 1/255, so pixels lie in [0, 1] and the
/// bias feature is 1; bytes take a quarter of the memory traffic of `f32` rows, which is
/// what a fit on the full dataset waits on.
#[derive(Debug, Clone)]
pub struct Features {
    /// Number of rows.
    n_samples: usize,
    /// Values per row, padding included.
    stride: usize,
    /// The rows, one after the other.
    bytes: Vec<u8>,
}

impl Features {
    /// The rows of every image of `split`.
    pub fn from_dataset(split: &Dataset) -> Features {
        let n_pixels = split.n_pixels();
        let stride = (n_pixels + 1).div_ceil(LANES) * LANES;
        let mut bytes = vec![0u8; split.len() * stride];
        for (row, image) in bytes
            .chunks_exact_mut(stride)
            .zip(split.images.chunks(n_pixels))
        {
            row[..n_pixels].copy_from_slice(image);
            row[n_pixels] = u8::MAX;
        }
        Features {
            n_samples: split.len(),
            stride,
            bytes,
        }
    }

    /// Rows `rows` of `self`, in that order.
    pub fn select(&self, rows: &[usize]) -> Features {
        let mut bytes = Vec::with_capacity(rows.len() * self.stride);
        for &idx in rows {
            bytes.extend_from_slice(self.row_bytes(idx));
        }
        Features {
            n_samples: rows.len(),
            stride: self.stride,
            bytes,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.n_samples
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.n_samples == 0
    }

    /// The bytes of row `idx`, padding included.
    pub(super) fn row_bytes(&self, idx: usize) -> &[u8] {
        &self.bytes[idx * self.stride..(idx + 1) * self.stride]
    }

    /// Row `idx` as values in [0, 1], written into `out` (`stride` floats).
    pub(super) fn row_into(&self, kernel: Kernel, idx: usize, out: &mut [f32]) {
        kernel.widen(self.row_bytes(idx), out);
    }

    /// Row `idx` as values in [0, 1].
    #[cfg(test)]
    pub(super) fn row(&self, idx: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.stride];
        self.row_into(Kernel::detect(), idx, &mut out);
        out
    }

    /// Values per row, padding included.
    pub(super) fn stride(&self) -> usize {
        self.stride
    }
}

/// A fitted one-vs-rest linear SVM.
#[derive(Debug, Clone, PartialEq)]
pub struct DcdModel {
    /// Classes 0..n_classes (the largest training label + 1).
    pub n_classes: usize,
    /// One row per class, laid out as [`Features`] rows: pixel weights, then the bias.
    pub weights: Vec<f32>,
    /// Floats per row of `weights`.
    pub stride: usize,
    /// Passes over the data that ran.
    pub n_epochs: u32,
    /// The largest final max PG − min PG of any class.
    pub pg_gap: f64,
    /// Whether every class met the tolerance before the epoch cap.
    pub converged: bool,
}

impl DcdModel {
    /// The weights of class `k` (pixel weights, then the bias, then zero padding).
    pub fn class_weights(&self, k: usize) -> &[f32] {
        &self.weights[k * self.stride..(k + 1) * self.stride]
    }

    /// The class of highest margin for each row of `x` (the lowest class on a tie).
    pub fn predict(&self, x: &Features) -> Vec<u8> {
        let mut margins = Margins::new(self);
        (0..x.len())
            .map(|idx| {
                let margins = margins.of_row(x, idx);
                let best =
                    (1..self.n_classes).fold(
                        0,
                        |best, k| {
                            if margins[k] > margins[best] { k } else { best }
                        },
                    );
                best as u8
            })
            .collect()
    }

    /// The primal objective summed over classes: Σ_k ½‖w_k‖² + C Σ_i loss(y_ik w_k·x_i).
    pub fn primal_objective(&self, x: &Features, labels: &[u8], c: f64, loss: Loss) -> f64 {
        let mut margins = Margins::new(self);
        let mut total = squared_norm(&self.weights) / 2.0;
        for (idx, &label) in labels.iter().enumerate() {
            for (k, &margin) in margins.of_row(x, idx).iter().enumerate() {
                let y = if usize::from(label) == k { 1.0 } else { -1.0 };
                total += c * loss.of_margin(y * f64::from(margin));
            }
        }
        total
    }
}

/// The margins of every class for one row at a time, with their scratch space.
struct Margins<'a> {
    model: &'a DcdModel,
    kernel: Kernel,
    classes: Vec<usize>,
    row: Vec<f32>,
    margins: Vec<f32>,
}

impl<'a> Margins<'a> {
    fn new(model: &'a DcdModel) -> Margins<'a> {
        Margins {
            model,
            kernel: Kernel::detect(),
            classes: (0..model.n_classes).collect(),
            row: vec![0.0; model.stride],
            margins: vec![0.0; model.n_classes],
        }
    }

    /// w_k · x_idx for every class k.
    fn of_row(&mut self, x: &Features, idx: usize) -> &[f32] {
        x.row_into(self.kernel, idx, &mut self.row);
        let weights = &self.model.weights;
        self.kernel
            .dots(weights, &self.classes, &self.row, &mut self.margins);
        &self.margins
    }
}

/// Fits the one-vs-rest SVM with penalty `c` on rows `x` with `labels`; `seed` fixes the
/// order of the coordinates. `x` must not be empty, `c` must be positive and finite, and
/// labels below [`MAX_CLASSES`].
pub fn fit(x: &Features, labels: &[u8], c: f64, options: &DcdOptions, seed: u64) -> DcdModel {
    solve::solve(x, labels, c, options, seed).model
}

/// ‖v‖², accumulated in `f64`.
pub(super) fn squared_norm(values: &[f32]) -> f64 {
    values.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}
