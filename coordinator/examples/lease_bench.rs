//! In-process lease/complete throughput of the coordinator's domain over a sled database
//! in a temporary folder (no gRPC): how leasing scales with the jobs stored.
//!
//! `cargo run --release -p ecobench-coordinator --example lease_bench -- [workers] [seconds] [backlog]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ecobench_coordinator::artifacts::ArtifactStore;
use ecobench_coordinator::store::Store;
use ecobench_coordinator::{Coordinator, CoordinatorConfig};
use ecobench_shared::{EnergyMethod, EnergyReport, HardwareFingerprint, JobResult, TrainReport};

fn result() -> JobResult {
    JobResult {
        train: TrainReport {
            accuracy: 0.5,
            train_s: 0.1,
            eval_s: 0.0,
            samples_per_s: 1.0,
            n_train: 1,
            n_test: 1,
            solver: "noop".into(),
            dataset_sha256: String::new(),
            epochs: vec![],
        },
        energy: EnergyReport {
            method: EnergyMethod::Model,
            duration_s: 0.1,
            cpu_time_s: 0.1,
            cpu_energy_kwh: 0.0,
            ram_energy_kwh: 0.0,
            energy_kwh: 0.0,
            machine_energy_kwh: None,
            avg_power_w: 0.0,
            carbon_intensity_g_per_kwh: 475.0,
            carbon_region: "world".into(),
            pue: 1.0,
            co2_kg: 0.0,
            tdp_w: None,
            uncertainty: 0.5,
            sample_interval_s: 1.0,
            n_samples: 1,
            peak_rss_bytes: 1,
            ..Default::default()
        },
        artifact_sha256: None,
    }
}

fn campaign(name: &str, seeds: usize) -> String {
    let seeds: Vec<String> = (1..=seeds).map(|s| s.to_string()).collect();
    format!(
        "name = \"{name}\"\nseeds = [{}]\n[[model]]\nkind = \"svm-linear\"\n",
        seeds.join(", ")
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let workers = args.first().copied().unwrap_or(200);
    let seconds = args.get(1).copied().unwrap_or(10) as u64;
    let backlog = args.get(2).copied().unwrap_or(0);
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("db"))?;
    let artifacts = ArtifactStore::open(dir.path().join("artifacts"), store.clone(), 1 << 20)?;
    let config = CoordinatorConfig {
        max_jobs: 1_000_000,
        ..CoordinatorConfig::default()
    };
    let c = Arc::new(Coordinator::new(store, artifacts, config));
    let t = Instant::now();
    // The work first (leased in key order? campaign ids are hashes: submit the backlog
    // second so that its jobs sort after or before at random, as in a real store).
    c.submit("work.toml", &campaign("work", 200_000)).await?;
    if backlog > 0 {
        // A backlog that every worker declined would be leased around; here it is
        // just more stored jobs, pending behind (or before) the work.
        c.submit("backlog.toml", &campaign("backlog", backlog))
            .await?;
    }
    eprintln!("submitted in {:.1} s", t.elapsed().as_secs_f64());
    for w in 0..workers {
        c.join(&format!("w{w}"), HardwareFingerprint::default())
            .await?;
    }
    eprintln!("joined");
    let done = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let stop = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (c, done, lat) = (c.clone(), done.clone(), lat.clone());
        tasks.push(tokio::spawn(async move {
            let id = format!("w{w}");
            let mut mine = Vec::new();
            while Instant::now() < stop {
                let t = Instant::now();
                let Some(lease) = c.lease_job(&id, 0).await.unwrap() else {
                    continue;
                };
                mine.push(t.elapsed().as_secs_f64() * 1e3);
                c.complete(&id, &lease.job.job_id(), lease.lease_id, result())
                    .await
                    .unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
            lat.lock().unwrap().extend(mine);
        }));
    }
    for t in tasks {
        t.await?;
    }
    let mut lat = lat.lock().unwrap().clone();
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize];
    let n = done.load(Ordering::Relaxed);
    println!(
        "lease_bench: {workers} workers, {seconds} s, backlog {backlog}: {n} jobs, {:.0} jobs/s, lease p50 {:.2} ms p99 {:.2} ms",
        n as f64 / seconds as f64,
        q(0.5),
        q(0.99)
    );
    Ok(())
}
