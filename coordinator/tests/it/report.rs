//! Reports over a real cluster: formats on request, and `report A --compare B`.

use std::process::Command;

use ecobench_proto::pb;

use crate::support::*;

const SVM: &str = "[[model]]\nkind = \"svm-linear\"\nc = 1.0\n";
const TWO_SVMS: &str =
    "[[model]]\nkind = \"svm-linear\"\nc = 1.0\n\n[[model]]\nkind = \"svm-linear\"\nc = 0.1\n";

#[tokio::test(flavor = "multi_thread")]
async fn report_formats_and_compare_two_campaigns() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tiny_dataset(tmp.path());
    let coordinator = CoordinatorProcess::start(&tmp.path().join("db"), &[]);
    let worker = WorkerProcess::start(&coordinator.addr, tmp.path(), "w1", &[]);
    let mut client = client(&coordinator.addr, None).await;
    let a = submit(
        &mut client,
        "a.toml",
        &campaign("cmp-a", &dataset, "[1, 2]", SVM),
    )
    .await
    .unwrap();
    let b = submit(
        &mut client,
        "b.toml",
        &campaign("cmp-b", &dataset, "[1, 2]", TWO_SVMS),
    )
    .await
    .unwrap();
    for id in [&a.campaign_id, &b.campaign_id] {
        let status = wait_done(&mut client, id, &[&worker]).await;
        assert_eq!((status.succeeded, status.failed), (status.n_jobs, 0));
    }

    // Formats on request over gRPC; an unknown one is refused with the valid names.
    let request = |formats: &[&str]| pb::GetReportRequest {
        campaign: "cmp-a".into(),
        formats: formats.iter().map(|f| f.to_string()).collect(),
    };
    let md = client
        .get_report(request(&["md"]))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = md.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["report.md"]);
    let err = client.get_report(request(&["pdf"])).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message()
            .contains("use table, csv, json, md, html or all"),
        "{err:?}"
    );

    // The CSV carries the worker's fingerprint, and emissions.csv CodeCarbon's columns.
    let csv = report(&mut client, "cmp-a").await;
    let jobs = csv_rows(&report_file(&csv, "jobs.csv"));
    assert_eq!(jobs.len(), 2);
    for row in &jobs {
        assert!(
            !row["machine"].is_empty() && !row["worker_version"].is_empty(),
            "{row:?}"
        );
        assert_eq!(row["config_hash"], jobs[0]["config_hash"]);
    }
    let emissions = csv_rows(&report_file(&csv, "emissions.csv"));
    assert_eq!(emissions.len(), 2);
    assert_eq!(emissions[0]["project_name"], "cmp-a");
    assert!(emissions[0]["energy_consumed"].parse::<f64>().unwrap() > 0.0);

    // The HTML page and its six charts (PNG and SVG) over gRPC; a real browser draws it.
    let html = client
        .get_report(request(&["html"]))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = html.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names.len(), 1 + 6 * 2, "{names:?}");
    assert_eq!(names[0], "report.html");
    for file in &html.files[1..] {
        if file.name.ends_with(".png") {
            let png = image::load_from_memory(&file.content).expect("the chart decodes");
            assert!(png.width() >= 1000 && png.height() >= 600, "{}", file.name);
        } else {
            let svg = String::from_utf8_lossy(&file.content);
            // The SVM has no epochs: its curves charts say "no data" instead.
            let named = file.name.contains("curves") || svg.contains("svm-linear");
            assert!(svg.contains("<svg") && named, "{}", file.name);
        }
    }
    let page = tmp.path().join("report.html");
    std::fs::write(&page, &html.files[0].content).unwrap();
    let shot = tmp.path().join("report.png");
    crate::html::screenshot(
        &crate::html::chromium(),
        &page,
        &shot,
        &tmp.path().join("browser-profile"),
    );
    crate::html::assert_drawn(&shot);

    // The CLI: several formats, and the comparison.
    let out = tmp.path().join("out");
    let cli = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args([
            "report",
            "cmp-a",
            "--compare",
            "cmp-b",
            "--format",
            "md",
            "--format",
        ])
        .args(["table,csv", "--addr", &coordinator.addr, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(
        stdout.contains(&format!("A = cmp-a ({})", a.campaign_id)),
        "{stdout}"
    );
    for name in [
        "report.md",
        "report.txt",
        "jobs.csv",
        "summary.csv",
        "emissions.csv",
    ] {
        assert!(out.join(name).is_file(), "{name} not written");
    }
    assert!(!out.join("report.json").exists(), "json was not asked for");
    let comparison: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap();
    let changes = comparison["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{comparison:#}");
    assert_eq!(changes[0]["model"], "svm-linear");
    assert!(changes[0]["accuracy"]["a"].as_f64().unwrap() > 0.3);
    assert!(
        changes[0]["accuracy"]["change"].is_number(),
        "{comparison:#}"
    );
    assert_eq!(comparison["only_in_b"].as_array().unwrap().len(), 1);
    assert!(stdout.contains("only in B: svm-linear c=0.1"), "{stdout}");

    let bad = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args([
            "report",
            "cmp-a",
            "--format",
            "pdf",
            "--addr",
            &coordinator.addr,
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("unknown report format \"pdf\""),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
