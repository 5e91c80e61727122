//! The AWS events tagrelay consumes, typed. Real events carry more fields than we read; those
//! are ignored, while a missing field we need is an error that names it.

pub mod cloudwatch;
pub mod codebuild;
pub mod deploy;
pub mod ecr;
pub mod ecs;
pub mod ssm;

use serde::de::DeserializeOwned;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum EventError {
    #[error("invalid event: {field}: {message}")]
    Malformed { field: String, message: String },
    #[error("invalid event: {field}: expected {expected:?}, got {actual:?}")]
    Unexpected { field: &'static str, expected: &'static str, actual: String },
}

impl EventError {
    /// The field path the error is about (`.` for the whole event).
    pub fn field(&self) -> &str {
        match self {
            Self::Malformed { field, .. } => field,
            Self::Unexpected { field, .. } => field,
        }
    }
}

/// Deserializes an event, naming the path of the first field that does not fit.
pub fn parse<T: DeserializeOwned>(event: &serde_json::Value) -> Result<T, EventError> {
    serde_path_to_error::deserialize(event)
        .map_err(|err| EventError::Malformed { field: err.path().to_string(), message: err.into_inner().to_string() })
}
