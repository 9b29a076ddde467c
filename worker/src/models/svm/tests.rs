//! Tests of the linear SVM: input checks, both solvers, and the dual coordinate descent's
//! convergence, determinism and use of C.

use super::dcd::solve::{Solution, solve};
use super::dcd::{DcdOptions, Features, Loss};
use super::*;
use crate::models::testdata::synthetic_split;

fn config(c: f64, solver: SvmSolver) -> SvmConfig {
    SvmConfig::new(c, solver)
}

/// A small problem: 200 images of 8×8 pixels (65 features with the bias).
fn small_problem() -> (Features, Vec<u8>) {
    let train = synthetic_split(200, 8, 3);
    (Features::from_dataset(&train), train.labels)
}

fn options(loss: Loss, eps: f64) -> DcdOptions {
    DcdOptions {
        loss,
        eps,
        max_epochs: 100_000,
        shrinking: true,
    }
}

/// max PG − min PG over every pair of every class, recomputed from the final α and w.
fn recomputed_pg_gap(solution: &Solution, x: &Features, labels: &[u8], upper: f64) -> f64 {
    let model = &solution.model;
    let mut worst: f64 = 0.0;
    for k in 0..model.n_classes {
        let (mut pg_max, mut pg_min) = (f64::NEG_INFINITY, f64::INFINITY);
        for (idx, &label) in labels.iter().enumerate() {
            let y = if usize::from(label) == k { 1.0 } else { -1.0 };
            let margin: f64 = (model.class_weights(k).iter().zip(x.row(idx).iter()))
                .map(|(&w, &v)| f64::from(w) * f64::from(v))
                .sum();
            let alpha = solution.alpha[idx * model.n_classes + k];
            let gradient = y * margin - 1.0 + solution.diag * alpha;
            let projected = if alpha <= 0.0 {
                gradient.min(0.0)
            } else if alpha >= upper {
                gradient.max(0.0)
            } else {
                gradient
            };
            pg_max = pg_max.max(projected);
            pg_min = pg_min.min(projected);
        }
        worst = worst.max(pg_max - pg_min);
    }
    worst
}

#[test]
fn smo_refuses_fewer_samples_than_features_before_smartcore() {
    let train = synthetic_split(300, 28, 1);
    let test = synthetic_split(20, 28, 2);
    let err = train_svm(&train, &test, &config(1.0, SvmSolver::Smo), 0).unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        "svm-linear with solver smo needs more training samples (300) than features (784): \
         raise train_samples to at least 785, or use solver = \"dcd\""
    );
}

#[test]
fn smo_learns_a_small_synthetic_set() {
    let train = synthetic_split(200, 8, 3);
    let test = synthetic_split(100, 8, 4);
    let report = train_svm(&train, &test, &config(1.0, SvmSolver::Smo), 0).unwrap();
    assert!(report.accuracy > 0.5, "accuracy {}", report.accuracy);
    assert_eq!((report.n_train, report.n_test), (200, 100));
    assert_eq!(report.solver, smo::SOLVER);
    assert!(report.epochs.is_empty());
}

#[test]
fn dcd_learns_a_small_synthetic_set_with_either_loss() {
    let train = synthetic_split(200, 8, 3);
    let test = synthetic_split(100, 8, 4);
    for loss in [Loss::Hinge, Loss::SquaredHinge] {
        let svm = SvmConfig {
            multiclass: SvmMulticlass::Ovr,
            ..config(1.0, SvmSolver::Dcd)
        };
        let fit = train_dcd(&train, &test, &svm, &options(loss, 0.1), 7);
        assert!(
            fit.report.accuracy > 0.5,
            "{loss:?}: {}",
            fit.report.accuracy
        );
        assert_eq!(fit.report.solver, loss.solver_name(SvmMulticlass::Ovr));
        assert_eq!(fit.converged, Some(true));
    }
    let report = train_svm(&train, &test, &config(1.0, SvmSolver::Dcd), 0).unwrap();
    assert_eq!(report.solver, "dcd-ovo-l1", "one-vs-one is dcd's default");
    assert_eq!((report.n_train, report.n_test), (200, 100));
}

#[test]
fn dcd_takes_fewer_samples_than_features() {
    let train = synthetic_split(50, 28, 1);
    let test = synthetic_split(20, 28, 2);
    let report = train_svm(&train, &test, &config(1.0, SvmSolver::Dcd), 0).unwrap();
    assert_eq!(report.n_train, 50);
}

#[test]
fn same_seed_gives_bit_identical_weights() {
    let (x, labels) = small_problem();
    let first = dcd::fit(&x, &labels, 1.0, &DcdOptions::default(), 11);
    let again = dcd::fit(&x, &labels, 1.0, &DcdOptions::default(), 11);
    assert_eq!(first, again);
    let other = dcd::fit(&x, &labels, 1.0, &DcdOptions::default(), 12);
    assert_ne!(
        first.weights, other.weights,
        "the seed orders the coordinates"
    );
}

