//! A job's stage (scratch, pretrain, fine-tune) on the wire.

use ecobench_shared as domain;

use super::{WireError, missing};
use crate::pb;

/// The wire form of a stage; `None` for scratch.
pub(super) fn to_wire(stage: domain::Stage) -> Option<pb::job_spec::Stage> {
    match stage {
        domain::Stage::Scratch => None,
        domain::Stage::Pretrain {
            dataset,
            classes,
            key,
        } => Some(pb::job_spec::Stage::Pretrain(pb::PretrainStage {
            dataset,
            classes: classes.into_iter().map(u32::from).collect(),
            key,
        })),
        domain::Stage::FineTune {
            source,
            pretrain_job,
            artifact_sha256,
            freeze,
            declared,
        } => {
            let mut wire = pb::FineTuneStage {
                pretrain_job,
                artifact_sha256: artifact_sha256.unwrap_or_default(),
                freeze,
                declared_kwh: declared.kwh,
                declared_co2_kg: declared.co2_kg,
                ..Default::default()
            };
            match source {
                domain::PretrainSource::Task { dataset, classes } => {
                    wire.source_dataset = dataset;
                    wire.source_classes = classes.into_iter().map(u32::from).collect();
                }
                domain::PretrainSource::File { path, sha256 } => {
                    wire.file_path = path;
                    wire.file_sha256 = sha256;
                }
            }
            Some(pb::job_spec::Stage::FineTune(wire))
        }
    }
}

fn classes(wire: Vec<u32>) -> Result<Vec<u8>, WireError> {
    wire.into_iter()
        .map(|c| u8::try_from(c).map_err(|_| missing("JobSpec", "a class number above 255")))
        .collect()
}

/// The domain stage of a wire job; scratch when absent.
pub(super) fn from_wire(stage: Option<pb::job_spec::Stage>) -> Result<domain::Stage, WireError> {
    Ok(match stage {
        None => domain::Stage::Scratch,
        Some(pb::job_spec::Stage::Pretrain(p)) => domain::Stage::Pretrain {
            dataset: p.dataset,
            classes: classes(p.classes)?,
            key: p.key,
        },
        Some(pb::job_spec::Stage::FineTune(f)) => {
            let source = if !f.file_path.is_empty() {
                domain::PretrainSource::File {
                    path: f.file_path,
                    sha256: f.file_sha256,
                }
            } else if !f.source_dataset.is_empty() {
                domain::PretrainSource::Task {
                    dataset: f.source_dataset,
                    classes: classes(f.source_classes)?,
                }
            } else {
                return Err(missing(
                    "FineTuneStage",
                    "neither a source dataset nor a file",
                ));
            };
            domain::Stage::FineTune {
                source,
                pretrain_job: f.pretrain_job,
                artifact_sha256: (!f.artifact_sha256.is_empty()).then_some(f.artifact_sha256),
                freeze: f.freeze,
                declared: domain::DeclaredCost {
                    kwh: f.declared_kwh,
                    co2_kg: f.declared_co2_kg,
                },
            }
        }
    })
}
