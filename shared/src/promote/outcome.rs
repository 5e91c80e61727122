//! What promote reports: the function's response (`Summary`), what was decided and written per
//! environment (`EnvironmentReport`), and its errors. Types only.

use serde::Serialize;
use thiserror::Error;

use super::decision::Promotion;
use super::records::RecordError;
use super::rollback::RollbackDecision;
use super::trigger::IgnoreReason;
use crate::event::EventError;
use crate::handler::{join, HandlerError};
use crate::ports::AwsError;
use crate::record::outcome::{EnvironmentOutcome, RecordError as WriteError};

#[derive(Debug, Error)]
pub enum PromoteError {
    #[error(transparent)]
    InvalidEvent(#[from] EventError),
    /// Some environments could not be read or written; the others were decided. Writes that
    /// landed are not undone: a retry finds them done (rollback record first, then tags).
    #[error("{} of {attempted} environments failed; the event is safe to retry: {}", failed.len(), join(failed))]
    Environments { attempted: usize, failed: Vec<EnvironmentError> },
}

/// Why one environment's decision could not be read or carried out.
#[derive(Debug, Error)]
pub enum EnvironmentError {
    #[error("{environment}: {source}")]
    Aws { environment: String, source: AwsError },
    #[error("{environment}: {source}")]
    Record { environment: String, source: RecordError },
    #[error("{environment}: {source}")]
    Write { environment: String, source: WriteError },
}

impl HandlerError for PromoteError {
    fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidEvent(_) => "InvalidEvent",
            Self::Environments { .. } => "PromoteFailed",
        }
    }

    /// Each failed environment was logged on its own line.
    fn logged(&self) -> bool {
        matches!(self, Self::Environments { .. })
    }
}

/// The function's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub trigger: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<IgnoreReason>,
    pub environments: Vec<EnvironmentReport>,
}

/// One environment: what was decided, and the image-tag writes made for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvironmentReport {
    pub environment: String,
    /// Its `promote_from`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackDecision>,
    /// The rollback record's version, when this invocation wrote one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_record: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotion: Option<Promotion>,
    /// One per service written (or refused by the record path), in service order.
    pub writes: Vec<EnvironmentOutcome>,
}
