//! The files in deploy/ agree with each other and with the binaries: Kubernetes manifests
//! and compose.yaml parsed as YAML (names, ports, labels, Secret and volume references),
//! every `--flag` they pass known to `coordinator serve --help` or `worker --help`, the
//! systemd units installed by install.sh into a temporary root and checked by
//! `systemd-analyze verify`, the Slurm script run against a recording `srun`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_norway::Value;

/// Flags added by the other parts of issue 10 (metrics, config files), accepted here
/// before their code lands. Remove an entry once `--help` lists it.
const AGREED_FLAGS: &[&str] = &["--metrics", "--config"];

/// The repository root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `--flags` a `--help` text lists.
fn help_flags(binary: &Path, args: &[&str]) -> BTreeSet<String> {
    let out = Command::new(binary).args(args).output().unwrap();
    assert!(out.status.success(), "{} {args:?} fails", binary.display());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut flags: BTreeSet<String> = text
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|word| word.starts_with("--") && word.len() > 2)
        .map(|word| {
            let end = word[2..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(word.len(), |at| at + 2);
            word[..end].to_string()
        })
        .collect();
    flags.extend(AGREED_FLAGS.iter().map(|flag| flag.to_string()));
    flags
}

/// The flags of `coordinator serve`, and of `worker`.
fn known_flags() -> (BTreeSet<String>, BTreeSet<String>) {
    let coordinator = help_flags(
        Path::new(env!("CARGO_BIN_EXE_coordinator")),
        &["serve", "--help"],
    );
    let worker = ecobench_coordinator::local::worker_binary().expect("the worker binary is built");
    (coordinator, help_flags(&worker, &["--help"]))
}

/// Fails naming `file` and every flag of `args` missing from `known`.
fn check_flags(file: &str, program: &str, args: &[String], known: &BTreeSet<String>) {
    let unknown: Vec<&str> = args
        .iter()
        .filter(|arg| arg.starts_with("--"))
        .map(|arg| arg.split('=').next().unwrap())
        .filter(|flag| !known.contains(*flag))
        .collect();
    assert!(
        unknown.is_empty(),
        "{file}: {program} does not know {unknown:?} (its --help lists {known:?})"
    );
}

/// The value after `flag` in `args`.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|arg| arg == flag)?;
    args.get(at + 1).map(String::as_str)
}

/// The port of a `host:port`.
fn port_of(addr: &str) -> u64 {
    addr.rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no port in {addr:?}"))
}

static NULL: Value = Value::Null;

/// The value at a dotted path (`spec.template.metadata.labels`), Null when absent.
fn at<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(value, |value, key| value.get(key).unwrap_or(&NULL))
}

fn text<'a>(value: &'a Value, path: &str) -> &'a str {
    at(value, path).as_str().unwrap_or("")
}

fn list<'a>(value: &'a Value, path: &str) -> &'a [Value] {
    at(value, path)
        .as_sequence()
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn strings(value: &Value, path: &str) -> Vec<String> {
    list(value, path)
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

/// A mapping of strings (labels, selectors).
fn labels(value: &Value, path: &str) -> BTreeMap<String, String> {
    let Some(mapping) = at(value, path).as_mapping() else {
        return BTreeMap::new();
    };
    mapping
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_string(),
                v.as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Every YAML document of `path`, each named `file#index` for messages.
fn yaml_docs(path: &Path) -> Vec<(String, Value)> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .enumerate()
        .map(|(idx, doc)| {
            let name = format!("{}#{idx}", path.file_name().unwrap().to_string_lossy());
            let value = Value::deserialize(doc).unwrap_or_else(|err| panic!("{name}: {err}"));
            (name, value)
        })
        .collect()
}

/// A pod-owning workload of the manifests.
struct Workload<'a> {
    name: String,
    doc: &'a Value,
}

