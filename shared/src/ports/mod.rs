//! Ports: the few AWS calls tagrelay makes, as small traits, and the records they exchange.
//! The core owns them: decisions and handlers depend on these traits only, the SDK adapters in
//! `aws/` implement them, and tests implement them in memory. Nothing here knows the SDK.

pub mod alarms;
pub mod build;
pub mod ecs;

use std::collections::BTreeMap;
use std::future::Future;

use aws_smithy_types::DateTime;
use thiserror::Error;

pub use alarms::{AlarmState, AlarmStatus, AlarmTransition, Alarms};
pub use build::{BuildRecord, BuildStatus, ENVIRONMENT_VARIABLE, FINGERPRINT_VARIABLE};
pub use ecs::{Deployment, EcsServices, RolloutState, ServiceState};

/// An AWS call that failed after the SDK's own retries. Names the operation and the resource.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{operation} {resource} failed: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub resource: String,
    /// AWS's error code (e.g. `ThrottlingException`, `AccessDeniedException`) when it sent one.
    pub code: Option<String>,
    pub message: String,
}

/// A parameter's current value and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredParameter {
    pub value: String,
    pub version: i64,
    pub last_modified: Option<DateTime>,
    pub kind: ParameterKind,
}

impl StoredParameter {
    /// A `String` parameter, as tagrelay and infra/ create them.
    pub fn string(value: impl Into<String>, version: i64, last_modified: Option<DateTime>) -> Self {
        Self { value: value.into(), version, last_modified, kind: ParameterKind::String }
    }
}

crate::names::named_enum! {
    /// SSM's parameter type. tagrelay writes only `String`: a parameter someone turned into a
    /// `SecureString` is read without decryption (its value is ciphertext) and must not be
    /// overwritten, or its type would silently change.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ParameterKind {
        String => "String",
        StringList => "StringList",
        SecureString => "SecureString",
        /// A type this version does not know.
        Other => "unknown",
    }
}

/// One version of a parameter, as SSM keeps it (the newest 100).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterVersion {
    pub version: i64,
    pub value: String,
    pub modified_at: Option<DateTime>,
    /// The IAM identity that wrote this version, as SSM records it.
    pub modified_by: Option<String>,
    pub description: Option<String>,
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

/// A parameter's past: `tagrelay history`, and the race check after every write.
pub trait ParameterHistory {
    /// Every version SSM still keeps, oldest first; empty when the parameter does not exist.
    fn parameter_history(&self, name: &str) -> impl Future<Output = Result<Vec<ParameterVersion>, AwsError>> + Send;
}

/// Where tagrelay keeps its own records under `/tagrelay/{environment}/`: the release records
/// (`verified`, written by trigger-deploy), the rollback records (`rollback`, promote and the
/// CLI) and the approvals (`approval`, the CLI). One parameter per kind whose versions are the
/// records (read back with `ParameterHistory`).
pub trait RecordStore {
    /// Writes a record (JSON) as the parameter's next version, creating the parameter on the
    /// first write, in the Intelligent-Tiering tier (a record may outgrow a Standard parameter's
    /// 4 KB). Returns the version.
    fn put_record(
        &self,
        parameter: &str,
        document: &str,
        description: &str,
    ) -> impl Future<Output = Result<i64, AwsError>> + Send;
}

/// What ECR knows about the image a tag points at.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFacts {
    pub digest: String,
    pub pushed_at: Option<DateTime>,
}

/// One tagged image of a repository, as `DescribeImages` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedImage {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: Option<DateTime>,
}

/// One page of a repository's tagged images; `next_token` is `None` on the last page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImagePage {
    pub images: Vec<ListedImage>,
    pub next_token: Option<String>,
}

pub trait ImageRegistry {
    /// The image `tag` points at in `repository` now; `None` when the tag or the repository
    /// does not exist.
    fn image_by_tag(
        &self,
        repository: &str,
        tag: &str,
    ) -> impl Future<Output = Result<Option<ImageFacts>, AwsError>> + Send;

    /// One page (up to 1,000) of the repository's tagged images, in no particular order
    /// (`DescribeImages` has no sort); an empty last page when the repository does not exist.
    fn tagged_images(
        &self,
        repository: &str,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<ImagePage, AwsError>> + Send;
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
    /// CodeBuild refused with `AccountLimitExceededException`: the project's concurrent build
    /// limit, or the account's quota of running builds (the same code covers both). `message`
    /// is CodeBuild's.
    LimitReached {
        message: String,
    },
}

/// One page of a project's build ids, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildIdPage {
    pub ids: Vec<String>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<String>,
}

/// One message of a function's dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    /// Needed to delete the message; valid while the message is hidden.
    pub receipt_handle: String,
    /// The event as the function received it.
    pub body: String,
    /// Lambda's `ErrorMessage` attribute: why the last attempt failed.
    pub error_message: Option<String>,
    pub sent_at: Option<DateTime>,
}

/// A dead-letter queue, for `tagrelay redrive`.
pub trait DeadLetterQueue {
    /// Up to `max` messages (at most 10), hidden from other readers for `hide_for_seconds`.
    fn receive(
        &self,
        max: usize,
        hide_for_seconds: i32,
    ) -> impl Future<Output = Result<Vec<DeadLetter>, AwsError>> + Send;

    /// Deletes a message that was replayed successfully.
    fn delete(&self, message: &DeadLetter) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// Makes a message visible again at once (its replay failed: leave it for the next look).
    fn release(&self, message: &DeadLetter) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// A project's builds, read back a page and a chunk at a time; the paging loop is
/// `deploy::history`'s.
pub trait BuildRunner {
    /// One page of the project's build ids, newest first (CodeBuild: at most 100); `next` is the
    /// previous page's `next`.
    fn list_build_ids(
        &self,
        project: &str,
        next: Option<&str>,
    ) -> impl Future<Output = Result<BuildIdPage, AwsError>> + Send;

    /// The builds with these ids (at most 100), in the order asked; ids CodeBuild no longer
    /// knows are left out.
    fn get_builds(
        &self,
        project: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<BuildRecord>, AwsError>> + Send;

    fn start_build(&self, request: &StartBuild) -> impl Future<Output = Result<StartOutcome, AwsError>> + Send;
}
