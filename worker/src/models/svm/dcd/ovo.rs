//! One-vs-one over the dual coordinate descent: one binary problem per pair of classes
//! present in training, a majority vote to predict.
//!
//! The problem of pair (a, b), a < b, holds only the images of a (y = +1) and b (y = −1),
//! and is solved as one class of [`super::fit`] would be: same loss, bias feature, tolerance,
//! epoch cap and shrinking. Its coordinate order is seeded by `derive_seed(seed, pair_idx)`,
//! so a fit depends on the seed alone, not on which thread solved which pair. Pairs run in
//! parallel on rayon's pool (`RAYON_NUM_THREADS`, which the worker sets from the job's
//! `threads`); one thread solves them in order.
//!
//! The vote follows libsvm's `svm_predict_values`: pair (a, b) votes for a when its
//! margin w·x is positive and for b otherwise (zero included), and among classes with the
//! most votes the lowest class index wins.
//!
//! A problem holds about 2/n of the images, so the 45 problems of 10 classes visit about
//! as many samples per epoch as the 10 of one-vs-rest, but most of them meet the tolerance
//! long before the epoch cap (Fashion-MNIST at C = 1: all but 1 of 45 pairs at 2,000
//! images, 5 at 10,000, 17 at 60,000), so a fit takes ~0.6 of one-vs-rest's time
//! (`bench/README.md`).

use rayon::prelude::*;

use super::solve::solve_classes;
use super::{DcdOptions, Features};
use crate::data::derive_seed;
use crate::models::svm::kernel::Kernel;

/// A fitted one-vs-one linear SVM.
#[derive(Debug, Clone, PartialEq)]
pub struct OvoModel {
    /// Classes 0..n_classes (the largest training label + 1); a class absent from training
    /// is in no pair and never predicted.
    pub n_classes: usize,
    /// The pairs (a, b), a < b, in the order of the rows of `weights`.
    pub pairs: Vec<(u8, u8)>,
    /// One row per pair, laid out as [`Features`] rows: pixel weights, then the bias; a
    /// positive margin is a vote for a.
    pub weights: Vec<f32>,
    /// Floats per row of `weights`.
    pub stride: usize,
    /// Passes over the data of the pair that ran longest.
    pub n_epochs: u32,
    /// The largest final max PG − min PG of any pair.
    pub pg_gap: f64,
    /// Whether every pair met the tolerance before the epoch cap.
    pub converged: bool,
}

/// Fits one binary problem per pair of classes in `labels` with penalty `c` on rows `x`;
/// `seed` fixes the order of the coordinates. Same requirements as [`super::fit`].
pub fn fit(x: &Features, labels: &[u8], c: f64, options: &DcdOptions, seed: u64) -> OvoModel {
    let n_classes = labels
        .iter()
        .map(|&l| usize::from(l) + 1)
        .max()
        .unwrap_or(0);
    let mut rows_of_class = vec![Vec::new(); n_classes];
    for (idx, &label) in labels.iter().enumerate() {
        rows_of_class[usize::from(label)].push(idx);
    }
    let present: Vec<u8> = (0..n_classes)
        .filter(|&k| !rows_of_class[k].is_empty())
        .map(|k| k as u8)
        .collect();
    let pairs: Vec<(u8, u8)> = (present.iter().enumerate())
        .flat_map(|(i, &a)| present[i + 1..].iter().map(move |&b| (a, b)))
        .collect();
    let solved: Vec<_> = (pairs.par_iter().enumerate())
        .map(|(pair_idx, &(a, b))| {
            let (rows_a, rows_b) = (
                &rows_of_class[usize::from(a)],
                &rows_of_class[usize::from(b)],
            );
            let rows = [rows_a.as_slice(), rows_b].concat();
            let pair_labels: Vec<u8> = (0..rows.len())
                .map(|i| u8::from(i >= rows_a.len()))
                .collect();
            let pair_seed = derive_seed(seed, pair_idx as u64);
            solve_classes(&x.select(&rows), &pair_labels, 1, c, options, pair_seed).model
        })
        .collect();
    tracing::debug!(
        n_pairs = pairs.len(),
        n_capped = solved.iter().filter(|model| !model.converged).count(),
        "dcd one-vs-one finished"
    );
    OvoModel {
        n_classes,
        weights: solved
            .iter()
            .flat_map(|model| model.class_weights(0))
            .copied()
            .collect(),
        stride: x.stride(),
        n_epochs: solved.iter().map(|model| model.n_epochs).max().unwrap_or(0),
        pg_gap: solved.iter().map(|model| model.pg_gap).fold(0.0, f64::max),
        converged: solved.iter().all(|model| model.converged),
        pairs,
    }
}

impl OvoModel {
    /// The weights of pair `pair_idx` (pixel weights, then the bias, then zero padding).
    pub fn pair_weights(&self, pair_idx: usize) -> &[f32] {
        &self.weights[pair_idx * self.stride..(pair_idx + 1) * self.stride]
    }

