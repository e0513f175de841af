use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
mod cli;
mod plugin_command;

use cli::{Cli, Command, LogFormat};
use contract::drill::DrillResult;
use contract::drill::DrillStep;
use contract::result::{BackupResult, MAX_REASON, ReadBackResult};
use executor::{Error, backup, restore};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    read_aliases();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Backup(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime starts")
            .block_on(backup_command(*args)),
        Command::List(args) => runtime().block_on(async {
            let json = args.json;
            let listed = match args.into_config() {
                Ok((target, prefix)) => restore::list(&target, &prefix).await,
                Err(message) => Err(Error::Config(message)),
            };
            match listed {
                Ok(listed) => {
                    print_list(&listed, json);
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("list failed: {error}");
                    exit_code(&error)
                }
            }
        }),
        Command::Restore(args) if args.dry_run => runtime().block_on(async {
            let result_file = args.read.result_file.clone();
            let json = args.json;
            let outcome = match args.into_config() {
                Ok((read, target)) => restore::preview(&read, &target).await,
                Err(message) => Err(Error::Config(message)),
            };
            preview_report(outcome, json, result_file)
        }),
        Command::Restore(args) => runtime().block_on(async {
            let result_file = args.read.result_file.clone();
            let outcome = match args.into_config() {
                Ok((read, target)) => restore::restore(&read, &target).await,
                Err(message) => Err(Error::Config(message)),
            };
            report(
                "restore",
                outcome.map(ReadBackResult::Restored),
                result_file,
            )
        }),
        Command::Verify(args) => runtime().block_on(async {
            let result_file = args.result_file.clone();
            let outcome = match args.into_config() {
                Ok(read) => restore::verify(&read).await,
                Err(message) => Err(Error::Config(message)),
            };
            report("verify", outcome.map(ReadBackResult::Verified), result_file)
        }),
        Command::Decode(args) => runtime().block_on(async {
            let result_file = args.read.result_file.clone();
            let outcome = match args.into_config() {
                Ok((read, output)) => restore::decode(&read, &output).await,
                Err(message) => Err(Error::Config(message)),
            };
            report("decode", outcome.map(ReadBackResult::Decoded), result_file)
        }),
        Command::Drill(args) => runtime().block_on(drill_command(*args)),
        Command::Operator(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime starts")
            .block_on(async {
                match operator::run(args.into_settings()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(message) => {
                        tracing::error!("{message}");
                        ExitCode::FAILURE
                    }
                }
            }),
        Command::Plugin(command) => match plugin_command::run(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("plugin: {message}");
                ExitCode::FAILURE
            }
        },
        Command::Crd => {
            print!("{}", operator::api::crd_yaml());
            ExitCode::SUCCESS
        }
    }
}

async fn backup_command(args: cli::BackupArgs) -> ExitCode {
    let kind = args.kind;
    let result_file = args.result_file.clone();
    let started_at = chrono::Utc::now();
    let outcome = match args.into_config() {
        Ok(config) => backup::run(&config).await,
        Err(message) => Err(Error::Config(message)),
    };
    let (result, code) = match outcome {
        Ok(result) => (result, ExitCode::SUCCESS),
        Err(error) => {
            let reason = failure_reason("backup", &error);
            let result = BackupResult::Failed {
                cause: error.cause().into(),
                reason,
                kind,
                started_at,
                completed_at: chrono::Utc::now(),
            };
            let code = exit_code(&error);
            (result, code)
        }
    };
    let line = serde_json::to_string(&result).expect("result serializes");
    write_result(&line, result_file, code)
}

async fn drill_command(args: cli::DrillArgs) -> ExitCode {
    let result_file = args.read.result_file.clone();
    let outcome = match args.into_config() {
        Ok((read, drill)) => executor::drill::drill(&read, &drill).await,
        Err(message) => Err(executor::drill::Failure {
            step: DrillStep::Start,
            key: None,
            error: Error::Config(message),
        }),
    };
    let (result, code) = match outcome {
        Ok(report) => (DrillResult::Succeeded(report), ExitCode::SUCCESS),
        Err(failure) => {
            let reason: String = failure.error.to_string().chars().take(MAX_REASON).collect();
            eprintln!("drill failed: the {} step: {reason}", failure.step.as_str());
            let code = exit_code(&failure.error);
            let result = DrillResult::Failed {
                step: failure.step,
                cause: failure.error.cause().into(),
                reason,
                key: failure.key,
                completed_at: chrono::Utc::now(),
            };
            (result, code)
        }
    };
    let line = serde_json::to_string(&result).expect("result serializes");
    write_result(&line, result_file, code)
}

/// Exit codes, one per cause a script or a person acts on differently
/// (README "Exit codes"). 0 is success; clap exits with 2 on a usage
/// error, as a configuration error does here.
mod exit {
    pub const FAILURE: u8 = 1;
    pub const CONFIG: u8 = 2;
    pub const AUTH: u8 = 3;
    pub const OPENBAO: u8 = 4;
    pub const STORAGE: u8 = 5;
    pub const INTEGRITY: u8 = 6;
    pub const PLUGIN: u8 = 7;
    pub const CANCELLED: u8 = 8;
}

/// The one table from an error's cause to the exit code.
fn exit_code_of(cause: &str) -> u8 {
    match cause {
        "config" => exit::CONFIG,
        "auth" => exit::AUTH,
        "no-active-node" | "openbao" | "timeout" => exit::OPENBAO,
        "storage" => exit::STORAGE,
        "invalid-snapshot" => exit::INTEGRITY,
        "plugin" => exit::PLUGIN,
        "cancelled" => exit::CANCELLED,
        _ => exit::FAILURE,
    }
}

