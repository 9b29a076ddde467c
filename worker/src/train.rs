//! One entry point that trains and evaluates any model on a job's data: [`train_job`].

use std::path::PathBuf;

use ecobench_shared::{EpochMetrics, JobSpec, ModelConfig, TrainReport};

use crate::data::{self, DataError, Dataset, derive_seed, stratified_subset};
use crate::models::{self, ModelError};

/// Classes the nets' output layers have (for now).
const NET_CLASSES: usize = 10;

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
    /// The dataset, as transformed, does not fit the model (bad input: do not retry).
    #[error("{0}")]
    Unsupported(String),
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
        }
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
pub fn train_job(
    spec: &JobSpec,
    data_dirs: &[PathBuf],
    on_epoch: &mut (dyn FnMut(&EpochMetrics) + Send),
) -> Result<TrainReport, TrainError> {
    let dir = data::resolve_dataset(&spec.dataset, data_dirs)?;
    let loaded = data::load_dataset_with(&dir, &spec.transform)?;
    let dataset_sha256 = data::digest(&loaded.train, &loaded.test);
    let (train, test) = job_subsets(
        loaded.train,
        loaded.test,
        spec.train_samples,
        spec.test_samples,
        spec.seed,
    );
    let train = data::apply_transform(&spec.transform, train)?;
    let test = data::apply_transform(&spec.transform, test)?;
    check_fits_model(&spec.model, &train, &loaded.source)?;
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
            net => models::train_net(net, &train, &test, spec.seed, on_epoch)?,
        })
    };
    let mut report = with_threads(spec.threads, train_model)?;
    report.dataset_sha256 = dataset_sha256;
    Ok(report)
}

/// Refuses input the nets cannot take yet: more than one channel or labels beyond their
/// ten outputs. The SVM takes any channel count (each image a flat vector) and checks its
/// own labels.
fn check_fits_model(
    model: &ModelConfig,
    train: &Dataset,
    source: &std::path::Path,
) -> Result<(), TrainError> {
    if matches!(model, ModelConfig::SvmLinear(_)) {
        return Ok(());
    }
    let kind = model.kind();
    if train.channels != 1 {
        return Err(TrainError::Unsupported(format!(
            "dataset {} has {} channels and the {kind} net takes grey images (1 channel) for \
             now: set `[transform] grayscale = true` in the campaign, or use svm-linear",
            source.display(),
            train.channels
        )));
    }
    if let Some(&label) = train
        .labels
        .iter()
        .find(|&&l| usize::from(l) >= NET_CLASSES)
    {
        return Err(TrainError::Unsupported(format!(
            "dataset {} has label {label} and the {kind} net has {NET_CLASSES} outputs for \
             now: use a dataset of at most {NET_CLASSES} classes, or svm-linear",
            source.display()
        )));
    }
    Ok(())
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
            transform: DataTransform::default(),
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
        let report = train_job(&job, &dirs, &mut |_| n_epochs_seen += 1).unwrap();
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
            let report = train_job(&job, &dirs, &mut |_| {
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
        let report = train_job(&job, &[], &mut |_| panic!("no epochs for an svm")).unwrap();
        assert_eq!((report.n_train, report.n_test), (400, 80));
        assert!(report.accuracy > 0.5, "accuracy {}", report.accuracy);
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
        let err = train_job(&job, &[], &mut |_| {}).unwrap_err();
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
        let err = train_job(&job, &[dir.path().to_path_buf()], &mut |_| {}).unwrap_err();
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
        let gray = train_job(&job, &[], &mut |_| {}).unwrap();
        assert_eq!((gray.n_train, gray.n_test), (200, 50));
        assert!(gray.accuracy > 0.5, "accuracy {}", gray.accuracy);
        job.transform = DataTransform::default();
        let colour = train_job(&job, &[], &mut |_| {}).unwrap();
        assert!(colour.accuracy > 0.5, "accuracy {}", colour.accuracy);
        assert_eq!(gray.dataset_sha256, colour.dataset_sha256);
    }

    #[test]
    fn a_colour_dataset_for_a_net_asks_for_grayscale() {
        let dir = tiny_cifar_dir();
        let net = NetConfig {
            n_epochs: 1,
            batch_size: 16,
            learning_rate: 0.003,
        };
        let job = spec(dir.path().to_str().unwrap(), ModelConfig::Cnn(net));
        let err = train_job(&job, &[], &mut |_| {}).unwrap_err();
        assert!(!err.is_retryable());
        let message = err.to_string();
        assert!(message.contains("has 3 channels"), "{message}");
        assert!(
            message.contains("`[transform] grayscale = true`"),
            "{message}"
        );
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
        let err = train_job(&job, &[], &mut |_| {}).unwrap_err();
        assert!(!err.is_retryable());
        let message = err.to_string();
        assert!(
            message.contains("data_batch_1.bin is truncated"),
            "{message}"
        );
        assert!(message.contains("byte offset 918827"), "{message}");
    }

    #[test]
    fn more_than_ten_classes_for_a_net_is_a_clear_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        for split in ["train", "test"] {
            for class in 0..11 {
                let class_dir = dir.path().join(split).join(format!("c{class:02}"));
                std::fs::create_dir_all(&class_dir).unwrap();
                image::GrayImage::from_pixel(8, 8, image::Luma([class * 20]))
                    .save(class_dir.join("0.png"))
                    .unwrap();
            }
        }
        let net = NetConfig {
            n_epochs: 1,
            batch_size: 4,
            learning_rate: 0.003,
        };
        let job = spec(dir.path().to_str().unwrap(), ModelConfig::Cnn(net));
        let err = train_job(&job, &[], &mut |_| {}).unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("has label 10"), "{err}");
    }
}
