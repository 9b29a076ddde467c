//! Jobs and what they produce: the unit of work a worker trains, and its result.

use serde::{Deserialize, Serialize};

use crate::pretrain::Stage;
use crate::transform::DataTransform;

/// The kinds of model this build can train, as spelled in campaign files.
pub const MODEL_KINDS: &[&str] = &["svm-linear", "cnn", "densenet", "vgg"];

/// One model configuration: the model kind and its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ModelConfig {
    /// A linear support-vector machine (dual coordinate descent, one-vs-rest or
    /// one-vs-one, or smartcore's one-vs-one SMO; see [`SvmSolver`], [`SvmMulticlass`]).
    SvmLinear(SvmConfig),
    /// The study's three-block convolutional network.
    Cnn(NetConfig),
    /// A small DenseNet: dense blocks of BN → ReLU → conv 3×3, concatenated.
    Densenet(DensenetConfig),
    /// VGG-11 with a width multiplier, from scratch.
    Vgg(VggConfig),
}

/// Hyper-parameters of the linear SVM.
///
/// Stored and sent as `{"c": 1.0, "solver": "dcd"}`, plus `"multiclass"` only where it is
/// not the solver's own scheme ([`SvmSolver::default_multiclass`]). Records from before
/// `solver` existed were trained by smartcore and read as `smo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "SvmConfigRecord", into = "SvmConfigRecord")]
pub struct SvmConfig {
    /// Soft-margin penalty C.
    pub c: f64,
    /// The solver; records stored before it existed (smartcore only) read as [`SvmSolver::Smo`].
    pub solver: SvmSolver,
    /// How the classes are split into binary problems. `dcd` does either; `smo` is always
    /// one-vs-one, and the worker refuses smo with [`SvmMulticlass::Ovr`].
    pub multiclass: SvmMulticlass,
}

impl SvmConfig {
    /// Penalty `c` with `solver` and the solver's own multiclass scheme.
    pub fn new(c: f64, solver: SvmSolver) -> SvmConfig {
        SvmConfig {
            c,
            solver,
            multiclass: solver.default_multiclass(),
        }
    }

    /// `c=1 solver=dcd`, plus ` multiclass=ovo` where it is not the solver's own scheme.
    pub fn label(&self) -> String {
        let mut label = format!("c={} solver={}", self.c, self.solver.as_str());
        if self.multiclass != self.solver.default_multiclass() {
            label += &format!(" multiclass={}", self.multiclass.as_str());
        }
        label
    }
}

/// [`SvmConfig`] as serde sees it: keys that older records lack default from the solver.
#[derive(Serialize, Deserialize)]
struct SvmConfigRecord {
    c: f64,
    #[serde(default = "legacy_solver")]
    solver: SvmSolver,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multiclass: Option<SvmMulticlass>,
}

/// The solver of records stored before `solver` existed: smartcore was the only one.
fn legacy_solver() -> SvmSolver {
    SvmSolver::Smo
}

impl From<SvmConfigRecord> for SvmConfig {
    fn from(record: SvmConfigRecord) -> Self {
        SvmConfig {
            c: record.c,
            solver: record.solver,
            multiclass: record
                .multiclass
                .unwrap_or(record.solver.default_multiclass()),
        }
    }
}

impl From<SvmConfig> for SvmConfigRecord {
    fn from(config: SvmConfig) -> Self {
        let own = config.solver.default_multiclass();
        SvmConfigRecord {
            c: config.c,
            solver: config.solver,
            multiclass: (config.multiclass != own).then_some(config.multiclass),
        }
    }
}

/// Which solver fits the linear SVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SvmSolver {
    /// Dual coordinate descent (as liblinear), one-vs-one by default or one-vs-rest:
    /// scales to the full dataset.
    #[default]
    Dcd,
    /// smartcore's exact SMO, one-vs-one: small subsets only (time grows with the
    /// square of the samples).
    Smo,
}

impl SvmSolver {
    /// Every solver, in the order campaign errors list them.
    pub const ALL: [SvmSolver; 2] = [SvmSolver::Dcd, SvmSolver::Smo];

