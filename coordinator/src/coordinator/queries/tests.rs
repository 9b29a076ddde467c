//! Tests of the report's questions to the store: the uses of pretrained weights,
//! counted across campaigns.

use ecobench_shared::{EnergyMethod, EnergyReport, JobResult, Stage, TrainReport};

use crate::artifacts::ArtifactStore;
use crate::coordinator::{Coordinator, CoordinatorConfig};
use crate::store::Store;

const TRANSFER: &str = r#"
name = "a"
seeds = [1, 2]

[[model]]
kind = "cnn"
pretrained = "fashion-mnist:classes0-4"
"#;

const PRETRAIN_KWH: f64 = 8e-5;

fn result(energy_kwh: f64, weights: Option<&str>) -> JobResult {
    JobResult {
        train: TrainReport {
            accuracy: 0.5,
            train_s: 1.0,
            eval_s: 0.1,
            samples_per_s: 100.0,
            n_train: 100,
            n_test: 10,
            solver: "adamw".into(),
            dataset_sha256: "ab".into(),
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
            co2_kg: energy_kwh * 0.5,
            tdp_w: None,
            uncertainty: 0.6,
            sample_interval_s: 1.0,
            n_samples: 1,
            peak_rss_bytes: 1,
            ..Default::default()
        },
        artifact_sha256: weights.map(String::from),
    }
}

/// The weights every pretrain job here publishes, and their SHA-256.
const WEIGHTS: &[u8] = b"pretrained weights";

fn weights_sha() -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights");
    std::fs::write(&path, WEIGHTS).unwrap();
    ecobench_shared::artifact::sha256_file(&path).unwrap().0
}

/// Stores [`WEIGHTS`] as an artifact, as a worker's upload does.
async fn upload(c: &Coordinator) {
    let mut upload = c
        .artifacts()
        .begin_put(ecobench_shared::artifact::ArtifactHeader {
            sha256: weights_sha(),
            size_bytes: WEIGHTS.len() as u64,
            name: "pretrain".into(),
        })
        .unwrap();
    upload.write(WEIGHTS.to_vec()).await.unwrap();
    upload.finish().await.unwrap();
}

/// Leases and completes every job it can; pretrain jobs publish [`WEIGHTS`].
async fn run_all(c: &Coordinator) {
    while let Some(lease) = c.lease_job("w", 0).await.unwrap() {
        let pretrain = matches!(lease.job.stage, Stage::Pretrain { .. });
        let result = if pretrain {
            upload(c).await;
            result(PRETRAIN_KWH, Some(&weights_sha()))
        } else {
            result(1e-4, None)
        };
        c.complete("w", &lease.job.job_id(), lease.lease_id, result)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_later_campaign_reuses_the_weights_and_shares_their_debt() {
    let store = Store::temporary().unwrap();
    let artifacts = ArtifactStore::temporary(store.clone(), 1 << 20);
    let c = Coordinator::new(store, artifacts, CoordinatorConfig::default());
    c.join("w", Default::default()).await.unwrap();
    let a = c.submit("a.toml", TRANSFER).await.unwrap();
    run_all(&c).await;
    let first = c.report(&a.campaign_id).unwrap();
    let trained_by = format!("{}-0", a.campaign_id);
    assert_eq!(first.jobs[1].debt.pretrain_uses, Some(2));

    // Same pretraining (first seed 1), other fine-tunes: the weights are not trained again.
    let later = TRANSFER
        .replace("name = \"a\"", "name = \"b\"")
        .replace("[1, 2]", "[1, 3]");
    let b = c.submit("b.toml", &later).await.unwrap();
    assert_ne!(a.campaign_id, b.campaign_id);
    run_all(&c).await;
    let second = c.report(&b.campaign_id).unwrap();
    assert_eq!(second.jobs[0].status, "reused");
    assert!(
        second.jobs[0].note.contains(&trained_by),
        "{:?}",
        second.jobs[0]
    );
    for report in [c.report(&a.campaign_id).unwrap(), second] {
        let debt = &report.summary[1].debt;
        assert_eq!(debt.pretrain_basis, format!("measured by {trained_by}"));
        assert_eq!(debt.pretrain_uses, Some(4), "{}", report.table());
        assert_eq!(debt.debt_share_kwh, Some(PRETRAIN_KWH / 4.0));
        assert!(
            report.table().contains("shared by 4 uses"),
            "{}",
            report.table()
        );
    }
}
