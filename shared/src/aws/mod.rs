//! The SDK adapters: each implements a port of `crate::ports` for one AWS service, mapping the
//! SDK's errors to `AwsError` and "not found" to empty results. No decision lives here.

pub mod cloudwatch;
pub mod codebuild;
pub mod ecr;
pub mod ecs;
#[cfg(feature = "sqs")]
pub mod sqs;
pub mod ssm;

use std::error::Error as StdError;
use std::fmt::Debug;

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::ports::AwsError;

impl AwsError {
    pub fn from_sdk<E, R>(operation: &'static str, resource: impl Into<String>, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
        R: Debug,
    {
        Self {
            operation,
            resource: resource.into(),
            code: err.code().map(str::to_owned),
            message: DisplayErrorContext(&err).to_string(),
        }
    }

    pub fn request(operation: &'static str, resource: impl Into<String>, err: impl StdError) -> Self {
        Self { operation, resource: resource.into(), code: None, message: DisplayErrorContext(&err).to_string() }
    }
}

/// Attempts per AWS call, the first included (the SDK's default is 3).
pub const MAX_ATTEMPTS: u32 = 5;

/// The SDK configuration from the standard chain; `AWS_ENDPOINT_URL` points it at a local AWS.
///
/// Throttling is backpressure, not failure: the standard retry mode retries throttling and
/// transient errors with exponential backoff and full jitter (random up to 1 s, 2 s, 4 s, 8 s:
/// at most 15 s of waiting per call, within the functions' 60 s), so a burst that meets SSM's 40
/// TPS spreads out instead of failing. What still fails fails the event: Lambda retries it twice,
/// then it is dead-lettered for `tagrelay redrive`, and the schedule re-asks every decision from
/// AWS's state meanwhile; no event is lost.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    let retry = aws_config::retry::RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(std::time::Duration::from_secs(1))
        .with_max_backoff(std::time::Duration::from_secs(8));
    aws_config::defaults(aws_config::BehaviorVersion::latest()).retry_config(retry).load().await
}