    /// The name as written in campaign files and flags (`dcd`, `smo`).
    pub fn as_str(self) -> &'static str {
        match self {
            SvmSolver::Dcd => "dcd",
            SvmSolver::Smo => "smo",
        }
    }

    /// The solver named `name` (`dcd`, `smo`), if any.
    pub fn from_name(name: &str) -> Option<SvmSolver> {
        SvmSolver::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The scheme used when none is given: one-vs-one for both (smo's only one). dcd
    /// one-vs-one matches scikit-learn's `SVC` at 2,000 images where one-vs-rest falls
    /// 0.02 short at C = 1 (as scikit-learn's own one-vs-rest `LinearSVC` does), and it
    /// fits faster (bench/README.md).
    pub fn default_multiclass(self) -> SvmMulticlass {
        match self {
            SvmSolver::Dcd | SvmSolver::Smo => SvmMulticlass::Ovo,
        }
    }

    /// Whether this solver fits with `multiclass` (smo: one-vs-one only).
    pub fn supports(self, multiclass: SvmMulticlass) -> bool {
        self == SvmSolver::Dcd || multiclass == SvmMulticlass::Ovo
    }
}

/// How a linear SVM splits the classes into binary problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SvmMulticlass {
    /// One-vs-rest: one problem per class (the class against all others); the class of
    /// highest margin wins.
    Ovr,
    /// One-vs-one: one problem per pair of classes, on those two classes' samples; a
    /// majority vote decides, ties going to the lower class (as libsvm).
    #[default]
    Ovo,
}

impl SvmMulticlass {
    /// Every scheme, in the order campaign errors list them.
    pub const ALL: [SvmMulticlass; 2] = [SvmMulticlass::Ovr, SvmMulticlass::Ovo];

    /// The name as written in campaign files and flags (`ovr`, `ovo`).
    pub fn as_str(self) -> &'static str {
        match self {
            SvmMulticlass::Ovr => "ovr",
            SvmMulticlass::Ovo => "ovo",
        }
    }

    /// The scheme named `name` (`ovr`, `ovo`), if any.
    pub fn from_name(name: &str) -> Option<SvmMulticlass> {
        SvmMulticlass::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// Hyper-parameters shared by every neural network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetConfig {
    /// Passes over the training subset.
    pub n_epochs: u32,
    /// Images per optimiser step.
    pub batch_size: u32,
    /// AdamW learning rate.
    pub learning_rate: f64,
}

/// Hyper-parameters of the DenseNet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DensenetConfig {
    /// Epochs, batch size, learning rate.
    #[serde(flatten)]
    pub net: NetConfig,
    /// Channels each layer adds (k).
    pub growth_rate: u32,
    /// Dense blocks (a transition halves the resolution between two blocks).
    pub n_blocks: u32,
    /// Layers per dense block.
    pub layers_per_block: u32,
}

/// Hyper-parameters of the VGG-11.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VggConfig {
    /// Epochs, batch size, learning rate.
    #[serde(flatten)]
    pub net: NetConfig,
    /// Multiplier of VGG-11's channel widths (64 … 512).
    pub width: f64,
    /// Whether batch norm follows every convolution.
    pub batch_norm: bool,
}

impl ModelConfig {
    /// The training settings of a net, `None` for the SVM.
    pub fn net(&self) -> Option<&NetConfig> {
        match self {
            ModelConfig::SvmLinear(_) => None,
            ModelConfig::Cnn(net) => Some(net),
            ModelConfig::Densenet(config) => Some(&config.net),
            ModelConfig::Vgg(config) => Some(&config.net),
        }
    }

    /// The kind as written in campaign files (`svm-linear`, `cnn`).
    pub fn kind(&self) -> &'static str {
        match self {
            ModelConfig::SvmLinear(_) => "svm-linear",
            ModelConfig::Cnn(_) => "cnn",
            ModelConfig::Densenet(_) => "densenet",
            ModelConfig::Vgg(_) => "vgg",
        }
    }

    /// A short, stable label of the hyper-parameters, used to group results.
    pub fn label(&self) -> String {
        match self {
            ModelConfig::SvmLinear(svm) => svm.label(),
            ModelConfig::Cnn(net) => net.label(),
            ModelConfig::Densenet(config) => format!(
                "{} k={} blocks={}x{}",
                config.net.label(),
                config.growth_rate,
                config.n_blocks,
                config.layers_per_block
            ),
            ModelConfig::Vgg(config) => format!(
                "{} width={}{}",
                config.net.label(),
                config.width,
                if config.batch_norm { " bn" } else { "" }
            ),
        }
    }
}

