//! Config files and `ECOBENCH_…` environment variables for a binary's flags: one mechanism
//! for `coordinator serve --config FILE` and `worker --config FILE`.
//!
//! The configured command is the one that declares a `--config` flag. Each of its long flags
//! gets an environment variable, `ECOBENCH_` and the flag's name upper-cased with `-` → `_`
//! (`--token-file` → `ECOBENCH_TOKEN_FILE`), and a key in the config file, the flag's name
//! with `-` → `_` (`token_file`). The file is a flat TOML table; a boolean flag takes `true`
//! or `false`, a repeatable one a value or an array. Precedence: flag > environment > file >
//! default. The file's values go through clap like flags do, so names, types, defaults and
//! checks (`requires`, value parsers) have one source of truth: the binary's clap
//! definition. Relative paths in the file are relative to the working directory, as on the
//! command line.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::error::{ContextKind, ContextValue};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command, Parser};
use toml::de::{DeTable, DeValue};

/// What every environment variable name starts with.
pub const ENV_PREFIX: &str = "ECOBENCH_";

/// The id (and long name) of the flag naming the config file.
pub const CONFIG_FLAG: &str = "config";

/// Why the flags, the environment or the config file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The command line or the environment is wrong (or asks for help): clap's own message.
    #[error(transparent)]
    Cli(#[from] clap::Error),
    /// The config file cannot be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("{path}:{line}: not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A key of the config file is no flag of the command.
    #[error(
        "{path}:{line}: unknown key `{key}`{hint}; the keys are the long flags of `{command}` \
         with - → _ (see `{command} --help`)"
    )]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// 1-based line of the key.
        line: usize,
        /// The key.
        key: String,
        /// ` (did you mean `…`?)` when a known key is close, else empty.
        hint: String,
        /// The configured command (`coordinator serve`).
        command: String,
    },
    /// A value of the config file has the wrong type or does not parse.
    #[error("{path}:{line}: key `{key}` = {value}: {reason}")]
    Value {
        /// The file.
        path: PathBuf,
        /// 1-based line of the value.
        line: usize,
        /// The key.
        key: String,
        /// The value as written in the file.
        value: String,
        /// What was expected.
        reason: String,
    },
}

/// The environment variable of the long flag `long`: `token-file` → `ECOBENCH_TOKEN_FILE`.
pub fn env_var(long: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        long.replace('-', "_").to_ascii_uppercase()
    )
}

/// The config-file key of the long flag `long`: `token-file` → `token_file`.
pub fn file_key(long: &str) -> String {
    long.replace('-', "_")
}

/// The keys a config file for `command` may hold, sorted: every long flag but `--config`,
/// `--help` and `--version`, with `-` → `_`.
pub fn keys(command: &Command) -> Vec<String> {
    let mut keys: Vec<String> = command
        .get_arguments()
        .filter_map(|arg| arg.get_long())
        .filter(|long| !["help", "version", CONFIG_FLAG].contains(long))
        .map(file_key)
        .collect();
    keys.sort();
    keys
}

/// `P`'s command with an `ECOBENCH_…` environment variable on every long flag of the
/// subcommand at `path` (`["serve"]`; empty for the top level) that has none yet.
pub fn command_with_env<P: Parser>(path: &[&str]) -> Command {
    with_env(P::command(), path)
}

/// Parses `P` from the process's arguments, environment and config file (see the module
/// doc); on an error prints it and exits with status 2 (0 for `--help` and `--version`).
pub fn parse<P: Parser>(path: &[&str]) -> P {
    match try_parse_from(path, std::env::args_os()) {
        Ok(parsed) => parsed,
        Err(ConfigError::Cli(err)) => err.exit(),
        Err(err) => {
            eprintln!("error: {err}");
            std::process::exit(2)
        }
    }
}