#[test]
fn stopping_criterion_holds_and_the_dual_is_near_its_optimum() {
    let (x, labels) = small_problem();
    for loss in [Loss::Hinge, Loss::SquaredHinge] {
        let eps = 0.1;
        let found = solve(&x, &labels, 1.0, &options(loss, eps), 5);
        assert!(found.model.converged, "{loss:?}");
        assert!(
            found.model.pg_gap <= eps,
            "{loss:?}: {}",
            found.model.pg_gap
        );
        let upper = if loss == Loss::Hinge {
            1.0
        } else {
            f64::INFINITY
        };
        let gap = recomputed_pg_gap(&found, &x, &labels, upper);
        assert!(gap <= 1.5 * eps, "{loss:?}: recomputed max − min PG {gap}");
        let best = solve(&x, &labels, 1.0, &options(loss, 1e-5), 5);
        let (found_dual, best_dual) = (found.dual_objective(), best.dual_objective());
        assert!(found_dual >= best_dual - 1e-3 * best_dual.abs(), "{loss:?}");
        assert!(
            found_dual - best_dual <= 0.02 * best_dual.abs(),
            "{loss:?}: dual {found_dual} vs best {best_dual}"
        );
    }
}

#[test]
fn primal_objective_is_near_the_best_of_a_long_run() {
    for seed in 0..4 {
        let train = synthetic_split(120 + 20 * seed as usize, 6, seed);
        let (x, labels) = (Features::from_dataset(&train), train.labels);
        for loss in [Loss::Hinge, Loss::SquaredHinge] {
            let found = dcd::fit(&x, &labels, 0.5, &options(loss, 0.1), seed);
            let best = dcd::fit(&x, &labels, 0.5, &options(loss, 1e-5), seed + 100);
            let primal = found.primal_objective(&x, &labels, 0.5, loss);
            let best_primal = best.primal_objective(&x, &labels, 0.5, loss);
            assert!(
                primal <= best_primal * 1.05,
                "seed {seed} {loss:?}: primal {primal} vs best {best_primal}"
            );
            assert!(
                primal >= best_primal * (1.0 - 1e-3),
                "the long run is the best"
            );
        }
    }
}

#[test]
fn a_small_c_gives_smaller_weights() {
    let (x, labels) = small_problem();
    let norm = |c: f64| {
        let model = dcd::fit(&x, &labels, c, &DcdOptions::default(), 3);
        dcd::squared_norm(&model.weights).sqrt()
    };
    let (small, large) = (norm(0.001), norm(1.0));
    assert!(
        small < 0.5 * large,
        "‖w‖ {small} at C = 0.001, {large} at C = 1"
    );
}

#[test]
fn bad_c_is_refused_with_what_to_do() {
    let train = synthetic_split(100, 8, 3);
    let test = synthetic_split(20, 8, 4);
    for (c, shown) in [
        (0.0, "0"),
        (-1.0, "-1"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
    ] {
        for solver in SvmSolver::ALL {
            let err = train_svm(&train, &test, &config(c, solver), 0).unwrap_err();
            assert!(!err.is_retryable());
            assert_eq!(
                err.to_string(),
                format!("invalid c = {shown}: a positive, finite number, e.g. c = 1.0")
            );
        }
    }
}

#[test]
fn smo_one_vs_rest_is_refused_with_what_to_do() {
    let train = synthetic_split(100, 8, 3);
    let test = synthetic_split(20, 8, 4);
    let svm = SvmConfig {
        multiclass: SvmMulticlass::Ovr,
        ..config(1.0, SvmSolver::Smo)
    };
    let err = train_svm(&train, &test, &svm, 0).unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        "invalid multiclass = ovr: \"ovo\" with solver smo, which is one-vs-one only \
         (solver = \"dcd\" does one-vs-rest)"
    );
}

#[test]
fn one_class_is_refused() {
    let mut train = synthetic_split(100, 8, 3);
    train.labels.iter_mut().for_each(|label| *label = 4);
    let test = synthetic_split(20, 8, 4);
    let err = train_svm(&train, &test, &config(1.0, SvmSolver::Dcd), 0).unwrap_err();
    assert!(err.to_string().contains("at least two classes"), "{err}");
}

#[test]
fn labels_beyond_what_dcd_handles_are_refused() {
    let mut train = synthetic_split(100, 8, 3);
    train.labels[7] = 64;
    let test = synthetic_split(20, 8, 4);
    let err = train_svm(&train, &test, &config(1.0, SvmSolver::Dcd), 0).unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        "svm-linear handles labels 0 to 63, the training subset has label 64: \
         use a dataset with fewer classes"
    );
}
