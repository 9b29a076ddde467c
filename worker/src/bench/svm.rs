//! `worker bench-svm`: one fit of the linear SVM on the subsets a job with the same seed
//! and sizes would train on, with its times and accuracy.

use std::path::PathBuf;

use ecobench_shared::{SvmConfig, SvmMulticlass, SvmSolver};
use serde::Serialize;

use crate::data;
use crate::models::svm::dcd::DcdOptions;
use crate::models::svm::fit_svm;
use crate::train::{TrainError, job_subsets, svm_seed};

/// What to measure.
#[derive(Debug, Clone)]
pub struct SvmBenchConfig {
    /// A dataset folder of IDX files (as `data::load_split` reads).
    pub data_dir: PathBuf,
    /// Training images; `None` for the whole training split.
    pub n_train: Option<u32>,
    /// Test images; `None` for the whole test split.
    pub n_test: Option<u32>,
    /// The job seed: fixes both subsets and the solver's randomness.
    pub seed: u64,
    /// Penalty, solver and multiclass scheme.
    pub svm: SvmConfig,
    /// Settings of the dual coordinate descent (when the solver is dcd).
    pub dcd: DcdOptions,
    /// Where to write the two subsets as IDX files (uncompressed), if anywhere.
    pub save_data: Option<PathBuf>,
}

/// The figures of one fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SvmBenchReport {
    /// The solver that ran (`dcd-ovr-l1`, `dcd-ovo-l1`, `smartcore-smo-ovo`, …).
    pub solver: String,
    /// Seconds fitting (dcd: including turning pixels into features).
    pub fit_s: f64,
    /// Seconds predicting the test images.
    pub predict_s: f64,
    /// Accuracy on the test images, in [0, 1].
    pub accuracy: f64,
    /// Training images used.
    pub n_train: u32,
    /// Test images used.
    pub n_test: u32,
    /// Passes over the data (dcd only).
    pub n_epochs: Option<u32>,
    /// Whether dcd met its tolerance before the epoch cap (dcd only).
    pub converged: Option<bool>,
    /// The seed used.
    pub seed: u64,
    /// Threads of the rayon pool the fit ran in.
    pub threads: usize,
}

impl SvmBenchReport {
    /// One readable line of the figures.
    pub fn line(&self) -> String {
        let epochs = self.n_epochs.map_or(String::new(), |n| {
            let converged = if self.converged == Some(true) {
                ""
            } else {
                " (cap)"
            };
            format!(" epochs={n}{converged}")
        });
        format!(
            "solver={} n_train={} n_test={} threads={} fit_s={:.3} predict_s={:.3} \
             accuracy={:.4}{epochs}",
            self.solver,
            self.n_train,
            self.n_test,
            self.threads,
            self.fit_s,
            self.predict_s,
            self.accuracy
        )
    }
}

/// Loads `config.data_dir`, takes the subsets [`job_subsets`] gives for the seed, writes
/// them to `config.save_data` if asked, fits and evaluates once.
pub fn bench_svm(config: &SvmBenchConfig) -> Result<SvmBenchReport, TrainError> {
    let (train_full, test_full) = data::load_split(&config.data_dir)?;
    let (train, test) = job_subsets(
        train_full,
        test_full,
        config.n_train,
        config.n_test,
        config.seed,
    );
    if let Some(dir) = &config.save_data {
        data::write_split(dir, &train, &test, false)?;
    }
    let fit = fit_svm(
        &train,
        &test,
        &config.svm,
        &config.dcd,
        svm_seed(config.seed),
    )?;
    Ok(SvmBenchReport {
        solver: fit.report.solver,
        fit_s: fit.report.train_s,
        predict_s: fit.report.eval_s,
        accuracy: fit.report.accuracy,
        n_train: fit.report.n_train,
        n_test: fit.report.n_test,
        n_epochs: fit.n_epochs,
        converged: fit.converged,
        seed: config.seed,
        threads: rayon::current_num_threads(),
    })
}