/// Parses `P` from `args` (the program name first), the environment and the config file
/// named by `--config` or `ECOBENCH_CONFIG` on the subcommand at `path`.
pub fn try_parse_from<P: Parser>(
    path: &[&str],
    args: impl IntoIterator<Item = impl Into<OsString>>,
) -> Result<P, ConfigError> {
    let command = command_with_env::<P>(path);
    let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let matches = command.clone().try_get_matches_from(&args)?;
    let configured = descend(&matches, path).and_then(|sub| {
        let file = sub.try_get_one::<PathBuf>(CONFIG_FLAG).ok().flatten()?;
        Some((sub, file.clone()))
    });
    let Some((sub, file)) = configured else {
        return Ok(P::from_arg_matches(&matches)?);
    };
    let target = subcommand(&command, path);
    let program = args
        .first()
        .and_then(|arg0| Path::new(arg0).file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| command.get_name().to_string());
    let name = [program.as_str()]
        .into_iter()
        .chain(path.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Read {
        path: file.clone(),
        source,
    })?;
    let from_file = file_args(&file, &text, target, sub, &name)?;
    args.extend(from_file.iter().map(|given| OsString::from(&given.arg)));
    let matches = match command.try_get_matches_from(&args) {
        Ok(matches) => matches,
        Err(err) => return Err(blame_file(err, &file, &from_file)),
    };
    Ok(P::from_arg_matches(&matches)?)
}

/// One flag taken from the config file, with where it came from.
#[derive(Debug)]
struct FileArg {
    /// `--long=value` or `--long`.
    arg: String,
    /// The flag's long name.
    long: String,
    /// The key as written.
    key: String,
    /// The value as written in the file.
    value: String,
    /// 1-based line of the value.
    line: usize,
}

/// The flags the file gives for `target`, skipping those the command line or the
/// environment already set; refuses unknown keys and values of the wrong TOML type.
fn file_args(
    file: &Path,
    text: &str,
    target: &Command,
    matches: &ArgMatches,
    name: &str,
) -> Result<Vec<FileArg>, ConfigError> {
    let table = DeTable::parse(text).map_err(|err| ConfigError::Syntax {
        path: file.to_path_buf(),
        line: line_of(text, err.span().map_or(0, |span| span.start)),
        message: err.message().trim().to_string(),
    })?;
    let known = keys(target);
    let mut found = Vec::new();
    for (key, value) in table.get_ref() {
        let line = line_of(text, key.span().start);
        let arg = target
            .get_arguments()
            .find(|arg| arg.get_long().map(file_key).as_deref() == Some(key.get_ref().as_ref()))
            .filter(|_| known.iter().any(|k| k == key.get_ref().as_ref()));
        let Some(arg) = arg else {
            return Err(ConfigError::UnknownKey {
                path: file.to_path_buf(),
                line,
                key: key.get_ref().to_string(),
                hint: closest(key.get_ref(), &known)
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default(),
                command: name.to_string(),
            });
        };
        if matches!(
            matches.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let long = arg.get_long().unwrap_or_default().to_string();
        let value_line = line_of(text, value.span().start);
        let written = text[value.span()].to_string();
        let command_line =
            command_line(&long, arg.get_action(), value.get_ref()).map_err(|reason| {
                ConfigError::Value {
                    path: file.to_path_buf(),
                    line: value_line,
                    key: key.get_ref().to_string(),
                    value: written.clone(),
                    reason,
                }
            })?;
        found.extend(command_line.into_iter().map(|arg| FileArg {
            arg,
            long: long.clone(),
            key: key.get_ref().to_string(),
            value: written.clone(),
            line: value_line,
        }));
    }
    Ok(found)
}

/// What the command line would hold for flag `--long` with `action` set to `value`:
/// nothing or `--long` for a boolean flag, one `--long=…` per item for a repeatable one.
fn command_line(long: &str, action: &ArgAction, value: &DeValue) -> Result<Vec<String>, String> {
    match action {
        ArgAction::SetTrue | ArgAction::SetFalse => match value {
            DeValue::Boolean(on) if *on == matches!(action, ArgAction::SetTrue) => {
                Ok(vec![format!("--{long}")])
            }
            DeValue::Boolean(_) => Ok(Vec::new()),
            _ => Err("expected true or false (a flag)".to_string()),
        },
        ArgAction::Append => {
            let items: Vec<&DeValue> = match value {
                DeValue::Array(items) => items.iter().map(|item| item.get_ref()).collect(),
                single => vec![single],
            };
            items
                .into_iter()
                .map(|item| {
                    scalar(item)
                        .map(|text| format!("--{long}={text}"))
                        .ok_or_else(|| {
                            "expected a string or a number, or an array of them".to_string()
                        })
                })
                .collect()
        }
        _ => match scalar(value) {
            Some(text) => Ok(vec![format!("--{long}={text}")]),
            None => Err(format!(
                "expected a string or a number, not {} (`--{long}` takes one value)",
                value.type_str()
            )),
        },
    }
}

/// The text clap would get on a command line for a TOML string, number or boolean.
fn scalar(value: &DeValue) -> Option<String> {
    match value {
        DeValue::String(text) => Some(text.to_string()),
        DeValue::Integer(int) => Some(
            i128::from_str_radix(int.as_str(), int.radix())
                .map_or_else(|_| int.to_string(), |n| n.to_string()),
        ),
        DeValue::Float(float) => Some(float.as_str().to_string()),
        DeValue::Boolean(on) => Some(on.to_string()),
        DeValue::Datetime(_) | DeValue::Array(_) | DeValue::Table(_) => None,
    }
}

/// Names the file, line and key when clap refused a value that came from the file.
fn blame_file(err: clap::Error, file: &Path, from_file: &[FileArg]) -> ConfigError {
    let Some(ContextValue::String(invalid_arg)) = err.get(ContextKind::InvalidArg) else {
        return err.into();
    };
    let invalid_value = match err.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value)) => Some(value.clone()),
        _ => None,
    };
    let culprit = from_file.iter().find(|given| {
        let flag = format!("--{}", given.long);
        let same_flag = invalid_arg == &flag || invalid_arg.starts_with(&format!("{flag} "));
        let same_value = invalid_value
            .as_deref()
            .is_none_or(|value| given.arg.ends_with(&format!("={value}")));
        same_flag && same_value
    });
    let Some(culprit) = culprit else {
        return err.into();
    };
    let message = err.to_string();
    let first = message.lines().next().unwrap_or_default();
    ConfigError::Value {
        path: file.to_path_buf(),
        line: culprit.line,
        key: culprit.key.clone(),
        value: culprit.value.clone(),
        reason: first.trim_start_matches("error: ").to_string(),
    }
}

