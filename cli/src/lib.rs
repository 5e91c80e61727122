//! The `tagrelay` operator command: status, history, promote, pin and redrive, against the
//! same configuration, parameters, builds and queues the functions use.

pub mod args;
pub mod commands;
pub mod context;
pub mod error;
pub mod table;
pub mod time;

use std::io::Write;

use serde::Serialize;

use crate::args::{Cli, Command, Output};
use crate::commands::change::{pin, promote, PinRequest, PromoteRequest};
use crate::commands::history::history;
use crate::commands::redrive::{redrive, RedriveRequest};
use crate::commands::retry::retry;
use crate::commands::status::{status, StatusRequest};
use crate::context::{load_config, Context};
use crate::error::{CliError, ErrorReport, EXIT_PROBLEM};

/// What a command found: printed as a table or as JSON, plus the problems that make the exit
/// code 1.
pub struct Report {
    pub json: serde_json::Value,
    pub table: String,
    pub problems: Vec<String>,
}

impl Report {
    fn of<T: Serialize>(value: &T, table: String, problems: Vec<String>) -> Result<Self, CliError> {
        let json = serde_json::to_value(value).map_err(|err| CliError::Output(err.into()))?;
        Ok(Self { json, table, problems })
    }

    /// Prints the report and returns the exit code.
    pub fn print(&self, output: Output, out: &mut impl Write, err: &mut impl Write) -> Result<u8, CliError> {
        match output {
            Output::Table => out.write_all(self.table.as_bytes())?,
            Output::Json => {
                serde_json::to_writer_pretty(&mut *out, &self.json).map_err(|e| CliError::Output(e.into()))?;
                writeln!(out)?;
            }
        }
        for problem in &self.problems {
            writeln!(err, "tagrelay: {problem}")?;
        }
        Ok(if self.problems.is_empty() { 0 } else { EXIT_PROBLEM })
    }
}

/// Reports a failed command: its message on stderr and, with `--output json`, the error as JSON
/// on stdout. Returns the exit code.
pub fn report_failure(err: &CliError, output: Output, out: &mut impl Write, stderr: &mut impl Write) -> u8 {
    let _ = writeln!(stderr, "tagrelay: {err}");
    if output == Output::Json {
        print_error(&err.report(), out);
    }
    err.exit_code()
}

/// Reports a command line clap refused: clap's message (or the help) as clap prints it and, with
/// `--output json` on the command line, the error as JSON on stdout. Returns the exit code.
pub fn report_usage(err: &clap::Error, output: Output, out: &mut impl Write) -> u8 {
    let _ = err.print();
    let report = ErrorReport::from_clap(err);
    // --help and --version are not failures: their text is the output.
    if output == Output::Json && err.use_stderr() {
        print_error(&report, out);
    }
    report.exit_code
}

/// Best effort: when stdout cannot be written, stderr has said it all.
fn print_error(report: &ErrorReport, out: &mut impl Write) {
    if serde_json::to_writer_pretty(&mut *out, report).is_ok() {
        let _ = writeln!(out);
    }
}

/// Runs one command. `progress` gets redrive's line per message.
pub async fn run(cli: &Cli, progress: &mut impl Write) -> Result<Report, CliError> {
    let config = load_config(cli.global.config.as_deref())?;
    let sdk = tagrelay::aws::load_sdk_config().await;
    let context = Context { config, sdk };
    match &cli.command {
        Command::Status(args) => {
            if let Some(environment) = &args.environment {
                context.environment("--env", environment)?;
            }
            if let Some(service) = &args.service {
                context.service(service)?;
            }
            let request = StatusRequest {
                environment: args.environment.as_deref(),
                service: args.service.as_deref(),
                stale_after: args.stale_after,
                now: crate::time::now(),
            };
            let report = status(&context.config, &context.parameters(), &context.builds(), &request).await?;
            Report::of(&report, report.render(), report.problems())
        }
        Command::History(args) => {
            let service = context.service(&args.service)?;
            let environment = context.environment("--env", &args.environment)?;
            let parameter = context.config.parameter_name(&service.name, &environment.name);
            let report =
                history(&context.parameters(), &service.name, &environment.name, parameter, args.limit).await?;
            Report::of(&report, report.render(), report.problems())
        }
        Command::Promote(args) => {
            let service = context.service(&args.service)?;
            let from = context.environment("--from", &args.from)?;
            let to = context.environment("--to", &args.to)?;
            if from.name == to.name {
                return Err(CliError::usage("--to", "must name another environment than --from"));
            }
            let request = PromoteRequest { service, from: &from.name, to: &to.name, dry_run: args.dry_run };
            let report = promote(&context.recorder(), request).await?;
            Report::of(&report, report.render(), report.problems())
        }
        Command::Pin(args) => {
            let service = context.service(&args.service)?;
            let environment = context.environment("--env", &args.environment)?;
            let request = PinRequest {
                service,
                environment: &environment.name,
                tag: &args.tag,
                reason: &args.reason,
                dry_run: args.dry_run,
            };
            let report = pin(&context.recorder(), request).await?;
            Report::of(&report, report.render(), report.problems())
        }
        Command::Retry(args) => {
            let environment = context.environment("--env", &args.environment)?;
            // Said in the decision line (the trigger), so the log says who asked for the run.
            let by = std::env::var("USER").unwrap_or_else(|_| "an operator".to_owned());
            let report = retry(&context.deployer(), environment, &format!("{by} with tagrelay retry")).await?;
            Report::of(&report, report.render(), Vec::new())
        }
        Command::Redrive(args) => {
            let queue_name = args.queue.clone().unwrap_or_else(|| args.function.default_queue());
            let queue = context.dead_letter_queue(&queue_name).await?;
            let request = RedriveRequest { function: args.function.name(), queue: queue.url(), max: args.max };
            let report = match args.function {
                args::Function::RecordImageTag => redrive(&queue, &context.recorder(), request, progress).await?,
                args::Function::TriggerDeploy => redrive(&queue, &context.deployer(), request, progress).await?,
            };
            Report::of(&report, report.render(), report.problems())
        }
    }
}
