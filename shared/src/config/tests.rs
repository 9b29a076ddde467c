//! Unit tests of the config mechanism on a small command shaped like `coordinator serve`.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use clap::{Parser, Subcommand};

use super::*;

/// A binary with a configured `serve` and another subcommand.
#[derive(Debug, Parser)]
#[command(name = "demo")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The configured subcommand.
    Serve(ServeArgs),
    /// Not configured: no environment variables added.
    Other {
        /// A flag also named like one of serve's.
        #[arg(long, default_value = "other-default")]
        listen: String,
    },
}

/// Flags of every kind: valued with defaults, optional, boolean, repeatable.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The config file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A valued flag.
    #[arg(long, default_value = "default-listen")]
    listen: String,
    /// Another.
    #[arg(long, default_value = "default-db")]
    db: String,
    /// A number.
    #[arg(long, default_value_t = 15)]
    lease_s: u64,
    /// An optional value.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// A boolean flag.
    #[arg(long)]
    insecure: bool,
    /// A repeatable flag.
    #[arg(long)]
    data_dir: Vec<PathBuf>,
    /// Needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The key.
    #[arg(long)]
    tls_key: Option<PathBuf>,
}

/// Writes `text` to a config file in a fresh temporary folder.
fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.toml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    (dir, path)
}

/// Parses `demo serve --config <file> extra…` with the test process's environment (which
/// sets no `ECOBENCH_…` variable the tests here read).
fn serve(text: &str, extra: &[&str]) -> Result<ServeArgs, ConfigError> {
    let (_dir, path) = config_file(text);
    let mut args = vec![
        "demo".to_string(),
        "serve".to_string(),
        "--config".to_string(),
        path.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let cli: Cli = try_parse_from(&["serve"], args)?;
    match cli.command {
        Cmd::Serve(serve) => Ok(serve),
        Cmd::Other { .. } => unreachable!(),
    }
}

#[test]
fn names_follow_the_flags() {
    assert_eq!(env_var("token-file"), "ECOBENCH_TOKEN_FILE");
    assert_eq!(file_key("token-file"), "token_file");
    let command = command_with_env::<Cli>(&["serve"]);
    let serve = command.find_subcommand("serve").unwrap();
    assert_eq!(
        keys(serve),
        [
            "data_dir",
            "db",
            "insecure",
            "lease_s",
            "listen",
            "tls_cert",
            "tls_key",
            "token_file"
        ]
    );
    let env_of = |cmd: &clap::Command, id: &str| {
        cmd.get_arguments()
            .find(|arg| arg.get_id() == id)
            .and_then(|arg| arg.get_env())
            .map(|env| env.to_string_lossy().into_owned())
    };
    assert_eq!(env_of(serve, "db").as_deref(), Some("ECOBENCH_DB"));
    assert_eq!(env_of(serve, "config").as_deref(), Some("ECOBENCH_CONFIG"));
    let other = command.find_subcommand("other").unwrap();
    assert_eq!(env_of(other, "listen"), None, "only the configured command");
}

#[test]
fn file_values_of_every_kind_are_taken() {
    let serve = serve(
        "listen = \"0.0.0.0:1\"\nlease_s = 0x10\ninsecure = true\ndata_dir = [\"a\", \"b\"]\n\
         token_file = \"/run/credentials/token\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(serve.listen, "0.0.0.0:1");
    assert_eq!(serve.db, "default-db");
    assert_eq!(serve.lease_s, 16);
    assert!(serve.insecure);
    assert_eq!(serve.data_dir, [PathBuf::from("a"), PathBuf::from("b")]);
    assert_eq!(
        serve.token_file.as_deref(),
        Some(std::path::Path::new("/run/credentials/token"))
    );
    let single = self::serve("data_dir = \"only\"\ninsecure = false\n", &[]).unwrap();
    assert_eq!(single.data_dir, [PathBuf::from("only")]);
    assert!(!single.insecure);
}

#[test]
fn the_command_line_wins_over_the_file_for_whole_flags() {
    let serve = serve(
        "lease_s = 30\ndata_dir = [\"a\", \"b\"]\n",
        &["--lease-s", "5", "--data-dir", "c"],
    )
    .unwrap();
    assert_eq!(serve.lease_s, 5);
    assert_eq!(
        serve.data_dir,
        [PathBuf::from("c")],
        "not merged with the file"
    );
}

#[test]
fn an_unknown_key_is_refused_with_its_line_and_the_closest_key() {
    let err = serve("listen = \"x\"\n\n# a comment\nleas_s = 3\n", &[]).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(&err, ConfigError::UnknownKey { line: 4, key, .. } if key == "leas_s"),
        "{err:?}"
    );
    assert!(
        message.contains("demo.toml:4: unknown key `leas_s`"),
        "{message}"
    );
    assert!(message.contains("did you mean `lease_s`?"), "{message}");
    assert!(message.contains("`demo serve --help`"), "{message}");
    let config = serve("config = \"other.toml\"\n", &[]).unwrap_err();
    assert!(
        matches!(config, ConfigError::UnknownKey { .. }),
        "no nesting"
    );
    let table = serve("[serve]\nlisten = \"x\"\n", &[]).unwrap_err();
    assert!(
        matches!(&table, ConfigError::UnknownKey { line: 1, key, .. } if key == "serve"),
        "{table:?}"
    );
}

#[test]
fn a_value_of_the_wrong_type_is_refused_with_what_is_expected() {
    let err = serve("db = \"x\"\nlease_s = \"soon\"\n", &[]).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("{}:2: key `lease_s` = \"soon\": invalid value", {
            let ConfigError::Value { path, .. } = &err else {
                panic!("{err:?}")
            };
            path.display()
        })),
        "{message}"
    );
    assert!(message.contains("--lease-s"), "{message}");
    let negative = serve("lease_s = -1\n", &[]).unwrap_err().to_string();
    assert!(
        negative.contains(":1: key `lease_s` = -1: invalid value"),
        "{negative}"
    );
    let flag = serve("insecure = \"yes\"\n", &[]).unwrap_err().to_string();
    assert!(
        flag.contains(":1: key `insecure` = \"yes\": expected true or false"),
        "{flag}"
    );
    let array = serve("listen = [\"a\"]\n", &[]).unwrap_err().to_string();
    assert!(
        array.contains("key `listen` = [\"a\"]: expected a string or a number, not array"),
        "{array}"
    );
}

