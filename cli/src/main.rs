//! `tagrelay`: wiring only. The commands live in the library.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tagrelay_cli::args::Cli;
use tagrelay_cli::error::EXIT_USAGE;

fn main() -> ExitCode {
    // clap prints the usage error (naming the argument) and says 2; --help and --version say 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(EXIT_USAGE));
        }
    };
    // The handlers' decision lines go to stderr: stdout is the report.
    let level = if cli.global.verbose { tracing::Level::INFO } else { tracing::Level::WARN };
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_max_level(level).with_target(false).init();

    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tagrelay: cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };
    let (mut stdout, mut stderr) = (std::io::stdout().lock(), std::io::stderr());
    let result = runtime
        .block_on(tagrelay_cli::run(&cli, &mut stderr))
        .and_then(|report| report.print(cli.global.output, &mut stdout, &mut stderr));
    let code = match result {
        Ok(code) => code,
        Err(err) => {
            let _ = writeln!(stderr, "tagrelay: {err}");
            err.exit_code()
        }
    };
    ExitCode::from(code)
}
