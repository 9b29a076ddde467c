//! The coordinate-descent loop of [`super::fit`]: dual variables, shrinking and stopping.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{DcdModel, DcdOptions, Features, Loss, MAX_CLASSES, squared_norm};
use crate::models::svm::kernel::Kernel;

/// Bits 0..n_classes set.
fn all_classes(n_classes: usize) -> u64 {
    assert!(
        n_classes <= MAX_CLASSES,
        "labels are checked before fitting"
    );
    if n_classes == 64 {
        u64::MAX
    } else {
        (1 << n_classes) - 1
    }
}

/// A fitted model with the dual variables it came from.
#[derive(Debug, Clone)]
pub(crate) struct Solution {
    /// The model.
    pub(crate) model: DcdModel,
    /// α of sample i for class k at `i * n_classes + k`.
    pub(crate) alpha: Vec<f64>,
    /// The dual's diagonal term (0 for the hinge, 1/(2C) for the squared hinge).
    pub(crate) diag: f64,
}

impl Solution {
    /// The dual objective summed over classes, as liblinear minimises it:
    /// Σ_k ½‖w_k‖² − Σ α + ½ diag Σ α².
    pub(crate) fn dual_objective(&self) -> f64 {
        let alpha_sum: f64 = self.alpha.iter().sum();
        let alpha_sq: f64 = self.alpha.iter().map(|a| a * a).sum();
        squared_norm(&self.model.weights) / 2.0 - alpha_sum + self.diag * alpha_sq / 2.0
    }
}

/// Where one class's binary problem stands.
#[derive(Debug, Clone)]
struct ClassState {
    /// Largest projected gradient of the previous epoch (+∞ when not shrinking).
    pg_max_old: f64,
    /// Smallest projected gradient of the previous epoch (−∞ when not shrinking).
    pg_min_old: f64,
    /// Largest projected gradient so far in this epoch.
    pg_max_new: f64,
    /// Smallest projected gradient so far in this epoch.
    pg_min_new: f64,
    /// Pairs (i, k) of this class not shrunk away.
    n_active: usize,
    /// max PG − min PG of the last epoch.
    gap: f64,
    /// Whether the class met the tolerance on all its pairs.
    done: bool,
}

/// The state of a fit.
struct Solver<'a> {
    x: &'a Features,
    labels: &'a [u8],
    n_classes: usize,
    kernel: Kernel,
    /// The dual's diagonal term and upper bound.
    diag: f64,
    upper: f64,
    /// x_i·x_i + diag per sample.
    qd: Vec<f64>,
    alpha: Vec<f64>,
    weights: Vec<f32>,
    /// Per sample, bit k set while pair (i, k) is visited (not shrunk away).
    active: Vec<u64>,
    /// Bit k set while class k is not done.
    live: u64,
    classes: Vec<ClassState>,
    eps: f64,
    shrinking: bool,
}

/// Runs the one-vs-rest coordinate descent of every class (0 to the largest label) to the
/// tolerance or the epoch cap.
pub(crate) fn solve(
    x: &Features,
    labels: &[u8],
    c: f64,
    options: &DcdOptions,
    seed: u64,
) -> Solution {
    let n_classes = labels
        .iter()
        .map(|&l| usize::from(l) + 1)
        .max()
        .unwrap_or(0);
    solve_classes(x, labels, n_classes, c, options, seed)
}

/// Runs the coordinate descent of the binary problems of classes 0 to `n_classes − 1`,
/// each its label (+1) against every other label (−1), labels ≥ `n_classes` included: a
/// single problem, label 0 against label 1, is `n_classes` = 1.
pub(crate) fn solve_classes(
    x: &Features,
    labels: &[u8],
    n_classes: usize,
    c: f64,
    options: &DcdOptions,
    seed: u64,
) -> Solution {
    let mut solver = Solver::new(x, labels, n_classes, c, options);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut n_epochs = 0;
    while n_epochs < options.max_epochs && solver.classes.iter().any(|class| !class.done) {
        let mut order = solver.samples_to_visit();
        order.shuffle(&mut rng);
        solver.run_epoch(&order);
        solver.end_epoch();
        n_epochs += 1;
        tracing::trace!(
            epoch = n_epochs,
            n_visited = order.len(),
            n_active = solver
                .classes
                .iter()
                .filter(|c| !c.done)
                .map(|c| c.n_active)
                .sum::<usize>(),
            n_done = solver.classes.iter().filter(|c| c.done).count(),
            gap = solver
                .classes
                .iter()
                .filter(|c| !c.done)
                .map(|c| c.gap)
                .fold(0.0, f64::max),
            "dcd epoch"
        );
    }
    let converged = solver.classes.iter().all(|class| class.done);
    let pg_gap = solver
        .classes
        .iter()
        .map(|class| class.gap)
        .fold(0.0, f64::max);
    let solution = Solution {
        model: DcdModel {
            n_classes: solver.n_classes,
            weights: solver.weights,
            stride: x.stride(),
            n_epochs,
            pg_gap,
            converged,
        },
        alpha: solver.alpha,
        diag: solver.diag,
    };
    let dual_objective = solution.dual_objective();
    tracing::debug!(n_epochs, pg_gap, converged, dual_objective, "dcd finished");
    solution
}

