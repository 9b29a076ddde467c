//! The load generator end to end: `loadgen` spawns a real coordinator, stores a small
//! backlog, 10 simulated workers lease, heartbeat and complete jobs for a few seconds, and
//! its summary line shows work done without an error or a duplicate. No speed is asserted.

use std::process::Command;

/// The number before `label` in the summary line (`123 jobs`), or after it (`errors 0`).
fn figure(line: &str, label: &str, before: bool) -> u64 {
    let words: Vec<&str> = line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    let at = words
        .iter()
        .position(|w| *w == label)
        .unwrap_or_else(|| panic!("no {label:?} in the summary line {line:?}"));
    let word = if before { words[at - 1] } else { words[at + 1] };
    word.parse()
        .unwrap_or_else(|_| panic!("{label:?} is not next to a count in {line:?}"))
}

#[test]
fn loadgen_completes_jobs_without_errors_or_duplicates() {
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--workers", "10", "--seconds", "3", "--chunk", "200"])
        .args(["--heartbeat", "--backlog", "50"])
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "loadgen failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let summary = stdout
        .lines()
        .find(|line| line.starts_with("load: "))
        .unwrap_or_else(|| panic!("no summary line in:\n{stdout}\n{stderr}"));
    assert!(
        summary.starts_with("load: 10 workers, "),
        "unexpected summary {summary:?}"
    );
    assert!(
        figure(summary, "jobs", true) > 0,
        "no job completed: {summary}\n{stderr}"
    );
    assert_eq!(figure(summary, "errors", false), 0, "{stdout}\n{stderr}");
    assert_eq!(
        figure(summary, "duplicates", false),
        0,
        "{stdout}\n{stderr}"
    );
    // The backlog: its pretrain job and 50 fine-tunes, stored and never leased.
    assert_eq!(figure(summary, "backlog", false), 51, "{summary}");
    assert!(
        stdout.contains("  heartbeat "),
        "no heartbeat latencies in:\n{stdout}"
    );
}
