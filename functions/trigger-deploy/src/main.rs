//! Lambda `trigger-deploy`: wiring only (configuration → adapters → handler → `serve`). The logic
//! lives in `tagrelay::deploy`.

use std::process::ExitCode;

use tagrelay::aws::ssm::SsmParameterStore;
use tagrelay::aws::{codebuild::CodeBuildRunner, ecr::EcrImageRegistry, ecs::EcsServiceReader};
use tagrelay::deploy::Deployer;
use tagrelay::lambda_init::{cold_start, serve, Started};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Started { config, sdk } = match cold_start("trigger-deploy").await {
        Ok(started) => started,
        Err(exit) => return exit,
    };
    let deployer = Deployer::new(
        config,
        SsmParameterStore::from_sdk_config(&sdk),
        CodeBuildRunner::from_sdk_config(&sdk),
        EcsServiceReader::from_sdk_config(&sdk),
        EcrImageRegistry::from_sdk_config(&sdk),
    );
    serve(&deployer).await
}
