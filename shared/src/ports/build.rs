//! What tagrelay knows of a CodeBuild build.

use std::fmt;

use aws_smithy_types::DateTime;
use serde::{Deserialize, Serialize};

// A tagrelay build is started with these two variables and nothing else: both are a function
// of the StartBuild idempotency token's input (see `fingerprint::idempotency_token`).
/// The fingerprint the build deploys; absent on a build started by hand.
pub const FINGERPRINT_VARIABLE: &str = "TAGRELAY_FINGERPRINT";
/// The tagrelay environment the build deploys.
pub const ENVIRONMENT_VARIABLE: &str = "TAGRELAY_ENVIRONMENT";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BuildStatus {
    InProgress,
    Succeeded,
    Failed,
    Fault,
    TimedOut,
    Stopped,
    /// A status this version does not know.
    #[serde(other)]
    Other,
}

impl BuildStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Fault => "FAULT",
            Self::TimedOut => "TIMED_OUT",
            Self::Stopped => "STOPPED",
            Self::Other => "OTHER",
        }
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::InProgress | Self::Other)
    }

    /// The run failed on its own (not stopped by someone): retrying it unchanged would fail again.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failed | Self::Fault | Self::TimedOut)
    }
}

impl fmt::Display for BuildStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One build of an environment's project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRecord {
    pub id: String,
    pub status: BuildStatus,
    /// `TAGRELAY_FINGERPRINT` as the build was started with; `None` for a build started by hand.
    pub fingerprint: Option<String>,
    pub started: Option<DateTime>,
}