/// `worker bench --model svm-linear`: one fit on the first `options.images` training
/// images' worth of a seeded stratified subset (all of them for 0), tested on
/// `options.test_images` (all for 0), on `options.threads` threads, as [`super::Figures`].
pub fn figures(options: &super::BenchOptions) -> anyhow::Result<super::Figures> {
    let size = |n: usize| (n > 0).then_some(n as u32);
    let config = SvmBenchConfig {
        data_dir: options.data.clone(),
        n_train: size(options.images),
        n_test: size(options.test_images),
        seed: options.seed,
        svm: options.svm.clone(),
        dcd: DcdOptions::default(),
        save_data: None,
    };
    let threads = u32::try_from(options.threads)?;
    let ticks = || {
        crate::energy::procfs::process_ticks(std::path::Path::new("/proc"), std::process::id())
            .unwrap_or(0)
    };
    let (ticks0, wall0) = (ticks(), std::time::Instant::now());
    let report = crate::train::with_threads(threads, || bench_svm(&config))?;
    let wall_s = wall0.elapsed().as_secs_f64();
    let cpu_s = (ticks() - ticks0) as f64 / crate::energy::procfs::clock_ticks_per_s();
    let peak = super::peak::measure(report.threads);
    let memory =
        crate::energy::procfs::process_memory(std::path::Path::new("/proc"), std::process::id())?;
    Ok(super::Figures {
        model: "svm-linear".to_string(),
        config: ecobench_shared::ModelConfig::SvmLinear(options.svm.clone()).label(),
        threads: report.threads,
        batch: 0,
        images: report.n_train as usize,
        images_per_s: f64::from(report.n_train) / report.fit_s,
        forward_s: None,
        backward_s: None,
        optimizer_s: None,
        train_s: report.fit_s,
        gflops: None,
        peak_gflops: peak.gflops,
        peak_method: format!("FMA-only loop, {}, {} thread(s)", peak.isa, report.threads),
        fraction_of_peak: None,
        peak_rss_mb: memory.peak_rss_bytes as f64 / (1024.0 * 1024.0),
        cpu_per_wall: cpu_s / wall_s,
        loss: None,
        accuracy: Some(report.accuracy),
        solver: report.solver,
    })
}

/// The solver named `name` (`dcd`, `smo`), or a message listing the valid names.
pub fn parse_solver(name: &str) -> Result<SvmSolver, String> {
    SvmSolver::from_name(name).ok_or_else(|| {
        let valid: Vec<&str> = SvmSolver::ALL.iter().map(|s| s.as_str()).collect();
        format!(
            "unknown solver {name:?}; valid solvers: {}",
            valid.join(", ")
        )
    })
}

/// The multiclass scheme named `name` (`ovr`, `ovo`), or a message listing the valid names.
pub fn parse_multiclass(name: &str) -> Result<SvmMulticlass, String> {
    SvmMulticlass::from_name(name).ok_or_else(|| {
        let valid: Vec<&str> = SvmMulticlass::ALL.iter().map(|m| m.as_str()).collect();
        format!(
            "unknown multiclass scheme {name:?}; valid schemes: {} (one-vs-rest, one-vs-one)",
            valid.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testdata::synthetic_split;

    #[test]
    fn saves_the_exact_subsets_it_fits_on() {
        let tmp = tempfile::tempdir().unwrap();
        let dataset = tmp.path().join("tiny");
        data::write_split(
            &dataset,
            &synthetic_split(300, 8, 1),
            &synthetic_split(60, 8, 2),
            true,
        )
        .unwrap();
        let saved = tmp.path().join("saved");
        let config = SvmBenchConfig {
            data_dir: dataset.clone(),
            n_train: Some(100),
            n_test: None,
            seed: 4,
            svm: SvmConfig::new(1.0, SvmSolver::Dcd),
            dcd: DcdOptions::default(),
            save_data: Some(saved.clone()),
        };
        let report = bench_svm(&config).unwrap();
        assert_eq!((report.n_train, report.n_test), (100, 60));
        assert!(report.accuracy > 0.5, "{}", report.line());
        let (train_full, test_full) = data::load_split(&dataset).unwrap();
        let expected = job_subsets(train_full, test_full, Some(100), None, 4);
        assert_eq!(data::load_split(&saved).unwrap(), expected);
        assert_eq!(bench_svm(&config).unwrap().accuracy, report.accuracy);
    }

    #[test]
    fn unknown_multiclass_lists_the_valid_ones() {
        assert_eq!(parse_multiclass("ovo"), Ok(SvmMulticlass::Ovo));
        assert_eq!(
            parse_multiclass("ova").unwrap_err(),
            "unknown multiclass scheme \"ova\"; valid schemes: ovr, ovo (one-vs-rest, one-vs-one)"
        );
    }

    #[test]
    fn unknown_solver_lists_the_valid_ones() {
        assert_eq!(parse_solver("smo"), Ok(SvmSolver::Smo));
        assert_eq!(
            parse_solver("sgd").unwrap_err(),
            "unknown solver \"sgd\"; valid solvers: dcd, smo"
        );
    }
}
