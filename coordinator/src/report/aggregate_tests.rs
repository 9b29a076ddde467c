//! Tests of the aggregation over runs (hand-computed values and properties), of every
//! format rendered from one fixture and read back, and of comparing reports.

use ecobench_shared::{
    EnergyMethod, EnergyReport, EpochMetrics, HardwareFingerprint, JobResult, JobSpec, ModelConfig,
    NetConfig, SvmConfig, SvmSolver, TrainReport,
};
use proptest::prelude::*;

use super::emissions::{CODECARBON_COLUMNS, iso8601};
use super::*;

const CAMPAIGN: &str = "00000000000000cc";

fn svm() -> ModelConfig {
    ModelConfig::SvmLinear(SvmConfig::new(1.0, SvmSolver::Dcd))
}

fn cnn() -> ModelConfig {
    ModelConfig::Cnn(NetConfig {
        n_epochs: 3,
        batch_size: 32,
        learning_rate: 0.001,
    })
}

fn spec(idx: u32, seed: u64, model: ModelConfig, train_samples: u32) -> JobSpec {
    JobSpec {
        campaign_id: CAMPAIGN.into(),
        job_idx: idx,
        dataset: "fashion-mnist".into(),
        train_samples: Some(train_samples),
        test_samples: Some(100),
        seed,
        threads: 1,
        model,
        stage: Default::default(),
        expected_dataset_sha256: None,
        transform: Default::default(),
    }
}

fn energy(kwh: f64, co2_kg: f64) -> EnergyReport {
    EnergyReport {
        method: EnergyMethod::Model,
        duration_s: 10.0,
        cpu_time_s: 8.0,
        cpu_energy_kwh: kwh * 0.75,
        ram_energy_kwh: kwh * 0.25,
        energy_kwh: kwh,
        machine_energy_kwh: None,
        avg_power_w: kwh * 3.6e6 / 10.0,
        carbon_intensity_g_per_kwh: 500.0,
        carbon_region: "FRA".into(),
        pue: 1.2,
        co2_kg,
        tdp_w: Some(65.0),
        uncertainty: 0.3,
        sample_interval_s: 1.0,
        n_samples: 10,
        peak_rss_bytes: 1 << 30,
        ..Default::default()
    }
}

fn result(accuracy: f64, train_s: f64, kwh: f64, epochs: Vec<EpochMetrics>) -> JobResult {
    JobResult {
        train: TrainReport {
            accuracy,
            train_s,
            eval_s: 0.5,
            samples_per_s: 1000.0 / train_s,
            n_train: 1000,
            n_test: 100,
            solver: "s".into(),
            dataset_sha256: "d1".into(),
            epochs,
        },
        energy: energy(kwh, kwh * 0.5),
        artifact_sha256: None,
    }
}

fn epoch(epoch: u32, test_accuracy: f64, elapsed_s: f64, kwh: Option<f64>) -> EpochMetrics {
    EpochMetrics {
        epoch,
        loss: 1.0,
        test_accuracy,
        samples_per_s: 100.0,
        elapsed_s,
        energy_kwh: kwh,
    }
}

fn fingerprint(cpu: &str, gflops: Option<f64>) -> HardwareFingerprint {
    HardwareFingerprint {
        hostname: format!("host-{cpu}"),
        cpu_model: cpu.into(),
        physical_cores: 2,
        logical_cores: 4,
        ram_bytes: 8 << 30,
        os: "Debian 13".into(),
        kernel: "6.12".into(),
        energy_source: "model: TDP 65 W".into(),
        tdp_w: Some(65.0),
        country: "FRA".into(),
        version: "0.0.0".into(),
        calibration_gflops: gflops,
    }
}

fn ok(spec: JobSpec, result: JobResult, fp: HardwareFingerprint) -> Run {
    Run {
        spec,
        state: RunState::Succeeded,
        attempts: 1,
        errors: vec![],
        result: Some(result),
        completed_unix_ms: Some(1_764_137_731_000),
        worker_id: format!("w-{}", fp.cpu_model),
        fingerprint: Some(fp),
        spent: vec![],
        debt: Debt::default(),
    }
}

fn failed(spec: JobSpec, spent_kwh: f64) -> Run {
    Run {
        spec,
        state: RunState::Failed,
        attempts: 3,
        errors: vec!["worker lost, said \"oom\"".into()],
        result: None,
        completed_unix_ms: None,
        worker_id: String::new(),
        fingerprint: None,
        spent: vec![energy(spent_kwh, spent_kwh * 0.5)],
        debt: Debt::default(),
    }
}

