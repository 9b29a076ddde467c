//! deploy/lab.sh end to end: three network namespaces on a bridge, a TLS coordinator with
//! a token and two workers, a tiny campaign submitted and reported from the host, then
//! `down` leaves no namespace, link or file. Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)
//! and openssl; elsewhere it prints why and returns.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::csv_rows;

/// The tiny campaign: a linear SVM on 300 images of the shipped subset, two seeds.
const CAMPAIGN: &str = "name = \"lab\"\ndataset = \"fashion-mnist\"\ntrain_samples = 300\n\
    test_samples = 100\nseeds = [1, 2]\n\n[defaults]\nepochs = 1\nbatch_size = 16\n\
    learning_rate = 0.003\n\n[[model]]\nkind = \"svm-linear\"\n";

fn lab(args: &[&str], dir: &Path) -> Output {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_coordinator"))
        .parent()
        .unwrap();
    Command::new(repo.join("deploy/lab.sh"))
        .args(args)
        .env("ECOBENCH_BIN", bin)
        .env("LAB_TIMEOUT_S", "150")
        .env("TMPDIR", dir)
        .output()
        .unwrap()
}

/// Why this machine cannot make network namespaces, if it cannot.
fn cannot_make_namespaces() -> Option<String> {
    for tool in ["ip", "openssl"] {
        if Command::new(tool).arg("-V").output().is_err()
            && Command::new(tool).arg("version").output().is_err()
        {
            return Some(format!("{tool} is not installed"));
        }
    }
    let probe = "ecobench-lab-probe";
    let _ = Command::new("ip").args(["netns", "del", probe]).output();
    let added = Command::new("ip")
        .args(["netns", "add", probe])
        .output()
        .unwrap();
    if !added.status.success() {
        return Some(format!(
            "`ip netns add` is not permitted here (needs root or CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&added.stderr).trim()
        ));
    }
    let _ = Command::new("ip").args(["netns", "del", probe]).output();
    None
}

fn leftovers() -> Vec<String> {
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let netns = String::from_utf8_lossy(&netns.stdout).into_owned();
    let links = String::from_utf8_lossy(&links.stdout).into_owned();
    netns
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .chain(
            links
                .lines()
                .filter_map(|l| l.split(": ").nth(1).map(str::to_string)),
        )
        .filter(|name| name.starts_with("ecobench-lab"))
        .collect()
}

#[test]
fn a_lab_of_namespaces_runs_a_campaign_over_tls_and_goes_away() {
    if let Some(reason) = cannot_make_namespaces() {
        println!("lab test skipped: {reason}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let campaign = tmp.path().join("lab.toml");
    std::fs::write(&campaign, CAMPAIGN).unwrap();
    let out_dir = tmp.path().join("report");
    let up = lab(
        &[
            "up",
            campaign.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
        tmp.path(),
    );
    let stdout = String::from_utf8_lossy(&up.stdout).into_owned();
    println!("{stdout}");
    let down = lab(&["down"], tmp.path());
    assert!(
        up.status.success(),
        "lab.sh up fails:\n{stdout}\n{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );

    assert!(stdout.contains("coordinator listening on 198.18.0.11:50051 (TLS, token)"));
    for file in ["jobs.csv", "summary.csv", "emissions.csv", "report.json"] {
        assert!(out_dir.join(file).is_file(), "{file} missing: {stdout}");
    }
    let jobs = csv_rows(&std::fs::read_to_string(out_dir.join("jobs.csv")).unwrap());
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    for job in &jobs {
        assert_eq!(job["status"], "succeeded", "{job:?}");
        assert!(
            ["lab2", "lab3"].contains(&job["worker"].as_str()),
            "{job:?}"
        );
    }

    assert_eq!(
        leftovers(),
        Vec::<String>::new(),
        "lab.sh down left these behind"
    );
    assert!(
        !tmp.path().join("ecobench-lab").exists(),
        "lab.sh down left its files"
    );
}