impl NetConfig {
    /// `epochs=3 batch=32 lr=0.001`.
    pub fn label(&self) -> String {
        format!(
            "epochs={} batch={} lr={}",
            self.n_epochs, self.batch_size, self.learning_rate
        )
    }
}

/// Everything a worker needs to train and evaluate one model once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The campaign this job belongs to (16 hex digits).
    pub campaign_id: String,
    /// Position of the job in the campaign's expanded matrix.
    pub job_idx: u32,
    /// A known dataset name (`fashion-mnist`, `cifar-10`) or a dataset folder (IDX files,
    /// CIFAR-10 binary batches, or an image folder with `train/` and `test/`).
    pub dataset: String,
    /// Size of the stratified training subset; `None` for the whole training set.
    pub train_samples: Option<u32>,
    /// Size of the stratified test subset; `None` for the whole test set.
    pub test_samples: Option<u32>,
    /// Fixes the data subset, the shuffling and the initial weights.
    pub seed: u64,
    /// Compute threads for the job; 0 means every core of the worker.
    pub threads: u32,
    /// The model and its hyper-parameters.
    pub model: ModelConfig,
    /// From scratch (the default, not serialised), pretraining, or fine-tuning.
    #[serde(default, skip_serializing_if = "Stage::is_scratch")]
    pub stage: Stage,
    /// What the worker does to the images after loading; the identity is left out of the
    /// serialized form, so campaigns without `[transform]` keep their content id.
    #[serde(default, skip_serializing_if = "DataTransform::is_identity")]
    pub transform: DataTransform,
    /// The fingerprint (`TrainReport::dataset_sha256`) the campaign is pinned to for this
    /// job's dataset: set by the coordinator on the lease once a job of the campaign on
    /// that dataset succeeded, `None` in campaign files and stored campaigns (so their
    /// content id does not change). A worker whose copy has another fingerprint declines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_dataset_sha256: Option<String>,
}

impl JobSpec {
    /// The job's id: campaign id and index, as `3f2a…-7`.
    pub fn job_id(&self) -> String {
        format!("{}-{}", self.campaign_id, self.job_idx)
    }
}

/// Metrics of one finished training epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: u32,
    /// Mean training loss over the epoch.
    pub loss: f64,
    /// Test-subset accuracy at the end of the epoch.
    pub test_accuracy: f64,
    /// Training throughput over the epoch.
    pub samples_per_s: f64,
    /// Seconds since training started.
    pub elapsed_s: f64,
    /// Energy the job's process used since training started (kWh, the worker's meter read
    /// when the epoch ended); absent from workers that did not measure it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_kwh: Option<f64>,
}

/// What training a model produced, the same for every model kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Accuracy on the test subset, in [0, 1].
    pub accuracy: f64,
    /// Seconds spent fitting (data loading and evaluation excluded).
    pub train_s: f64,
    /// Seconds spent evaluating on the test subset.
    pub eval_s: f64,
    /// Training samples processed per second of `train_s`.
    pub samples_per_s: f64,
    /// Training samples used.
    pub n_train: u32,
    /// Test samples used.
    pub n_test: u32,
    /// Which solver or optimiser ran (`smartcore-smo-ovo`, `adamw`, …).
    pub solver: String,
    /// SHA-256 of the decoded dataset (both splits, before subsetting), so that
    /// results trained on different copies of a dataset are told apart.
    #[serde(default)]
    pub dataset_sha256: String,
    /// Per-epoch metrics; empty for models without epochs.
    pub epochs: Vec<EpochMetrics>,
}

/// How an energy figure was obtained (an estimate unless said otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnergyMethod {
    /// Measured by RAPL counters (perf_event or powercap), attributed to the process.
    Rapl,
    /// Estimated by the CPU and memory model from the process's CPU time and memory.
    #[default]
    Model,
}

impl EnergyMethod {
    /// The name used in reports (`rapl`, `model`).
    pub fn as_str(self) -> &'static str {
        match self {
            EnergyMethod::Rapl => "rapl",
            EnergyMethod::Model => "model",
        }
    }
}