fn exit_code(error: &Error) -> ExitCode {
    ExitCode::from(exit_code_of(error.cause()))
}

fn print_list(listed: &[restore::Listed], json: bool) {
    if json {
        for backup in listed {
            println!("{}", serde_json::to_string(backup).expect("serializes"));
        }
        return;
    }
    println!(
        "{:<24}  {:<11}  {:>10}  {:<16}  {:<18}  KEY",
        "STARTED", "KIND", "SIZE", "SHA256", "TRANSFORMS"
    );
    for backup in listed {
        let started = backup
            .started_at
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        let sha = backup
            .sha256
            .as_deref()
            .map(|s| &s[..16.min(s.len())])
            .unwrap_or("?");
        let transforms = if backup.transforms.is_empty() {
            "-".to_string()
        } else {
            backup.transforms.join(", ")
        };
        println!(
            "{started:<24}  {:<11}  {:>10}  {sha:<16}  {transforms:<18}  {}{}",
            backup.kind,
            contract::units::human_bytes(backup.size as f64),
            backup.key,
            backup
                .error
                .as_ref()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default(),
        );
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts")
}

/// Prints a read-back command's JSON result (and writes it to the result
/// file); a failure also gets one `<command> failed: <reason>` line.
fn report(
    command: &str,
    outcome: Result<ReadBackResult, Error>,
    result_file: Option<std::path::PathBuf>,
) -> ExitCode {
    let (result, code) = match outcome {
        Ok(result) => (result, ExitCode::SUCCESS),
        Err(error) => {
            let failed = ReadBackResult::Failed {
                cause: error.cause().into(),
                reason: failure_reason(command, &error),
                completed_at: chrono::Utc::now(),
            };
            let code = exit_code(&error);
            (failed, code)
        }
    };
    let line = serde_json::to_string(&result).expect("result serializes");
    write_result(&line, result_file, code)
}

/// `restore --dry-run`: the report as text (or the JSON line with
/// `--json`; always in the result file). Exit code 2 when a restore would
/// be refused.
fn preview_report(
    outcome: Result<contract::preview::PreviewReport, Error>,
    json: bool,
    result_file: Option<std::path::PathBuf>,
) -> ExitCode {
    let report = match outcome {
        Ok(report) => report,
        Err(error) => return report("restore --dry-run", Err(error), result_file),
    };
    let code = if report.refused() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    };
    let refused = report.refusal(contract::preview::Override::flag);
    let text = report.render();
    let line =
        serde_json::to_string(&ReadBackResult::Previewed(report)).expect("result serializes");
    if !json {
        print!("{text}");
        if let Some(refused) = refused {
            eprintln!("{refused}");
        }
        if let Some(path) = result_file {
            return write_result_file(&line, &path, code);
        }
        return code;
    }
    write_result(&line, result_file, code)
}

/// The reason for the JSON result, cut to fit a termination message
/// (Kubernetes keeps at most 4 KiB), and printed as the one line
/// `<command> failed: <reason>` for people and `kubectl logs`.
fn failure_reason(command: &str, error: &Error) -> String {
    let reason: String = error.to_string().chars().take(MAX_REASON).collect();
    eprintln!("{command} failed: {reason}");
    reason
}

/// The one JSON line on stdout, and in `--result-file` when given.
fn write_result(line: &str, result_file: Option<std::path::PathBuf>, code: ExitCode) -> ExitCode {
    println!("{line}");
    match result_file {
        Some(path) => write_result_file(line, &path, code),
        None => code,
    }
}

/// The JSON line into `--result-file`.
fn write_result_file(line: &str, path: &std::path::Path, code: ExitCode) -> ExitCode {
    if let Err(e) = std::fs::File::create(path).and_then(|mut f| f.write_all(line.as_bytes())) {
        eprintln!("cannot write --result-file {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    code
}

/// Each of our variables that is unset takes the value of its alias
/// (`contract::executor::env::ALIASES`: the `bao` and AWS names, old names).
fn read_aliases() {
    for (ours, value) in cli::env_aliases(|name| std::env::var_os(name)) {
        // SAFETY: no other thread runs yet, so none reads the environment
        // while it changes.
        unsafe { std::env::set_var(ours, value) };
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("LOG_LEVEL").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_has_its_exit_code() {
        let s = String::new;
        for (error, code) in [
            (Error::Config(s()), 2),
            (Error::AuthRefused(s()), 3),
            (Error::NoActiveNode(s()), 4),
            (Error::OpenBao(s()), 4),
            (Error::Timeout(s()), 4),
            (Error::Storage(s()), 5),
            (Error::InvalidSnapshot(s()), 6),
            (Error::Cancelled("SIGTERM"), 8),
            (Error::Retention(s()), 1),
        ] {
            assert_eq!(exit_code_of(error.cause()), code, "{error:?}");
        }
        // A plugin error needs a running plugin; its cause is "plugin".
        assert_eq!(exit_code_of("plugin"), 7);
        // clap's usage errors exit with 2, as configuration errors do.
        let usage = cli::Cli::try_parse_from(["openbao-backup", "backup", "--bogus"]).unwrap_err();
        assert_eq!(usage.exit_code(), i32::from(exit::CONFIG));
    }
}
