//! End to end: payloads the Lambda runtime cannot deserialise (not UTF-8, nested far deeper than
//! serde_json's recursion limit, not JSON) sent to both release functions through the Runtime API
//! emulator. Each is the function's own `InvalidEvent` with a `decision="error"` line, like every
//! other bad event, and the function goes on serving. No AWS is reached: the valid events are
//! ones the functions answer without an AWS call.

use std::time::Duration;

use serde_json::{json, Value};
use tagrelay_testbed::runtime_api::{lambda_binary, FunctionProcess, Outcome, RuntimeApi};
use tagrelay_tests::events::ecr_push;

const WAIT: Duration = Duration::from_secs(30);

fn config() -> Value {
    json!({
        "environments": { "dev": {} },
        "services": { "my-api": { "deploy_on_push": ["dev"] } }
    })
}

async fn start(function: &str) -> (RuntimeApi, FunctionProcess) {
    let api = RuntimeApi::start().await.expect("runtime API");
    // Nothing listens on port 9: an AWS call would fail, and none is expected.
    let env: Vec<(String, String)> = [
        ("TAGRELAY_CONFIG", config().to_string().as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let binary = lambda_binary(function).expect("release binary (make lambdas-local)");
    let process = FunctionProcess::spawn(&binary, &api, &env).expect("function starts");
    (api, process)
}

/// (what it is, the payload, what the error message says)
fn unreadable_payloads() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let mut deep = vec![b'['; 10_000];
    deep.extend(vec![b']'; 10_000]);
    vec![
        ("not UTF-8", b"{\"detail-type\": \"ECR Image Action \xff\xfe\"}".to_vec(), "invalid unicode code point"),
        ("10,000 nested arrays", deep, "recursion limit exceeded"),
        ("not JSON", b"push my-api:5 please".to_vec(), "expected value at line 1 column 1"),
    ]
}

/// The `decision="error"` lines so far, after waiting up to a few seconds for `expected` of them
/// (the function's output is read by another task and may lag behind its answer).
async fn error_lines(function: &FunctionProcess, expected: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let lines: Vec<Value> = function
            .log_lines()
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["fields"]["decision"] == "error")
            .collect();
        if lines.len() >= expected || std::time::Instant::now() >= deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn unreadable_payloads_are_invalid_events(function: &str, valid: Value) -> Value {
    let (api, process) = start(function).await;
    let payloads = unreadable_payloads();
    for (name, payload, says) in &payloads {
        match api.invoke_raw(payload.clone(), WAIT).await.expect("the invocation completes") {
            Outcome::Error { error_type, error_message } => {
                assert_eq!(error_type, "InvalidEvent", "{function}, {name}: {error_message}");
                assert!(error_message.starts_with("invalid event: "), "{function}, {name}: {error_message}");
                assert!(error_message.contains(says), "{function}, {name}: {error_message}");
            }
            other => panic!("{function}, {name}: expected an error, got {other:?}"),
        }
    }
    let lines = error_lines(&process, payloads.len()).await;
    assert_eq!(lines.len(), payloads.len(), "{function}: one decision=error line per payload: {lines:?}");
    for (line, (name, _, says)) in lines.iter().zip(&payloads) {
        assert_eq!(line["level"], "ERROR", "{function}, {name}: {line}");
        let error = line["fields"]["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{function}, {name}: {line}");
    }

    // The function goes on serving.
    match api.invoke(valid, WAIT).await.expect("the invocation completes") {
        Outcome::Response(body) => body,
        other => panic!("{function}: expected a response, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_image_tag_reports_unreadable_payloads_as_invalid_events() {
    let unconfigured = ecr_push("not-configured", "1", "sha256:0000");
    let summary = unreadable_payloads_are_invalid_events("record-image-tag", unconfigured).await;
    assert_eq!(summary["skipped"], "repository_not_configured", "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_deploy_reports_unreadable_payloads_as_invalid_events() {
    let not_ours = json!({
        "version": "0", "id": "5e0c3a4b-1f2d-4c6e-8a9b-0c1d2e3f4a5b", "detail-type": "Parameter Store Change",
        "source": "aws.ssm", "account": "123456789012", "time": "2026-11-28T00:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:ssm:us-east-1:123456789012:parameter/other/setting"],
        "detail": { "operation": "Update", "name": "/other/setting", "type": "String" }
    });
    let summary = unreadable_payloads_are_invalid_events("trigger-deploy", not_ours).await;
    assert_eq!(summary["ignored"], "parameter_not_ours", "{summary}");
}
