//! record-image-tag: an ECR push (or, on the schedule, an image whose push went unseen) becomes
//! one parameter write per target environment.

pub mod decision;
pub mod handler;
pub mod operator;
pub mod outcome;
pub mod race;
pub mod recorder;
pub mod sweep;
pub mod write;

pub use decision::{Decision, Ignored, SkipReason, WriteReason};
pub use operator::{Change, TagChange};
pub use outcome::{
    EnvironmentOutcome, Outcome, PushSummary, RaceReport, RecordError, ServiceSweep, Summary, SweepSummary,
    WriteFailure,
};
pub use recorder::Recorder;
