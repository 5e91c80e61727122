//! Lambda `record-image-tag`: wiring only. The logic lives in `tagrelay::record`.

use std::process::ExitCode;

use tagrelay::aws::{ecr::EcrImageRegistry, load_sdk_config, ssm::SsmParameterStore};
use tagrelay::config::Config;
use tagrelay::lambda_init::{default_lambda_env, fail_init, serve};
use tagrelay::record::Recorder;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    default_lambda_env("record-image-tag");
    tagrelay::telemetry::init();
    // Validated once, at cold start: an invalid document never serves an event.
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => return fail_init("InvalidConfig", err).await,
    };
    let sdk = load_sdk_config().await;
    let recorder =
        Recorder::new(config, SsmParameterStore::from_sdk_config(&sdk), EcrImageRegistry::from_sdk_config(&sdk));
    let recorder = &recorder;
    serve(move |event| async move { recorder.handle(&event).await }).await
}
