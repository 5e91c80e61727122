//! The local test bed of tagrelay: what `infra/` and the code use of AWS, emulated on loopback,
//! and refused loudly where it is not.
//!
//! * [`local_aws`]: a moto server on loopback (SSM, ECR, CodeBuild, SQS, ECS) with tagrelay's fidelity
//!   patches and event emission, and helpers to create repositories, push images, write
//!   parameters and steer builds, quotas and lost events.
//! * [`runtime_api`]: an emulator of the Lambda Runtime API, and a spawned function process that
//!   polls it, so the released `bootstrap` binaries run as they do in Lambda.
//! * [`local_ecs`]: ECS on the local AWS (deployments that roll out, complete, fail and roll
//!   back as ECS's do; builds that deploy to ECS as the team's Terraform would).
//! * [`local_cloudwatch`]: CloudWatch alarms on the local AWS (state changes with their history
//!   and events; the SDK's RPC v2 CBOR protocol answered by the launcher).
//! * [`event_pattern`], [`event_router`]: a local EventBridge that routes events through
//!   `infra/event-patterns/` with Lambda's async retries and dead-letter queues.
//! * [`system`]: the whole pipeline wired together ([`ecs_config`]: the ECS part of its config).
//! * [`http_server`], [`http_client`]: the loopback HTTP server loop and the one-shot client the
//!   emulators and their tests share.
//!
//! The tools come from `make tools` (moto) and `make lambdas-local` (the function binaries).
//! What is emulated, and how faithfully: `testbed/README.md`.

use std::path::{Path, PathBuf};

pub mod ecs_config;
mod error;
pub mod event_pattern;
pub mod event_router;
pub mod http_client;
pub mod http_server;
pub mod local_aws;
pub mod local_cloudwatch;
pub mod local_ecs;
mod lock;
pub mod runtime_api;
pub mod system;

pub use error::HarnessError;
pub use local_aws::{create_repository, push_image, LocalAws};
pub use runtime_api::{lambda_binary, Diagnostic, FunctionProcess, Outcome, RuntimeApi};

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}
