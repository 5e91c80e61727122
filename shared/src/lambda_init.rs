//! What both functions' `main` share around their handler.
//!
//! * [`cold_start`]: Lambda's environment defaults, telemetry, the SDK configuration and the
//!   validated configuration (from `TAGRELAY_CONFIG`, or the SSM parameter it references).
//! * Cold-start failures. A function whose configuration is invalid must not serve events: it
//!   reports the error to the Runtime API's `/init/error` (so the invoke fails with the message,
//!   and Lambda retries and then dead-letters the event) and exits.
//! * [`serve`]: the runtime loop, which hands every payload to the [`Handler`] as JSON or reports
//!   it as `InvalidEvent` when it is not JSON that can be read.

use std::fmt::Display;
use std::process::ExitCode;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use lambda_runtime_api_client::body::Body;
use lambda_runtime_api_client::{build_request, PooledClient};
use serde::{Deserialize, Deserializer};
use tracing::{error, info};

use crate::aws::load_sdk_config;
use crate::aws::ssm::SsmParameterStore;
use crate::config::source::ConfigSource;
use crate::config::Config;
use crate::event::EventError;
use crate::handler::{diagnostic, log_failure, Handler};

const RUNTIME_API_ENV: &str = "AWS_LAMBDA_RUNTIME_API";
const INIT_ERROR_PATH: &str = "/2018-06-01/runtime/init/error";

/// Lambda always sets these, and `lambda_runtime` panics without them. Outside Lambda (a local
/// emulator that sets only `AWS_LAMBDA_RUNTIME_API`) they get Lambda's usual values instead.
/// Call first thing in `main`, before any other thread exists.
pub fn default_lambda_env(function_name: &str) {
    let defaults = [
        ("AWS_LAMBDA_FUNCTION_NAME", function_name),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
    ];
    for (key, value) in defaults {
        if std::env::var_os(key).is_none() {
            std::env::set_var(key, value);
        }
    }
}

/// Everything before the handler exists: Lambda's environment defaults, telemetry, and the
/// configuration, validated once: an invalid document never serves an event. It is reported as
/// `InvalidConfig` (see [`fail_init`]) and `Err` is the exit code for `main`.
pub async fn cold_start(function_name: &str) -> Result<Started, ExitCode> {
    default_lambda_env(function_name);
    crate::telemetry::init();
    let source = match ConfigSource::from_env() {
        Ok(source) => source,
        Err(err) => return Err(fail_init("InvalidConfig", err).await),
    };
    // Only a reference makes calls: GetParameters of the head, then of its parts.
    let sdk = load_sdk_config().await;
    match source.load(&SsmParameterStore::from_sdk_config(&sdk)).await {
        Ok((config, loaded)) => {
            // Not a decision line: said once per cold start, so a configuration change is seen
            // (source and version, SHA-256) and what reading it cost.
            info!(
                source = %loaded.source,
                bytes = loaded.bytes,
                sha256 = %loaded.sha256,
                services = loaded.services,
                environments = loaded.environments,
                read_micros = loaded.read_micros as u64,
                parse_micros = loaded.parse_micros as u64,
                "configuration loaded"
            );
            Ok(Started { config, sdk })
        }
        Err(err) => Err(fail_init("InvalidConfig", err).await),
    }
}

/// What a function's `main` wires its adapters and handler from.
pub struct Started {
    /// The validated configuration.
    pub config: Config,
    /// The SDK configuration (the standard chain; `AWS_ENDPOINT_URL` points it at a local AWS).
    pub sdk: aws_config::SdkConfig,
}

/// Logs the error, reports it as `error_type` to `/init/error`, and returns the exit code for
/// `main`. A failure to reach the Runtime API is logged; the exit still ends the init.
pub async fn fail_init<E: Display>(error_type: &str, err: E) -> ExitCode {
    let message = err.to_string();
    error!(decision = "init_failed", error_type, error = %message, "function cannot start");
    if let Err(report_error) = report(error_type, &message).await {
        error!(error = %report_error, "could not report the init error to the Runtime API");
    }
    ExitCode::FAILURE
}

/// Runs the Lambda runtime loop (with the runtime's tracing layer, as `lambda_runtime::run`
/// does) until the Runtime API fails, and returns the exit code for `main`.
///
/// `handler` gets each event as JSON. A payload that is not JSON the function can read never
/// reaches it: it fails as the handler's `InvalidEvent`, with the same `decision="error"` line as
/// any other bad event, instead of the runtime's own error type and no line at all.
pub async fn serve<H: Handler>(handler: &H) -> ExitCode {
    let service = service_fn(move |event: LambdaEvent<Payload>| async move {
        let result = match event.payload.0 {
            // Boxed: the handler's future nested inside the runtime's is deeper than rustc's
            // default recursion limit lets it compute the layout of `main`'s future.
            // Work that can stop part-way (promote's writes) stops before Lambda's time-out.
            Ok(payload) => {
                let deadline = crate::time_budget::from_epoch_millis(event.context.deadline);
                Box::pin(crate::time_budget::within(deadline, handler.handle(&payload))).await
            }
            Err(err) => {
                let err = H::Error::from(err);
                log_failure(&err);
                Err(err)
            }
        };
        result.map_err(|err| diagnostic(&err))
    });
    runtime_ended(lambda_runtime::run(service).await)
}