#[test]
fn broken_toml_and_missing_files_are_named() {
    let syntax = serve("db = \"x\"\nlisten = \n", &[]).unwrap_err();
    assert!(
        matches!(syntax, ConfigError::Syntax { line: 2, .. }),
        "{syntax:?}"
    );
    let args = ["demo", "serve", "--config", "/nonexistent/demo.toml"];
    let missing = try_parse_from::<Cli>(&["serve"], args).unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with("cannot read the config file /nonexistent/demo.toml"),
        "{missing}"
    );
}

#[test]
fn clap_checks_still_apply_to_file_values() {
    let err = serve("tls_cert = \"cert.pem\"\n", &[]).unwrap_err();
    let ConfigError::Cli(err) = err else {
        panic!("{err:?}")
    };
    assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    assert!(err.to_string().contains("--tls-key"), "{err}");
}

/// Separates the arguments handed to the child in [`CHILD_ARGS`].
const SEPARATOR: char = '\u{1f}';

/// The variable asking [`child_prints_what_it_parsed`] to parse these arguments.
const CHILD_ARGS: &str = "CONFIG_TEST_CHILD_ARGS";

/// Not a test on its own: the child of [`precedence_is_flag_env_file_default`], run in a
/// separate process so that its environment variables do not leak into other tests.
#[test]
fn child_prints_what_it_parsed() {
    let Ok(args) = std::env::var(CHILD_ARGS) else {
        return;
    };
    match try_parse_from::<Cli>(&["serve"], args.split(SEPARATOR)) {
        Ok(Cli {
            command: Cmd::Serve(serve),
        }) => println!(
            "PARSED listen={} db={} lease_s={} token_file={:?} insecure={}",
            serve.listen, serve.db, serve.lease_s, serve.token_file, serve.insecure
        ),
        Ok(Cli {
            command: Cmd::Other { listen },
        }) => println!("PARSED other listen={listen}"),
        Err(err) => println!("PARSED error {err}"),
    }
}

/// Runs [`child_prints_what_it_parsed`] in a child process with `args` and `env`.
fn parse_in_child(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut child = Command::new(std::env::current_exe().unwrap());
    child.args([
        "config::tests::child_prints_what_it_parsed",
        "--exact",
        "--nocapture",
        "--test-threads",
        "1",
    ]);
    for (name, _) in std::env::vars() {
        if name.starts_with(ENV_PREFIX) {
            child.env_remove(name);
        }
    }
    child.env(CHILD_ARGS, args.join(&SEPARATOR.to_string()));
    child.envs(env.iter().copied());
    let output = child.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|line| line.split_once("PARSED ").map(|(_, parsed)| parsed))
        .unwrap_or_else(|| panic!("no PARSED line from the child: {stdout}"))
        .to_string()
}

#[test]
fn precedence_is_flag_env_file_default() {
    let (_dir, path) =
        config_file("listen = \"file-listen\"\ndb = \"file-db\"\nlease_s = 30\ninsecure = true\n");
    let path = path.display().to_string();
    // listen: flag, env and file; db: env and file; lease_s: file; token_file: none.
    let env = [
        ("ECOBENCH_LISTEN", "env-listen"),
        ("ECOBENCH_DB", "env-db"),
        ("ECOBENCH_INSECURE", "false"),
    ];
    let args = [
        "demo",
        "serve",
        "--config",
        &path,
        "--listen",
        "flag-listen",
    ];
    assert_eq!(
        parse_in_child(&args, &env),
        "listen=flag-listen db=env-db lease_s=30 token_file=None insecure=false"
    );
    // The file named by ECOBENCH_CONFIG instead of --config.
    let by_env = [
        ("ECOBENCH_CONFIG", path.as_str()),
        ("ECOBENCH_DB", "env-db"),
    ];
    assert_eq!(
        parse_in_child(&["demo", "serve"], &by_env),
        "listen=file-listen db=env-db lease_s=30 token_file=None insecure=true"
    );
    // Without a file: env over default.
    assert_eq!(
        parse_in_child(&["demo", "serve"], &[("ECOBENCH_LEASE_S", "7")]),
        "listen=default-listen db=default-db lease_s=7 token_file=None insecure=false"
    );
    // Other subcommands get no variables.
    assert_eq!(
        parse_in_child(&["demo", "other"], &[("ECOBENCH_LISTEN", "env-listen")]),
        "other listen=other-default"
    );
    // A bad environment value is clap's error, naming the flag.
    let bad = parse_in_child(&["demo", "serve"], &[("ECOBENCH_LEASE_S", "soon")]);
    assert!(
        bad.starts_with("error ") && bad.contains("--lease-s"),
        "{bad}"
    );
}
