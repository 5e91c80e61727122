//! Test bed for tagrelay's end-to-end tests.
//!
//! * [`local_aws`]: a moto server on loopback (SSM, ECR, CodeBuild, SQS) with tagrelay's fidelity
//!   patches and event emission, and helpers to create repositories, push images, write
//!   parameters and steer builds, quotas and lost events.
//! * [`runtime_api`]: an emulator of the Lambda Runtime API, and a spawned function process that
//!   polls it, so the released `bootstrap` binaries run as they do in Lambda.
//! * [`event_pattern`], [`event_router`]: a local EventBridge that routes events through
//!   `infra/event-patterns/` with Lambda's async retries and dead-letter queues.
//! * [`system`]: the whole pipeline wired together; [`events`]: event builders.
//!
//! The tools come from `make tools` (moto) and `make lambdas-local` (the function binaries).

use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod event_pattern;
pub mod event_router;
pub mod events;
mod http_server;
pub mod local_aws;
pub mod runtime_api;
pub mod system;

pub use local_aws::{create_repository, push_image, LocalAws};
pub use runtime_api::{lambda_binary, Diagnostic, FunctionProcess, Outcome, RuntimeApi};

/// Everything the test bed can fail with. Messages say what to do where there is something to do.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("moto_server not found at {}: run `make tools` (make test does it)", path.display())]
    MotoNotFound { path: PathBuf },

    #[error("moto_server exited before answering ({status}); its last output:\n{output}")]
    MotoExited { status: String, output: String },

    #[error(
        "example {name} is not built at {}: run `cargo test -p tagrelay-tests` (it builds the examples)",
        path.display()
    )]
    ExampleNotBuilt { name: String, path: PathBuf },

    #[error("lambda binary not found at {}: run `make lambdas-local`", path.display())]
    LambdaBinaryNotFound { path: PathBuf },

    #[error("could not start {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },

    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },

    #[error("the function reported an init error: {}: {}", .0.error_type, .0.error_message)]
    FunctionInitFailed(Diagnostic),

    /// An AWS call made by the test bed itself (`operation` is like `ecr:PutImage`).
    #[error("{operation} failed: {message}")]
    Aws { operation: &'static str, message: String },

    #[error("I/O error in {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl HarnessError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
        let context = context.into();
        move |source| HarnessError::Io { context, source }
    }
}

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}