impl Workload<'_> {
    fn pod(&self) -> &Value {
        at(self.doc, "spec.template.spec")
    }

    /// Names of the pod's volumes, claim templates included.
    fn volumes(&self) -> BTreeMap<String, &Value> {
        let mut volumes: BTreeMap<String, &Value> = list(self.pod(), "volumes")
            .iter()
            .map(|v| (text(v, "name").to_string(), v))
            .collect();
        for claim in list(self.doc, "spec.volumeClaimTemplates") {
            volumes.insert(text(claim, "metadata.name").to_string(), claim);
        }
        volumes
    }

    /// The volume mounted at the longest mount path holding `path`, with its mount.
    fn mount_of<'c>(&self, container: &'c Value, path: &str) -> Option<(String, &'c Value)> {
        list(container, "volumeMounts")
            .iter()
            .filter(|m| path.starts_with(&format!("{}/", text(m, "mountPath"))))
            .max_by_key(|m| text(m, "mountPath").len())
            .map(|m| (text(m, "name").to_string(), m))
    }
}

#[test]
fn kubernetes_manifests_agree_with_each_other_and_the_binaries() {
    let (coordinator_flags, worker_flags) = known_flags();
    let dir = repo().join("deploy/k8s");
    let mut docs = Vec::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "yaml") {
            files.push(path.file_name().unwrap().to_string_lossy().into_owned());
            docs.extend(yaml_docs(&path));
        }
    }
    let of_kind = |kind: &str| -> Vec<(&String, &Value)> {
        docs.iter()
            .filter(|(_, d)| text(d, "kind") == kind)
            .map(|(n, d)| (n, d))
            .collect()
    };

    // kustomization: its resources exist, its namespace is everyone's and exists.
    let (_, kustomization) = of_kind("Kustomization")[0];
    let namespace = text(kustomization, "namespace");
    for resource in strings(kustomization, "resources") {
        assert!(
            files.contains(&resource),
            "kustomization.yaml lists {resource}, not in deploy/k8s"
        );
    }
    assert!(
        of_kind("Namespace")
            .iter()
            .any(|(_, d)| text(d, "metadata.name") == namespace),
        "no Namespace {namespace} in deploy/k8s"
    );
    for (name, doc) in &docs {
        let kind = text(doc, "kind");
        if !["Kustomization", "Namespace"].contains(&kind) {
            assert_eq!(
                text(doc, "metadata.namespace"),
                namespace,
                "{name}: {kind} namespace"
            );
        }
    }

    let secrets: BTreeMap<&str, &Value> = of_kind("Secret")
        .into_iter()
        .map(|(_, d)| (text(d, "metadata.name"), d))
        .collect();
    let services: BTreeMap<&str, &Value> = of_kind("Service")
        .into_iter()
        .map(|(_, d)| (text(d, "metadata.name"), d))
        .collect();
    let workloads: Vec<Workload> = ["StatefulSet", "Deployment", "DaemonSet"]
        .iter()
        .flat_map(|kind| of_kind(kind))
        .map(|(file, doc)| Workload {
            name: format!(
                "{file} {} {}",
                text(doc, "kind"),
                text(doc, "metadata.name")
            ),
            doc,
        })
        .collect();
    assert_eq!(
        workloads.len(),
        3,
        "a coordinator StatefulSet, a worker Deployment and DaemonSet"
    );

    let mut worker_args = Vec::new();
    for workload in &workloads {
        let name = &workload.name;
        let pod_labels = labels(workload.doc, "spec.template.metadata.labels");
        for (key, value) in labels(workload.doc, "spec.selector.matchLabels") {
            assert_eq!(
                pod_labels.get(&key),
                Some(&value),
                "{name}: selector {key} not on its pods"
            );
        }
        if text(workload.doc, "kind") == "StatefulSet" {
            let service = text(workload.doc, "spec.serviceName");
            assert!(
                services.contains_key(service),
                "{name}: serviceName {service} is no Service"
            );
        }
        let volumes = workload.volumes();
        for volume in volumes.values() {
            let secret = text(volume, "secret.secretName");
            assert!(
                secret.is_empty() || secrets.contains_key(secret),
                "{name}: no Secret {secret}"
            );
        }
        for container in list(workload.pod(), "containers") {
            for mount in list(container, "volumeMounts") {
                let volume = text(mount, "name");
                assert!(
                    volumes.contains_key(volume),
                    "{name}: mounts {volume}, not a volume"
                );
            }
            let args = strings(container, "args");
            let ports: BTreeMap<&str, u64> = list(container, "ports")
                .iter()
                .map(|p| (text(p, "name"), at(p, "containerPort").as_u64().unwrap()))
                .collect();
            let is_coordinator = args.first().is_some_and(|a| a == "serve");
            if is_coordinator {
                check_flags(name, "coordinator serve", &args[1..], &coordinator_flags);
                let grpc = port_of(flag_value(&args, "--listen").expect("--listen"));
                assert_eq!(
                    ports.get("grpc"),
                    Some(&grpc),
                    "{name}: port grpc is not --listen's"
                );
                for probe in ["readinessProbe", "livenessProbe"] {
                    let port = at(container, &format!("{probe}.grpc.port")).as_u64();
                    assert_eq!(
                        port,
                        Some(grpc),
                        "{name}: {probe} is not grpc on --listen's port"
                    );
                }
                let db = flag_value(&args, "--db").expect("--db");
                let (volume, _) = workload.mount_of(container, db).expect("--db on a volume");
                assert!(
                    list(workload.doc, "spec.volumeClaimTemplates")
                        .iter()
                        .any(|c| text(c, "metadata.name") == volume),
                    "{name}: --db {db} is not on the claim template's volume"
                );
            } else {
                check_flags(name, "worker", &args, &worker_flags);
                let join = flag_value(&args, "--join").expect("--join");
                let (host, port) = join.rsplit_once(':').unwrap();
                let host = host.trim_end_matches(&format!(".{namespace}"));
                let service = services
                    .get(host)
                    .unwrap_or_else(|| panic!("{name}: --join {join}: no Service {host}"));
                assert!(
                    list(service, "spec.ports")
                        .iter()
                        .any(|p| text(p, "name") == "grpc"
                            && at(p, "port").as_u64() == Some(port.parse().unwrap())),
                    "{name}: --join {join} is not the grpc port of Service {host}"
                );
                let powercap = flag_value(&args, "--powercap-root").expect("--powercap-root");
                let (volume, mount) = workload
                    .mount_of(container, powercap)
                    .expect("powercap mounted");
                assert_eq!(
                    at(mount, "readOnly").as_bool(),
                    Some(true),
                    "{name}: powercap not read-only"
                );
                assert!(
                    text(volumes[&volume], "hostPath.path").starts_with("/sys/"),
                    "{name}: powercap"
                );
                worker_args.push(args.clone());
            }
            if let Some(metrics) = flag_value(&args, "--metrics") {
                assert_eq!(
                    ports.get("metrics"),
                    Some(&port_of(metrics)),
                    "{name}: port metrics"
                );
            }
            // --token-file is <mount of the Secret volume>/<a key of that Secret>.
            let token = flag_value(&args, "--token-file").expect("--token-file");
            let (volume, mount) = workload.mount_of(container, token).expect("token mounted");
            let secret = secrets[text(volumes[&volume], "secret.secretName")];
            let key = token
                .strip_prefix(&format!("{}/", text(mount, "mountPath")))
                .unwrap();
            assert!(
                !at(secret, &format!("stringData.{key}")).is_null()
                    || !at(secret, &format!("data.{key}")).is_null(),
                "{name}: --token-file {token}: the Secret has no key {key}"
            );
        }
    }
    assert_eq!(worker_args.len(), 2);
    assert_eq!(
        worker_args[0], worker_args[1],
        "the Deployment's and DaemonSet's workers differ"
    );

    // Every Service selects the pods of one workload and targets their named ports.
    for (service_name, service) in &services {
        let selector = labels(service, "spec.selector");
        let selected: Vec<&Workload> = workloads
            .iter()
            .filter(|w| {
                let pod_labels = labels(w.doc, "spec.template.metadata.labels");
                selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
            })
            .collect();
        assert_eq!(
            selected.len(),
            1,
            "Service {service_name} selects {} workloads",
            selected.len()
        );
        let container_ports: BTreeMap<String, u64> = list(selected[0].pod(), "containers")
            .iter()
            .flat_map(|c| list(c, "ports"))
            .map(|p| {
                (
                    text(p, "name").to_string(),
                    at(p, "containerPort").as_u64().unwrap(),
                )
            })
            .collect();
        for port in list(service, "spec.ports") {
            let target = text(port, "targetPort");
            assert_eq!(
                target,
                text(port, "name"),
                "Service {service_name}: port named as its target"
            );
            assert_eq!(
                container_ports.get(target).copied(),
                at(port, "port").as_u64(),
                "Service {service_name}: port {target} is not the container's"
            );
        }
    }
}