/// The energy and carbon of one training process, with how they were obtained. The
/// default is an empty `model` report (tests and simulations fill what they need).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EnergyReport {
    /// Measured (`rapl`) or estimated (`model`).
    pub method: EnergyMethod,
    /// Wall-clock seconds the process ran.
    pub duration_s: f64,
    /// CPU time (user + system, all threads) of the process.
    pub cpu_time_s: f64,
    /// CPU energy attributed to the process.
    pub cpu_energy_kwh: f64,
    /// Memory energy attributed to the process.
    pub ram_energy_kwh: f64,
    /// CPU + memory energy of the process.
    pub energy_kwh: f64,
    /// Energy of the whole machine over the same interval, where it is known.
    pub machine_energy_kwh: Option<f64>,
    /// Mean power of the process over its run.
    pub avg_power_w: f64,
    /// Carbon intensity of the electricity used, gCO₂e/kWh.
    pub carbon_intensity_g_per_kwh: f64,
    /// Where the intensity comes from: ISO-3166 alpha-3 (`FRA`), a cloud region
    /// (`aws:eu-west-3`), `world` or `override`.
    pub carbon_region: String,
    /// Power usage effectiveness applied.
    pub pue: f64,
    /// kg CO₂e = energy × PUE × intensity.
    pub co2_kg: f64,
    /// The CPU TDP the model used, when the model ran.
    pub tdp_w: Option<f64>,
    /// Relative uncertainty of `energy_kwh` (0.3 means ±30 %).
    pub uncertainty: f64,
    /// Seconds between samples.
    pub sample_interval_s: f64,
    /// Samples taken.
    pub n_samples: u32,
    /// Peak resident memory of the process.
    pub peak_rss_bytes: u64,
    /// CPU energy of the whole machine (every package) over the run, when counters were read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_cpu_kwh: Option<f64>,
    /// The part of `machine_cpu_kwh` an idle machine would have drawn (the load curve's floor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_cpu_kwh: Option<f64>,
    /// Memory (DRAM zone) energy of the whole machine over the run, when a DRAM counter exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_ram_kwh: Option<f64>,
    /// The part of `machine_ram_kwh` idle memory would have drawn (background and refresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_ram_kwh: Option<f64>,
    /// The RAPL interface the counters were read through: `powercap` or `perf_event`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rapl_interface: Option<String>,
    /// Why this job fell back to the model although counters were read (e.g. its
    /// `/proc/<pid>/stat` could not be read, so its share of the counters is unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// Where the carbon intensity comes from, in words: `country FRA (France), Our World in
    /// Data 2023 via CodeCarbon`, `region aws:eu-west-3 (…), CodeCarbon impact.csv: …`,
    /// `--carbon-intensity 56` or `world average …`; `None` in results of older workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carbon_source: Option<String>,
    /// Where the PUE comes from: `--pue` or `default 1.0`; `None` in results of older workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pue_source: Option<String>,
}

/// The hardware and software of a worker, sent when it joins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct HardwareFingerprint {
    /// Host name.
    pub hostname: String,
    /// CPU model name as the kernel reports it.
    pub cpu_model: String,
    /// Physical cores.
    pub physical_cores: u32,
    /// Logical CPUs (hardware threads).
    pub logical_cores: u32,
    /// Installed memory.
    pub ram_bytes: u64,
    /// Operating system name and version.
    pub os: String,
    /// Kernel release.
    pub kernel: String,
    /// Energy source the meter found (`rapl: package-0, dram` or `model: TDP 64 W …`).
    pub energy_source: String,
    /// TDP of the CPU used by the model, if known.
    pub tdp_w: Option<f64>,
    /// Country (ISO-3166 alpha-3) whose carbon intensity applies.
    pub country: String,
    /// Version of the worker.
    pub version: String,
    /// The calibration score: GFLOP/s of a fixed f32 matrix-product micro-benchmark run at
    /// worker start (absent from workers that did not run it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration_gflops: Option<f64>,
}

/// A finished job as the worker reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// What training produced.
    pub train: TrainReport,
    /// What it cost.
    pub energy: EnergyReport,
    /// SHA-256 of the weights a pretrain job published (uploaded before the result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_sha256: Option<String>,
}

