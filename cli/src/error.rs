//! What can go wrong, and the exit code each failure means.

use std::path::PathBuf;

use serde::Serialize;
use tagrelay::config::{ConfigError, CONFIG_ENV};
use tagrelay::deploy::outcome::ReconcileError;
use tagrelay::deploy::release::ReleaseError;
use tagrelay::ports::AwsError;
use tagrelay::promote::operator::OperatorError;
use tagrelay::promote::outcome::EnvironmentError;
use tagrelay::record::{RecordError, WriteFailure};
use thiserror::Error;

/// Exit codes: 0 success, 1 a problem the command found (or an AWS call that failed), 2 usage
/// or configuration.
pub const EXIT_PROBLEM: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Error)]
pub enum CliError {
    #[error("no configuration: set TAGRELAY_CONFIG or pass --config FILE")]
    NoConfig,
    #[error("--config {}: {source}", path.display())]
    ConfigFile { path: PathBuf, source: std::io::Error },
    #[error("--config {} is not valid: {}", path.display(), source.detail())]
    ConfigFileInvalid { path: PathBuf, source: ConfigError },
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An argument that names nothing configured, or says nothing.
    #[error("{argument}: {message}")]
    Usage { argument: &'static str, message: String },
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A release record tagrelay will not write (too large for a parameter).
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// A promotion command refused: nothing waits for approval, nothing to roll back to, a
    /// record too large.
    #[error(transparent)]
    Refused(Box<OperatorError>),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    #[error("cannot start: {0}")]
    Start(std::io::Error),
}

impl From<ReconcileError> for CliError {
    fn from(err: ReconcileError) -> Self {
        match err {
            ReconcileError::Aws(err) => Self::Aws(err),
            ReconcileError::Release(err) => Self::Release(err),
        }
    }
}

/// An AWS call that failed is `Aws` and a write the record path refused is `Record`, wherever
/// they happened; the rest is a refusal of the promotion command.
impl From<OperatorError> for CliError {
    fn from(err: OperatorError) -> Self {
        match err {
            OperatorError::Aws(err) | OperatorError::Environment(EnvironmentError::Aws { source: err, .. }) => {
                Self::Aws(err)
            }
            OperatorError::Environment(EnvironmentError::Write { source, .. }) => Self::Record(source),
            other => Self::Refused(Box::new(other)),
        }
    }
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NoConfig
            | Self::ConfigFile { .. }
            | Self::ConfigFileInvalid { .. }
            | Self::Config(_)
            | Self::Usage { .. } => EXIT_USAGE,
            Self::Aws(_) | Self::Record(_) | Self::Release(_) | Self::Refused(_) | Self::Output(_) | Self::Start(_) => {
                EXIT_PROBLEM
            }
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NoConfig | Self::ConfigFile { .. } | Self::ConfigFileInvalid { .. } | Self::Config(_) => {
                ErrorKind::Config
            }
            Self::Usage { .. } => ErrorKind::Usage,
            Self::Aws(_) | Self::Record(RecordError::Aws(_)) => ErrorKind::Aws,
            // A write SSM refused is an AWS failure; one tagrelay refused (a parameter that is
            // not a String) is a refusal.
            Self::Record(RecordError::Writes { failed, .. } | RecordError::Sweep { failed, .. })
                if failed.iter().all(|f| matches!(f, WriteFailure::Aws(_))) =>
            {
                ErrorKind::Aws
            }
            Self::Record(_) | Self::Release(_) | Self::Refused(_) => ErrorKind::Refused,
            Self::Output(_) => ErrorKind::Output,
            Self::Start(_) => ErrorKind::Internal,
        }
    }

    /// The argument or configuration field to fix, when there is one.
    pub fn field(&self) -> Option<String> {
        match self {
            Self::NoConfig => Some(CONFIG_ENV.to_owned()),
            Self::ConfigFile { .. } => Some("--config".to_owned()),
            Self::ConfigFileInvalid { source, .. } | Self::Config(source) => Some(source.field().to_owned()),
            Self::Usage { argument, .. } => Some((*argument).to_owned()),
            Self::Aws(_) | Self::Record(_) | Self::Release(_) | Self::Refused(_) | Self::Output(_) | Self::Start(_) => {
                None
            }
        }
    }

    pub fn report(&self) -> ErrorReport {
        ErrorReport {
            error: ErrorDetail { kind: self.kind(), message: self.to_string(), field: self.field() },
            exit_code: self.exit_code(),
        }
    }

    pub fn usage(argument: &'static str, message: impl Into<String>) -> Self {
        Self::Usage { argument, message: message.into() }
    }
}

