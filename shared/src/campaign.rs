//! Campaign files: TOML parsing, validation and expansion into a matrix of jobs.
//!
//! Every list-valued key is an axis: a model entry expands into the cartesian
//! product of its axes, and every configuration runs once per seed. An optional
//! `[transform]` table (see [`DataTransform`]) applies to every job.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::job::{JobSpec, MODEL_KINDS, ModelConfig, SvmConfig, SvmMulticlass, SvmSolver};
use crate::pretrain::{DeclaredCost, PretrainSource, PretrainedValue, Stage, parse_pretrained};
use crate::transform::DataTransform;

mod check;
mod nets;
use check::Checker;

/// Largest matrix a campaign may expand to unless the coordinator says otherwise.
pub const DEFAULT_MAX_JOBS: usize = 10_000;

/// A parsed, validated and expanded campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignSpec {
    /// Content hash of the expanded campaign (16 hex digits): the same file gives the same id.
    pub id: String,
    /// Human name from the file.
    pub name: String,
    /// Dataset every job trains on.
    pub dataset: String,
    /// Optional accuracy that reports measure time and energy to reach.
    pub target_accuracy: Option<f64>,
    /// The expanded matrix, `job_idx` = position.
    pub jobs: Vec<JobSpec>,
    /// Where the coordinator may run the jobs. Left out of the canonical form (and so of
    /// the id) when it is the default, so that campaigns without the key keep their ids.
    #[serde(default, skip_serializing_if = "Placement::is_any")]
    pub placement: Placement,
}

/// Which workers a campaign's jobs may go to (campaign key `placement`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Any worker (the default).
    #[default]
    Any,
    /// Once a job of a seed is leased to a worker, the seed's other jobs go only to that
    /// worker while it is alive, so that every model of one seed runs on one machine.
    SameWorkerPerSeed,
}

impl Placement {
    /// Every placement, in the order error messages list them.
    pub const ALL: [Placement; 2] = [Placement::Any, Placement::SameWorkerPerSeed];

    /// The name in campaign files.
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Any => "any",
            Placement::SameWorkerPerSeed => "same-worker-per-seed",
        }
    }

    /// The placement of that name in campaign files.
    pub fn from_name(name: &str) -> Option<Placement> {
        Placement::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// True for the default, [`Placement::Any`].
    pub fn is_any(&self) -> bool {
        *self == Placement::Any
    }
}

/// What is wrong with a campaign file, with where and how to fix it.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CampaignError {
    /// The TOML does not parse or does not fit the campaign format.
    #[error("{file}: {message}")]
    Syntax {
        /// The file (or source name) that was parsed.
        file: String,
        /// The parser's message, with line, column and key.
        message: String,
    },
    /// A value is out of range.
    #[error("{file}:{line}: key `{key}` = {value}: {reason}")]
    Invalid {
        /// The file (or source name).
        file: String,
        /// 1-based line of the key, 0 when unknown.
        line: usize,
        /// The offending key.
        key: String,
        /// The offending value as written.
        value: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The matrix is larger than the coordinator accepts.
    #[error(
        "{file}: the campaign expands to {n_jobs} jobs, more than the limit of {max_jobs}: remove axis values or seeds, or raise the coordinator's --max-jobs"
    )]
    TooLarge {
        /// The file (or source name).
        file: String,
        /// Jobs the matrix would hold.
        n_jobs: usize,
        /// The limit in force.
        max_jobs: usize,
    },
}

