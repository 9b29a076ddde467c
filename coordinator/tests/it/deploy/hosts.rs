//! deploy/systemd and install.sh into a temporary root (then `systemd-analyze verify`),
//! deploy/slurm/worker.sbatch against a recording `srun`.

use std::path::Path;
use std::process::Command;

use super::{check_flags, flag_value, known_flags, repo};

/// The `ExecStart=` lines of a unit, commented alternatives included, as arguments.
fn exec_starts(unit: &str) -> Vec<Vec<String>> {
    unit.lines()
        .filter_map(|line| line.trim_start_matches('#').strip_prefix("ExecStart="))
        .map(|line| line.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn systemd_units_install_into_a_root_and_verify() {
    let (coordinator_flags, worker_flags) = known_flags();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_coordinator"))
        .parent()
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let install = || {
        let out = Command::new(repo().join("deploy/install.sh"))
            .args(["--prefix", "/opt/ecobench", "--bin-dir"])
            .arg(bin_dir)
            .env("DESTDIR", root.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "install.sh fails: {stderr}");
    };
    install();
    let r = root.path();
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| std::fs::metadata(r.join(p)).unwrap().permissions().mode() & 0o7777;
    for bin in ["opt/ecobench/bin/coordinator", "opt/ecobench/bin/worker"] {
        assert_eq!(mode(bin), 0o755, "{bin}");
    }
    assert_eq!(mode("etc/ecobench/token"), 0o600, "the token is root-only");
    let token = std::fs::read_to_string(r.join("etc/ecobench/token")).unwrap();
    assert_eq!(token.len(), 64, "{token:?}");
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(
        r.join("etc/udev/rules.d/60-ecobench-powercap.rules")
            .is_file()
    );
    assert!(
        r.join("var/lib/ecobench-data/fashion-mnist/train-images-idx3-ubyte.gz")
            .is_file()
    );
    if r.join("etc/group").exists() {
        let group = std::fs::read_to_string(r.join("etc/group")).unwrap();
        assert!(
            group.lines().any(|l| l.starts_with("ecobench-power:")),
            "{group}"
        );
    }
    install();
    let again = std::fs::read_to_string(r.join("etc/ecobench/token")).unwrap();
    assert_eq!(again, token, "a second install keeps the token");

    let units = r.join("etc/systemd/system");
    let rule =
        std::fs::read_to_string(r.join("etc/udev/rules.d/60-ecobench-powercap.rules")).unwrap();
    for (unit_name, program, known) in [
        (
            "ecobench-coordinator.service",
            "coordinator",
            &coordinator_flags,
        ),
        ("ecobench-worker.service", "worker", &worker_flags),
    ] {
        let unit = std::fs::read_to_string(units.join(unit_name)).unwrap();
        for line in [
            "LoadCredential=token:/etc/ecobench/token",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "CapabilityBoundingSet=\n",
            "StateDirectory=",
            "DynamicUser=yes",
        ] {
            assert!(unit.contains(line), "{unit_name} lacks {line:?}");
        }
        let starts = exec_starts(&unit);
        assert_eq!(
            starts.len(),
            2,
            "{unit_name}: ExecStart and its TLS alternative"
        );
        for args in &starts {
            assert_eq!(
                args[0],
                format!("/opt/ecobench/bin/{program}"),
                "{unit_name}: --prefix"
            );
            let args = if program == "coordinator" {
                &args[2..]
            } else {
                &args[1..]
            };
            check_flags(unit_name, program, args, known);
            assert_eq!(
                flag_value(args, "--token-file"),
                Some("%d/token"),
                "{unit_name}"
            );
            assert!(
                flag_value(args, "--state-dir")
                    .or(flag_value(args, "--db"))
                    .unwrap()
                    .starts_with("%S/")
            );
        }
        if program == "worker" {
            let group = unit
                .lines()
                .find_map(|l| l.strip_prefix("SupplementaryGroups="))
                .unwrap();
            assert!(
                rule.contains(&format!("chgrp {group} ")),
                "the udev rule grants {group}"
            );
        }
    }

    // systemd-analyze verify, with ExecStart pointing into the temporary root.
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("systemd-analyze is not installed: units not verified");
        return;
    }
    let verify = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for unit_name in ["ecobench-coordinator.service", "ecobench-worker.service"] {
        let unit = std::fs::read_to_string(units.join(unit_name)).unwrap();
        let bin = format!("{}/opt/ecobench/bin/", r.display());
        let path = verify.path().join(unit_name);
        std::fs::write(&path, unit.replace("/opt/ecobench/bin/", &bin)).unwrap();
        paths.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .unwrap();
    // A bad value is only a warning to systemd (the setting is ignored): refuse those too.
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn slurm_script_runs_one_known_worker_per_node() {
    let (_, worker_flags) = known_flags();
    let script = repo().join("deploy/slurm/worker.sbatch");
    for shell_file in [
        &script,
        &repo().join("deploy/lab.sh"),
        &repo().join("deploy/install.sh"),
    ] {
        let out = Command::new("bash")
            .arg("-n")
            .arg(shell_file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "bash -n {}: {}",
            shell_file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(&script).unwrap();
    for directive in ["--exclusive", "--array=", "--signal=TERM@60", "--nodes=1"] {
        assert!(
            text.contains(&format!("#SBATCH {directive}")),
            "worker.sbatch lacks {directive}"
        );
    }

    // A recording srun: the script's worker command line, variables expanded.
    let tmp = tempfile::tempdir().unwrap();
    let fake_bin = tmp.path().join("path");
    std::fs::create_dir(&fake_bin).unwrap();
    let record = tmp.path().join("srun.args");
    std::fs::write(
        fake_bin.join("srun"),
        format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\n", record.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        fake_bin.join("srun"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "t").unwrap();
    let worker = ecobench_coordinator::local::worker_binary().unwrap();
    let run = |args: &[&str], join_env: Option<&str>| {
        let mut command = Command::new("bash");
        command
            .arg(&script)
            .args(args)
            .env(
                "PATH",
                format!("{}:{}", fake_bin.display(), std::env::var("PATH").unwrap()),
            )
            .env("ECOBENCH_BIN", worker.parent().unwrap())
            .env("ECOBENCH_TOKEN_FILE", &token)
            .env("ECOBENCH_STATE_ROOT", tmp.path().join("scratch"))
            .env("ECOBENCH_COUNTRY", "FRA")
            .env_remove("ECOBENCH_JOIN");
        if let Some(join) = join_env {
            command.env("ECOBENCH_JOIN", join);
        }
        command.output().unwrap()
    };
    let refused = run(&[], None);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("ECOBENCH_JOIN"));

    for (args, join_env) in [(&["head:50051"][..], None), (&[][..], Some("head:50051"))] {
        let out = run(args, join_env);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let recorded: Vec<String> = std::fs::read_to_string(&record)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let at_worker = recorded
            .iter()
            .position(|a| a.ends_with("/worker"))
            .expect("srun runs the worker");
        assert!(
            recorded[..at_worker].contains(&"--ntasks=1".to_string()),
            "{recorded:?}"
        );
        let worker_args = &recorded[at_worker + 1..];
        check_flags("worker.sbatch", "worker", worker_args, &worker_flags);
        assert_eq!(flag_value(worker_args, "--join"), Some("head:50051"));
        assert_eq!(flag_value(worker_args, "--country"), Some("FRA"));
        let state = flag_value(worker_args, "--state-dir").unwrap();
        assert!(state.starts_with(&format!(
            "{}/ecobench-worker/",
            tmp.path().join("scratch").display()
        )));
        assert!(Path::new(state).is_dir(), "the state folder is made");
    }
}