/// The arguments of a compose service's `command`.
fn compose_command(compose: &Value, service: &str) -> Vec<String> {
    strings(compose, &format!("services.{service}.command"))
}

#[test]
fn compose_file_agrees_with_itself_the_dockerfile_and_the_binaries() {
    let (coordinator_flags, worker_flags) = known_flags();
    let docker = repo().join("deploy/docker");
    let (_, compose) = yaml_docs(&docker.join("compose.yaml")).remove(0);
    let dockerfile = std::fs::read_to_string(docker.join("Dockerfile")).unwrap();

    let coordinator = compose_command(&compose, "coordinator");
    assert_eq!(coordinator[0], "serve");
    check_flags(
        "compose.yaml",
        "coordinator serve",
        &coordinator[1..],
        &coordinator_flags,
    );
    let worker = compose_command(&compose, "worker");
    check_flags("compose.yaml", "worker", &worker, &worker_flags);
    assert_eq!(
        at(&compose, "services.worker.deploy.replicas").as_u64(),
        Some(3),
        "three workers"
    );

    // Workers join the coordinator by service name on the port it listens on and publishes.
    let listen_port = port_of(flag_value(&coordinator, "--listen").unwrap());
    assert_eq!(
        flag_value(&worker, "--join"),
        Some(format!("coordinator:{listen_port}").as_str())
    );
    let published = strings(&compose, "services.coordinator.ports");
    assert!(
        published.contains(&format!("{listen_port}:{listen_port}")),
        "{published:?}"
    );

    // The db lives on a declared named volume; the token is a declared secret's file.
    let db = flag_value(&coordinator, "--db").unwrap();
    let volume = strings(&compose, "services.coordinator.volumes")
        .into_iter()
        .find_map(|v| {
            let (name, target) = v.split_once(':')?;
            db.starts_with(&format!("{target}/"))
                .then(|| name.to_string())
        })
        .unwrap_or_else(|| panic!("--db {db} is on no volume"));
    assert!(
        at(&compose, "volumes").get(volume.as_str()).is_some(),
        "volume {volume} not declared"
    );
    for (service, args) in [("coordinator", &coordinator), ("worker", &worker)] {
        let service_secrets = strings(&compose, &format!("services.{service}.secrets"));
        let token = flag_value(args, "--token-file").unwrap();
        let secret = token
            .strip_prefix("/run/secrets/")
            .expect("a compose secret");
        assert!(
            service_secrets.iter().any(|s| s == secret),
            "{service}: secret {secret} not granted"
        );
        assert!(
            at(&compose, "secrets").get(secret).is_some(),
            "secret {secret} not declared"
        );
        let target = text(&compose, &format!("services.{service}.build.target"));
        assert!(
            dockerfile.contains(&format!(" AS {target}\n")),
            "no Dockerfile stage {target}"
        );
    }

    // The Dockerfile: a locked release build, non-root runtimes, CMDs with known flags.
    assert!(dockerfile.contains("FROM rust:1.95-bookworm AS build"));
    assert!(dockerfile.contains("cargo build --release --locked"));
    assert!(dockerfile.contains("USER 10001"));
    let cmds: Vec<Vec<String>> = dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("CMD "))
        .map(|json| serde_json::from_str(json).expect("CMD in exec form"))
        .collect();
    assert_eq!(cmds.len(), 2);
    check_flags(
        "Dockerfile",
        "coordinator serve",
        &cmds[0][1..],
        &coordinator_flags,
    );
    check_flags("Dockerfile", "worker", &cmds[1], &worker_flags);
}

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
