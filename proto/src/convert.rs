//! Conversions between wire messages and domain types: `From` towards the
//! wire, `TryFrom` back (a message may lack a required part).

use ecobench_shared as domain;

use crate::pb;

mod events;
mod stage;

/// A wire message that cannot become a domain value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed {message}: {problem}")]
pub struct WireError {
    /// The message type.
    pub message: &'static str,
    /// What is missing or wrong.
    pub problem: &'static str,
}

fn missing(message: &'static str, problem: &'static str) -> WireError {
    WireError { message, problem }
}

impl From<domain::JobSpec> for pb::JobSpec {
    fn from(job: domain::JobSpec) -> Self {
        let model = match job.model {
            domain::ModelConfig::SvmLinear(svm) => pb::job_spec::Model::SvmLinear(svm.into()),
            domain::ModelConfig::Cnn(net) => pb::job_spec::Model::Cnn(net.into()),
            domain::ModelConfig::Densenet(config) => {
                pb::job_spec::Model::Densenet(pb::DensenetConfig {
                    net: Some(config.net.into()),
                    growth_rate: config.growth_rate,
                    n_blocks: config.n_blocks,
                    layers_per_block: config.layers_per_block,
                })
            }
            domain::ModelConfig::Vgg(config) => pb::job_spec::Model::Vgg(pb::VggConfig {
                net: Some(config.net.into()),
                width: config.width,
                batch_norm: config.batch_norm,
            }),
        };
        pb::JobSpec {
            campaign_id: job.campaign_id,
            job_idx: job.job_idx,
            dataset: job.dataset,
            train_samples: job.train_samples,
            test_samples: job.test_samples,
            seed: job.seed,
            threads: job.threads,
            model: Some(model),
            stage: stage::to_wire(job.stage),
            transform: (!job.transform.is_identity()).then(|| job.transform.into()),
            expected_dataset_sha256: job.expected_dataset_sha256,
        }
    }
}

impl From<domain::DataTransform> for pb::DataTransform {
    fn from(transform: domain::DataTransform) -> Self {
        pb::DataTransform {
            grayscale: transform.grayscale,
            resize: transform.resize,
            pad: transform.pad,
            channels: transform.channels,
            normalize: transform.normalize,
        }
    }
}

impl From<pb::DataTransform> for domain::DataTransform {
    fn from(transform: pb::DataTransform) -> Self {
        domain::DataTransform {
            grayscale: transform.grayscale,
            resize: transform.resize,
            pad: transform.pad,
            channels: transform.channels,
            normalize: transform.normalize,
        }
    }
}

impl From<domain::SvmConfig> for pb::SvmConfig {
    fn from(svm: domain::SvmConfig) -> Self {
        let solver = match svm.solver {
            domain::SvmSolver::Dcd => pb::SvmSolver::Dcd,
            domain::SvmSolver::Smo => pb::SvmSolver::Smo,
        };
        let multiclass = match svm.multiclass {
            domain::SvmMulticlass::Ovr => pb::SvmMulticlass::Ovr,
            domain::SvmMulticlass::Ovo => pb::SvmMulticlass::Ovo,
        };
        pb::SvmConfig {
            c: svm.c,
            solver: solver.into(),
            multiclass: multiclass.into(),
        }
    }
}

/// An unspecified or unknown solver (an older or newer sender) reads as the default, an
/// unspecified or unknown multiclass scheme as the solver's own.
impl From<pb::SvmConfig> for domain::SvmConfig {
    fn from(svm: pb::SvmConfig) -> Self {
        let solver = match pb::SvmSolver::try_from(svm.solver) {
            Ok(pb::SvmSolver::Smo) => domain::SvmSolver::Smo,
            _ => domain::SvmSolver::Dcd,
        };
        let multiclass = match pb::SvmMulticlass::try_from(svm.multiclass) {
            Ok(pb::SvmMulticlass::Ovr) => domain::SvmMulticlass::Ovr,
            Ok(pb::SvmMulticlass::Ovo) => domain::SvmMulticlass::Ovo,
            _ => solver.default_multiclass(),
        };
        domain::SvmConfig {
            c: svm.c,
            solver,
            multiclass,
        }
    }
}

impl From<domain::NetConfig> for pb::NetConfig {
    fn from(net: domain::NetConfig) -> Self {
        pb::NetConfig {
            n_epochs: net.n_epochs,
            batch_size: net.batch_size,
            learning_rate: net.learning_rate,
        }
    }
}

