//! record-image-tag: an ECR push (or, on the schedule, an image whose push went unseen) becomes
//! one parameter write per target environment.

pub mod decision;
pub mod handler;
pub mod operator;
pub mod race;
pub mod sweep;
pub mod write;

pub use decision::{Decision, Ignored, SkipReason, WriteReason};
pub use handler::{EnvironmentOutcome, Outcome, PushSummary, RecordError, Recorder, Summary, WriteFailure};
pub use operator::{Change, TagChange};
pub use sweep::SweepSummary;
pub use write::RaceReport;