    /// The class voted for by the most pairs for each row of `x` (see [`vote`]).
    pub fn predict(&self, x: &Features) -> Vec<u8> {
        let kernel = Kernel::detect();
        let all_pairs: Vec<usize> = (0..self.pairs.len()).collect();
        let mut row = vec![0.0; self.stride];
        let mut margins = vec![0.0; self.pairs.len()];
        let mut votes = vec![0; self.n_classes];
        (0..x.len())
            .map(|idx| {
                x.row_into(kernel, idx, &mut row);
                kernel.dots(&self.weights, &all_pairs, &row, &mut margins);
                vote(&self.pairs, &margins, &mut votes)
            })
            .collect()
    }
}

/// The class with the most votes when pair `pairs[p]` = (a, b) has margin `margins[p]`:
/// a positive margin votes for a, any other (zero and NaN included) for b, and a tie in
/// votes goes to the lowest class index, as libsvm. `votes` (one count per class) is
/// scratch space.
pub fn vote(pairs: &[(u8, u8)], margins: &[f32], votes: &mut [u32]) -> u8 {
    votes.fill(0);
    for (&(a, b), &margin) in pairs.iter().zip(margins) {
        let winner = if margin > 0.0 { a } else { b };
        votes[usize::from(winner)] += 1;
    }
    let best = (1..votes.len()).fold(0, |best, k| if votes[k] > votes[best] { k } else { best });
    best as u8
}

#[cfg(test)]
mod tests {
    use ecobench_shared::{SvmConfig, SvmMulticlass, SvmSolver};

    use super::*;
    use crate::models::svm::{fit_svm, train_svm};
    use crate::models::testdata::synthetic_split;

    fn ovo() -> SvmConfig {
        SvmConfig {
            multiclass: SvmMulticlass::Ovo,
            ..SvmConfig::new(1.0, SvmSolver::Dcd)
        }
    }

    #[test]
    fn learns_a_small_synthetic_set_and_names_its_solver() {
        let train = synthetic_split(200, 8, 3);
        let test = synthetic_split(100, 8, 4);
        let fit = fit_svm(&train, &test, &ovo(), &DcdOptions::default(), 5).unwrap();
        assert!(fit.report.accuracy > 0.5, "{}", fit.report.accuracy);
        assert_eq!(fit.report.solver, "dcd-ovo-l1");
        assert_eq!(fit.converged, Some(true));
        assert_eq!((fit.report.n_train, fit.report.n_test), (200, 100));
    }

    #[test]
    fn one_problem_per_pair_of_classes_present() {
        let train = synthetic_split(200, 8, 3);
        let keep: Vec<usize> = (0..train.len())
            .filter(|&idx| [0, 2, 5].contains(&train.labels[idx]))
            .collect();
        let train = train.select(&keep);
        let x = Features::from_dataset(&train);
        let model = fit(&x, &train.labels, 1.0, &DcdOptions::default(), 1);
        assert_eq!(model.pairs, [(0, 2), (0, 5), (2, 5)]);
        assert_eq!((model.n_classes, model.weights.len()), (6, 3 * x.stride()));
        let predicted = model.predict(&x);
        assert!(predicted.iter().all(|label| [0, 2, 5].contains(label)));
    }

    #[test]
    fn same_seed_gives_identical_models_and_predictions() {
        let train = synthetic_split(200, 8, 3);
        let test = synthetic_split(100, 8, 4);
        let (x, test_x) = (
            Features::from_dataset(&train),
            Features::from_dataset(&test),
        );
        let options = DcdOptions::default();
        let first = fit(&x, &train.labels, 1.0, &options, 11);
        let again = fit(&x, &train.labels, 1.0, &options, 11);
        assert_eq!(first, again);
        assert_eq!(first.predict(&test_x), again.predict(&test_x));
        let other = fit(&x, &train.labels, 1.0, &options, 12);
        assert_ne!(
            first.weights, other.weights,
            "the seed orders the coordinates"
        );
        let report = |seed| train_svm(&train, &test, &ovo(), seed).unwrap().accuracy;
        assert_eq!(report(3), report(3));
    }

    #[test]
    fn a_positive_margin_votes_for_the_first_class_and_ties_go_to_the_lowest() {
        let mut votes = vec![0; 4];
        assert_eq!(vote(&[(0, 1)], &[0.5], &mut votes[..2]), 0);
        assert_eq!(
            vote(&[(0, 1)], &[0.0], &mut votes[..2]),
            1,
            "zero votes for b"
        );
        assert_eq!(vote(&[(0, 1)], &[f32::NAN], &mut votes[..2]), 1);
        let three = [(0, 1), (0, 2), (1, 2)];
        // 0 beats 1, 2 beats 0, 1 beats 2: one vote each, the lowest class wins.
        assert_eq!(vote(&three, &[1.0, -1.0, 1.0], &mut votes[..3]), 0);
        assert_eq!(votes[..3], [1, 1, 1]);
        // Two votes each for 1, 2 and 3, none for 0.
        let four = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)];
        assert_eq!(
            vote(&four, &[-1.0, -1.0, -1.0, 1.0, -1.0, 1.0], &mut votes),
            1
        );
        assert_eq!(votes, [0, 2, 2, 2]);
        // A clear majority wins whatever its index.
        assert_eq!(
            vote(&four, &[-1.0, -1.0, -1.0, -1.0, -1.0, -1.0], &mut votes),
            3
        );
    }
}
