//! Local worker processes for `coordinator run`: spawned beside the
//! coordinator binary, logging to `<out>/worker-<i>.log`, stopped at the end.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

/// The `worker` binary: next to the current executable, else on `PATH`.
pub fn worker_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the coordinator's own executable")?;
    let beside = exe.with_file_name("worker");
    if beside.is_file() {
        return Ok(beside);
    }
    // Test binaries live in target/<profile>/deps; the worker is one folder up.
    if let Some(up) = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("worker"))
        && up.is_file()
    {
        return Ok(up);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("worker"))
        .find(|candidate| candidate.is_file());
    match on_path {
        Some(path) => Ok(path),
        None => bail!(
            "no `worker` binary beside {} nor on PATH: build it with `cargo build --release` (it is in the same workspace)",
            exe.display()
        ),
    }
}

/// Running local workers.
#[derive(Debug)]
pub struct LocalWorkers {
    children: Vec<Child>,
}

impl LocalWorkers {
    /// Starts `n` workers joining `addr`, each capped at `threads` compute threads.
    pub fn spawn(
        addr: &str,
        n: u32,
        threads: u32,
        extra_args: &[String],
        log_dir: &Path,
    ) -> Result<LocalWorkers> {
        let binary = worker_binary()?;
        let mut children = Vec::new();
        for idx in 0..n {
            let log_path = log_dir.join(format!("worker-{idx}.log"));
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("cannot create {}", log_path.display()))?;
            let child = Command::new(&binary)
                .args([
                    "--join",
                    addr,
                    "--threads",
                    &threads.to_string(),
                    "--worker-id",
                ])
                .arg(format!("local-{idx}-{}", std::process::id()))
                // One state folder per worker: a worker locks its own.
                .arg("--state-dir")
                .arg(log_dir.join(format!("worker-{idx}-state")))
                .args(extra_args)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("cannot start {}", binary.display()))?;
            children.push(child);
        }
        Ok(LocalWorkers { children })
    }

    /// Resolves when every worker has exited, with their exit statuses.
    pub async fn all_exited(&mut self) -> String {
        let mut statuses = Vec::new();
        for child in &mut self.children {
            statuses.push(
                child
                    .wait()
                    .await
                    .map_or_else(|e| e.to_string(), |s| s.to_string()),
            );
        }
        statuses.join(", ")
    }

    /// Asks every worker to stop (SIGTERM), then waits for them.
    pub async fn stop(mut self) {
        for child in &self.children {
            if let Some(pid) = child.id() {
                // SAFETY: kill(2) with a pid we spawned and have not reaped.
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
        }
        for child in &mut self.children {
            if tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}