fn info(target: Option<f64>) -> CampaignInfo {
    CampaignInfo {
        id: CAMPAIGN.into(),
        name: "fixture, with a comma".into(),
        target_accuracy: target,
    }
}

/// The fixture: five CNN seeds on machine A (one epoch curve without energy readings),
/// SVMs on A and on a twice-as-fast B, a configuration that differs only in
/// `train_samples`, and a configuration whose only run failed.
fn fixture() -> Report {
    let a = || fingerprint("cpu-a", Some(10.0));
    let b = || fingerprint("cpu-b", Some(20.0));
    let mut runs = Vec::new();
    for (i, acc) in [0.80, 0.82, 0.84, 0.86, 0.90].into_iter().enumerate() {
        let energy_at = |e: f64| (i != 0).then_some(e);
        let curve = vec![
            epoch(1, acc - 0.1, 2.0, energy_at(1e-5)),
            epoch(2, acc - 0.02, 4.0, energy_at(2e-5)),
            epoch(3, acc, 6.0, energy_at(3e-5)),
        ];
        runs.push(ok(
            spec(i as u32, i as u64 + 1, cnn(), 1000),
            result(acc, 6.0, 3e-5, curve),
            a(),
        ));
    }
    runs.push(ok(
        spec(5, 1, svm(), 1000),
        result(0.7, 2.0, 1e-5, vec![]),
        a(),
    ));
    runs.push(ok(
        spec(6, 2, svm(), 1000),
        result(0.72, 2.2, 1.2e-5, vec![]),
        a(),
    ));
    runs.push(ok(
        spec(7, 1, svm(), 1000),
        result(0.71, 1.0, 0.5e-5, vec![]),
        b(),
    ));
    runs.push(ok(
        spec(8, 1, svm(), 500),
        result(0.65, 1.0, 0.5e-5, vec![]),
        a(),
    ));
    runs.push(failed(spec(9, 1, cnn(), 500), 2e-6));
    aggregate(&info(Some(0.85)), &runs)
}

fn find<'a>(report: &'a Report, model: &str, train: &str, machine: &str) -> &'a SummaryRow {
    report
        .summary
        .iter()
        .find(|r| {
            r.model == model
                && r.config.contains(&format!("train={train}"))
                && r.machine.starts_with(machine)
        })
        .unwrap_or_else(|| {
            panic!(
                "no {model} train={train} on {machine}: {:#?}",
                report.summary
            )
        })
}

#[test]
fn one_run_has_a_value_but_no_interval() {
    let s = Stat::of(&[0.42]);
    assert_eq!(
        (s.n, s.mean, s.min, s.max),
        (1, Some(0.42), Some(0.42), Some(0.42))
    );
    assert_eq!(
        (s.std, s.ci_low, s.ci_high, s.half_width()),
        (None, None, None, None)
    );
    assert_eq!(render::stat_cell(&s, |v| format!("{v:.2}")), "0.42");
    assert_eq!(render::stat_cell(&Stat::of(&[]), |v| format!("{v}")), "–");
}

#[test]
fn known_student_t_intervals() {
    // 1, 2, 3: mean 2, s = 1, t(0.975, 2) = 4.302653; half = 4.302653 / √3.
    let s = Stat::of(&[3.0, 1.0, 2.0]);
    assert_eq!(
        (s.mean, s.std, s.min, s.max),
        (Some(2.0), Some(1.0), Some(1.0), Some(3.0))
    );
    let half = 4.302_652_73 / 3f64.sqrt();
    assert!((s.half_width().unwrap() - half).abs() < 1e-6, "{s:?}");
    // Five values: trimmed mean drops 1 and 100; t(0.975, 4) = 2.776445.
    let s = Stat::of(&[1.0, 2.0, 3.0, 4.0, 100.0]);
    assert_eq!(s.trimmed_mean, Some(3.0));
    let std = s.std.unwrap();
    assert!((s.half_width().unwrap() - 2.776_445_1 * std / 5f64.sqrt()).abs() < 1e-6);
}

