//! What record-image-tag reports: the function's response (`Summary`), what was done per
//! environment (`EnvironmentOutcome`, `Outcome`), and its errors. Types only: the handler, the
//! sweep, the write path and the operator commands all produce them, so they live apart from
//! each of those and none of them imports another to name a result.

use serde::Serialize;
use thiserror::Error;

use super::decision::{SkipReason, WriteReason};
use crate::event::EventError;
use crate::handler::{join, HandlerError};
use crate::ports::{AwsError, ParameterKind};

#[derive(Debug, Error)]
pub enum RecordError {
    #[error(transparent)]
    InvalidEvent(#[from] EventError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// Some writes failed or were refused. Those that succeeded are not undone: a retry of the
    /// event skips them as unchanged and writes the rest.
    #[error("{} of {attempted} parameter writes failed; the event is safe to retry: {}", failed.len(), join(failed))]
    Writes { attempted: usize, failed: Vec<WriteFailure> },
    /// The record sweep could not read or write some services; the others were swept.
    #[error("the record sweep of {services} services had {} failures: {}", failed.len(), join(failed))]
    Sweep { services: usize, failed: Vec<WriteFailure> },
}

/// Why one environment's write did not happen.
#[derive(Debug, Clone, Error)]
pub enum WriteFailure {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("{parameter} has type {}, not String: tagrelay writes only String parameters and will not change a parameter's type; make it a String again (delete and re-create it) or stop managing it with tagrelay", kind.as_str())]
    NotAString { parameter: String, kind: ParameterKind },
}

impl HandlerError for RecordError {
    fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidEvent(_) => "InvalidEvent",
            Self::Aws(_) => "AwsError",
            Self::Writes { .. } => "WriteFailed",
            Self::Sweep { .. } => "SweepFailed",
        }
    }

    /// Failed writes and swept services were logged one line each.
    fn logged(&self) -> bool {
        matches!(self, Self::Writes { .. } | Self::Sweep { .. })
    }
}

/// The function's response: a push's or a sweep's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Summary {
    Push(PushSummary),
    Sweep(SweepSummary),
}

impl Summary {
    /// The push summary, for callers that sent a push.
    pub fn push(self) -> Option<PushSummary> {
        match self {
            Self::Push(summary) => Some(summary),
            Self::Sweep(_) => None,
        }
    }

    pub fn sweep(self) -> Option<SweepSummary> {
        match self {
            Self::Sweep(summary) => Some(summary),
            Self::Push(_) => None,
        }
    }
}

/// What a push did, per environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushSummary {
    pub repository: String,
    pub tag: Option<String>,
    pub service: Option<String>,
    /// Set when the event as a whole was not acted on.
    pub skipped: Option<SkipReason>,
    pub decisions: Vec<EnvironmentOutcome>,
}

/// What was done for one environment. (`decisions` in the JSON, as the functions have always
/// returned it.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvironmentOutcome {
    pub environment: String,
    pub parameter: String,
    pub previous: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

crate::names::named_enum! {
    /// What the handler did with one environment's `Decision`. Logged as `decision`, except
    /// `Failed`, which every failure logs as `error`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[serde(tag = "decision")]
    pub enum Outcome {
        Write {
            to: String,
            reason: WriteReason,
            version: i64,
            /// Set when another writer wrote between our read and our write.
            #[serde(skip_serializing_if = "Option::is_none")]
            race: Option<RaceReport>,
        } => "write",
        /// A dry run's write (operator command only).
        Planned {
            to: String,
            reason: WriteReason,
        } => "would_write",
        Skip {
            reason: SkipReason,
        } => "skip",
        Failed {
            to: String,
            error: String,
        } => "failed",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepSummary {
    pub trigger: &'static str,
    pub services: Vec<ServiceSweep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceSweep {
    pub service: String,
    pub repository: String,
    /// Tagged images listed.
    pub images: usize,
    /// More images than `MAX_PAGES` pages hold: the rest were not looked at.
    pub truncated: bool,
    pub decisions: Vec<EnvironmentOutcome>,
}

/// What happened around a write that raced another writer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RaceReport {
    /// Versions someone else wrote between our read and our write: `version=value`.
    pub overwritten: Vec<String>,
    /// The newer value we overwrote and wrote back, and the version it now has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored: Option<Restored>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restored {
    pub value: String,
    pub version: i64,
}
