//! Lambda `trigger-deploy`: wiring only. The logic lives in `tagrelay::deploy`.

use std::process::ExitCode;

use tagrelay::aws::{codebuild::CodeBuildRunner, load_sdk_config, ssm::SsmParameterStore};
use tagrelay::config::Config;
use tagrelay::deploy::Deployer;
use tagrelay::lambda_init::{default_lambda_env, fail_init, serve};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    default_lambda_env("trigger-deploy");
    tagrelay::telemetry::init();
    // Validated once, at cold start: an invalid document never serves an event.
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => return fail_init("InvalidConfig", err).await,
    };
    let sdk = load_sdk_config().await;
    let deployer =
        Deployer::new(config, SsmParameterStore::from_sdk_config(&sdk), CodeBuildRunner::from_sdk_config(&sdk));
    let deployer = &deployer;
    serve(move |event| async move { deployer.handle(&event).await }).await
}
