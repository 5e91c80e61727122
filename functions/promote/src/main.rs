//! Lambda `promote`: wiring only (configuration → adapters → handler → `serve`). The logic lives
//! in `tagrelay::promote`.

use std::process::ExitCode;

use tagrelay::aws::cloudwatch::CloudWatchAlarms;
use tagrelay::aws::{ecr::EcrImageRegistry, load_sdk_config, ssm::SsmParameterStore};
use tagrelay::lambda_init::{cold_start, serve};
use tagrelay::promote::Promoter;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let config = match cold_start("promote").await {
        Ok(config) => config,
        Err(exit) => return exit,
    };
    let sdk = load_sdk_config().await;
    let promoter = Promoter::new(
        config,
        SsmParameterStore::from_sdk_config(&sdk),
        EcrImageRegistry::from_sdk_config(&sdk),
        CloudWatchAlarms::from_sdk_config(&sdk),
    );
    serve(&promoter).await
}
