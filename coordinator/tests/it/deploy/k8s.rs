//! deploy/k8s: every manifest parsed; names, labels, ports, Secret, volume and claim
//! references agree with each other, and every container's flags with the binaries.

use std::collections::{BTreeMap, BTreeSet};

use serde_norway::Value;

use super::{
    at, check_flags, flag_value, known_flags, labels, list, port_of, repo, strings, text, yaml_docs,
};

/// A pod-owning workload of the manifests.
struct Workload<'a> {
    /// `file#doc Kind name`, for messages.
    name: String,
    /// The parsed manifest.
    doc: &'a Value,
}

impl Workload<'_> {
    fn pod(&self) -> &Value {
        at(self.doc, "spec.template.spec")
    }

    fn pod_labels(&self) -> BTreeMap<String, String> {
        labels(self.doc, "spec.template.metadata.labels")
    }

    /// The pod's volumes by name, claim templates included.
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

/// Every document of deploy/k8s, indexed.
struct Manifests {
    /// The YAML files, by file name.
    files: BTreeSet<String>,
    /// Every document, named `file#index`.
    docs: Vec<(String, Value)>,
    /// The flags of `coordinator serve`, and of `worker`.
    coordinator_flags: BTreeSet<String>,
    worker_flags: BTreeSet<String>,
}