#[test]
fn a_configuration_whose_runs_all_failed_shows_dashes_and_its_waste() {
    let report = fixture();
    let row = report
        .summary
        .iter()
        .find(|r| r.model == "cnn" && r.config.contains("train=500"))
        .unwrap();
    assert_eq!((row.n_succeeded, row.n_failed), (0, 1));
    assert_eq!(row.accuracy, Stat::default());
    assert_eq!(row.accuracy_per_wh, None);
    assert!(!row.on_pareto_front);
    let table = report.table();
    let line = table
        .lines()
        .find(|l| l.contains("train=500") && l.contains("cnn"))
        .unwrap();
    assert!(line.contains('–') && !line.contains("0.0000"), "{line}");
    assert!((report.totals.waste_kwh - 2e-6).abs() < 1e-18);
    // Runs without waste show 0, not −0.
    assert_eq!(report.jobs[0].spent_kwh.to_string(), "0");
    assert_eq!(report.totals.wasted_attempts, 1);
    assert!(
        table.contains("waste (attempts without a result): 2.000e-6 kWh"),
        "{table}"
    );
}

#[test]
fn the_label_carries_keys_that_differ_and_groups_split_on_them() {
    let report = fixture();
    let svm_a = find(&report, "svm-linear", "1000", "cpu-a");
    let svm_small = find(&report, "svm-linear", "500", "cpu-a");
    assert_ne!(svm_a.config_hash, svm_small.config_hash);
    assert_eq!(svm_a.n_succeeded, 2);
    assert_eq!(svm_small.n_succeeded, 1);
    assert!(
        !svm_a.config.contains("threads="),
        "threads do not differ: {}",
        svm_a.config
    );
}

#[test]
fn time_and_energy_to_target_come_from_the_epoch_curves() {
    let report = fixture();
    let cnn = find(&report, "cnn", "1000", "cpu-a");
    let t = cnn.to_target.unwrap();
    // Target 0.85: run 0.86 reaches it at epoch 3 (6 s), 0.90 at epoch 2 (0.88, 4 s).
    assert_eq!((t.n_reached, t.n_not_reached), (2, 3));
    assert_eq!(t.time_s.mean, Some(5.0));
    assert!((t.energy_kwh.mean.unwrap() - 2.5e-5).abs() < 1e-15, "{t:?}");
    assert!(!t.energy_estimated, "the reaching runs had energy readings");
    let svm = find(&report, "svm-linear", "1000", "cpu-a");
    assert_eq!(svm.to_target.unwrap().n_reached, 0);
    let line = report
        .table()
        .lines()
        .find(|l| l.contains("svm-linear") && l.contains("cpu-b"))
        .map(String::from)
        .unwrap();
    assert!(line.contains("not reached"), "{line}");
}

#[test]
fn an_epoch_without_energy_is_estimated_and_marked() {
    let curve = vec![epoch(1, 0.9, 5.0, None)];
    let runs = vec![ok(
        spec(0, 1, cnn(), 1000),
        result(0.9, 6.0, 4e-5, curve),
        fingerprint("c", None),
    )];
    let report = aggregate(&info(Some(0.85)), &runs);
    let t = report.summary[0].to_target.unwrap();
    // 4e-5 kWh × 5 s / 10 s duration.
    assert_eq!(t.energy_kwh.mean, Some(2e-5));
    assert!(t.energy_estimated);
    assert!(report.table().contains("est."), "{}", report.table());
}

#[test]
fn several_machine_classes_are_normalized_by_calibration() {
    let report = fixture();
    assert_eq!(
        report.reference_machine.as_deref(),
        Some("cpu-a (4 threads)")
    );
    let on_b = find(&report, "svm-linear", "1000", "cpu-b");
    let n = on_b.normalized.as_ref().unwrap();
    assert_eq!(n.factor, 2.0);
    assert_eq!(n.train_s.mean, Some(2.0), "1 s on a twice-as-fast machine");
    assert!(report.table().contains("normalized to cpu-a (4 threads)"));
    // A configuration that ran on one class only is not normalized.
    assert!(find(&report, "cnn", "1000", "cpu-a").normalized.is_none());

    // Without a score, say so instead.
    let runs = vec![
        ok(
            spec(0, 1, svm(), 10),
            result(0.7, 2.0, 1e-5, vec![]),
            fingerprint("a", Some(1.0)),
        ),
        ok(
            spec(1, 1, svm(), 10),
            result(0.7, 1.0, 1e-5, vec![]),
            fingerprint("b", None),
        ),
    ];
    let report = aggregate(&info(None), &runs);
    assert!(report.summary.iter().all(|r| r.normalized.is_none()));
    assert!(
        report.summary[1]
            .normalization_note
            .contains("no calibration score for b")
    );
}

