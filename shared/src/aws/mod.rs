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

/// The SDK configuration from the standard chain; `AWS_ENDPOINT_URL` points it at a local AWS.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await
}
