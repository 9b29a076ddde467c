//! Integration tests of the `worker` binary: the child-process protocol of
//! `worker exec` and the command line.

mod meter;

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
        channels: 1,
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
        stage: Default::default(),
        transform: Default::default(),
        expected_dataset_sha256: None,
    }
}

#[test]
fn exec_trains_and_prints_a_result_event() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), &stripes(300, 1), &stripes(100, 2), false).unwrap();
    let (status, events) = exec(&ChildInput {
        spec: svm_job(tmp.path()),
        data_dirs: vec![],
        weights: Default::default(),
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
        weights: Default::default(),
    });
    assert!(!status.success());
    let [
        ChildEvent::Error {
            message, retryable, ..
        },
    ] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    assert!(!retryable);
    assert!(message.contains("absent"), "{message}");
}

/// Writes `split` (grey) as `dir/<split_name>/<label>/<idx>.png` in colour: red the
/// pixel, green its half, blue its negative.
fn write_png_folder(dir: &std::path::Path, split_name: &str, split: &Dataset) {
    for idx in 0..split.len() {
        let class_dir = dir
            .join(split_name)
            .join(format!("class-{}", split.labels[idx]));
        std::fs::create_dir_all(&class_dir).unwrap();
        let grey = split.image(idx);
        let (cols, rows) = (split.cols as u32, split.rows as u32);
        let rgb = image::RgbImage::from_fn(cols, rows, |x, y| {
            let v = grey[(y * cols + x) as usize];
            image::Rgb([v, v / 2, 255 - v])
        });
        rgb.save(class_dir.join(format!("{idx:04}.png"))).unwrap();
    }
}

/// A colour image folder, made grey and resized by the job's transform, trains the SVM in
/// a `worker exec` child above chance.
#[test]
fn exec_trains_on_a_colour_image_folder_with_a_transform() {
    let tmp = tempfile::tempdir().unwrap();
    write_png_folder(tmp.path(), "train", &stripes(300, 1));
    write_png_folder(tmp.path(), "test", &stripes(100, 2));
    let mut spec = svm_job(tmp.path());
    spec.transform.grayscale = true;
    spec.transform.resize = Some(12);
    let (status, events) = exec(&ChildInput {
        spec,
        data_dirs: vec![],
        weights: Default::default(),
    });
    assert!(status.success(), "{events:?}");
    let [ChildEvent::Result { report }] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!((report.n_train, report.n_test), (200, 100));
    assert!(report.accuracy > 0.3, "above chance: {report:?}");
}

/// A truncated CIFAR-10 batch fails the job for good, naming the file and the offset.
#[test]
fn exec_reports_a_truncated_cifar_batch_with_its_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let record = [[3u8].as_slice(), &[7u8; 3072]].concat();
    std::fs::write(tmp.path().join("test_batch.bin"), &record).unwrap();
    std::fs::write(
        tmp.path().join("data_batch_1.bin"),
        [&record[..], &record[..100]].concat(),
    )
    .unwrap();
    let (status, events) = exec(&ChildInput {
        spec: svm_job(tmp.path()),
        data_dirs: vec![],
        weights: Default::default(),
    });
    assert!(!status.success());
    let [
        ChildEvent::Error {
            message, retryable, ..
        },
    ] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    assert!(!retryable);
    assert!(
        message.contains("data_batch_1.bin is truncated"),
        "{message}"
    );
    assert!(message.contains("byte offset 3073"), "{message}");
}

#[test]
fn worker_without_join_says_what_to_do() {
    let output = Command::new(env!("CARGO_BIN_EXE_worker")).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--join HOST:PORT"));
}

