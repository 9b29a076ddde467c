//! One entry point that trains and evaluates any model on a job's data: [`train_job`].

use std::path::{Path, PathBuf};

use ecobench_shared::{EpochMetrics, JobSpec, ModelConfig, Stage, TrainReport};
use serde::{Deserialize, Serialize};

use crate::data::{self, DataError, Dataset, derive_seed, stratified_subset};
use crate::models::{self, ModelError};

/// Random stream (see [`derive_seed`]) of the training subset.
const TRAIN_SUBSET_STREAM: u64 = 1;
/// Random stream of the test subset.
const TEST_SUBSET_STREAM: u64 = 2;
/// Random stream of the SVM solver (smartcore's seed, or the coordinate order of dcd).
const SVM_STREAM: u64 = 3;

/// Why a job could not be trained.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The dataset is missing or unreadable (bad input: do not retry).
    #[error(transparent)]
    Data(#[from] DataError),
    /// The model refused its input or failed while training.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The compute threads could not be started (worth a retry).
    #[error("cannot start the job's compute threads: {0}")]
    Threads(String),
    /// The job's weights files were not given (a worker bug: do not retry).
    #[error("{0}")]
    Weights(String),
    /// The dataset, as transformed, does not fit the model (bad input: do not retry).
    #[error("{0}")]
    Unsupported(String),
    /// This worker's copy of the dataset is not the one the campaign is pinned to: the
    /// worker declines the job, which goes to another worker.
    #[error(
        "this worker's copy of dataset '{dataset}' (read from {}) has fingerprint {found}, \
         but the campaign is pinned to fingerprint {expected}, the copy its first results \
         were trained on: the job is declined; use the same copy of the dataset as the other \
         workers (e.g. Debian's dataset-fashion-mnist, in /usr/share/datasets/fashion-mnist) \
         or point --data-dir at it",
        copy_dir.display()
    )]
    DatasetMismatch {
        /// The dataset as the job names it.
        dataset: String,
        /// The fingerprint the campaign is pinned to.
        expected: String,
        /// The fingerprint of this worker's copy.
        found: String,
        /// The folder this worker's copy was read from.
        copy_dir: PathBuf,
    },
}

impl TrainError {
    /// Whether running the job again may succeed: false for bad input (dataset missing or
    /// not IDX, too few samples, bad hyper-parameters), true for internal failures (candle,
    /// smartcore).
    pub fn is_retryable(&self) -> bool {
        match self {
            TrainError::Data(_) | TrainError::Unsupported(_) => false,
            TrainError::Model(err) => err.is_retryable(),
            TrainError::Threads(_) => true,
            TrainError::Weights(_) | TrainError::DatasetMismatch { .. } => false,
        }
    }

    /// Whether the worker declines the job rather than failing it: another worker, with
    /// the campaign's copy of the dataset, can run it.
    pub fn is_decline(&self) -> bool {
        matches!(self, TrainError::DatasetMismatch { .. })
    }
}

