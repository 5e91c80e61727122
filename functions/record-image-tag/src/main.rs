//! Lambda `record-image-tag`: wiring only (configuration → adapters → handler → `serve`). The logic
//! lives in `tagrelay::record`.

use std::process::ExitCode;

use tagrelay::aws::{ecr::EcrImageRegistry, ssm::SsmParameterStore};
use tagrelay::lambda_init::{cold_start, serve, Started};
use tagrelay::record::Recorder;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Started { config, sdk } = match cold_start("record-image-tag").await {
        Ok(started) => started,
        Err(exit) => return exit,
    };
    let recorder =
        Recorder::new(config, SsmParameterStore::from_sdk_config(&sdk), EcrImageRegistry::from_sdk_config(&sdk));
    serve(&recorder).await
}
