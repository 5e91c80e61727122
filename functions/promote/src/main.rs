//! Lambda `promote`: wiring only (configuration → adapters → handler → `serve`). The logic lives
//! in `tagrelay::promote`.

use std::process::ExitCode;

use tagrelay::aws::cloudwatch::CloudWatchAlarms;
use tagrelay::aws::{ecr::EcrImageRegistry, ssm::SsmParameterStore};
use tagrelay::lambda_init::{cold_start, serve, Started};
use tagrelay::promote::Promoter;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Started { config, sdk } = match cold_start("promote").await {
        Ok(started) => started,
        Err(exit) => return exit,
    };
    let promoter = Promoter::new(
        config,
        SsmParameterStore::from_sdk_config(&sdk),
        EcrImageRegistry::from_sdk_config(&sdk),
        CloudWatchAlarms::from_sdk_config(&sdk),
    );
    serve(&promoter).await
}
