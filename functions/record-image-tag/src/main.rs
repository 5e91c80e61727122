//! Lambda `record-image-tag`: wiring only. The logic lives in `tagrelay::record`.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use tagrelay::aws::{ecr::EcrImageRegistry, load_sdk_config, ssm::SsmParameterStore};
use tagrelay::config::Config;
use tagrelay::record::Recorder;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tagrelay::telemetry::init();
    // Validated once, at cold start: an invalid document never serves an event.
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => return Err(tagrelay::lambda_init::fail_init("InvalidConfig", err).await),
    };
    let sdk = load_sdk_config().await;
    let recorder =
        Recorder::new(config, SsmParameterStore::from_sdk_config(&sdk), EcrImageRegistry::from_sdk_config(&sdk));
    let recorder = &recorder;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        recorder.handle(&event.payload).await
    }))
    .await
}