/// The known key closest to `key`, if close enough to be a likely typo.
fn closest<'a>(key: &str, known: &'a [String]) -> Option<&'a str> {
    let key = key.replace('-', "_").to_ascii_lowercase();
    known
        .iter()
        .map(|k| (strsim::levenshtein(&key, k), k.as_str()))
        .filter(|(distance, _)| *distance <= (key.len() / 3).max(2))
        .min()
        .map(|(_, k)| k)
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The matches of the subcommand at `path`, if that is the one given.
fn descend<'a>(matches: &'a ArgMatches, path: &[&str]) -> Option<&'a ArgMatches> {
    match path.split_first() {
        None => Some(matches),
        Some((first, rest)) => descend(matches.subcommand_matches(first)?, rest),
    }
}

/// The subcommand at `path`.
fn subcommand<'a>(command: &'a Command, path: &[&str]) -> &'a Command {
    path.iter().fold(command, |command, name| {
        command
            .find_subcommand(name)
            .unwrap_or_else(|| panic!("no subcommand {name} in {}", command.get_name()))
    })
}

/// `command` with an environment variable on every long flag of the subcommand at `path`.
fn with_env(command: Command, path: &[&str]) -> Command {
    match path.split_first() {
        None => command.mut_args(|arg| match arg.get_long() {
            Some(long) if arg.get_env().is_none() => {
                let name = env_var(long);
                arg.env(name)
            }
            _ => arg,
        }),
        Some((first, rest)) => command.mut_subcommand(first, |sub| with_env(sub, rest)),
    }
}

#[cfg(test)]
mod tests;