/// Trains and evaluates the model of `spec` on its dataset, calling `on_epoch` after each
/// epoch (nets only).
///
/// The dataset is resolved with [`data::resolve_dataset`] in `data_dirs` (priority order)
/// and loaded in whatever format it has ([`data::load_dataset_with`]); its fingerprint is
/// taken on the decoded files, before the job's transform. `train_samples` images are taken
/// from the training split and `test_samples` from the test split as seeded stratified
/// subsets (sizes beyond a split are clamped; the report gives the counts used), then
/// `spec.transform` is applied to them (a transform works image by image and subsets depend
/// on labels only, so this is the same as transforming first, for less work). The job's
/// seed, through separate derived streams, fixes both subsets, the shuffling and the
/// initial weights.
///
/// When the job carries the campaign's fingerprint (`expected_dataset_sha256`) and this
/// copy has another, nothing is trained: [`TrainError::DatasetMismatch`].
///
/// A pretrain job ([`Stage::Pretrain`]) trains on its source classes only, renumbered
/// 0.. in order, and saves its weights to `weights.save`; a fine-tune starts from
/// `weights.init` (its head drawn from the seed) and, frozen, trains the head alone.
pub fn train_job(
    spec: &JobSpec,
    data_dirs: &[PathBuf],
    weights: &JobWeights,
    on_epoch: &mut (dyn FnMut(&EpochMetrics) + Send),
) -> Result<TrainReport, TrainError> {
    let dir = data::resolve_dataset(&spec.dataset, data_dirs)?;
    let loaded = data::load_dataset_with(&dir, &spec.transform)?;
    let dataset_sha256 = data::digest(&loaded.train, &loaded.test);
    check_fingerprint(spec, &dataset_sha256, &loaded.source)?;
    let (mut train_full, mut test_full) = (loaded.train, loaded.test);
    let mut n_classes = loaded.classes.len();
    let mut net_weights = models::Weights::default();
    match &spec.stage {
        Stage::Scratch => {}
        Stage::Pretrain { classes, .. } => {
            train_full = source_task(&train_full, classes);
            test_full = source_task(&test_full, classes);
            n_classes = classes.len();
            net_weights.save = Some(weights.save.as_deref().ok_or_else(|| {
                TrainError::Weights("a pretrain job needs a path to save its weights".into())
            })?);
        }
        Stage::FineTune { freeze, .. } => {
            net_weights.init = Some(weights.init.as_deref().ok_or_else(|| {
                TrainError::Weights("a fine-tune needs the pretrained weights".into())
            })?);
            net_weights.freeze = *freeze;
        }
    }
    let (train, test) = job_subsets(
        train_full,
        test_full,
        spec.train_samples,
        spec.test_samples,
        spec.seed,
    );
    let train = data::apply_transform(&spec.transform, train)?;
    let test = data::apply_transform(&spec.transform, test)?;
    // `normalize`: both splits standardised with the job's training images' statistics.
    let normalization = spec
        .transform
        .normalize
        .then(|| data::Normalization::of(&train));
    net_weights.normalize = normalization.as_ref();
    tracing::debug!(
        dataset = %loaded.source.display(),
        format = loaded.format.as_str(),
        shape = %train.shape(),
        transform = %spec.transform.label(),
        %dataset_sha256,
        n_train = train.len(),
        n_test = test.len(),
        model = spec.model.kind(),
        "data ready"
    );
    let train_model = || -> Result<TrainReport, TrainError> {
        Ok(match &spec.model {
            ModelConfig::SvmLinear(config) => {
                models::train_svm(&train, &test, config, svm_seed(spec.seed))?
            }
            net => models::train_net(
                net,
                &train,
                &test,
                n_classes,
                spec.seed,
                net_weights,
                on_epoch,
            )?,
        })
    };
    let mut report = with_threads(spec.threads, train_model)?;
    report.dataset_sha256 = dataset_sha256;
    Ok(report)
}