impl<'a> Solver<'a> {
    fn new(
        x: &'a Features,
        labels: &'a [u8],
        n_classes: usize,
        c: f64,
        options: &DcdOptions,
    ) -> Solver<'a> {
        let kernel = Kernel::detect();
        let (diag, upper) = match options.loss {
            Loss::Hinge => (0.0, c),
            Loss::SquaredHinge => (0.5 / c, f64::INFINITY),
        };
        let mut row = vec![0.0; x.stride()];
        let qd = (0..x.len())
            .map(|idx| {
                x.row_into(kernel, idx, &mut row);
                squared_norm(&row) + diag
            })
            .collect();
        let class = ClassState {
            pg_max_old: f64::INFINITY,
            pg_min_old: f64::NEG_INFINITY,
            pg_max_new: f64::NEG_INFINITY,
            pg_min_new: f64::INFINITY,
            n_active: x.len(),
            gap: f64::INFINITY,
            done: false,
        };
        Solver {
            x,
            labels,
            n_classes,
            kernel,
            diag,
            upper,
            qd,
            alpha: vec![0.0; x.len() * n_classes],
            weights: vec![0.0; n_classes * x.stride()],
            active: vec![all_classes(n_classes); x.len()],
            live: all_classes(n_classes),
            classes: vec![class; n_classes],
            eps: options.eps,
            shrinking: options.shrinking,
        }
    }

    /// The samples with at least one active pair of a class not yet done, ascending.
    fn samples_to_visit(&self) -> Vec<usize> {
        (0..self.x.len())
            .filter(|&idx| self.active[idx] & self.live != 0)
            .collect()
    }

    /// One coordinate step for every active pair of the samples in `order`.
    fn run_epoch(&mut self, order: &[usize]) {
        let stride = self.x.stride();
        let mut to_update = Vec::with_capacity(self.n_classes);
        let mut margins = vec![0.0f32; self.n_classes];
        let mut row = vec![0.0f32; stride];
        for (position, &idx) in order.iter().enumerate() {
            if let Some(&next) = order.get(position + 1) {
                self.kernel.prefetch(self.x.row_bytes(next));
            }
            to_update.clear();
            let mut bits = self.active[idx] & self.live;
            while bits != 0 {
                to_update.push(bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
            if to_update.is_empty() {
                continue;
            }
            self.x.row_into(self.kernel, idx, &mut row);
            let margins = &mut margins[..to_update.len()];
            self.kernel.dots(&self.weights, &to_update, &row, margins);
            for (&k, &margin) in to_update.iter().zip(margins.iter()) {
                let y = if usize::from(self.labels[idx]) == k {
                    1.0
                } else {
                    -1.0
                };
                let Some(step) = self.step(idx, k, y * f64::from(margin), self.qd[idx]) else {
                    continue;
                };
                let w = &mut self.weights[k * stride..(k + 1) * stride];
                self.kernel.axpy((step * y) as f32, &row, w);
            }
        }
    }

    /// The coordinate step of pair (`idx`, `k`) whose margin y w·x is `margin`: updates α
    /// and the class's projected-gradient bounds and returns Δα, or shrinks the pair away,
    /// or returns `None` when α is optimal.
    fn step(&mut self, idx: usize, k: usize, margin: f64, qd: f64) -> Option<f64> {
        let pair = idx * self.n_classes + k;
        let alpha = self.alpha[pair];
        let gradient = margin - 1.0 + self.diag * alpha;
        let class = &mut self.classes[k];
        let projected = if alpha == 0.0 {
            if gradient > class.pg_max_old {
                self.active[idx] &= !(1 << k);
                class.n_active -= 1;
                return None;
            }
            gradient.min(0.0)
        } else if alpha >= self.upper {
            if gradient < class.pg_min_old {
                self.active[idx] &= !(1 << k);
                class.n_active -= 1;
                return None;
            }
            gradient.max(0.0)
        } else {
            gradient
        };
        class.pg_max_new = class.pg_max_new.max(projected);
        class.pg_min_new = class.pg_min_new.min(projected);
        if projected.abs() <= 1e-12 {
            return None;
        }
        let new_alpha = (alpha - gradient / qd).clamp(0.0, self.upper);
        self.alpha[pair] = new_alpha;
        Some(new_alpha - alpha)
    }

    /// liblinear's stopping test per class, then the shrinking bounds for the next epoch.
    fn end_epoch(&mut self) {
        let n_samples = self.x.len();
        for k in 0..self.n_classes {
            let class = &mut self.classes[k];
            if class.done {
                continue;
            }
            class.gap = class.pg_max_new - class.pg_min_new;
            if class.gap <= self.eps {
                if class.n_active == n_samples {
                    class.done = true;
                    self.live &= !(1 << k);
                } else {
                    // Converged on the active pairs: check every pair again.
                    class.n_active = n_samples;
                    class.pg_max_old = f64::INFINITY;
                    class.pg_min_old = f64::NEG_INFINITY;
                    for active in &mut self.active {
                        *active |= 1 << k;
                    }
                }
            } else if self.shrinking {
                let (max, min) = (class.pg_max_new, class.pg_min_new);
                class.pg_max_old = if max <= 0.0 { f64::INFINITY } else { max };
                class.pg_min_old = if min >= 0.0 { f64::NEG_INFINITY } else { min };
            }
            class.pg_max_new = f64::NEG_INFINITY;
            class.pg_min_new = f64::INFINITY;
        }
    }
}
