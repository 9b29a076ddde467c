//! `--config` files on the real binaries: a coordinator and a worker configured only by
//! files run a job, and a client finds them through `ECOBENCH_…` variables; a bad key
//! stops the worker with file:line:key; the examples in deploy/config/ hold exactly the
//! binaries' flags.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::*;

/// deploy/config/ in the checkout.
fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config")
}

/// The worker binary the tests spawn.
fn worker_binary() -> PathBuf {
    ecobench_coordinator::local::worker_binary().expect("the worker binary is built")
}

/// Starts `coordinator serve` with `args`; returns it and the address it printed.
fn serve(args: &[&str]) -> (Child, String) {
    let (child, addr, _) = spawn_serve(args);
    (child, addr)
}

/// Kills a child on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_coordinator_and_a_worker_configured_by_files_run_a_job() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let dataset = tiny_dataset(dir);
    let token = dir.join("token");
    std::fs::write(&token, "config-token\n").unwrap();
    let coordinator_toml = dir.join("coordinator.toml");
    std::fs::write(
        &coordinator_toml,
        format!(
            "listen = \"127.0.0.1:0\"\ndb = \"{}\"\ntoken_file = \"{}\"\nlease_s = 20\n",
            dir.join("db").display(),
            token.display()
        ),
    )
    .unwrap();
    let config = coordinator_toml.display().to_string();
    let (coordinator, addr) = serve(&["--config", &config]);
    let _coordinator = Killed(coordinator);

    let worker_toml = dir.join("worker.toml");
    std::fs::write(
        &worker_toml,
        format!(
            "join = \"{addr}\"\ntoken_file = \"{}\"\nworker_id = \"from-file\"\nthreads = 1\n\
             state_dir = \"{}\"\ndata_dir = [\"{}\"]\n",
            token.display(),
            dir.join("state").display(),
            dir.display()
        ),
    )
    .unwrap();
    let log = dir.join("worker.log");
    let worker = Command::new(worker_binary())
        .arg("--config")
        .arg(&worker_toml)
        .env("ECOBENCH_COUNTRY", "FRA")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("worker starts");
    let _worker = Killed(worker);

    let mut client = client(&addr, Some("config-token")).await;
    let text = campaign(
        "configured",
        &dataset,
        "[1]",
        "[[model]]\nkind = \"svm-linear\"\nc = 1.0\n",
    );
    let submitted = submit(&mut client, "configured.toml", &text).await.unwrap();
    let status = wait_done(&mut client, &submitted.campaign_id, &[]).await;
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        (status.succeeded, status.n_jobs),
        (1, 1),
        "{status:?}\n{logs}"
    );
    let report = report(&mut client, &submitted.campaign_id).await;
    let jobs = csv_rows(&report_file(&report, "jobs.csv"));
    assert_eq!(jobs[0]["worker"], "from-file", "the id came from the file");
    let emissions = csv_rows(&report_file(&report, "emissions.csv"));
    assert_eq!(
        emissions[0]["country_iso_code"], "FRA",
        "the country came from the environment"
    );

    // A client finds the coordinator and its token through the environment alone.
    let status = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .arg("status")
        .env("ECOBENCH_ADDR", &addr)
        .env("ECOBENCH_TOKEN_FILE", &token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success() && stdout.contains("configured") && stdout.contains("from-file"),
        "{stdout}{}",
        String::from_utf8_lossy(&status.stderr)
    );
}

#[test]
fn a_worker_refuses_an_unknown_key_naming_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("worker.toml");
    std::fs::write(&file, "join = \"127.0.0.1:1\"\n\ntreads = 2\n").unwrap();
    let output = Command::new(worker_binary())
        .arg("--config")
        .arg(&file)
        .env("ECOBENCH_STATE_DIR", tmp.path().join("state"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:3: unknown key `treads` (did you mean `threads`?)",
            file.display()
        )),
        "{stderr}"
    );
    assert!(
        !tmp.path().join("state").exists(),
        "refused before doing anything"
    );
}

/// The long flags `--help` lists, without help, version and config, with - → _.
fn flags_in_help(binary: &Path, args: &[&str]) -> BTreeSet<String> {
    let output = Command::new(binary).args(args).output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    help.lines()
        // A flag's own line is indented at most 6; wrapped descriptions are indented more.
        .filter(|line| line.len() - line.trim_start().len() <= 6)
        .filter_map(|line| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix("--"))
        })
        .map(|flag| flag.trim_end_matches(',').replace('-', "_"))
        .filter(|flag| !["help", "version", "config"].contains(&flag.as_str()))
        .collect()
}

/// The keys of an example file: set (`key = …`) or shown commented out (`# key = …`).
fn keys_in_example(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|line| line.strip_prefix("# ").unwrap_or(line))
        .filter_map(|line| line.split_once(" = "))
        .map(|(key, _)| key.to_string())
        .filter(|key| key.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect()
}

/// The example with its commented-out keys set too.
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if keys_in_example(rest).len() == 1 => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_example_files_hold_exactly_the_flags_and_parse() {
    let coordinator = Path::new(env!("CARGO_BIN_EXE_coordinator"));
    let text = std::fs::read_to_string(examples().join("coordinator.toml")).unwrap();
    let flags = flags_in_help(coordinator, &["serve", "--help"]);
    assert!(
        flags.contains("lease_s") && flags.contains("insecure"),
        "{flags:?}"
    );
    assert_eq!(
        keys_in_example(&text),
        flags,
        "deploy/config/coordinator.toml"
    );

    let worker = worker_binary();
    let text = std::fs::read_to_string(examples().join("worker.toml")).unwrap();
    let flags = flags_in_help(&worker, &["--help"]);
    assert!(
        flags.contains("join") && flags.contains("data_dir"),
        "{flags:?}"
    );
    assert_eq!(keys_in_example(&text), flags, "deploy/config/worker.toml");

    // Every key of the worker's example, commented or not, parses: `--region list` reads
    // the flags and prints the regions without joining.
    let tmp = tempfile::tempdir().unwrap();
    let all = tmp.path().join("worker.toml");
    std::fs::write(&all, uncommented(&text)).unwrap();
    let output = Command::new(&worker)
        .arg("--config")
        .arg(&all)
        .args(["--region", "list"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("aws:eu-west-3"));
}

#[test]
fn the_coordinator_example_serves_as_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let example = examples().join("coordinator.toml").display().to_string();
    let db = tmp.path().join("db").display().to_string();
    let (child, addr) = serve(&["--config", &example, "--listen", "127.0.0.1:0", "--db", &db]);
    let mut child = Killed(child);
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert!(child.0.try_wait().unwrap().is_none(), "still serving");
}