impl From<pb::NetConfig> for domain::NetConfig {
    fn from(net: pb::NetConfig) -> Self {
        domain::NetConfig {
            n_epochs: net.n_epochs,
            batch_size: net.batch_size,
            learning_rate: net.learning_rate,
        }
    }
}

impl TryFrom<pb::JobSpec> for domain::JobSpec {
    type Error = WireError;
    fn try_from(job: pb::JobSpec) -> Result<Self, WireError> {
        let model = match job.model.ok_or(missing("JobSpec", "no model"))? {
            pb::job_spec::Model::SvmLinear(svm) => domain::ModelConfig::SvmLinear(svm.into()),
            pb::job_spec::Model::Cnn(net) => domain::ModelConfig::Cnn(net.into()),
            pb::job_spec::Model::Densenet(config) => {
                domain::ModelConfig::Densenet(domain::DensenetConfig {
                    net: config
                        .net
                        .ok_or(missing("DensenetConfig", "no net"))?
                        .into(),
                    growth_rate: config.growth_rate,
                    n_blocks: config.n_blocks,
                    layers_per_block: config.layers_per_block,
                })
            }
            pb::job_spec::Model::Vgg(config) => domain::ModelConfig::Vgg(domain::VggConfig {
                net: config.net.ok_or(missing("VggConfig", "no net"))?.into(),
                width: config.width,
                batch_norm: config.batch_norm,
            }),
        };
        Ok(domain::JobSpec {
            campaign_id: job.campaign_id,
            job_idx: job.job_idx,
            dataset: job.dataset,
            train_samples: job.train_samples,
            test_samples: job.test_samples,
            seed: job.seed,
            threads: job.threads,
            model,
            stage: stage::from_wire(job.stage)?,
            transform: job.transform.map(Into::into).unwrap_or_default(),
            expected_dataset_sha256: job.expected_dataset_sha256,
        })
    }
}

impl From<domain::EpochMetrics> for pb::EpochMetrics {
    fn from(m: domain::EpochMetrics) -> Self {
        pb::EpochMetrics {
            epoch: m.epoch,
            loss: m.loss,
            test_accuracy: m.test_accuracy,
            samples_per_s: m.samples_per_s,
            elapsed_s: m.elapsed_s,
            energy_kwh: m.energy_kwh,
        }
    }
}

impl From<pb::EpochMetrics> for domain::EpochMetrics {
    fn from(m: pb::EpochMetrics) -> Self {
        domain::EpochMetrics {
            epoch: m.epoch,
            loss: m.loss,
            test_accuracy: m.test_accuracy,
            samples_per_s: m.samples_per_s,
            elapsed_s: m.elapsed_s,
            energy_kwh: m.energy_kwh,
        }
    }
}

