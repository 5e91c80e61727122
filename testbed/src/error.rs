//! Everything the test bed can fail with.

use std::path::PathBuf;
use std::time::Duration;

use crate::runtime_api::Diagnostic;

/// Everything the test bed can fail with. Messages say what to do where there is something to do.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("moto_server not found at {}: run `make tools` (make test does it)", path.display())]
    MotoNotFound { path: PathBuf },

    #[error("moto_server exited before answering ({status}); its last output:\n{output}")]
    MotoExited { status: String, output: String },

    #[error(
        "example {name} is not built at {}: run `cargo test -p tagrelay-testbed` (it builds the examples)",
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

    /// What the test bed was asked to set up is wrong before any AWS call: a tagrelay config the
    /// code refuses, an event pattern the local EventBridge refuses, an event it does not take.
    #[error("the test bed cannot set up {what}: {message}")]
    Setup { what: &'static str, message: String },

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

    /// A [`HarnessError::Setup`]: `what` could not be set up because of `err`.
    pub fn setup(what: &'static str, err: impl std::fmt::Display) -> HarnessError {
        HarnessError::Setup { what, message: err.to_string() }
    }
}