/// Refuses a copy of the dataset whose fingerprint is not the one the job expects.
fn check_fingerprint(spec: &JobSpec, found: &str, copy_dir: &Path) -> Result<(), TrainError> {
    match &spec.expected_dataset_sha256 {
        Some(expected) if expected != found => Err(TrainError::DatasetMismatch {
            dataset: spec.dataset.clone(),
            expected: expected.clone(),
            found: found.to_string(),
            copy_dir: copy_dir.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

/// Runs `f` on a pool of exactly `threads` compute threads (the calling thread waits), or
/// on the process's default pool when `threads` is 0 (every core, or `RAYON_NUM_THREADS`).
/// The ops split their work over the pool they run on: a job never uses more threads than
/// it asked for.
pub fn with_threads<R: Send>(
    threads: u32,
    f: impl FnOnce() -> Result<R, TrainError> + Send,
) -> Result<R, TrainError> {
    if threads == 0 {
        return f();
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads as usize)
        .thread_name(|idx| format!("compute-{idx}"))
        .build()
        .map_err(|err| TrainError::Threads(err.to_string()))?;
    pool.install(f)
}

/// The training and test subsets a job with `seed` uses: seeded stratified subsets of
/// `train_samples` and `test_samples` images of the two splits (the whole split for `None`
/// or a size beyond it).
pub fn job_subsets(
    train_full: Dataset,
    test_full: Dataset,
    train_samples: Option<u32>,
    test_samples: Option<u32>,
    seed: u64,
) -> (Dataset, Dataset) {
    let train = subset(
        train_full,
        train_samples,
        derive_seed(seed, TRAIN_SUBSET_STREAM),
    );
    let test = subset(
        test_full,
        test_samples,
        derive_seed(seed, TEST_SUBSET_STREAM),
    );
    (train, test)
}

/// The images of `split` in `classes`, labelled by their position in `classes`.
fn source_task(split: &Dataset, classes: &[u8]) -> Dataset {
    let keep: Vec<usize> = (0..split.len())
        .filter(|&i| classes.contains(&split.labels[i]))
        .collect();
    let mut task = split.select(&keep);
    for label in &mut task.labels {
        *label = classes
            .iter()
            .position(|c| c == label)
            .expect("kept labels are in classes") as u8;
    }
    task
}

/// Files a job's weights come from and go to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobWeights {
    /// Pretrained weights a fine-tune starts from.
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// Where a pretrain job saves its weights.
    #[serde(default)]
    pub save: Option<PathBuf>,
}

/// The seed the SVM solver of a job with `seed` gets.
pub fn svm_seed(seed: u64) -> u64 {
    derive_seed(seed, SVM_STREAM)
}

/// The seeded stratified subset of `n_samples` images, or the whole split for `None`.
fn subset(split: Dataset, n_samples: Option<u32>, seed: u64) -> Dataset {
    match n_samples {
        None => split,
        Some(n) if n as usize >= split.len() => split,
        Some(n) => split.select(&stratified_subset(&split.labels, n as usize, seed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testdata::synthetic_split;
    use ecobench_shared::{DataTransform, NetConfig, SvmConfig, SvmSolver};

    fn spec(dataset: &str, model: ModelConfig) -> JobSpec {
        JobSpec {
            campaign_id: "00000000000000ab".into(),
            job_idx: 3,
            dataset: dataset.into(),
            train_samples: Some(200),
            test_samples: Some(50),
            seed: 42,
            threads: 1,
            model,
            stage: Default::default(),
            transform: DataTransform::default(),
            expected_dataset_sha256: None,
        }
    }

    fn tiny_dataset_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("tiny");
        data::write_split(
            &folder,
            &synthetic_split(400, 8, 1),
            &synthetic_split(80, 8, 2),
            true,
        )
        .unwrap();
        dir
    }

    #[test]
    fn trains_a_cnn_end_to_end_from_idx_files() {
        let dir = tiny_dataset_dir();
        let net = NetConfig {
            n_epochs: 2,
            batch_size: 16,
            learning_rate: 0.003,
        };
        let job = spec("tiny", ModelConfig::Cnn(net));
        let mut n_epochs_seen = 0;
        let dirs = [dir.path().to_path_buf()];
        let report = train_job(&job, &dirs, &JobWeights::default(), &mut |_| {
            n_epochs_seen += 1
        })
        .unwrap();
        assert_eq!((report.n_train, report.n_test), (200, 50));
        assert_eq!(n_epochs_seen, 2);
        assert_eq!(report.epochs.len(), 2);
        assert!(report.accuracy > 0.3, "accuracy {}", report.accuracy);
        assert_eq!(report.solver, models::net::SOLVER);
    }

    /// The job's thread count is the size of the pool its ops split their work over, and
    /// the same seed gives the same figures whatever the thread count.
    #[test]
    fn a_job_trains_on_exactly_its_threads() {
        let dir = tiny_dataset_dir();
        let dirs = [dir.path().to_path_buf()];
        let net = NetConfig {
            n_epochs: 1,
            batch_size: 16,
            learning_rate: 0.003,
        };
        let mut losses = Vec::new();
        for threads in [1, 2, 2] {
            let mut job = spec("tiny", ModelConfig::Cnn(net.clone()));
            job.threads = threads;
            let mut seen = Vec::new();
            let report = train_job(&job, &dirs, &JobWeights::default(), &mut |_| {
                let name = std::thread::current()
                    .name()
                    .unwrap_or_default()
                    .to_string();
                seen.push((rayon::current_num_threads(), name));
            })
            .unwrap();
            assert_eq!(seen.len(), 1);
            assert_eq!(
                seen[0].0, threads as usize,
                "pool size for threads = {threads}"
            );
            assert!(seen[0].1.starts_with("compute-"), "ran on {:?}", seen[0].1);
            losses.push((threads, report.epochs[0].loss, report.accuracy));
        }
        assert_eq!(
            losses[1], losses[2],
            "same seed and threads, different figures"
        );
    }

    #[test]
    fn trains_an_svm_by_directory_path_with_clamped_sizes() {
        let dir = tiny_dataset_dir();
        let path = dir.path().join("tiny");
        let mut job = spec(
            path.to_str().unwrap(),
            ModelConfig::SvmLinear(SvmConfig::new(1.0, SvmSolver::Dcd)),
        );
        job.train_samples = Some(10_000);
        job.test_samples = None;
        let report = train_job(&job, &[], &JobWeights::default(), &mut |_| {
            panic!("no epochs for an svm")
        })
        .unwrap();
        assert_eq!((report.n_train, report.n_test), (400, 80));
        assert!(report.accuracy > 0.5, "accuracy {}", report.accuracy);
    }

    #[test]
    fn a_copy_with_another_fingerprint_is_declined_before_training() {
        let dir = tiny_dataset_dir();
        let dirs = [dir.path().to_path_buf()];
        let mut job = spec(
            "tiny",
            ModelConfig::SvmLinear(SvmConfig::new(1.0, SvmSolver::Dcd)),
        );
        let report = train_job(&job, &dirs, &JobWeights::default(), &mut |_| {}).unwrap();
        job.expected_dataset_sha256 = Some(report.dataset_sha256.clone());
        train_job(&job, &dirs, &JobWeights::default(), &mut |_| {}).unwrap();
        job.expected_dataset_sha256 = Some("ab".repeat(32));
        let err = train_job(&job, &dirs, &JobWeights::default(), &mut |_| {
            panic!("nothing is trained")
        })
        .unwrap_err();
        assert!(err.is_decline() && !err.is_retryable());
        let message = err.to_string();
        for part in [
            &report.dataset_sha256,
            &"ab".repeat(32),
            &dir.path().join("tiny").display().to_string(),
            &"--data-dir".to_string(),
        ] {
            assert!(message.contains(part.as_str()), "{part} not in {message}");
        }
    }

    #[test]
    fn a_folder_of_non_idx_files_is_a_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        for file in data::SPLIT_FILES {
            std::fs::write(dir.path().join(format!("{file}.gz")), b"<html>oops</html>").unwrap();
        }
        let job = spec(
            dir.path().to_str().unwrap(),
            ModelConfig::SvmLinear(SvmConfig::new(1.0, SvmSolver::Dcd)),
        );
        let err = train_job(&job, &[], &JobWeights::default(), &mut |_| {}).unwrap_err();
        assert!(!err.is_retryable());
        let message = err.to_string();
        assert!(
            message.contains("train-images-idx3-ubyte.gz is not an IDX image file"),
            "{message}"
        );
        assert!(message.contains("folder of IDX files"), "{message}");
    }

    #[test]
    fn too_few_svm_samples_is_a_bad_input() {
        let dir = tiny_dataset_dir();
        let mut job = spec(
            "tiny",
            ModelConfig::SvmLinear(SvmConfig::new(1.0, SvmSolver::Smo)),
        );
        job.train_samples = Some(50);
        let err = train_job(
            &job,
            &[dir.path().to_path_buf()],
            &JobWeights::default(),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("at least 65"), "{err}");
    }

    /// A CIFAR-10 folder of class patterns in colour: red the pattern, green its half,
    /// blue its negative.
    fn tiny_cifar_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (file, n, seed) in [("data_batch_1.bin", 300, 1), ("test_batch.bin", 100, 2)] {
            let grey = synthetic_split(n, 32, seed);
            let mut rgb = Dataset {
                channels: 3,
                images: Vec::with_capacity(n * 3 * 1024),
                ..grey.clone()
            };
            for idx in 0..n {
                let image = grey.image(idx);
                rgb.images.extend_from_slice(image);
                rgb.images.extend(image.iter().map(|&v| v / 2));
                rgb.images.extend(image.iter().map(|&v| 255 - v));
            }
            data::cifar::write_cifar_batch(&dir.path().join(file), &rgb).unwrap();
        }
        dir
    }

    #[test]
    fn trains_an_svm_on_grayscale_cifar_with_the_fingerprint_of_the_files() {
        let dir = tiny_cifar_dir();
        let mut job = spec(
            dir.path().to_str().unwrap(),
            ModelConfig::SvmLinear(SvmConfig::new(1.0, SvmSolver::Dcd)),
        );
        job.transform.grayscale = true;
        let gray = train_job(&job, &[], &JobWeights::default(), &mut |_| {}).unwrap();
        assert_eq!((gray.n_train, gray.n_test), (200, 50));
        assert!(gray.accuracy > 0.5, "accuracy {}", gray.accuracy);
        job.transform = DataTransform::default();
        let colour = train_job(&job, &[], &JobWeights::default(), &mut |_| {}).unwrap();
        assert!(colour.accuracy > 0.5, "accuracy {}", colour.accuracy);
        assert_eq!(gray.dataset_sha256, colour.dataset_sha256);
    }

    #[test]
    fn a_net_takes_a_colour_dataset_with_its_channels_and_learns() {
        let dir = tiny_cifar_dir();
        let net = NetConfig {
            n_epochs: 2,
            batch_size: 16,
            learning_rate: 0.003,
        };
        let job = spec(dir.path().to_str().unwrap(), ModelConfig::Cnn(net));
        let report = train_job(&job, &[], &JobWeights::default(), &mut |_| {}).unwrap();
        assert!(report.accuracy > 0.3, "accuracy {}", report.accuracy);
    }

    #[test]
    fn a_truncated_cifar_batch_fails_the_job_for_good() {
        let dir = tiny_cifar_dir();
        let path = dir.path().join("data_batch_1.bin");
        let raw = std::fs::read(&path).unwrap();
        std::fs::write(&path, &raw[..raw.len() - 10]).unwrap();
        let job = spec(
            dir.path().to_str().unwrap(),
            ModelConfig::SvmLinear(SvmConfig::new(1.0, SvmSolver::Dcd)),
        );
        let err = train_job(&job, &[], &JobWeights::default(), &mut |_| {}).unwrap_err();
        assert!(!err.is_retryable());
        let message = err.to_string();
        assert!(
            message.contains("data_batch_1.bin is truncated"),
            "{message}"
        );
        assert!(message.contains("byte offset 918827"), "{message}");
    }

    #[test]
    fn a_net_gets_as_many_outputs_as_the_dataset_has_classes() {
        let dir = tempfile::tempdir().unwrap();
        for split in ["train", "test"] {
            for class in 0..11u8 {
                let class_dir = dir.path().join(split).join(format!("c{class:02}"));
                std::fs::create_dir_all(&class_dir).unwrap();
                for copy in 0..4u8 {
                    image::GrayImage::from_pixel(8, 8, image::Luma([class * 20 + copy]))
                        .save(class_dir.join(format!("{copy}.png")))
                        .unwrap();
                }
            }
        }
        let net = NetConfig {
            n_epochs: 30,
            batch_size: 4,
            learning_rate: 0.01,
        };
        let mut job = spec(dir.path().to_str().unwrap(), ModelConfig::Cnn(net));
        job.train_samples = None;
        job.test_samples = None;
        let report = train_job(&job, &[], &JobWeights::default(), &mut |_| {}).unwrap();
        assert_eq!(report.n_train, 44);
        // Class 10 exists only if the head has 11 outputs; chance is 1/11.
        assert!(report.accuracy > 0.3, "accuracy {}", report.accuracy);
    }
}
