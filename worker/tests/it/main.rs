//! Integration tests of the `worker` binary: the child-process protocol of
//! `worker exec` and the command line.

use std::io::Write;
use std::process::{Command, Stdio};

use ecobench_shared::{JobSpec, ModelConfig, SvmConfig, SvmSolver};
use ecobench_worker::data::{Dataset, write_split};
use ecobench_worker::exec::{ChildEvent, ChildInput};

/// 8×8 images of 10 classes, each class a distinct stripe, under light noise.
fn stripes(n: usize, seed: u64) -> Dataset {
    let mut state = seed | 1;
    let labels: Vec<u8> = (0..n).map(|idx| (idx % 10) as u8).collect();
    let mut images = Vec::new();
    for &label in &labels {
        for pixel in 0..64usize {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let lit = (pixel + usize::from(label)) % 10 < 3;
            images.push(if lit { 180 } else { 0 } + (state % 60) as u8);
        }
    }
    Dataset {
        rows: 8,
        cols: 8,
        images,
        labels,
    }
}

fn exec(input: &ChildInput) -> (std::process::ExitStatus, Vec<ChildEvent>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_worker"))
        .arg("exec")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(input).unwrap())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let events = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{line:?}: {err}")))
        .collect();
    (output.status, events)
}

fn svm_job(dataset: &std::path::Path) -> JobSpec {
    JobSpec {
        campaign_id: "00000000000000ab".into(),
        job_idx: 0,
        dataset: dataset.display().to_string(),
        train_samples: Some(200),
        test_samples: Some(100),
        seed: 1,
        threads: 1,
        model: ModelConfig::SvmLinear(SvmConfig::new(1.0, SvmSolver::Dcd)),
    }
}

#[test]
fn exec_trains_and_prints_a_result_event() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), &stripes(300, 1), &stripes(100, 2), false).unwrap();
    let (status, events) = exec(&ChildInput {
        spec: svm_job(tmp.path()),
        data_dirs: vec![],
    });
    assert!(status.success());
    let [ChildEvent::Result { report }] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!((report.n_train, report.n_test), (200, 100));
    assert!(report.accuracy > 0.3, "above chance: {report:?}");
}

#[test]
fn exec_reports_bad_input_as_a_non_retryable_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (status, events) = exec(&ChildInput {
        spec: svm_job(&tmp.path().join("absent")),
        data_dirs: vec![],
    });
    assert!(!status.success());
    let [ChildEvent::Error { message, retryable }] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert!(!retryable);
    assert!(message.contains("absent"), "{message}");
}

#[test]
fn worker_without_join_says_what_to_do() {
    let output = Command::new(env!("CARGO_BIN_EXE_worker")).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--join HOST:PORT"));
}

#[test]
fn an_unknown_country_is_refused_at_start() {
    let output = Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(["--join", "127.0.0.1:1", "--country", "XYZ"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("XYZ"));
}