/// A key that holds one value or a list of values (an axis of the matrix).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Axis<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> Axis<T> {
    fn values(&self) -> Vec<T> {
        match self {
            Axis::One(value) => vec![value.clone()],
            Axis::Many(values) => values.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCampaign {
    name: String,
    #[serde(default = "default_dataset")]
    dataset: String,
    train_samples: Option<u32>,
    test_samples: Option<u32>,
    #[serde(default = "default_seeds")]
    seeds: Vec<u64>,
    target_accuracy: Option<f64>,
    placement: Option<String>,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    model: Vec<RawModel>,
    #[serde(default)]
    transform: DataTransform,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    #[serde(default = "default_epochs")]
    epochs: Axis<u32>,
    #[serde(default = "default_batch_size")]
    batch_size: Axis<u32>,
    #[serde(default = "default_learning_rate")]
    learning_rate: Axis<f64>,
    #[serde(default = "default_optimizer")]
    optimizer: String,
    #[serde(default)]
    threads: u32,
}

impl Default for RawDefaults {
    fn default() -> Self {
        RawDefaults {
            epochs: default_epochs(),
            batch_size: default_batch_size(),
            learning_rate: default_learning_rate(),
            optimizer: default_optimizer(),
            threads: 0,
        }
    }
}

/// A `[[model]]` table: `kind` plus the keys of every kind; `Checker` refuses
/// keys that do not apply to the kind. (A tagged enum would lose the key's
/// line in error messages.)
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    kind: String,
    train_samples: Option<u32>,
    c: Option<Axis<f64>>,
    solver: Option<Axis<String>>,
    multiclass: Option<Axis<String>>,
    epochs: Option<Axis<u32>>,
    batch_size: Option<Axis<u32>>,
    learning_rate: Option<Axis<f64>>,
    threads: Option<u32>,
    growth_rate: Option<Axis<u32>>,
    n_blocks: Option<Axis<u32>>,
    layers_per_block: Option<Axis<u32>>,
    width: Option<Axis<f64>>,
    batch_norm: Option<Axis<bool>>,
    pretrained: Option<String>,
    freeze: Option<Axis<bool>>,
    pretrain_kwh: Option<f64>,
    pretrain_co2_kg: Option<f64>,
}

impl RawModel {
    /// The keys set in this table besides `kind`.
    fn keys_set(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.c.is_some() {
            keys.push("c");
        }
        if self.solver.is_some() {
            keys.push("solver");
        }
        if self.multiclass.is_some() {
            keys.push("multiclass");
        }
        if self.epochs.is_some() {
            keys.push("epochs");
        }
        if self.batch_size.is_some() {
            keys.push("batch_size");
        }
        if self.learning_rate.is_some() {
            keys.push("learning_rate");
        }
        let net_keys = [
            ("growth_rate", self.growth_rate.is_some()),
            ("n_blocks", self.n_blocks.is_some()),
            ("layers_per_block", self.layers_per_block.is_some()),
            ("width", self.width.is_some()),
            ("batch_norm", self.batch_norm.is_some()),
            ("pretrained", self.pretrained.is_some()),
            ("freeze", self.freeze.is_some()),
            ("pretrain_kwh", self.pretrain_kwh.is_some()),
            ("pretrain_co2_kg", self.pretrain_co2_kg.is_some()),
        ];
        keys.extend(net_keys.iter().filter(|(_, set)| *set).map(|(key, _)| *key));
        keys
    }
}

/// Keys every `[[model]]` table may set, whatever its kind.
const COMMON_MODEL_KEYS: &[&str] = &["train_samples", "threads"];

/// The keys each model kind takes besides [`COMMON_MODEL_KEYS`].
fn keys_of_kind(kind: &str) -> &'static [&'static str] {
    match kind {
        "svm-linear" => &["c", "solver", "multiclass"],
        "cnn" => &[
            "epochs",
            "batch_size",
            "learning_rate",
            "pretrained",
            "freeze",
            "pretrain_kwh",
            "pretrain_co2_kg",
        ],
        "densenet" => &[
            "epochs",
            "batch_size",
            "learning_rate",
            "growth_rate",
            "n_blocks",
            "layers_per_block",
            "pretrained",
            "freeze",
            "pretrain_kwh",
            "pretrain_co2_kg",
        ],
        "vgg" => &[
            "epochs",
            "batch_size",
            "learning_rate",
            "width",
            "batch_norm",
            "pretrained",
            "freeze",
            "pretrain_kwh",
            "pretrain_co2_kg",
        ],
        _ => &[],
    }
}

fn default_dataset() -> String {
    "fashion-mnist".to_string()
}
fn default_seeds() -> Vec<u64> {
    vec![1]
}
fn default_epochs() -> Axis<u32> {
    Axis::One(1)
}
fn default_batch_size() -> Axis<u32> {
    Axis::One(64)
}
fn default_learning_rate() -> Axis<f64> {
    Axis::One(1e-3)
}
fn default_optimizer() -> String {
    "adamw".to_string()
}

/// Parses, validates and expands a campaign file that names no weights file.
///
/// `file` names the source in error messages; `max_jobs` bounds the matrix.
pub fn parse(file: &str, text: &str, max_jobs: usize) -> Result<CampaignSpec, CampaignError> {
    parse_with_uploads(file, text, max_jobs, &BTreeMap::new())
}

/// The `file:` weights a campaign names (`pretrained = "file:PATH"`), as written: the
/// submitter uploads each and passes its SHA-256 to [`parse_with_uploads`].
pub fn weight_files(text: &str) -> Vec<String> {
    let Ok(raw) = toml::from_str::<RawCampaign>(text) else {
        return Vec::new();
    };
    let mut files: Vec<String> = raw
        .model
        .iter()
        .filter_map(|model| model.pretrained.as_deref()?.strip_prefix("file:"))
        .map(str::to_string)
        .collect();
    files.sort();
    files.dedup();
    files
}