/// What a failed command prints on stdout with `--output json`, so that a script can parse every
/// outcome; stderr says the same in words. Fields may be added, never changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorReport {
    pub error: ErrorDetail,
    pub exit_code: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorDetail {
    pub kind: ErrorKind,
    /// The message stderr shows, without its `tagrelay: ` prefix.
    pub message: String,
    /// What to fix: the argument (`--reason`, `SERVICE`) or the configuration field
    /// (`services.my-api.order`, `TAGRELAY_CONFIG`); null when it is not something passed in.
    pub field: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The command line (exit 2).
    Usage,
    /// The configuration document, or finding it (exit 2).
    Config,
    /// An AWS call that failed (exit 1).
    Aws,
    /// A change the record path refused (exit 1).
    Refused,
    /// The report could not be written (exit 1).
    Output,
    /// The command could not start (exit 1).
    Internal,
}

impl ErrorReport {
    /// A command line clap refused (clap has printed its own message on stderr).
    pub fn from_clap(err: &clap::Error) -> Self {
        let exit_code = u8::try_from(err.exit_code()).unwrap_or(EXIT_USAGE);
        ErrorReport {
            error: ErrorDetail { kind: ErrorKind::Usage, message: clap_message(err), field: clap_field(err) },
            exit_code,
        }
    }
}

/// clap's message on one line, without the `error: ` prefix, the usage and the `--help` hint.
fn clap_message(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let message = rendered.strip_prefix("error: ").unwrap_or(&rendered);
    let first_paragraph = message.split("\n\n").next().unwrap_or_default();
    first_paragraph.lines().map(str::trim).filter(|line| !line.is_empty()).collect::<Vec<_>>().join(" ")
}

/// The argument clap names (`--reason <TEXT>` → `--reason`, `<SERVICE>` → `SERVICE`).
fn clap_field(err: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let argument = match err.get(ContextKind::InvalidArg)? {
        ContextValue::String(argument) => argument.as_str(),
        ContextValue::Strings(arguments) => arguments.first()?.as_str(),
        _ => return None,
    };
    let name = argument.split_whitespace().next()?;
    Some(name.trim_start_matches('<').trim_end_matches('>').to_owned())
}

#[cfg(test)]
mod tests {
    use tagrelay::event::EventError;

    use super::*;

    fn aws() -> AwsError {
        AwsError { operation: "PutParameter", resource: "/a/dev/tag".into(), code: None, message: "denied".into() }
    }

    #[test]
    fn every_error_has_a_kind_a_field_and_its_exit_code() {
        let invalid = EventError::Malformed { field: ".".into(), message: "x".into() };
        let cases = [
            (CliError::usage("--to", "must differ"), ErrorKind::Usage, Some("--to"), EXIT_USAGE),
            (CliError::NoConfig, ErrorKind::Config, Some("TAGRELAY_CONFIG"), EXIT_USAGE),
            (CliError::Aws(aws()), ErrorKind::Aws, None, EXIT_PROBLEM),
            (CliError::Record(RecordError::Aws(aws())), ErrorKind::Aws, None, EXIT_PROBLEM),
            (
                CliError::Record(RecordError::Writes { attempted: 2, failed: vec![WriteFailure::Aws(aws())] }),
                ErrorKind::Aws,
                None,
                EXIT_PROBLEM,
            ),
            (
                CliError::Record(RecordError::Writes {
                    attempted: 1,
                    failed: vec![WriteFailure::NotAString {
                        parameter: "/a/dev/tag".into(),
                        kind: tagrelay::ports::ParameterKind::SecureString,
                    }],
                }),
                ErrorKind::Refused,
                None,
                EXIT_PROBLEM,
            ),
            (CliError::Record(RecordError::InvalidEvent(invalid)), ErrorKind::Refused, None, EXIT_PROBLEM),
            (CliError::Output(std::io::ErrorKind::BrokenPipe.into()), ErrorKind::Output, None, EXIT_PROBLEM),
            (
                CliError::from(OperatorError::NothingWaits { environment: "prod".into(), state: "up to date".into() }),
                ErrorKind::Refused,
                None,
                EXIT_PROBLEM,
            ),
            (CliError::from(OperatorError::Aws(aws())), ErrorKind::Aws, None, EXIT_PROBLEM),
            (
                CliError::from(OperatorError::Environment(EnvironmentError::Aws {
                    environment: "prod".into(),
                    source: aws(),
                })),
                ErrorKind::Aws,
                None,
                EXIT_PROBLEM,
            ),
        ];
        for (err, kind, field, exit_code) in cases {
            let report = err.report();
            let expected = ErrorDetail { kind, message: err.to_string(), field: field.map(str::to_owned) };
            assert_eq!(report, ErrorReport { error: expected, exit_code }, "{err}");
            assert_eq!(report.exit_code, err.exit_code());
        }
    }
}
