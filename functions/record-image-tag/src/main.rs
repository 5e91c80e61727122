//! Lambda `record-image-tag`: wiring only (configuration → adapters → handler → `serve`). The logic
//! lives in `tagrelay::record`.

use std::process::ExitCode;

use tagrelay::aws::{ecr::EcrImageRegistry, load_sdk_config, ssm::SsmParameterStore};
use tagrelay::lambda_init::{cold_start, serve};
use tagrelay::record::Recorder;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let config = match cold_start("record-image-tag").await {
        Ok(config) => config,
        Err(exit) => return exit,
    };
    let sdk = load_sdk_config().await;
    let recorder =
        Recorder::new(config, SsmParameterStore::from_sdk_config(&sdk), EcrImageRegistry::from_sdk_config(&sdk));
    serve(&recorder).await
}
