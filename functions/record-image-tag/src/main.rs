//! Lambda `record-image-tag`: wiring only. The logic lives in `tagrelay::record`.

use std::process::ExitCode;

use lambda_runtime::{service_fn, LambdaEvent};
use tagrelay::aws::{ecr::EcrImageRegistry, load_sdk_config, ssm::SsmParameterStore};
use tagrelay::config::Config;
use tagrelay::lambda_init::{default_lambda_env, fail_init, runtime_ended};
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
    let handler =
        service_fn(move |event: LambdaEvent<serde_json::Value>| async move { recorder.handle(&event.payload).await });
    runtime_ended(lambda_runtime::run(handler).await)
}