/// Live progress of a running job, carried by heartbeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Progress {
    /// Epochs finished.
    pub epoch: u32,
    /// Epochs planned.
    pub n_epochs: u32,
    /// Latest mean training loss.
    pub loss: f64,
    /// Latest test accuracy.
    pub accuracy: f64,
    /// Latest training throughput.
    pub samples_per_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_reports_without_sources_read_and_new_ones_write_them() {
        let old = r#"{"method":"model","duration_s":1.0,"cpu_time_s":1.0,
            "cpu_energy_kwh":0.0,"ram_energy_kwh":0.0,"energy_kwh":0.0,
            "machine_energy_kwh":null,"avg_power_w":0.0,"carbon_intensity_g_per_kwh":475.0,
            "carbon_region":"world","pue":1.0,"co2_kg":0.0,"tdp_w":null,"uncertainty":0.5,
            "sample_interval_s":1.0,"n_samples":1,"peak_rss_bytes":1}"#;
        let mut report: EnergyReport = serde_json::from_str(old).unwrap();
        assert_eq!((&report.carbon_source, &report.pue_source), (&None, &None));
        report.carbon_source = Some("--carbon-intensity 56".into());
        report.pue_source = Some("--pue".into());
        let json = serde_json::to_string(&report).unwrap();
        assert!(
            json.contains(r#""carbon_source":"--carbon-intensity 56","pue_source":"--pue""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<EnergyReport>(&json).unwrap(), report);
    }

    #[test]
    fn svm_records_without_a_solver_read_as_smartcore_which_trained_them() {
        let old: ModelConfig = serde_json::from_str(r#"{"kind":"svm-linear","c":1.0}"#).unwrap();
        assert_eq!(
            old,
            ModelConfig::SvmLinear(SvmConfig::new(1.0, SvmSolver::Smo))
        );
        let ModelConfig::SvmLinear(svm) = old else {
            unreachable!()
        };
        assert_eq!(svm.multiclass, SvmMulticlass::Ovo);
    }

    #[test]
    fn svm_records_without_multiclass_read_as_the_solvers_own() {
        let old: ModelConfig =
            serde_json::from_str(r#"{"kind":"svm-linear","c":1.0,"solver":"smo"}"#).unwrap();
        let ModelConfig::SvmLinear(svm) = old else {
            panic!("{old:?}")
        };
        assert_eq!(svm.multiclass, SvmMulticlass::Ovo);
    }

    #[test]
    fn svm_configs_round_trip_and_name_multiclass_only_when_not_the_solvers_own() {
        let cases = [
            (SvmSolver::Dcd, SvmMulticlass::Ovo, "", "c=0.5 solver=dcd"),
            (
                SvmSolver::Dcd,
                SvmMulticlass::Ovr,
                r#","multiclass":"ovr""#,
                "c=0.5 solver=dcd multiclass=ovr",
            ),
            (SvmSolver::Smo, SvmMulticlass::Ovo, "", "c=0.5 solver=smo"),
        ];
        for (solver, multiclass, json_extra, label) in cases {
            let config = ModelConfig::SvmLinear(SvmConfig {
                c: 0.5,
                solver,
                multiclass,
            });
            let json = serde_json::to_string(&config).unwrap();
            let expected = format!(
                r#"{{"kind":"svm-linear","c":0.5,"solver":"{}"{json_extra}}}"#,
                solver.as_str()
            );
            assert_eq!(json, expected);
            assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), config);
            assert_eq!(config.label(), label);
        }
    }

    #[test]
    fn svm_names_round_trip() {
        for solver in SvmSolver::ALL {
            assert_eq!(SvmSolver::from_name(solver.as_str()), Some(solver));
            assert!(solver.supports(solver.default_multiclass()));
        }
        for multiclass in SvmMulticlass::ALL {
            assert_eq!(
                SvmMulticlass::from_name(multiclass.as_str()),
                Some(multiclass)
            );
        }
        assert_eq!(SvmSolver::from_name("sgd"), None);
        assert_eq!(SvmMulticlass::from_name("crammer-singer"), None);
        assert!(!SvmSolver::Smo.supports(SvmMulticlass::Ovr));
    }
}
