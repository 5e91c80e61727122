//! record-image-tag: an ECR push becomes one parameter write per target environment.

pub mod decision;
pub mod handler;

pub use decision::{Decision, SkipReason, WriteReason};
pub use handler::{RecordError, Recorder, Summary};
