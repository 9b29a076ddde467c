//! Tests of the aggregation and rendering of reports.

use super::*;

fn row(model: &str, status: &str, accuracy: f64) -> JobRow {
    JobRow {
        job_id: "x-0".into(),
        model: model.into(),
        config: "c=1".into(),
        config_hash: "h1".into(),
        stage: "scratch".into(),
        seed: 1,
        status: status.into(),
        attempts: 1,
        accuracy: (status == "succeeded").then_some(accuracy),
        train_s: Some(2.0),
        energy_kwh: Some(1e-4),
        co2_kg: Some(5e-5),
        method: "model".into(),
        worker: "w".into(),
        machine: "cpu (4 threads)".into(),
        cpu_model: "cpu".into(),
        carbon_intensity_g_per_kwh: Some(475.0),
        carbon_region: "world".into(),
        n_train: Some(10),
        n_test: Some(10),
        solver: "s".into(),
        dataset_sha256: "d1".into(),
        ..JobRow::default()
    }
}

#[test]
fn identical_results_have_zero_spread() {
    let rows = vec![row("cnn", "succeeded", 0.8); 4];
    let summary = summarise(&rows);
    assert_eq!(summary.len(), 1);
    let a = summary[0].accuracy;
    assert_eq!((a.n, a.mean, a.std), (4, Some(0.8), Some(0.0)));
    assert_eq!((a.ci_low, a.ci_high), (Some(0.8), Some(0.8)));
    assert_eq!(a.trimmed_mean, None, "fewer than five values");
}

#[test]
fn failed_runs_are_counted_not_averaged() {
    let rows = vec![
        row("cnn", "succeeded", 0.6),
        row("cnn", "succeeded", 0.8),
        row("cnn", "failed", 0.0),
    ];
    let summary = summarise(&rows);
    assert_eq!(summary[0].n_succeeded, 2);
    assert_eq!(summary[0].n_failed, 1);
    let a = summary[0].accuracy;
    assert!((a.mean.unwrap() - 0.7).abs() < 1e-12);
    assert!((a.std.unwrap() - 0.02f64.sqrt()).abs() < 1e-12);
    // t(0.975, 1) = 12.7062; half-width = t · s / √2 = 12.7062 · 0.1 = 1.27062.
    let half = a.half_width().unwrap();
    assert!((half - 1.270_620_4).abs() < 1e-5, "{half}");
}

#[test]
fn different_copies_of_the_dataset_are_flagged() {
    let mut other = row("cnn", "succeeded", 0.7);
    other.dataset_sha256 = "d2".into();
    let jobs = vec![
        row("cnn", "succeeded", 0.8),
        other,
        row("cnn", "failed", 0.0),
    ];
    let report = Report {
        campaign_id: "c".into(),
        name: "n".into(),
        summary: summarise(&jobs),
        jobs,
        ..Report::default()
    };
    assert_eq!(report.dataset_digests(), vec!["d1", "d2"]);
    assert!(
        report
            .table()
            .contains("warning: the jobs trained on 2 different copies"),
        "{}",
        report.table()
    );
}

#[test]
fn csv_quotes_fields_with_commas_and_quotes() {
    let mut quoted = row("cnn", "succeeded", 0.8);
    quoted.error = "a,b say \"hi\"".into();
    let report = Report {
        jobs: vec![quoted],
        ..Report::default()
    };
    let text = report.jobs_csv();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let error_col = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "error")
        .unwrap();
    let record = reader.records().next().unwrap().unwrap();
    assert_eq!(&record[error_col], "a,b say \"hi\"");
}

mod debt {
    //! The carbon debt of pretrained weights: stages in labels, shares, bases.

    use std::collections::HashMap;

    use ecobench_shared::{
        CampaignSpec, DeclaredCost, EnergyMethod, EnergyReport, JobResult, JobSpec, ModelConfig,
        PretrainSource, Stage, SvmConfig, SvmSolver, TrainReport,
    };

    use crate::report::{PretrainLedger, Report, build};
    use crate::scheduler::{JobRecord, JobState};
    use crate::store::{PretrainRecord, ResultRecord};

    const CAMPAIGN: &str = "00000000000000aa";
    const PRETRAIN_KWH: f64 = 4e-5;
    const PRETRAIN_CO2_KG: f64 = 2e-5;
    const OWN_KWH: f64 = 1e-4;
    const OWN_CO2_KG: f64 = 5e-5;

    fn task() -> PretrainSource {
        PretrainSource::Task {
            dataset: "fashion-mnist".into(),
            classes: vec![0, 1, 2, 3, 4],
        }
    }

