//! The command line. clap exits with 2 on a usage error, which is our code for those too.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tagrelay",
    version,
    about = "See what runs where, promote, pin, and replay failed events",
    long_about = "See what runs where, promote, pin, and replay failed events.\n\n\
        Reads the same configuration as the functions (TAGRELAY_CONFIG, or --config FILE), the \
        standard AWS credential chain, and AWS_ENDPOINT_URL.\n\n\
        Exit codes: 0 success; 1 the command found a problem it reports (an environment held or \
        behind for too long, a change refused, a replay that failed again, an AWS call that \
        failed); 2 usage or configuration error."
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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Per environment: each service's tag and the newest tagrelay build; exit 1 when an
    /// environment is held or behind for longer than --stale-after.
    Status(StatusArgs),
    /// A parameter's versions, newest first: tag, when, by whom, why.
    History(HistoryArgs),
    /// Copy a service's tag from one environment to another, if the image exists and the
    /// order policy allows it.
    Promote(PromoteArgs),
    /// Set an older tag on purpose (a rollback), with a reason recorded in the parameter.
    Pin(PinArgs),
    /// Run a held environment's current state again (after fixing what made its run fail).
    /// Otherwise the same as any event: starts a run if behind, nothing if in sync or running.
    Retry(RetryArgs),
    /// Replay the events in a function's dead-letter queue; delete each one only after it
    /// succeeded.
    Redrive(RedriveArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this environment.
    #[arg(long = "env", value_name = "ENVIRONMENT")]
    pub environment: Option<String>,
    /// Only this service's tags.
    #[arg(long, value_name = "SERVICE")]
    pub service: Option<String>,
    /// How long an environment may be behind or held before it counts as a problem
    /// (e.g. 90s, 30m, 2h, 1d).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub stale_after: Duration,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    pub service: String,
    #[arg(long = "env", value_name = "ENVIRONMENT")]
    pub environment: String,
    /// Only the newest N versions.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    pub service: String,
    /// The environment whose tag is copied.
    #[arg(long, value_name = "ENVIRONMENT")]
    pub from: String,
    /// The environment that gets it.
    #[arg(long, value_name = "ENVIRONMENT")]
    pub to: String,
    /// Show what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct PinArgs {
    pub service: String,
    #[arg(long = "env", value_name = "ENVIRONMENT")]
    pub environment: String,
    #[arg(long, value_name = "TAG")]
    pub tag: String,
    /// Why: recorded in the parameter's description, shown by `tagrelay history`.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Show what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    #[arg(long = "env", value_name = "ENVIRONMENT")]
    pub environment: String,
}

#[derive(Debug, Args)]
pub struct RedriveArgs {
    #[arg(long, value_enum)]
    pub function: Function,
    /// Replay at most N messages (default: until the queue is empty).
    #[arg(long, value_name = "N")]
    pub max: Option<usize>,
    /// The dead-letter queue's name or URL (default: tagrelay-<function>-dlq, as infra/ names it).
    #[arg(long, value_name = "NAME_OR_URL")]
    pub queue: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Function {
    RecordImageTag,
    TriggerDeploy,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Self::RecordImageTag => "record-image-tag",
            Self::TriggerDeploy => "trigger-deploy",
        }
    }

    /// The queue infra/ creates with the default `name_prefix`.
    pub fn default_queue(self) -> String {
        format!("tagrelay-{}-dlq", self.name())
    }
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

/// `90s`, `30m`, `2h`, `1d`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration such as 90s, 30m, 2h or 1d"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: the unit must be s, m, h or d")),
    };
    number.checked_mul(seconds).map(Duration::from_secs).ok_or_else(|| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "m", "1w", "-1s", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

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