impl Manifests {
    fn load() -> Manifests {
        let (coordinator_flags, worker_flags) = known_flags();
        let mut files = BTreeSet::new();
        let mut docs = Vec::new();
        for entry in std::fs::read_dir(repo().join("deploy/k8s")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "yaml") {
                files.insert(path.file_name().unwrap().to_string_lossy().into_owned());
                docs.extend(yaml_docs(&path));
            }
        }
        Manifests {
            files,
            docs,
            coordinator_flags,
            worker_flags,
        }
    }

    fn of_kind(&self, kind: &str) -> Vec<(&String, &Value)> {
        self.docs
            .iter()
            .filter(|(_, d)| text(d, "kind") == kind)
            .map(|(n, d)| (n, d))
            .collect()
    }

    /// The documents of `kind` by `metadata.name`.
    fn named(&self, kind: &str) -> BTreeMap<&str, &Value> {
        self.of_kind(kind)
            .into_iter()
            .map(|(_, d)| (text(d, "metadata.name"), d))
            .collect()
    }

    fn workloads(&self) -> Vec<Workload<'_>> {
        ["StatefulSet", "Deployment", "DaemonSet"]
            .iter()
            .flat_map(|kind| self.of_kind(kind))
            .map(|(file, doc)| Workload {
                name: format!(
                    "{file} {} {}",
                    text(doc, "kind"),
                    text(doc, "metadata.name")
                ),
                doc,
            })
            .collect()
    }

    /// The kustomization's resources exist; its namespace exists and holds everything.
    fn check_namespace(&self) -> &str {
        let (_, kustomization) = self.of_kind("Kustomization")[0];
        let namespace = text(kustomization, "namespace");
        for resource in strings(kustomization, "resources") {
            assert!(
                self.files.contains(&resource),
                "kustomization.yaml lists {resource}, not in deploy/k8s"
            );
        }
        assert!(
            self.named("Namespace").contains_key(namespace),
            "no Namespace {namespace}"
        );
        for (name, doc) in &self.docs {
            let kind = text(doc, "kind");
            if !["Kustomization", "Namespace"].contains(&kind) {
                assert_eq!(
                    text(doc, "metadata.namespace"),
                    namespace,
                    "{name}: {kind} namespace"
                );
            }
        }
        namespace
    }

    /// Selector, serviceName, Secret and volume references of one workload; then each
    /// container. Returns the worker containers' arguments.
    fn check_workload(&self, workload: &Workload, namespace: &str) -> Vec<Vec<String>> {
        let name = &workload.name;
        let pod_labels = workload.pod_labels();
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
                self.named("Service").contains_key(service),
                "{name}: no Service {service}"
            );
        }
        let volumes = workload.volumes();
        for volume in volumes.values() {
            let secret = text(volume, "secret.secretName");
            assert!(
                secret.is_empty() || self.named("Secret").contains_key(secret),
                "{name}: no Secret {secret}"
            );
        }
        let mut worker_args = Vec::new();
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
            if args.first().is_some_and(|a| a == "serve") {
                self.check_coordinator(workload, container, &args, &ports);
            } else {
                self.check_worker(workload, container, &args, namespace);
                worker_args.push(args.clone());
            }
            if let Some(metrics) = flag_value(&args, "--metrics") {
                assert_eq!(
                    ports.get("metrics"),
                    Some(&port_of(metrics)),
                    "{name}: port metrics"
                );
            }
            self.check_token(workload, container, &args);
        }
        worker_args
    }

    /// Flags; the grpc port and both probes on `--listen`'s port; `--db` on the claim.
    fn check_coordinator(
        &self,
        workload: &Workload,
        container: &Value,
        args: &[String],
        ports: &BTreeMap<&str, u64>,
    ) {
        let name = &workload.name;
        check_flags(
            name,
            "coordinator serve",
            &args[1..],
            &self.coordinator_flags,
        );
        let grpc = port_of(flag_value(args, "--listen").expect("--listen"));
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
        let db = flag_value(args, "--db").expect("--db");
        let (volume, _) = workload
            .mount_of(container, db)
            .unwrap_or_else(|| panic!("{name}: --db {db} is on no volume mount"));
        let claims = list(workload.doc, "spec.volumeClaimTemplates");
        assert!(
            claims.iter().any(|c| text(c, "metadata.name") == volume),
            "{name}: --db {db} is not on the claim template's volume"
        );
    }

    /// Flags; `--join` names a Service's grpc port; powercap is a read-only /sys hostPath.
    fn check_worker(
        &self,
        workload: &Workload,
        container: &Value,
        args: &[String],
        namespace: &str,
    ) {
        let name = &workload.name;
        check_flags(name, "worker", args, &self.worker_flags);
        let join = flag_value(args, "--join").expect("--join");
        let (host, port) = join.rsplit_once(':').unwrap();
        let host = host.trim_end_matches(&format!(".{namespace}"));
        let services = self.named("Service");
        let service = services
            .get(host)
            .unwrap_or_else(|| panic!("{name}: --join {join}: no Service {host}"));
        assert!(
            list(service, "spec.ports")
                .iter()
                .any(|p| text(p, "name") == "grpc" && at(p, "port").as_u64() == port.parse().ok()),
            "{name}: --join {join} is not the grpc port of Service {host}"
        );
        let powercap = flag_value(args, "--powercap-root").expect("--powercap-root");
        let (volume, mount) = workload
            .mount_of(container, powercap)
            .unwrap_or_else(|| panic!("{name}: --powercap-root {powercap} is on no volume mount"));
        assert_eq!(
            at(mount, "readOnly").as_bool(),
            Some(true),
            "{name}: powercap not read-only"
        );
        let host_path = text(workload.volumes()[&volume], "hostPath.path");
        assert!(
            host_path.starts_with("/sys/"),
            "{name}: powercap from {host_path}"
        );
    }

    /// `--token-file` is `<mount of a Secret volume>/<a key of that Secret>`.
    fn check_token(&self, workload: &Workload, container: &Value, args: &[String]) {
        let name = &workload.name;
        let token = flag_value(args, "--token-file").expect("--token-file");
        let (volume, mount) = workload
            .mount_of(container, token)
            .unwrap_or_else(|| panic!("{name}: --token-file {token} is on no volume mount"));
        let secret_name = text(workload.volumes()[&volume], "secret.secretName");
        let secret = self.named("Secret")[secret_name];
        let key = token
            .strip_prefix(&format!("{}/", text(mount, "mountPath")))
            .unwrap();
        assert!(
            !at(secret, &format!("stringData.{key}")).is_null()
                || !at(secret, &format!("data.{key}")).is_null(),
            "{name}: --token-file {token}: Secret {secret_name} has no key {key}"
        );
    }

    /// Every Service selects the pods of one workload and targets their named ports.
    fn check_services(&self, workloads: &[Workload]) {
        for (service_name, service) in self.named("Service") {
            let selector = labels(service, "spec.selector");
            let selected: Vec<&Workload> = workloads
                .iter()
                .filter(|w| {
                    let pod_labels = w.pod_labels();
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
}

#[test]
fn kubernetes_manifests_agree_with_each_other_and_the_binaries() {
    let manifests = Manifests::load();
    let namespace = manifests.check_namespace();
    let workloads = manifests.workloads();
    assert_eq!(
        workloads.len(),
        3,
        "a coordinator StatefulSet, a worker Deployment and DaemonSet"
    );
    let worker_args: Vec<Vec<String>> = workloads
        .iter()
        .flat_map(|w| manifests.check_workload(w, namespace))
        .collect();
    assert_eq!(worker_args.len(), 2);
    assert_eq!(
        worker_args[0], worker_args[1],
        "the Deployment's and DaemonSet's workers differ"
    );
    manifests.check_services(&workloads);
}
