//! The `tagrelay` operator command: status, history, releases, promote, pin, approve, rollback,
//! trace, retry and redrive, against the same configuration, parameters, builds, release records
//! and queues the functions use.

pub mod args;
pub mod commands;
pub mod context;
pub mod error;
pub mod report;
pub mod table;
pub mod time;

use std::io::Write;

use crate::args::{Cli, Command, Output};
use crate::context::{locate_config, Context};
use crate::error::{CliError, ErrorReport};
pub use crate::report::Report;

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
    let located = locate_config(cli.global.config.as_deref())?;
    let sdk = tagrelay::aws::load_sdk_config().await;
    let config = located.load(&sdk).await?;
    let context = Context { config, sdk };
    match &cli.command {
        Command::Status(args) => Report::of(&args.run(&context).await?),
        Command::History(args) => Report::of(&args.run(&context).await?),
        Command::Releases(args) => Report::of(&args.run(&context).await?),
        Command::Promote(args) => Report::of(&args.run(&context).await?),
        Command::Pin(args) => Report::of(&args.run(&context).await?),
        Command::Approve(args) => Report::of(&args.run(&context).await?),
        Command::Rollback(args) => Report::of(&args.run(&context).await?),
        Command::Trace(args) => Report::of(&args.run(&context).await?),
        Command::Retry(args) => Report::of(&args.run(&context).await?),
        Command::Redrive(args) => Report::of(&args.run(&context, progress).await?),
    }
}
