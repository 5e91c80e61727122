//! What can go wrong, and the exit code each failure means.

use std::path::PathBuf;

use tagrelay::aws::AwsError;
use tagrelay::config::ConfigError;
use tagrelay::record::RecordError;
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
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NoConfig
            | Self::ConfigFile { .. }
            | Self::ConfigFileInvalid { .. }
            | Self::Config(_)
            | Self::Usage { .. } => EXIT_USAGE,
            Self::Aws(_) | Self::Record(_) | Self::Output(_) => EXIT_PROBLEM,
        }
    }

    pub fn usage(argument: &'static str, message: impl Into<String>) -> Self {
        Self::Usage { argument, message: message.into() }
    }
}
