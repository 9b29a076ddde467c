//! Tests of the aggregation and rendering of reports.

use super::*;

fn row(model: &str, status: &str, accuracy: f64) -> JobRow {
    JobRow {
        job_id: "x-0".into(),
        model: model.into(),
        config: "c=1".into(),
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
        cpu_model: "cpu".into(),
        carbon_intensity_g_per_kwh: Some(475.0),
        carbon_region: "world".into(),
        n_train: Some(10),
        n_test: Some(10),
        solver: "s".into(),
        dataset_sha256: "d1".into(),
        error: String::new(),
        note: String::new(),
        debt: Debt::default(),
    }
}

#[test]
fn identical_results_have_zero_spread() {
    let rows = vec![row("cnn", "succeeded", 0.8); 4];
    let summary = summarise(&rows);
    assert_eq!(summary.len(), 1);
    assert_eq!(
        summary[0].accuracy,
        Stat {
            mean: 0.8,
            std: 0.0,
            n: 4
        }
    );
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
    assert!((summary[0].accuracy.mean - 0.7).abs() < 1e-12);
    assert!((summary[0].accuracy.std - 0.02f64.sqrt()).abs() < 1e-12);
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
        status: CampaignStatus::default(),
        campaign_id: "c".into(),
        name: "n".into(),
        summary: summarise(&jobs),
        jobs,
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
    let mut out = String::new();
    render::push_csv_line(&mut out, &["a".into(), "b,c".into(), "say \"hi\"".into()]);
    assert_eq!(out, "a,\"b,c\",\"say \"\"hi\"\"\"\n");
}