    fn pretrain_stage() -> Stage {
        Stage::Pretrain {
            dataset: "fashion-mnist".into(),
            classes: vec![0, 1, 2, 3, 4],
            key: "k1".into(),
        }
    }

    fn fine_tune(source: PretrainSource, artifact: Option<&str>, declared: DeclaredCost) -> Stage {
        Stage::FineTune {
            pretrain_job: matches!(source, PretrainSource::Task { .. }).then_some(0),
            source,
            artifact_sha256: artifact.map(String::from),
            freeze: false,
            declared,
        }
    }

    fn job(idx: u32, seed: u64, stage: Stage, state: JobState) -> JobRecord {
        let mut record = JobRecord::new(JobSpec {
            campaign_id: CAMPAIGN.into(),
            job_idx: idx,
            dataset: "fashion-mnist".into(),
            train_samples: None,
            test_samples: None,
            seed,
            threads: 1,
            model: ModelConfig::SvmLinear(SvmConfig::new(1.0, SvmSolver::Dcd)),
            stage,
            expected_dataset_sha256: None,
            transform: Default::default(),
        });
        record.state = state;
        record
    }

    fn done() -> JobState {
        JobState::Succeeded {
            worker_id: "w".into(),
            lease_id: 1,
        }
    }

    fn result(energy_kwh: f64, co2_kg: f64) -> ResultRecord {
        ResultRecord {
            worker_id: "w".into(),
            lease_id: 1,
            completed_unix_ms: 0,
            fingerprint: None,
            result: JobResult {
                train: TrainReport {
                    accuracy: 0.9,
                    train_s: 1.0,
                    eval_s: 0.1,
                    samples_per_s: 100.0,
                    n_train: 100,
                    n_test: 10,
                    solver: "dcd".into(),
                    dataset_sha256: "d1".into(),
                    epochs: vec![],
                },
                energy: EnergyReport {
                    method: EnergyMethod::Model,
                    duration_s: 1.0,
                    cpu_time_s: 1.0,
                    cpu_energy_kwh: energy_kwh,
                    ram_energy_kwh: 0.0,
                    energy_kwh,
                    machine_energy_kwh: None,
                    avg_power_w: 3.6,
                    carbon_intensity_g_per_kwh: 500.0,
                    carbon_region: "world".into(),
                    pue: 1.0,
                    co2_kg,
                    tdp_w: None,
                    uncertainty: 0.6,
                    sample_interval_s: 1.0,
                    n_samples: 1,
                    peak_rss_bytes: 1,
                    ..Default::default()
                },
                artifact_sha256: None,
            },
        }
    }

    fn pretrained_by(job_id: &str) -> HashMap<String, PretrainRecord> {
        let record = PretrainRecord {
            key: "k1".into(),
            job_id: job_id.into(),
            artifact_sha256: "w1".into(),
            energy_kwh: PRETRAIN_KWH,
            co2_kg: PRETRAIN_CO2_KG,
        };
        HashMap::from([("k1".to_string(), record)])
    }

    /// A pretrain job, two succeeded fine-tunes of its weights, one pending, one scratch.
    fn campaign() -> Vec<JobRecord> {
        let ft = || fine_tune(task(), Some("w1"), DeclaredCost::default());
        vec![
            job(0, 1, pretrain_stage(), done()),
            job(1, 1, ft(), done()),
            job(2, 2, ft(), done()),
            job(
                3,
                3,
                fine_tune(task(), None, DeclaredCost::default()),
                JobState::Pending,
            ),
            job(4, 1, Stage::Scratch, done()),
        ]
    }