#[test]
fn the_pareto_front_ignores_differences_within_the_intervals() {
    let p = |acc: (f64, f64), co2: (f64, f64)| ParetoPoint {
        accuracy: Some(acc),
        co2: Some(co2),
    };
    let points = [
        p((0.80, 0.90), (1.0, 2.0)),
        // Better on both means but within the intervals: not dominating.
        p((0.85, 0.95), (0.9, 1.5)),
        // Worse beyond the intervals on both axes than the first two.
        p((0.50, 0.60), (3.0, 4.0)),
        // Worse on accuracy beyond, cheaper: on the front.
        p((0.40, 0.45), (0.1, 0.2)),
        ParetoPoint {
            accuracy: None,
            co2: None,
        },
    ];
    assert_eq!(pareto_front(&points), vec![true, true, false, true, false]);
    assert!(points[0].overlaps(&points[1]));
    assert!(!points[0].overlaps(&points[3]));
}

#[test]
fn every_format_renders_from_one_fixture_and_reads_back() {
    let mut report = fixture();
    report.status.n_jobs = 10;
    let files = report.files(&Format::ALL);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let charts = [
        "accuracy",
        "train_time",
        "co2",
        "accuracy_vs_co2",
        "accuracy_curves",
        "energy_curves",
    ];
    let mut expected = vec![
        "report.txt".to_string(),
        "jobs.csv".into(),
        "summary.csv".into(),
        "emissions.csv".into(),
        "report.json".into(),
        "report.md".into(),
        "report.html".into(),
    ];
    for chart in charts {
        expected.push(format!("{chart}.png"));
        expected.push(format!("{chart}.svg"));
    }
    assert_eq!(names, expected);
    // The page carries every row, every chart inline, and nothing from a network.
    let page = String::from_utf8(files[6].1.clone()).unwrap();
    assert_eq!(
        page.matches("<svg").count(),
        charts.len(),
        "every chart inline"
    );
    for row in &report.summary {
        assert!(
            page.contains(&super::html::escape(&row.config)),
            "{}",
            row.config
        );
    }
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("src="));
    // The curves: one series per configuration with epochs (the five CNN seeds averaged).
    let set = report.chart_set();
    assert!(!set.accuracy_curves.series.is_empty());
    let cnn = &set.accuracy_curves.series[0];
    assert_eq!(cnn.points.len(), 3, "three epochs");
    // Epoch 1, averaged over the five seeds: 0.844 - 0.1.
    assert!((cnn.points[0].1 - 0.744).abs() < 1e-9, "{:?}", cnn.points);
    let energy = &set.energy_curves.series[0].points;
    assert!(
        energy[1].1 > energy[0].1,
        "cumulative energy grows: {energy:?}"
    );
    // A configuration without a successful run has no bar value, never 0.
    assert!(set.accuracy.bars.iter().any(|bar| bar.value.is_none()));
    let text = |name: &str| {
        String::from_utf8(files.iter().find(|(n, _)| n == name).unwrap().1.clone()).unwrap()
    };
    let read = |name: &str| {
        let content = text(name);
        let mut reader = csv::Reader::from_reader(content.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        (header, rows)
    };

    let (header, rows) = read("jobs.csv");
    assert_eq!(rows.len(), report.jobs.len());
    let col = |h: &str| header.iter().position(|c| c == h).unwrap();
    assert_eq!(&rows[0][col("campaign")], "fixture, with a comma");
    assert_eq!(&rows[0][col("calibration_gflops")], "10");
    assert_eq!(&rows[9][col("error")], "worker lost, said \"oom\"");
    assert_eq!(&rows[0][col("config_hash")], report.summary[0].config_hash);

    let (header, rows) = read("summary.csv");
    assert_eq!(rows.len(), report.summary.len());
    let col = |h: &str| header.iter().position(|c| c == h).unwrap();
    let failed_row = rows.iter().find(|r| &r[col("n_succeeded")] == "0").unwrap();
    assert_eq!(
        &failed_row[col("accuracy_mean")],
        "",
        "no number for no run"
    );

    let (header, rows) = read("emissions.csv");
    assert_eq!(&header[..38], CODECARBON_COLUMNS);
    assert_eq!(rows.len(), 9, "one row per succeeded job");
    let col = |h: &str| header.iter().position(|c| c == h).unwrap();
    let first = &rows[0];
    assert_eq!(&first[col("run_id")], format!("{CAMPAIGN}-0"));
    assert_eq!(&first[col("experiment_id")], CAMPAIGN);
    assert_eq!(&first[col("tracking_mode")], "process");
    assert_eq!(&first[col("timestamp")], "2025-11-26T06:15:31");
    assert_eq!(&first[col("duration")], "10");
    assert_eq!(&first[col("ram_total_size")], "8");
    // cpu_power: 0.75 × 3e-5 kWh over 10 s = 8.1 W.
    let cpu_power: f64 = first[col("cpu_power")].parse().unwrap();
    assert!((cpu_power - 8.1).abs() < 1e-9, "{cpu_power}");
    let rate: f64 = first[col("emissions_rate")].parse().unwrap();
    assert!((rate - 1.5e-5 / 10.0).abs() < 1e-15);
    assert_eq!(&first[col("country_iso_code")], "FRA");
    assert_eq!(&first[col("accuracy")], "0.8");

    // Read back, the report writes the same JSON (compared as values parsed alike).
    let json = text("report.json");
    let back = Report::from_json(&json).unwrap();
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::from_str::<serde_json::Value>(&json).unwrap()
    );
    assert_eq!(
        (back.summary.len(), back.jobs.len()),
        (report.summary.len(), 10)
    );
    assert_eq!(back.summary[0].name(), report.summary[0].name());

    let md = text("report.md");
    assert!(md.starts_with("# Report: fixture, with a comma"));
    let table_lines = md.lines().filter(|l| l.starts_with('|')).count();
    assert_eq!(table_lines, report.summary.len() + 2, "{md}");
    assert!(text("report.txt").contains("svm-linear"));
}

