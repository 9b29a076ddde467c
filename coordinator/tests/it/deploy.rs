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

mod compose;
mod hosts;
mod k8s;

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
    text.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|word| word.starts_with("--") && word.len() > 2)
        .map(|word| {
            let end = word[2..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(word.len(), |at| at + 2);
            word[..end].to_string()
        })
        .collect()
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
