//! `tagrelay`: wiring only. The commands live in the library.

use std::process::ExitCode;

use clap::Parser;
use tagrelay_cli::args::{requested_output, Cli};
use tagrelay_cli::error::CliError;
use tagrelay_cli::{report_failure, report_usage};

fn main() -> ExitCode {
    // clap prints the usage error (naming the argument) and says 2; --help and --version say 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let output = requested_output(std::env::args_os());
            return ExitCode::from(report_usage(&err, output, &mut std::io::stdout().lock()));
        }
    };
    // The handlers' decision lines go to stderr: stdout is the report.
    let level = if cli.global.verbose { tracing::Level::INFO } else { tracing::Level::WARN };
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_max_level(level).with_target(false).init();

    let (mut stdout, mut stderr) = (std::io::stdout().lock(), std::io::stderr());
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Start)
        .and_then(|runtime| runtime.block_on(tagrelay_cli::run(&cli, &mut stderr)))
        .and_then(|report| report.print(cli.global.output, &mut stdout, &mut stderr));
    let code = match result {
        Ok(code) => code,
        Err(err) => report_failure(&err, cli.global.output, &mut stdout, &mut stderr),
    };
    ExitCode::from(code)
}