/// An invocation's payload: the event, or why its bytes are not one.
///
/// `lambda_runtime` deserialises the payload before any handler runs and answers a failure itself.
/// This type's deserialisation never fails: bytes that are not UTF-8 or not JSON, and nesting
/// deeper than serde_json's recursion limit (128), become the error instead. That limit is also
/// what keeps a hostile nesting depth from overflowing the stack; no AWS event comes near it.
/// (Left as it is: with TRACE logging on, lambda_runtime 1.5 stops the whole runtime on a payload
/// that is not UTF-8, before deserialising anything.)
struct Payload(Result<serde_json::Value, EventError>);

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let event = serde_json::Value::deserialize(deserializer).map_err(|err| EventError::Malformed {
            field: ".".to_owned(),
            message: format!("the payload cannot be read as JSON: {err}"),
        });
        Ok(Self(event))
    }
}

/// The exit code for the end of the runtime loop, which only ends when the Runtime API fails.
pub fn runtime_ended(result: Result<(), lambda_runtime::Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!(error = %err, "the Lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}

async fn report(error_type: &str, message: &str) -> Result<(), lambda_runtime::Error> {
    let api = std::env::var(RUNTIME_API_ENV).map_err(|_| format!("{RUNTIME_API_ENV} is not set"))?;
    let endpoint: http::Uri = format!("http://{api}").parse()?;
    let client = PooledClient::builder().with_endpoint(endpoint).build();
    let diagnostic = Diagnostic { error_type: error_type.to_owned(), error_message: message.to_owned() };
    let request = build_request()
        .method(http::Method::POST)
        .uri(INIT_ERROR_PATH)
        .header("lambda-runtime-function-error-type", error_type)
        .body(Body::from(serde_json::to_vec(&diagnostic)?))?;
    let response = client.call(request).await?;
    if !response.status().is_success() {
        return Err(format!("{INIT_ERROR_PATH} answered {}", response.status()).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As `lambda_runtime` deserialises a payload (its `deserializer.rs`).
    fn payload(body: &[u8]) -> Result<serde_json::Value, String> {
        let deserializer = &mut serde_json::Deserializer::from_slice(body);
        let payload: Payload = serde_path_to_error::deserialize(deserializer).map_err(|err| err.to_string())?;
        payload.0.map_err(|err| err.to_string())
    }

    fn nested(depth: usize) -> Vec<u8> {
        let mut body = vec![b'['; depth];
        body.extend(std::iter::repeat_n(b']', depth));
        body
    }

    #[test]
    fn a_json_event_is_handed_over_as_it_is() {
        let event = serde_json::json!({"detail-type": "ECR Image Action", "detail": {"image-tag": "héllo"}});
        assert_eq!(payload(event.to_string().as_bytes()), Ok(event));
        assert_eq!(payload(&nested(100)).map(|_| ()), Ok(()), "nesting within the limit");
    }

    #[test]
    fn unreadable_payloads_are_invalid_events_not_deserialisation_failures() {
        let cases: [(&str, Vec<u8>, &str); 5] = [
            ("not UTF-8 in a string", b"{\"detail\": {\"image-tag\": \"\xff\xfe\"}}".to_vec(), "invalid unicode"),
            ("not UTF-8 at all", b"\xff\xfe\x00".to_vec(), "expected value"),
            ("not JSON", b"push my-api:5 please".to_vec(), "expected value"),
            ("empty", Vec::new(), "EOF"),
            ("10,000 levels deep", nested(10_000), "recursion limit exceeded"),
        ];
        for (name, body, expected) in cases {
            let message = payload(&body).expect_err(name);
            assert!(message.starts_with("invalid event: .: the payload cannot be read as JSON: "), "{name}: {message}");
            assert!(message.contains(expected), "{name}: {message}");
        }
    }

    #[test]
    fn deep_nesting_cannot_overflow_a_small_stack() {
        // The recursion limit bounds the depth, whatever the payload's: 100,000 levels of
        // objects and arrays on a thread with a quarter of a default test thread's stack.
        let mut body = Vec::new();
        for _ in 0..50_000 {
            body.extend_from_slice(b"{\"a\":[");
        }
        let thread = std::thread::Builder::new().stack_size(512 * 1024).spawn(move || payload(&body));
        let result = thread.expect("spawn").join().expect("no stack overflow");
        assert!(result.is_err_and(|message| message.contains("recursion limit exceeded")));
    }
}