#[test]
fn timestamps_are_utc_civil_dates() {
    assert_eq!(iso8601(0), "1970-01-01T00:00:00");
    assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00");
    assert_eq!(iso8601(1_764_137_731_999), "2025-11-26T06:15:31");
}

#[test]
fn comparing_reports_says_what_changed_beyond_the_intervals() {
    let runs = |accs: [f64; 3], train_s: f64| -> Vec<Run> {
        accs.iter()
            .enumerate()
            .map(|(i, &acc)| {
                ok(
                    spec(i as u32, i as u64, svm(), 100),
                    result(acc, train_s + i as f64 * 0.01, 1e-5, vec![]),
                    fingerprint("a", Some(1.0)),
                )
            })
            .collect()
    };
    let a = aggregate(&info(None), &runs([0.70, 0.71, 0.72], 2.0));
    let mut b_info = info(None);
    b_info.id = "00000000000000dd".into();
    let b = aggregate(&b_info, &runs([0.90, 0.91, 0.92], 2.005));
    let c = compare(&a, &b);
    assert_eq!(c.changes.len(), 1, "{c:?}");
    let change = &c.changes[0];
    assert!((change.accuracy.change.unwrap() - 0.2).abs() < 1e-12);
    assert_eq!(change.accuracy.beyond_intervals, Some(true));
    assert_eq!(change.train_s.beyond_intervals, Some(false));
    assert_eq!(change.energy_kwh.change, Some(0.0));
    let table = c.table();
    assert!(
        table.contains("beyond") && table.contains("within"),
        "{table}"
    );

    // A configuration only one side ran is listed, not compared.
    let mut other = runs([0.5, 0.5, 0.5], 1.0);
    for run in &mut other {
        run.spec.train_samples = Some(200);
    }
    let d = compare(&a, &aggregate(&b_info, &other));
    assert!(d.changes.is_empty());
    assert_eq!((d.only_in_a.len(), d.only_in_b.len()), (1, 1));
}

