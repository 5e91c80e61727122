//! Ports: the few AWS calls tagrelay makes, as small traits, so decisions and handlers are
//! tested without AWS; and their SDK adapters.

pub mod codebuild;
pub mod ecr;
pub mod ssm;

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt::Debug;
use std::future::Future;

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::DateTime;
use thiserror::Error;

/// An AWS call that failed after the SDK's own retries. Names the operation and the resource.
#[derive(Debug, Clone, Error)]
#[error("{operation} {resource} failed: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub resource: String,
    /// AWS's error code (e.g. `ThrottlingException`, `AccessDeniedException`) when it sent one.
    pub code: Option<String>,
    pub message: String,
}

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

/// A parameter's current value and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredParameter {
    pub value: String,
    pub version: i64,
}

/// A write of one image-tag parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterWrite {
    pub name: String,
    pub value: String,
    pub description: String,
    /// `Some` when the parameter does not exist yet: it is created with these tags.
    /// `None` overwrites the existing parameter.
    pub create_with_tags: Option<Vec<(String, String)>>,
}

pub trait ParameterStore {
    /// Current values of the named parameters; names that do not exist are left out.
    fn get_parameters(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, StoredParameter>, AwsError>> + Send;

    /// Writes one parameter and returns its new version.
    fn put_parameter(&self, write: &ParameterWrite) -> impl Future<Output = Result<i64, AwsError>> + Send;
}

/// What ECR knows about the image a tag points at.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFacts {
    pub digest: String,
    pub pushed_at: Option<DateTime>,
}

pub trait ImageRegistry {
    /// The image `tag` points at in `repository` now; `None` when the tag or the repository
    /// does not exist.
    fn image_by_tag(
        &self,
        repository: &str,
        tag: &str,
    ) -> impl Future<Output = Result<Option<ImageFacts>, AwsError>> + Send;
}

/// A StartBuild of an environment's project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartBuild {
    pub project: String,
    /// Environment variable overrides, plaintext.
    pub environment: Vec<(String, String)>,
    pub idempotency_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    Started {
        build_id: String,
    },
    /// CodeBuild refused: the concurrent build limit is reached.
    LimitReached,
}

pub trait BuildRunner {
    /// The project's newest builds, newest first, at most `limit`.
    fn recent_builds(
        &self,
        project: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<crate::deploy::build::BuildRecord>, AwsError>> + Send;

    fn start_build(&self, request: &StartBuild) -> impl Future<Output = Result<StartOutcome, AwsError>> + Send;
}

/// The SDK configuration from the standard chain; `AWS_ENDPOINT_URL` points it at a local AWS.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await
}
