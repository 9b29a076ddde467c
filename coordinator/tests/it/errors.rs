//! Bad input gets a clear error and loses nothing: tokens, campaign files, datasets.

use std::process::Command;
use std::time::Duration;

use ecobench_proto::pb;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_is_unauthenticated() {
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let token_arg = token_file.display().to_string();
    let coordinator =
        CoordinatorProcess::start(&tmp.path().join("db"), &["--token-file", &token_arg]);
    let text = campaign("auth", tmp.path(), "[1]", "[[model]]\nkind = \"cnn\"\n");

    for token in [None, Some("wrong")] {
        let mut client = client(&coordinator.addr, token).await;
        let err = submit(&mut client, "auth.toml", &text).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    }
    let mut client = client(&coordinator.addr, Some("s3cret")).await;
    assert!(
        submit(&mut client, "auth.toml", &text)
            .await
            .unwrap()
            .created
    );

    // The standard health service answers without a token (for probes and load balancers).
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", coordinator.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["ecobench.v1.CampaignService", "ecobench.v1.ArtifactService"] {
        let request = HealthCheckRequest {
            service: service.into(),
        };
        let answer = health.check(request).await.unwrap().into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service}");
    }

    let bad_token = tmp.path().join("bad");
    std::fs::write(&bad_token, "wrong").unwrap();
    let mut worker = WorkerProcess::start(
        &coordinator.addr,
        tmp.path(),
        "intruder",
        &["--token-file", &bad_token.display().to_string()],
    );
    let status = worker
        .wait_exit(Duration::from_secs(60))
        .expect("a refused worker exits");
    assert!(!status.success());
    assert!(
        worker.log_text().contains("refused this worker"),
        "{}",
        worker.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_campaign_is_invalid_argument_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let coordinator = CoordinatorProcess::start(&tmp.path().join("db"), &[]);
    let mut client = client(&coordinator.addr, None).await;
    let text = campaign(
        "typo",
        tmp.path(),
        "[1]",
        "[[model]]\nkind = \"cnn\"\nlearning_rat = 0.1\n",
    );
    let err = submit(&mut client, "typo.toml", &text).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().starts_with("typo.toml"), "{}", err.message());
    assert!(err.message().contains("learning_rat"), "{}", err.message());
    assert!(err.message().contains("line 14"), "{}", err.message());
    let campaigns = client
        .list_campaigns(pb::ListCampaignsRequest {})
        .await
        .unwrap()
        .into_inner()
        .campaigns;
    assert!(campaigns.is_empty(), "nothing stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_model_kind_lists_the_valid_kinds() {
    let tmp = tempfile::tempdir().unwrap();
    let coordinator = CoordinatorProcess::start(&tmp.path().join("db"), &[]);
    let mut client = client(&coordinator.addr, None).await;
    let text = campaign("kind", tmp.path(), "[1]", "[[model]]\nkind = \"resnet\"\n");
    let err = submit(&mut client, "kind.toml", &text).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("\"resnet\""), "{}", err.message());
    assert!(
        err.message().contains("valid kinds: svm-linear, cnn"),
        "{}",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dataset_that_is_not_idx_fails_the_job_not_the_worker() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    for name in ecobench_worker::data::SPLIT_FILES {
        std::fs::write(junk.join(name), "<html>not a dataset</html>\n").unwrap();
    }
    let coordinator = CoordinatorProcess::start(&tmp.path().join("db"), &[]);
    let mut worker = WorkerProcess::start(&coordinator.addr, tmp.path(), "w", &[]);
    let mut client = client(&coordinator.addr, None).await;
    let bad = submit(
        &mut client,
        "junk.toml",
        &campaign("junk", &junk, "[1]", "[[model]]\nkind = \"svm-linear\"\n"),
    )
    .await
    .unwrap();
    let status = wait_done(&mut client, &bad.campaign_id, &[&worker]).await;
    assert_eq!((status.failed, status.succeeded), (1, 0));
    let report = report(&mut client, "junk").await;
    let json: serde_json::Value =
        serde_json::from_str(&report_file(&report, "report.json")).unwrap();
    let job = &json["jobs"][0];
    assert_eq!(job["attempts"], 1, "bad input is not retried: {job}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("is not an IDX") && error.contains("junk"),
        "{error}"
    );
    assert!(report.table.contains("failed"), "{}", report.table);

    assert!(
        worker.exited().is_none(),
        "the worker survives a bad dataset"
    );
    let dataset = tiny_dataset(tmp.path());
    let good = submit(
        &mut client,
        "ok.toml",
        &campaign("ok", &dataset, "[1]", "[[model]]\nkind = \"svm-linear\"\n"),
    )
    .await
    .unwrap();
    let status = wait_done(&mut client, &good.campaign_id, &[&worker]).await;
    assert_eq!(status.succeeded, 1);
}

#[test]
fn serve_refuses_a_public_address_without_a_token() {
    let tmp = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args(["serve", "--listen", "0.0.0.0:0", "--db"])
        .arg(tmp.path().join("db"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("without a token") && stderr.contains("--token-file"),
        "{stderr}"
    );
}
