//! `worker meter run` and `worker meter probe` as a user runs them.

use std::process::Command;

/// Runs `worker meter run --json` (no counters: empty fake sysfs trees) on `command`;
/// returns the exit status and the JSON object printed last on stderr.
fn meter_run(command: &[&str]) -> (std::process::ExitStatus, serde_json::Value) {
    let root = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_worker"))
        .args([
            "meter",
            "run",
            "--json",
            "--country",
            "FRA",
            "--powercap-root",
        ])
        .arg(root.path().join("powercap"))
        .arg("--perf-pmu-dir")
        .arg(root.path().join("power"))
        .arg("--")
        .args(command)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    let object = serde_json::from_str(last)
        .unwrap_or_else(|err| panic!("{err}: not JSON on stderr's last line:\n{stderr}"));
    (output.status, object)
}

fn number(object: &serde_json::Value, key: &str) -> f64 {
    object[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {object}"))
}

#[test]
fn sleep_costs_next_to_no_cpu_energy_and_a_busy_loop_more() {
    let (status, sleep) = meter_run(&["sleep", "1"]);
    assert!(status.success());
    assert_eq!(sleep["method"], "model", "{sleep}");
    assert!(number(&sleep, "duration_s") >= 1.0, "{sleep}");
    assert!(number(&sleep, "cpu_time_s") < 0.05, "{sleep}");
    let busy_cmd = "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done";
    let (status, busy) = meter_run(&["sh", "-c", busy_cmd]);
    assert!(status.success());
    assert_eq!(busy["method"], "model", "{busy}");
    assert!(number(&busy, "cpu_time_s") > 0.2, "{busy}");
    // Sleeping: at most a few ticks of CPU; busy: an order of magnitude more.
    assert!(
        number(&busy, "cpu_kwh") > 10.0 * number(&sleep, "cpu_kwh"),
        "{sleep} vs {busy}"
    );
    assert!(number(&busy, "cpu_watts") > number(&sleep, "cpu_watts"));
    for key in ["ram_kwh", "total_kwh", "co2_kg", "avg_watts"] {
        assert!(number(&busy, key) > 0.0, "{key} in {busy}");
    }
    let expected_co2 = number(&busy, "total_kwh") * 56.039 / 1000.0;
    assert!(
        (number(&busy, "co2_kg") - expected_co2).abs() < 1e-15,
        "{busy}"
    );
}

#[test]
fn the_commands_exit_status_is_passed_on() {
    let (status, object) = meter_run(&["sh", "-c", "exit 3"]);
    assert_eq!(status.code(), Some(3));
    assert_eq!(object["exit_code"], 3);
}

#[test]
fn probe_names_each_interface_and_why_it_was_passed_over() {
    let root = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(["meter", "probe", "--json", "--powercap-root"])
        .arg(root.path().join("powercap"))
        .arg("--perf-pmu-dir")
        .arg(root.path().join("power"))
        .output()
        .unwrap();
    assert!(output.status.success());
    let object: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(object["method"], "model", "{object}");
    assert_eq!(object["rapl_interface"], serde_json::Value::Null);
    let passed_over = object["passed_over"].as_array().unwrap();
    assert_eq!(passed_over.len(), 2, "{object}");
    assert_eq!(passed_over[0]["interface"], "perf_event");
    assert!(
        passed_over[0]["why"]
            .as_str()
            .unwrap()
            .contains("power/type")
    );
    assert_eq!(passed_over[1]["interface"], "powercap");
    assert!(passed_over[1]["why"].as_str().unwrap().contains("powercap"));
}