impl From<domain::TrainReport> for pb::TrainReport {
    fn from(r: domain::TrainReport) -> Self {
        pb::TrainReport {
            accuracy: r.accuracy,
            train_s: r.train_s,
            eval_s: r.eval_s,
            samples_per_s: r.samples_per_s,
            n_train: r.n_train,
            n_test: r.n_test,
            solver: r.solver,
            dataset_sha256: r.dataset_sha256,
            epochs: r.epochs.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<pb::TrainReport> for domain::TrainReport {
    fn from(r: pb::TrainReport) -> Self {
        domain::TrainReport {
            accuracy: r.accuracy,
            train_s: r.train_s,
            eval_s: r.eval_s,
            samples_per_s: r.samples_per_s,
            n_train: r.n_train,
            n_test: r.n_test,
            solver: r.solver,
            dataset_sha256: r.dataset_sha256,
            epochs: r.epochs.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<domain::EnergyReport> for pb::EnergyReport {
    fn from(e: domain::EnergyReport) -> Self {
        let method = match e.method {
            domain::EnergyMethod::Rapl => pb::EnergyMethod::Rapl,
            domain::EnergyMethod::Model => pb::EnergyMethod::Model,
        };
        pb::EnergyReport {
            method: method as i32,
            duration_s: e.duration_s,
            cpu_time_s: e.cpu_time_s,
            cpu_energy_kwh: e.cpu_energy_kwh,
            ram_energy_kwh: e.ram_energy_kwh,
            energy_kwh: e.energy_kwh,
            machine_energy_kwh: e.machine_energy_kwh,
            avg_power_w: e.avg_power_w,
            carbon_intensity_g_per_kwh: e.carbon_intensity_g_per_kwh,
            carbon_region: e.carbon_region,
            pue: e.pue,
            co2_kg: e.co2_kg,
            tdp_w: e.tdp_w,
            uncertainty: e.uncertainty,
            sample_interval_s: e.sample_interval_s,
            n_samples: e.n_samples,
            peak_rss_bytes: e.peak_rss_bytes,
            machine_cpu_kwh: e.machine_cpu_kwh,
            idle_cpu_kwh: e.idle_cpu_kwh,
            machine_ram_kwh: e.machine_ram_kwh,
            idle_ram_kwh: e.idle_ram_kwh,
            rapl_interface: e.rapl_interface,
            fallback_reason: e.fallback_reason,
            carbon_source: e.carbon_source,
            pue_source: e.pue_source,
        }
    }
}

impl TryFrom<pb::EnergyReport> for domain::EnergyReport {
    type Error = WireError;
    fn try_from(e: pb::EnergyReport) -> Result<Self, WireError> {
        let method = match pb::EnergyMethod::try_from(e.method) {
            Ok(pb::EnergyMethod::Rapl) => domain::EnergyMethod::Rapl,
            Ok(pb::EnergyMethod::Model) => domain::EnergyMethod::Model,
            _ => return Err(missing("EnergyReport", "method is neither rapl nor model")),
        };
        Ok(domain::EnergyReport {
            method,
            duration_s: e.duration_s,
            cpu_time_s: e.cpu_time_s,
            cpu_energy_kwh: e.cpu_energy_kwh,
            ram_energy_kwh: e.ram_energy_kwh,
            energy_kwh: e.energy_kwh,
            machine_energy_kwh: e.machine_energy_kwh,
            avg_power_w: e.avg_power_w,
            carbon_intensity_g_per_kwh: e.carbon_intensity_g_per_kwh,
            carbon_region: e.carbon_region,
            pue: e.pue,
            co2_kg: e.co2_kg,
            tdp_w: e.tdp_w,
            uncertainty: e.uncertainty,
            sample_interval_s: e.sample_interval_s,
            n_samples: e.n_samples,
            peak_rss_bytes: e.peak_rss_bytes,
            machine_cpu_kwh: e.machine_cpu_kwh,
            idle_cpu_kwh: e.idle_cpu_kwh,
            machine_ram_kwh: e.machine_ram_kwh,
            idle_ram_kwh: e.idle_ram_kwh,
            rapl_interface: e.rapl_interface,
            fallback_reason: e.fallback_reason,
            carbon_source: e.carbon_source,
            pue_source: e.pue_source,
        })
    }
}

impl From<domain::JobResult> for pb::JobResult {
    fn from(r: domain::JobResult) -> Self {
        pb::JobResult {
            train: Some(r.train.into()),
            energy: Some(r.energy.into()),
            artifact_sha256: r.artifact_sha256.unwrap_or_default(),
        }
    }
}

impl TryFrom<pb::JobResult> for domain::JobResult {
    type Error = WireError;
    fn try_from(r: pb::JobResult) -> Result<Self, WireError> {
        let train = r.train.ok_or(missing("JobResult", "no train report"))?;
        let energy = r.energy.ok_or(missing("JobResult", "no energy report"))?;
        Ok(domain::JobResult {
            train: train.into(),
            energy: energy.try_into()?,
            artifact_sha256: (!r.artifact_sha256.is_empty()).then_some(r.artifact_sha256),
        })
    }
}

impl From<domain::HardwareFingerprint> for pb::HardwareFingerprint {
    fn from(f: domain::HardwareFingerprint) -> Self {
        pb::HardwareFingerprint {
            hostname: f.hostname,
            cpu_model: f.cpu_model,
            physical_cores: f.physical_cores,
            logical_cores: f.logical_cores,
            ram_bytes: f.ram_bytes,
            os: f.os,
            kernel: f.kernel,
            energy_source: f.energy_source,
            tdp_w: f.tdp_w,
            country: f.country,
            version: f.version,
            calibration_gflops: f.calibration_gflops,
        }
    }
}

impl From<pb::HardwareFingerprint> for domain::HardwareFingerprint {
    fn from(f: pb::HardwareFingerprint) -> Self {
        domain::HardwareFingerprint {
            hostname: f.hostname,
            cpu_model: f.cpu_model,
            physical_cores: f.physical_cores,
            logical_cores: f.logical_cores,
            ram_bytes: f.ram_bytes,
            os: f.os,
            kernel: f.kernel,
            energy_source: f.energy_source,
            tdp_w: f.tdp_w,
            country: f.country,
            version: f.version,
            calibration_gflops: f.calibration_gflops,
        }
    }
}

impl From<domain::Progress> for pb::Progress {
    fn from(p: domain::Progress) -> Self {
        pb::Progress {
            epoch: p.epoch,
            n_epochs: p.n_epochs,
            loss: p.loss,
            accuracy: p.accuracy,
            samples_per_s: p.samples_per_s,
        }
    }
}

impl From<pb::Progress> for domain::Progress {
    fn from(p: pb::Progress) -> Self {
        domain::Progress {
            epoch: p.epoch,
            n_epochs: p.n_epochs,
            loss: p.loss,
            accuracy: p.accuracy,
            samples_per_s: p.samples_per_s,
        }
    }
}

impl From<domain::artifact::ArtifactHeader> for pb::ArtifactHeader {
    fn from(header: domain::artifact::ArtifactHeader) -> Self {
        pb::ArtifactHeader {
            sha256: header.sha256,
            size_bytes: header.size_bytes,
            name: header.name,
        }
    }
}

impl From<pb::ArtifactHeader> for domain::artifact::ArtifactHeader {
    fn from(header: pb::ArtifactHeader) -> Self {
        domain::artifact::ArtifactHeader {
            sha256: header.sha256,
            size_bytes: header.size_bytes,
            name: header.name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_spec_round_trips() {
        let job = domain::JobSpec {
            campaign_id: "00ff".into(),
            job_idx: 3,
            dataset: "fashion-mnist".into(),
            train_samples: Some(100),
            test_samples: None,
            seed: 7,
            threads: 2,
            model: domain::ModelConfig::Cnn(domain::NetConfig {
                n_epochs: 2,
                batch_size: 16,
                learning_rate: 0.01,
            }),
            stage: domain::Stage::Scratch,
            transform: domain::DataTransform::default(),
            expected_dataset_sha256: None,
        };
        let wire: pb::JobSpec = job.clone().into();
        assert!(wire.transform.is_none(), "the identity is sent as absent");
        assert_eq!(domain::JobSpec::try_from(wire).unwrap(), job);
        let pinned = domain::JobSpec {
            expected_dataset_sha256: Some("ef".repeat(32)),
            ..job.clone()
        };
        let wire: pb::JobSpec = pinned.clone().into();
        assert_eq!(domain::JobSpec::try_from(wire).unwrap(), pinned);
        let stages = [
            domain::Stage::Pretrain {
                dataset: "fashion-mnist".into(),
                classes: vec![0, 1, 2],
                key: "0123456789abcdef".into(),
            },
            domain::Stage::FineTune {
                source: domain::PretrainSource::Task {
                    dataset: "fashion-mnist".into(),
                    classes: vec![0, 1],
                },
                pretrain_job: Some(0),
                artifact_sha256: Some("ab".repeat(32)),
                freeze: true,
                declared: domain::DeclaredCost::default(),
            },
            domain::Stage::FineTune {
                source: domain::PretrainSource::File {
                    path: "w.safetensors".into(),
                    sha256: "cd".repeat(32),
                },
                pretrain_job: None,
                artifact_sha256: Some("cd".repeat(32)),
                freeze: false,
                declared: domain::DeclaredCost {
                    kwh: Some(2.5),
                    co2_kg: None,
                },
            },
        ];
        for stage in stages {
            let job = domain::JobSpec {
                stage,
                ..job.clone()
            };
            let wire: pb::JobSpec = job.clone().into();
            assert_eq!(domain::JobSpec::try_from(wire).unwrap(), job);
        }
        let net = domain::NetConfig {
            n_epochs: 3,
            batch_size: 64,
            learning_rate: 1e-3,
        };
        for model in [
            domain::ModelConfig::Densenet(domain::DensenetConfig {
                net: net.clone(),
                growth_rate: 12,
                n_blocks: 3,
                layers_per_block: 4,
            }),
            domain::ModelConfig::Vgg(domain::VggConfig {
                net: net.clone(),
                width: 0.25,
                batch_norm: false,
            }),
        ] {
            let job = domain::JobSpec {
                model,
                ..job.clone()
            };
            let wire: pb::JobSpec = job.clone().into();
            assert_eq!(domain::JobSpec::try_from(wire).unwrap(), job);
        }
    }

    #[test]
    fn transform_round_trips_and_absent_is_the_identity() {
        let transform = domain::DataTransform {
            grayscale: true,
            resize: Some(28),
            pad: 2,
            channels: Some(1),
            normalize: true,
        };
        let wire: pb::DataTransform = transform.clone().into();
        assert_eq!(domain::DataTransform::from(wire), transform);
        let job = domain::JobSpec {
            campaign_id: "00ff".into(),
            job_idx: 0,
            dataset: "cifar-10".into(),
            train_samples: None,
            test_samples: None,
            seed: 1,
            threads: 1,
            model: domain::ModelConfig::SvmLinear(domain::SvmConfig::new(
                1.0,
                domain::SvmSolver::Dcd,
            )),
            stage: domain::Stage::Scratch,
            transform,
            expected_dataset_sha256: None,
        };
        let wire: pb::JobSpec = job.clone().into();
        assert!(wire.transform.is_some());
        assert_eq!(domain::JobSpec::try_from(wire).unwrap(), job);
        let mut wire: pb::JobSpec = job.into();
        wire.transform = None;
        let read = domain::JobSpec::try_from(wire).unwrap();
        assert!(read.transform.is_identity());
    }

    #[test]
    fn svm_config_round_trips_and_unspecified_reads_as_the_default() {
        for solver in domain::SvmSolver::ALL {
            for multiclass in domain::SvmMulticlass::ALL {
                let svm = domain::SvmConfig {
                    c: 0.5,
                    solver,
                    multiclass,
                };
                let wire: pb::SvmConfig = svm.clone().into();
                assert_eq!(domain::SvmConfig::from(wire), svm);
            }
        }
        let old = pb::SvmConfig {
            c: 1.0,
            ..Default::default()
        };
        assert_eq!(
            domain::SvmConfig::from(old),
            domain::SvmConfig::new(1.0, domain::SvmSolver::Dcd)
        );
        let old_smo = pb::SvmConfig {
            c: 1.0,
            solver: pb::SvmSolver::Smo.into(),
            ..Default::default()
        };
        let read = domain::SvmConfig::from(old_smo);
        assert_eq!(read.multiclass, domain::SvmMulticlass::Ovo);
    }

    #[test]
    fn a_job_without_model_is_refused() {
        let wire = pb::JobSpec::default();
        assert_eq!(
            domain::JobSpec::try_from(wire).unwrap_err().problem,
            "no model"
        );
    }

    #[test]
    fn energy_sources_and_attribution_round_trip_and_an_older_report_has_none() {
        let report = domain::EnergyReport {
            method: domain::EnergyMethod::Model,
            duration_s: 2.0,
            cpu_time_s: 1.5,
            cpu_energy_kwh: 3e-6,
            ram_energy_kwh: 1e-6,
            energy_kwh: 4e-6,
            machine_energy_kwh: None,
            avg_power_w: 7.2,
            carbon_intensity_g_per_kwh: 105.0,
            carbon_region: "aws:eu-west-3".into(),
            pue: 1.0,
            co2_kg: 4.2e-7,
            tdp_w: Some(65.0),
            uncertainty: 0.4,
            sample_interval_s: 1.0,
            n_samples: 2,
            peak_rss_bytes: 1 << 20,
            machine_cpu_kwh: Some(9e-6),
            idle_cpu_kwh: Some(2e-6),
            machine_ram_kwh: None,
            idle_ram_kwh: None,
            rapl_interface: Some("perf_event".into()),
            fallback_reason: Some("cannot read /proc/7/stat".into()),
            carbon_source: Some("region aws:eu-west-3 (EU (Paris), Paris, FRA)".into()),
            pue_source: Some("default 1.0".into()),
        };
        let wire = pb::EnergyReport::from(report.clone());
        assert_eq!(
            domain::EnergyReport::try_from(wire.clone()).unwrap(),
            report
        );
        let older = pb::EnergyReport {
            carbon_source: None,
            pue_source: None,
            ..wire
        };
        let read = domain::EnergyReport::try_from(older).unwrap();
        assert_eq!((read.carbon_source, read.pue_source), (None, None));
    }
}
