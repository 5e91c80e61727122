//! Cold-start failures. A function whose configuration is invalid must not serve events: it
//! reports the error to the Runtime API's `/init/error` (so the invoke fails with the message,
//! and Lambda retries and then dead-letters the event) and exits.

use std::fmt::Display;
use std::process::ExitCode;

use lambda_runtime::Diagnostic;
use lambda_runtime_api_client::body::Body;
use lambda_runtime_api_client::{build_request, PooledClient};
use tracing::error;

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
