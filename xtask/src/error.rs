//! What a task can fail with.

use std::path::PathBuf;

use tagrelay_testbed::event_router::RejectedEvent;
use tagrelay_testbed::HarnessError;

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Harness(#[from] HarnessError),

    #[error("the local EventBridge refused the demo's event: {0}")]
    Rejected(#[from] RejectedEvent),

    #[error("{} is not built: run `cargo build -p tagrelay-cli`", path.display())]
    CliNotBuilt { path: PathBuf },

    #[error("`tagrelay status` exited with {status}")]
    CliFailed { status: std::process::ExitStatus },

    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{0}")]
    Usage(String),

    #[error("set-up: {0}")]
    Setup(String),

    #[error("cannot start the async runtime: {source}")]
    Runtime {
        #[source]
        source: std::io::Error,
    },
}
