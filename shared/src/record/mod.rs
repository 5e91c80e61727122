//! record-image-tag: an ECR push becomes one parameter write per target environment.

pub mod decision;
pub mod handler;
pub mod operator;

pub use decision::{Decision, SkipReason, WriteReason};
pub use handler::{EnvironmentDecision, Outcome, RecordError, Recorder, Summary};
pub use operator::{Change, TagChange};