/// Parses, validates and expands a campaign file; `uploads` maps each `file:` path (as
/// written) to the SHA-256 of the uploaded content, which the campaign's id then covers.
pub fn parse_with_uploads(
    file: &str,
    text: &str,
    max_jobs: usize,
    uploads: &BTreeMap<String, String>,
) -> Result<CampaignSpec, CampaignError> {
    let raw: RawCampaign = toml::from_str(text).map_err(|err| CampaignError::Syntax {
        file: file.to_string(),
        message: explain_toml_error(&err.to_string()),
    })?;
    let check = Checker { file, text };
    check.validate(&raw)?;
    check.uploaded(&raw, uploads)?;
    let n_jobs = count_jobs(&raw);
    if n_jobs > max_jobs {
        return Err(CampaignError::TooLarge {
            file: file.to_string(),
            n_jobs,
            max_jobs,
        });
    }
    let mut jobs: Vec<JobSpec> = Vec::with_capacity(n_jobs);
    let mut pretrain_jobs: BTreeMap<String, u32> = BTreeMap::new();
    for config in expand_models(&raw) {
        let job = JobSpec {
            campaign_id: String::new(),
            job_idx: 0,
            dataset: raw.dataset.clone(),
            train_samples: config.train_samples,
            test_samples: raw.test_samples,
            seed: raw.seeds[0],
            threads: config.threads.unwrap_or(raw.defaults.threads),
            model: config.model.clone(),
            stage: Stage::Scratch,
            transform: raw.transform.clone(),
            expected_dataset_sha256: None,
        };
        let stages = match &config.transfer {
            None => vec![Stage::Scratch],
            Some(transfer) => {
                let (source, pretrain_job, artifact_sha256) = match &transfer.value {
                    PretrainedValue::Task { dataset, classes } => {
                        let pretrain = pretrain_job(&job, dataset, classes);
                        let Stage::Pretrain { key, .. } = &pretrain.stage else {
                            unreachable!("pretrain_job makes a pretrain stage")
                        };
                        let idx = match pretrain_jobs.get(key) {
                            Some(&idx) => idx,
                            None => {
                                let idx = jobs.len() as u32;
                                pretrain_jobs.insert(key.clone(), idx);
                                jobs.push(JobSpec {
                                    job_idx: idx,
                                    ..pretrain
                                });
                                idx
                            }
                        };
                        let source = PretrainSource::Task {
                            dataset: dataset.clone(),
                            classes: classes.clone(),
                        };
                        (source, Some(idx), None)
                    }
                    PretrainedValue::File(path) => {
                        let sha256 = uploads[path].clone();
                        let source = PretrainSource::File {
                            path: path.clone(),
                            sha256: sha256.clone(),
                        };
                        (source, None, Some(sha256))
                    }
                };
                transfer
                    .freeze
                    .iter()
                    .map(|&freeze| Stage::FineTune {
                        source: source.clone(),
                        pretrain_job,
                        artifact_sha256: artifact_sha256.clone(),
                        freeze,
                        declared: transfer.declared,
                    })
                    .collect()
            }
        };
        for stage in stages {
            for &seed in &raw.seeds {
                jobs.push(JobSpec {
                    job_idx: jobs.len() as u32,
                    seed,
                    stage: stage.clone(),
                    ..job.clone()
                });
            }
        }
    }
    let mut spec = CampaignSpec {
        id: String::new(),
        name: raw.name,
        dataset: raw.dataset,
        target_accuracy: raw.target_accuracy,
        jobs,
        placement: raw.placement.as_deref().map_or(Placement::Any, |name| {
            Placement::from_name(name).expect("validated")
        }),
    };
    spec.id = content_id(&spec);
    for job in &mut spec.jobs {
        job.campaign_id = spec.id.clone();
    }
    Ok(spec)
}