proptest! {
    #[test]
    fn identical_values_have_no_spread(value in -1e9f64..1e9, n in 2usize..40) {
        let s = Stat::of(&vec![value; n]);
        prop_assert_eq!(s.mean, Some(value));
        prop_assert_eq!(s.std, Some(0.0));
        prop_assert_eq!(s.half_width(), Some(0.0));
    }

    #[test]
    fn the_interval_holds_the_mean_and_the_trimmed_mean_lies_within_the_range(
        values in prop::collection::vec(-1e6f64..1e6, 1..30)
    ) {
        let s = Stat::of(&values);
        let (min, max, mean) = (s.min.unwrap(), s.max.unwrap(), s.mean.unwrap());
        prop_assert!(min <= mean && mean <= max);
        match (s.ci_low, s.ci_high) {
            (Some(lo), Some(hi)) => prop_assert!(lo <= mean && mean <= hi),
            _ => prop_assert_eq!(values.len(), 1),
        }
        match s.trimmed_mean {
            Some(t) => prop_assert!(min <= t && t <= max),
            None => prop_assert!(values.len() < 5),
        }
    }

    #[test]
    fn the_front_is_never_empty_and_none_of_it_is_dominated(
        raw in prop::collection::vec((0f64..1.0, 0f64..0.2, 0f64..10.0, 0f64..2.0), 1..25)
    ) {
        let points: Vec<ParetoPoint> = raw
            .iter()
            .map(|&(acc, acc_half, co2, co2_half)| ParetoPoint {
                accuracy: Some((acc - acc_half, acc + acc_half)),
                co2: Some((co2 - co2_half, co2 + co2_half)),
            })
            .collect();
        let front = pareto_front(&points);
        prop_assert!(front.iter().any(|&on| on));
        for (i, p) in points.iter().enumerate() {
            let dominated = points.iter().any(|q| q.dominates(p));
            prop_assert_eq!(front[i], !dominated);
            if !front[i] {
                // Whatever is off the front is dominated by something on it.
                prop_assert!(points.iter().zip(&front).any(|(q, &on)| on && q.dominates(p)));
            }
        }
    }
}

#[test]
fn carbon_sources_cloud_regions_and_machine_energy_reach_the_csv_files_and_the_json() {
    let mut cloud = result(0.7, 2.0, 1e-5, vec![]);
    cloud.energy.carbon_region = "aws:eu-west-3".into();
    cloud.energy.carbon_intensity_g_per_kwh = 105.0;
    cloud.energy.carbon_source = Some("region aws:eu-west-3 (EU (Paris), Paris, FRA)".into());
    cloud.energy.pue_source = Some("--pue".into());
    cloud.energy.machine_cpu_kwh = Some(3e-5);
    cloud.energy.idle_cpu_kwh = Some(1e-5);
    cloud.energy.rapl_interface = Some("perf_event".into());
    // From a worker older than the sources: FRA, none recorded.
    let older = result(0.72, 2.0, 1e-5, vec![]);
    let runs = vec![
        ok(spec(0, 1, svm(), 1000), cloud, fingerprint("cpu-a", None)),
        ok(spec(1, 2, svm(), 1000), older, fingerprint("cpu-a", None)),
    ];
    let report = aggregate(&info(None), &runs);
    let read = |content: String| {
        let mut reader = csv::Reader::from_reader(content.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        (header, rows)
    };

    let (header, rows) = read(report.jobs_csv());
    let col = |h: &str| header.iter().position(|c| c == h).unwrap();
    assert_eq!(&rows[0][col("machine_cpu_kwh")], "0.00003");
    assert_eq!(&rows[0][col("idle_cpu_kwh")], "0.00001");
    assert_eq!(&rows[0][col("rapl_interface")], "perf_event");
    assert_eq!(
        (
            &rows[1][col("machine_cpu_kwh")],
            &rows[1][col("fallback_reason")]
        ),
        ("", "")
    );
    assert_eq!(&rows[0][col("carbon_region")], "aws:eu-west-3");
    assert_eq!(
        &rows[0][col("carbon_source")],
        "region aws:eu-west-3 (EU (Paris), Paris, FRA)"
    );
    assert_eq!(&rows[0][col("pue_source")], "--pue");
    assert_eq!(
        (&rows[1][col("carbon_source")], &rows[1][col("pue_source")]),
        ("", "")
    );

    let (header, rows) = read(report.emissions_csv());
    let col = |h: &str| header.iter().position(|c| c == h).unwrap();
    let cells = |row: &csv::StringRecord, names: &[&str]| -> Vec<String> {
        names
            .iter()
            .map(|name| row[col(name)].to_string())
            .collect()
    };
    let location = [
        "cloud_provider",
        "cloud_region",
        "on_cloud",
        "country_iso_code",
        "country_name",
    ];
    assert_eq!(
        cells(&rows[0], &location),
        ["aws", "eu-west-3", "Y", "FRA", "France"]
    );
    assert_eq!(cells(&rows[1], &location), ["", "", "N", "FRA", "France"]);
    assert_eq!(&rows[0][col("pue_source")], "--pue");

    let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
    assert_eq!(
        json["jobs"][0]["carbon_source"],
        "region aws:eu-west-3 (EU (Paris), Paris, FRA)"
    );
    assert_eq!(json["jobs"][1]["pue_source"], "");
}
