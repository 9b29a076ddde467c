//! deploy/docker: compose.yaml against itself, the Dockerfile and the binaries' flags.

use serde_norway::Value;

use super::{at, check_flags, flag_value, known_flags, port_of, repo, strings, text, yaml_docs};

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
        Some(format!("coordinator:{listen_port}").as_str()),
        "compose.yaml: workers must --join the service coordinator on its --listen port"
    );
    let published = strings(&compose, "services.coordinator.ports");
    assert!(
        published.contains(&format!("{listen_port}:{listen_port}")),
        "compose.yaml: the coordinator publishes {published:?}, not its --listen port {listen_port}"
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
