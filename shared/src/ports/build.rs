//! What tagrelay knows of a CodeBuild build.

use aws_smithy_types::DateTime;
use serde::Deserialize;

// A tagrelay build is started with these two variables and nothing else: both are a function
// of the StartBuild idempotency token's input (see `fingerprint::idempotency_token`).
/// The fingerprint the build deploys; absent on a build started by hand.
pub const FINGERPRINT_VARIABLE: &str = "TAGRELAY_FINGERPRINT";
/// The tagrelay environment the build deploys.
pub const ENVIRONMENT_VARIABLE: &str = "TAGRELAY_ENVIRONMENT";

crate::names::named_enum! {
    /// A build's status, by CodeBuild's names (in its events and API).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    pub enum BuildStatus {
        InProgress => "IN_PROGRESS",
        Succeeded => "SUCCEEDED",
        Failed => "FAILED",
        Fault => "FAULT",
        TimedOut => "TIMED_OUT",
        Stopped => "STOPPED",
        /// A status this version does not know.
        #[serde(other)]
        Other => "OTHER",
    }
}

impl BuildStatus {
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::InProgress | Self::Other)
    }

    /// The run failed on its own (not stopped by someone): retrying it unchanged would fail again.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failed | Self::Fault | Self::TimedOut)
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
    /// When it ended; `None` while it runs. Verification's time-out counts from here.
    pub ended: Option<DateTime>,
}