    fn report(jobs: &[JobRecord], ledger: &PretrainLedger) -> Report {
        let spec = CampaignSpec {
            id: CAMPAIGN.into(),
            name: "transfer".into(),
            dataset: "fashion-mnist".into(),
            target_accuracy: None,
            jobs: jobs.iter().map(|j| j.spec.clone()).collect(),
            placement: Default::default(),
        };
        let results = jobs
            .iter()
            .filter(|j| matches!(j.state, JobState::Succeeded { .. }))
            .map(|j| match j.spec.stage {
                Stage::Pretrain { .. } => (j.spec.job_idx, result(PRETRAIN_KWH, PRETRAIN_CO2_KG)),
                _ => (j.spec.job_idx, result(OWN_KWH, OWN_CO2_KG)),
            })
            .collect();
        build(&spec, jobs, &results, &HashMap::new(), ledger)
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() <= 1e-12 * b.abs().max(1e-30))
    }

    #[test]
    fn labels_keep_stages_apart() {
        let jobs = campaign();
        let mut ledger = PretrainLedger {
            pretrains: pretrained_by("00000000000000aa-0"),
            ..PretrainLedger::default()
        };
        ledger.count_uses(&jobs);
        let report = report(&jobs, &ledger);
        let groups: Vec<(&str, &str)> = report
            .summary
            .iter()
            .map(|s| (s.stage.as_str(), s.config.as_str()))
            .collect();
        let base = jobs[4].spec.model.label();
        assert_eq!(
            groups,
            vec![
                (
                    "pretrain",
                    format!("{base} pretrain=fashion-mnist:classes0-4").as_str()
                ),
                (
                    "fine-tune",
                    format!("{base} pretrained=fashion-mnist:classes0-4").as_str()
                ),
                ("scratch", base.as_str()),
            ]
        );
        // The pretrain group shows its own cost: it is the debt, and owes none.
        assert!(close(report.summary[0].energy_kwh.mean, PRETRAIN_KWH));
        assert_eq!(report.summary[0].debt, Default::default());
        assert_eq!(report.summary[2].debt, Default::default());
    }

    #[test]
    fn two_uses_share_the_pretraining_in_halves() {
        let jobs = campaign();
        let mut ledger = PretrainLedger {
            pretrains: pretrained_by("00000000000000aa-0"),
            ..PretrainLedger::default()
        };
        ledger.count_uses(&jobs);
        assert_eq!(ledger.uses, HashMap::from([("w1".to_string(), 2)]));
        let report = report(&jobs, &ledger);
        for row in &report.jobs[1..=3] {
            let d = &row.debt;
            assert_eq!(d.pretrain_basis, "measured by 00000000000000aa-0");
            assert_eq!(d.weights_sha256, "w1");
            assert_eq!(d.pretrain_uses, Some(2));
            assert!(close(d.debt_share_kwh, PRETRAIN_KWH / 2.0), "{d:?}");
            assert!(close(d.debt_share_co2_kg, PRETRAIN_CO2_KG / 2.0), "{d:?}");
        }
        let d = &report.jobs[1].debt;
        assert!(close(d.total_with_share_kwh, OWN_KWH + PRETRAIN_KWH / 2.0));
        assert!(close(
            d.total_with_share_co2_kg,
            OWN_CO2_KG + PRETRAIN_CO2_KG / 2.0
        ));
        assert_eq!(
            report.jobs[3].debt.total_with_share_kwh, None,
            "pending: no own cost"
        );
        let group = &report.summary[1].debt;
        assert_eq!(group.pretrain_uses, Some(2));
        assert!(close(
            group.total_with_share_kwh,
            OWN_KWH + PRETRAIN_KWH / 2.0
        ));

        let table = report.table();
        assert!(
            table.contains(
                "  pretraining: 4.000e-5 kWh, 2.000e-5 kg CO2e measured by 00000000000000aa-0, \
                 shared by 2 uses → 2.000e-5 kWh, 1.000e-5 kg CO2e per job"
            ),
            "{table}"
        );
        assert_eq!(table.matches("pretraining:").count(), 1, "{table}");
        let json = report.json();
        assert!(json.contains("\"pretrain_uses\": 2"), "{json}");
    }

    #[test]
    fn uses_in_other_campaigns_spread_the_debt_further() {
        let jobs = campaign();
        let ledger = PretrainLedger {
            pretrains: pretrained_by("00000000000000aa-0"),
            uses: HashMap::from([("w1".to_string(), 4)]),
        };
        let report = report(&jobs, &ledger);
        let d = &report.jobs[1].debt;
        assert_eq!(d.pretrain_uses, Some(4));
        assert!(close(d.debt_share_kwh, PRETRAIN_KWH / 4.0));
        assert!(close(d.total_with_share_kwh, OWN_KWH + PRETRAIN_KWH / 4.0));
        assert!(
            report.table().contains("shared by 4 uses"),
            "{}",
            report.table()
        );

        // A ledger that missed this campaign still counts at least its own uses.
        let stale = PretrainLedger {
            pretrains: pretrained_by("00000000000000aa-0"),
            uses: HashMap::from([("w1".to_string(), 1)]),
        };
        assert_eq!(report_uses(&jobs, &stale), Some(2));
    }

    fn report_uses(jobs: &[JobRecord], ledger: &PretrainLedger) -> Option<u32> {
        report(jobs, ledger).jobs[1].debt.pretrain_uses
    }

    #[test]
    fn uploaded_weights_carry_their_declared_cost() {
        let file = || PretrainSource::File {
            path: "vgg.safetensors".into(),
            sha256: "f1".into(),
        };
        let declared = DeclaredCost {
            kwh: Some(3.0),
            co2_kg: None,
        };
        let jobs = vec![
            job(0, 1, fine_tune(file(), Some("f1"), declared), done()),
            job(1, 2, fine_tune(file(), Some("f1"), declared), done()),
        ];
        let report = report(&jobs, &PretrainLedger::default());
        let d = &report.jobs[0].debt;
        assert_eq!(d.pretrain_basis, "declared");
        assert_eq!((d.pretrain_kwh, d.pretrain_co2_kg), (Some(3.0), None));
        assert_eq!(d.pretrain_uses, Some(2));
        assert!(close(d.debt_share_kwh, 1.5));
        assert_eq!(d.debt_share_co2_kg, None);
        assert!(close(d.total_with_share_kwh, OWN_KWH + 1.5));
        assert_eq!(d.total_with_share_co2_kg, None);
        assert!(
            report.jobs[0]
                .config
                .ends_with(" pretrained=file:vgg.safetensors"),
            "{}",
            report.jobs[0].config
        );
        let table = report.table();
        assert!(
            table.contains("3.000e0 kWh, ? kg CO2e declared, shared by 2 uses"),
            "{table}"
        );

        let silent = vec![job(
            0,
            1,
            fine_tune(file(), Some("f1"), Default::default()),
            done(),
        )];
        let d = &report_of(&silent).jobs[0].debt;
        assert_eq!(d.pretrain_basis, "unknown");
        assert_eq!((d.pretrain_kwh, d.debt_share_kwh), (None, None));
    }

    fn report_of(jobs: &[JobRecord]) -> Report {
        report(jobs, &PretrainLedger::default())
    }

    #[test]
    fn the_debt_is_unknown_until_the_pretraining_completes() {
        let leased = JobState::Leased {
            worker_id: "w".into(),
            lease_id: 1,
            deadline_unix_ms: 10,
        };
        let jobs = vec![
            job(0, 1, pretrain_stage(), leased),
            job(
                1,
                1,
                fine_tune(task(), None, Default::default()),
                JobState::Pending,
            ),
        ];
        let report = report_of(&jobs);
        let d = &report.jobs[1].debt;
        assert_eq!(d.pretrain_basis, "unknown");
        assert_eq!((d.pretrain_kwh, d.pretrain_co2_kg), (None, None));
        assert_eq!((d.pretrain_uses, d.debt_share_kwh), (None, None));
        assert_eq!(report.summary[1].debt.pretrain_basis, "unknown");
        assert!(
            report.table().contains("  pretraining: cost unknown"),
            "{}",
            report.table()
        );
    }

    #[test]
    fn a_reused_pretraining_names_the_job_whose_weights_served() {
        let mut jobs = campaign();
        jobs[0].state = JobState::Reused {
            job_id: "00000000000000bb-0".into(),
        };
        let mut ledger = PretrainLedger {
            pretrains: pretrained_by("00000000000000bb-0"),
            ..PretrainLedger::default()
        };
        // The campaign that trained the weights had 2 succeeded fine-tunes of them too.
        ledger.count_uses(&jobs);
        ledger.count_uses(&jobs);
        let report = report(&jobs, &ledger);
        let row = &report.jobs[0];
        assert_eq!((row.status.as_str(), row.worker.as_str()), ("reused", ""));
        assert_eq!(
            row.note,
            "reused the weights trained by job 00000000000000bb-0"
        );
        assert_eq!(row.energy_kwh, None);
        assert_eq!(report.summary[0].n_reused, 1);
        let d = &report.jobs[1].debt;
        assert_eq!(d.pretrain_basis, "measured by 00000000000000bb-0");
        assert!(close(d.debt_share_kwh, PRETRAIN_KWH / 4.0));
        assert!(
            report.table().contains(
                "reused 00000000000000aa-0: reused the weights trained by job 00000000000000bb-0"
            ),
            "{}",
            report.table()
        );
        let csv = report.jobs_csv();
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        assert_eq!(&header[21..24], ["error", "stage", "note"]);
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .contains(",pretrain,reused the weights"),
            "{csv}"
        );
        for text in [csv, report.summary_csv()] {
            let widths: Vec<usize> = text.lines().map(n_fields).collect();
            assert!(widths.iter().all(|&n| n == widths[0]), "{widths:?}\n{text}");
            assert!(text.lines().next().unwrap().ends_with(
                "weights_sha256,pretrain_kwh,pretrain_co2_kg,pretrain_basis,pretrain_uses,\
                 debt_share_kwh,debt_share_co2_kg,total_with_share_kwh,total_with_share_co2_kg"
            ));
        }
    }

    /// Fields of a CSV line, commas inside quotes not counted.
    fn n_fields(line: &str) -> usize {
        let mut quoted = false;
        1 + line
            .chars()
            .filter(|&c| {
                if c == '"' {
                    quoted = !quoted;
                }
                c == ',' && !quoted
            })
            .count()
    }
}
