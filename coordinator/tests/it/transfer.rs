//! Transfer learning in a real cluster: a pretrain job, fine-tunes on its artifact
//! fetched over gRPC, reuse by a later campaign, and uploaded weights checked at submit.

use std::path::Path;
use std::process::Command;

use ecobench_proto::pb;
use ecobench_shared::{ModelConfig, NetConfig, VggConfig};
use ecobench_worker::models::{NetShape, build_net, transfer};

use crate::support::*;

fn transfer_models(dataset: &Path) -> String {
    format!(
        "[[model]]\nkind = \"cnn\"\npretrained = \"{}:classes0-4\"\nfreeze = [false, true]\n",
        dataset.display()
    )
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|listing| {
            listing
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|name| !name.ends_with(".tmp"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn fine_tunes_run_on_the_pretrain_jobs_artifact_and_a_later_campaign_reuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tiny_dataset(tmp.path());
    let db = tmp.path().join("db");
    let coordinator = CoordinatorProcess::start(&db, &[]);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let w1 = WorkerProcess::start(&coordinator.addr, &a, "w1", &[]);
    let w2 = WorkerProcess::start(&coordinator.addr, &b, "w2", &[]);
    let mut client = client(&coordinator.addr, None).await;

    let text = campaign("tl", &dataset, "[1, 2]", &transfer_models(&dataset));
    let first = submit(&mut client, "tl.toml", &text).await.unwrap();
    assert_eq!(
        first.n_jobs,
        1 + 2 * 2,
        "one pretrain job, 2 freeze values × 2 seeds"
    );
    let status = wait_done(&mut client, &first.campaign_id, &[&w1, &w2]).await;
    assert_eq!(
        (status.succeeded, status.failed),
        (5, 0),
        "{status:?}\n{}",
        report_file(&report(&mut client, "tl").await, "jobs.csv")
    );

    // One artifact, stored beside the db; every worker that fine-tuned holds a copy
    // with the same content (its cache checks the hash).
    let stored = files_in(&db.with_extension("artifacts"));
    assert_eq!(stored.len(), 1, "{stored:?}");
    let sha = &stored[0];
    assert_eq!(sha.len(), 64);
    let original = std::fs::read(db.with_extension("artifacts").join(sha)).unwrap();
    let mut cached_copies = 0;
    for (dir, name) in [(&a, "w1"), (&b, "w2")] {
        let cache = dir.join(format!("state-{name}")).join("artifacts");
        for name in files_in(&cache) {
            assert_eq!(&name, sha);
            assert_eq!(std::fs::read(cache.join(&name)).unwrap(), original);
            cached_copies += 1;
        }
    }
    assert!(cached_copies >= 1, "a worker fetched the weights");

    let jobs = csv_rows(&report_file(&report(&mut client, "tl").await, "jobs.csv"));
    assert_eq!(jobs.len(), 5);
    for row in &jobs {
        assert_eq!(row["status"], "succeeded", "{row:?}");
        assert_eq!(row["attempts"], "1", "{row:?}");
        let accuracy: f64 = row["accuracy"].parse().unwrap();
        assert!(accuracy > 0.2, "above chance: {row:?}");
    }

    // Same pretraining (same source, configuration, first seed), other fine-tune seeds:
    // the pretrain job is served by the stored weights, not trained again.
    let text = campaign("tl-again", &dataset, "[1, 3]", &transfer_models(&dataset));
    let second = submit(&mut client, "tl-again.toml", &text).await.unwrap();
    assert_ne!(second.campaign_id, first.campaign_id);
    let status = wait_done(&mut client, &second.campaign_id, &[&w1, &w2]).await;
    assert_eq!((status.succeeded, status.failed), (5, 0), "{status:?}");
    let jobs = csv_rows(&report_file(
        &report(&mut client, "tl-again").await,
        "jobs.csv",
    ));
    let reused: Vec<_> = jobs.iter().filter(|r| r["status"] == "reused").collect();
    assert_eq!(reused.len(), 1, "{jobs:?}");
    assert_eq!(reused[0]["attempts"], "0");
    assert_eq!(files_in(&db.with_extension("artifacts")), stored);
    let workers = client
        .list_workers(pb::ListWorkersRequest {})
        .await
        .unwrap()
        .into_inner()
        .workers;
    let trained: u32 = workers.iter().map(|w| w.jobs_done).sum();
    assert_eq!(
        trained,
        5 + 4,
        "the second campaign trained its 4 fine-tunes only"
    );
}

fn vgg(width: f64) -> ModelConfig {
    ModelConfig::Vgg(VggConfig {
        net: NetConfig {
            n_epochs: 1,
            batch_size: 16,
            learning_rate: 0.003,
        },
        width,
        batch_norm: true,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn uploaded_weights_of_another_shape_are_refused_at_submit_naming_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tiny_dataset(tmp.path());
    let coordinator = CoordinatorProcess::start(&tmp.path().join("db"), &[]);
    // Weights of a VGG at width 0.125 (8 channels first), for a campaign at 0.25 (16).
    let narrow = build_net(&vgg(0.125), NetShape::grey(8, 8), 1).unwrap();
    transfer::save(&narrow, &tmp.path().join("narrow.safetensors")).unwrap();
    let submit_cli = |width: f64| {
        let text = campaign(
            "files",
            &dataset,
            "[1]",
            &format!(
                "[[model]]\nkind = \"vgg\"\nwidth = {width}\npretrained = \"file:narrow.safetensors\"\npretrain_kwh = 0.5\n"
            ),
        );
        let file = tmp.path().join(format!("files-{width}.toml"));
        std::fs::write(&file, text).unwrap();
        Command::new(env!("CARGO_BIN_EXE_coordinator"))
            .args(["submit"])
            .arg(&file)
            .args(["--addr", &coordinator.addr])
            .output()
            .unwrap()
    };
    let refused = submit_cli(0.25);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains(
            "tensor `features.0.weight` has shape [8, 1, 3, 3], the model expects [16, 1, 3, 3]"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("file:narrow.safetensors"), "{stderr}");
    let accepted = submit_cli(0.125);
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    let stdout = String::from_utf8_lossy(&accepted.stdout);
    assert!(
        stdout.contains("uploaded") && stdout.contains("1 jobs"),
        "{stdout}"
    );

    // Any kind: a file that is not safetensors at all is refused before a job exists.
    std::fs::write(
        tmp.path().join("notes.safetensors"),
        b"\x05\0\0\0\0\0\0\0hello",
    )
    .unwrap();
    let text = campaign(
        "garbage",
        &dataset,
        "[1]",
        "[[model]]\nkind = \"cnn\"\npretrained = \"file:notes.safetensors\"\n",
    );
    let file = tmp.path().join("garbage.toml");
    std::fs::write(&file, text).unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args(["submit"])
        .arg(&file)
        .args(["--addr", &coordinator.addr])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("file:notes.safetensors\" for cnn")
            && stderr.contains("not the JSON of a safetensors file"),
        "{stderr}"
    );
}
