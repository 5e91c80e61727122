//! What trigger-deploy reports: the function's response (`Summary`), what was done per
//! environment (`EnvironmentOutcome`, `Outcome`), and its errors. Types only, as in
//! `record/outcome.rs`.

use serde::Serialize;
use thiserror::Error;

use super::reconcile::StartReason;
use super::release::ReleaseError;
use super::trigger::IgnoreReason;
use super::verify::{HoldReason, VerifiedBy};
use crate::event::EventError;
use crate::handler::{join, HandlerError};
use crate::ports::{AwsError, BuildStatus};

#[derive(Debug, Error)]
pub enum DeployError {
    #[error(transparent)]
    InvalidEvent(#[from] EventError),
    /// Reconciling some environments failed; the others were reconciled. A retry is harmless.
    #[error("reconciling {} of {attempted} environments failed: {}", failed.len(), join(failed))]
    Reconcile { attempted: usize, failed: Vec<ReconcileError> },
}

/// Why one environment could not be reconciled.
#[derive(Debug, Clone, Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Release(#[from] ReleaseError),
}

impl HandlerError for DeployError {
    fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidEvent(_) => "InvalidEvent",
            Self::Reconcile { .. } => "AwsError",
        }
    }

    /// Each failed environment was logged with its own line.
    fn logged(&self) -> bool {
        matches!(self, Self::Reconcile { .. })
    }
}

/// The function's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub trigger: String,
    /// Set when the event as a whole reconciles nothing.
    pub ignored: Option<IgnoreReason>,
    pub environments: Vec<EnvironmentOutcome>,
}

/// What was done for one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvironmentOutcome {
    pub environment: String,
    pub project: String,
    pub fingerprint: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

crate::names::named_enum! {
    /// What the handler did with one environment's `Decision` (logged as `decision`).
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[serde(tag = "decision")]
    pub enum Outcome {
        Start {
            reason: StartReason,
            build: String,
        } => "start",
        /// `build` runs: a tagrelay or a manual one, seen before starting or after CodeBuild refused
        /// the start for the project's concurrent build limit.
        Wait {
            build: String,
        } => "wait",
        UpToDate {
            build: String,
        } => "up_to_date",
        Hold {
            build: String,
            status: BuildStatus,
        } => "hold",
        NoBaseline => "no_baseline",
        NothingToDeploy => "nothing_to_deploy",
        /// The parameter change that triggered is in the newest run, `build`, already: nothing
        /// new (`included.rs`).
        Included {
            build: String,
        } => "included",
        /// The state `build` deployed is verified and recorded as a release (`version` of
        /// `/tagrelay/{environment}/verified`).
        Verified {
            build: String,
            basis: VerifiedBy,
            version: i64,
        } => "verified",
        /// ECS is rolling out what `build` deployed: `rolling` says which services, until
        /// `deadline` (RFC 3339).
        Verifying {
            build: String,
            rolling: String,
            deadline: String,
        } => "verifying",
        /// `build` succeeded but the rollout did not: held like a failed build.
        RolloutHeld {
            build: String,
            #[serde(rename = "reason")]
            hold: HoldReason,
            detail: String,
        } => "hold",
    }
}

impl Outcome {
    /// The decision line's `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Start { reason, .. } => reason.as_str(),
            Self::Wait { .. } => "build_running",
            Self::UpToDate { .. } => "deployed",
            Self::Hold { .. } => "same_state_failed",
            Self::NoBaseline => "no_tagrelay_build_yet",
            Self::NothingToDeploy => "no_parameter",
            Self::Included { .. } => "change_in_newest_run",
            Self::Verified { basis, .. } => basis.as_str(),
            Self::Verifying { .. } => "rollout_in_progress",
            Self::RolloutHeld { hold, .. } => hold.as_str(),
        }
    }

    pub fn build(&self) -> Option<&str> {
        match self {
            Self::Start { build, .. }
            | Self::Wait { build }
            | Self::UpToDate { build }
            | Self::Included { build }
            | Self::Hold { build, .. }
            | Self::Verified { build, .. }
            | Self::Verifying { build, .. }
            | Self::RolloutHeld { build, .. } => Some(build),
            Self::NoBaseline | Self::NothingToDeploy => None,
        }
    }
}