/// `worker calibrate`: the score a joining worker sends, with the CPU it ran on.
#[test]
fn calibrate_prints_a_positive_score_and_the_cpu_model() {
    let output = Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(["calibrate", "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let score = json["calibration_gflops"].as_f64().unwrap();
    assert!(score.is_finite() && score > 0.0, "{json}");
    assert_eq!(json["runs_gflops"].as_array().unwrap().len(), 5, "{json}");
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let model = json["cpu_model"].as_str().unwrap();
    assert!(!model.is_empty() && cpuinfo.contains(model), "{json}");

    let line = Command::new(env!("CARGO_BIN_EXE_worker"))
        .arg("calibrate")
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&line.stdout);
    assert!(
        line.starts_with("calibration: ") && line.contains("GFLOP/s") && line.contains(model),
        "{line}"
    );
}

/// `worker meter estimate`: the model's watts for a described machine, not this one.
#[test]
fn meter_estimate_describes_the_machine_asked_about() {
    let estimate = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_worker"))
            .args(["meter", "estimate"])
            .args(args)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    let cpu = "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz";
    // Bare metal, one socket: 300 W at 75 % of the TDP at half load.
    let (ok, out, err) = estimate(&["--cpu", cpu, "--load", "0.5", "--json"]);
    assert!(ok, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        (json["cpu_watts"].as_f64().unwrap() - 225.0).abs() < 1e-9,
        "{json}"
    );
    assert_eq!(json["method"], "model");
    assert_eq!(json["tdp_w"], 300.0);
    assert_eq!(json["row"], "Intel Xeon Platinum 8375C");
    assert!(json["uncertainty"].as_f64().unwrap() > 0.0, "{json}");
    assert!(
        json["rule"].as_str().unwrap().contains("bare metal"),
        "{json}"
    );
    // Two sockets double it; a 2-vCPU VM gets a few watts.
    let (_, out, _) = estimate(&["--cpu", cpu, "--load", "0.5", "--sockets", "2", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        (json["cpu_watts"].as_f64().unwrap() - 450.0).abs() < 1e-9,
        "{json}"
    );
    let (_, out, _) = estimate(&[
        "--cpu", cpu, "--load", "1", "--vm", "--vcpus", "2", "--json",
    ]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let watts = json["cpu_watts"].as_f64().unwrap();
    assert!((1.0..20.0).contains(&watts), "{json}");
    // The line form; bad input says what to give.
    let (ok, out, _) = estimate(&["--cpu", "AMD EPYC 7B13 64-Core Processor", "--load", "0"]);
    assert!(
        ok && out.contains("W CPU") && out.contains("EPYC 7763"),
        "{out}"
    );
    let (ok, _, err) = estimate(&["--cpu", cpu, "--load", "7"]);
    assert!(!ok && err.contains("--load 7"), "{err}");
    let (ok, _, err) = estimate(&["--cpu", cpu, "--load", "0.5", "--vm"]);
    assert!(!ok && err.contains("--vcpus"), "{err}");
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

/// `worker bench` on a tiny dataset: one JSON object per model, each run in a process
/// of its own, with the fields the issue names, the thread count asked for, and the
/// nets' phases adding up to their training time.
#[test]
fn bench_prints_one_json_object_per_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tiny");
    write_split(&data, &stripes(320, 1), &stripes(100, 2), true).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_worker"))
        .args([
            "bench",
            "--model",
            "cnn,svm-linear",
            "--images",
            "160",
            "--batch",
            "16",
        ])
        .args([
            "--threads",
            "1",
            "--warmup-batches",
            "1",
            "--test-images",
            "100",
            "--json",
        ])
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let models: Vec<&str> = lines.iter().map(|l| l["model"].as_str().unwrap()).collect();
    assert_eq!(models, ["cnn", "svm-linear"]);
    for line in &lines {
        for key in [
            "images_per_s",
            "forward_s",
            "backward_s",
            "gflops",
            "peak_rss_mb",
        ] {
            assert!(line.get(key).is_some(), "{key} missing from {line}");
        }
        assert_eq!(line["threads"], 1);
        assert!(line["images_per_s"].as_f64().unwrap() > 0.0);
        assert!(
            (0.0..=1.0).contains(&line["accuracy"].as_f64().unwrap()),
            "{line}"
        );
    }
    let cnn = &lines[0];
    let phases: f64 = ["forward_s", "backward_s", "optimizer_s"]
        .iter()
        .map(|key| cnn[key].as_f64().unwrap())
        .sum();
    assert!((phases - cnn["train_s"].as_f64().unwrap()).abs() < 1e-9);
    assert!(cnn["gflops"].as_f64().unwrap() > 0.0);
    assert_eq!(cnn["images"], 160 - 16, "the warm-up batch is not timed");
    assert!(
        lines[1]["forward_s"].is_null(),
        "the SVM has no forward pass"
    );
    assert!(lines[1]["accuracy"].as_f64().unwrap() > 0.5, "{}", lines[1]);
}

#[test]
fn bench_refuses_an_unknown_model_and_lists_the_kinds() {
    let output = Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(["bench", "--model", "resnet"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown model \"resnet\""), "{stderr}");
    assert!(
        stderr.contains("svm-linear, cnn, densenet, vgg"),
        "{stderr}"
    );
}
