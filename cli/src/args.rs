//! The command line. clap exits with 2 on a usage error, which is our code for those too.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands::approve::ApproveArgs;
use crate::commands::change::{PinArgs, PromoteArgs};
use crate::commands::history::HistoryArgs;
use crate::commands::redrive::RedriveArgs;
use crate::commands::releases::ReleasesArgs;
use crate::commands::retry::RetryArgs;
use crate::commands::rollback::RollbackArgs;
use crate::commands::status::StatusArgs;
use crate::commands::trace::TraceArgs;

#[derive(Debug, Parser)]
#[command(
    name = "tagrelay",
    version,
    about = "See what runs where, promote, pin, approve, roll back, trace an image, retry, and replay failed events",
    long_about = "See what runs where, promote, pin, approve, roll back, trace an image, retry, and replay failed \
        events.\n\n\
        Reads the same configuration as the functions (TAGRELAY_CONFIG, or --config FILE), the \
        standard AWS credential chain, and AWS_ENDPOINT_URL.\n\n\
        Exit codes: 0 success; 1 the command found a problem it reports (an environment held or \
        behind for too long, a change refused, nothing waiting for approval, a tag in no environment, \
        a replay that failed again, an AWS call that failed); 2 usage or configuration error."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The tagrelay configuration document (JSON); default: the TAGRELAY_CONFIG variable.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Also print the decision log lines (INFO) on stderr.
    #[arg(long, short, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// One variant per command; each command's file owns its arguments, its run and its report.
#[derive(Debug, Subcommand)]
pub enum Command {
    Status(StatusArgs),
    History(HistoryArgs),
    Releases(ReleasesArgs),
    Promote(PromoteArgs),
    Pin(PinArgs),
    Approve(ApproveArgs),
    Rollback(RollbackArgs),
    Trace(TraceArgs),
    Retry(RetryArgs),
    Redrive(RedriveArgs),
}

/// The `--output` a command line asks for, read without clap, so that a command line clap
/// refuses still gets its error as JSON when it asked for JSON. As clap reads it: `--output json`
/// or `--output=json`, the last one wins, nothing after `--`.
pub fn requested_output<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut output = Output::Table;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = arg.as_ref().to_string_lossy().into_owned();
        let value = match arg.as_str() {
            "--" => break,
            "--output" => args.next().map(|value| value.as_ref().to_string_lossy().into_owned()),
            other => other.strip_prefix("--output=").map(str::to_owned),
        };
        match value.as_deref() {
            Some("json") => output = Output::Json,
            Some("table") => output = Output::Table,
            _ => {}
        }
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requested_output_is_found_where_clap_would_find_it() {
        let cases: [(&[&str], Output); 8] = [
            (&["tagrelay", "status"], Output::Table),
            (&["tagrelay", "status", "--output", "json"], Output::Json),
            (&["tagrelay", "--output=json", "pin", "x", "--reason"], Output::Json),
            (&["tagrelay", "status", "--output", "json", "--output", "table"], Output::Table),
            (&["tagrelay", "status", "--output", "yaml"], Output::Table),
            (&["tagrelay", "status", "--output"], Output::Table),
            (&["tagrelay", "history", "--", "--output", "json"], Output::Table),
            (&["tagrelay", "--output", "json", "status", "--output=table"], Output::Table),
        ];
        for (args, expected) in cases {
            assert_eq!(requested_output(args), expected, "{args:?}");
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