/// The first 16 hex digits of the SHA-256 of the canonical JSON of the campaign.
fn content_id(spec: &CampaignSpec) -> String {
    let canonical = serde_json::to_vec(spec).expect("campaign specs serialise");
    let digest = Sha256::digest(&canonical);
    digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The pretrain job a fine-tune of `job`'s configuration needs: on `classes` of
/// `dataset`, with the campaign's first seed, keyed by its content (see [`Stage::Pretrain`]).
fn pretrain_job(job: &JobSpec, dataset: &str, classes: &[u8]) -> JobSpec {
    let mut pretrain = JobSpec {
        dataset: dataset.to_string(),
        stage: Stage::Pretrain {
            dataset: dataset.to_string(),
            classes: classes.to_vec(),
            key: String::new(),
        },
        ..job.clone()
    };
    let digest = Sha256::digest(serde_json::to_vec(&pretrain).expect("job specs serialise"));
    let key: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    if let Stage::Pretrain { key: slot, .. } = &mut pretrain.stage {
        *slot = key;
    }
    pretrain
}

/// Jobs the campaign expands to (an upper bound where pretrain jobs are shared).
fn count_jobs(raw: &RawCampaign) -> usize {
    raw.model
        .iter()
        .map(|model| {
            let d = &raw.defaults;
            let configs = match model.kind.as_str() {
                "svm-linear" => {
                    model.c.as_ref().map_or(1, |c| c.values().len())
                        * model.solver.as_ref().map_or(1, |s| s.values().len())
                        * model.multiclass.as_ref().map_or(1, |m| m.values().len())
                }
                _ => nets::count(model, d),
            };
            let freezes = model.freeze.as_ref().map_or(1, |f| f.values().len());
            let pretrains = usize::from(
                model
                    .pretrained
                    .as_deref()
                    .is_some_and(|p| !p.starts_with("file:")),
            );
            configs * (freezes * raw.seeds.len() + pretrains)
        })
        .sum()
}

/// A model table's transfer-learning keys, validated.
#[derive(Debug, Clone)]
struct Transfer {
    value: PretrainedValue,
    freeze: Vec<bool>,
    declared: DeclaredCost,
}

/// One model configuration of a table, with the table's other settings.
#[derive(Debug, Clone)]
struct Config {
    model: ModelConfig,
    /// The table's thread count, if it sets one.
    threads: Option<u32>,
    train_samples: Option<u32>,
    transfer: Option<Transfer>,
}

/// Every model configuration of the campaign, table by table.
fn expand_models(raw: &RawCampaign) -> Vec<Config> {
    let d = &raw.defaults;
    let mut configs = Vec::new();
    for model in &raw.model {
        let train_samples = model.train_samples.or(raw.train_samples);
        let transfer = model.pretrained.as_deref().map(|value| Transfer {
            value: parse_pretrained(value).expect("validated"),
            freeze: model.freeze.as_ref().map_or(vec![false], Axis::values),
            declared: DeclaredCost {
                kwh: model.pretrain_kwh,
                co2_kg: model.pretrain_co2_kg,
            },
        });
        let config = |model_config| Config {
            model: model_config,
            threads: model.threads,
            train_samples,
            transfer: transfer.clone(),
        };
        match model.kind.as_str() {
            "svm-linear" => {
                for c in model.c.as_ref().map_or(vec![1.0], Axis::values) {
                    for solver in svm_solvers(model) {
                        for multiclass in svm_multiclasses(model, solver) {
                            let svm = SvmConfig {
                                c,
                                solver,
                                multiclass,
                            };
                            configs.push(config(ModelConfig::SvmLinear(svm)));
                        }
                    }
                }
            }
            _ => configs.extend(nets::expand(model, d).into_iter().map(config)),
        }
    }
    configs
}

/// The solvers of an `svm-linear` table (already validated), the default when unset.
fn svm_solvers(model: &RawModel) -> Vec<SvmSolver> {
    model
        .solver
        .as_ref()
        .map_or(vec![SvmSolver::default()], |names| {
            names
                .values()
                .iter()
                .filter_map(|name| SvmSolver::from_name(name))
                .collect()
        })
}

/// The multiclass schemes of an `svm-linear` table (already validated), the solver's own
/// when unset.
fn svm_multiclasses(model: &RawModel, solver: SvmSolver) -> Vec<SvmMulticlass> {
    model
        .multiclass
        .as_ref()
        .map_or(vec![solver.default_multiclass()], |names| {
            names
                .values()
                .iter()
                .filter_map(|name| SvmMulticlass::from_name(name))
                .collect()
        })
}

/// Rewrites serde's generic messages into ones a campaign author can act on.
fn explain_toml_error(message: &str) -> String {
    let message = message.trim_end().replace(
        "data did not match any variant of untagged enum Axis",
        "expected a value or a list of values of the key's type (numbers; names for `solver` and `multiclass`)",
    );
    if message.contains("missing field `kind`") {
        return format!(
            "{message}\nevery [[model]] needs `kind`, one of: {}",
            MODEL_KINDS.join(", ")
        );
    }
    message
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod transfer_tests;
