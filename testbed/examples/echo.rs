//! A tiny `lambda_runtime` function for checking the Runtime API emulator against the real client.
//!
//! * `{"echo": X}` answers `{"echo": X, "requestId", "functionArn", "deadlineMs", "traceId"}`.
//! * `{"fail": "MESSAGE"}` fails with error type `EchoFailure` and that message.
//! * With `ECHO_INIT_ERROR=MESSAGE` in its environment it posts `/runtime/init/error` and exits 1
//!   instead of polling, as a function does whose configuration is wrong.
//!
//! Each invocation prints one JSON log line to stdout.

use std::io::{Read, Write};
use std::net::TcpStream;

use lambda_runtime::{service_fn, Diagnostic, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let (payload, context) = event.into_parts();
    println!("{}", json!({"level": "INFO", "message": "echo invoked", "requestId": context.request_id}));
    if let Some(message) = payload.get("fail").and_then(Value::as_str) {
        return Err(Diagnostic { error_type: "EchoFailure".into(), error_message: message.into() });
    }
    Ok(json!({
        "echo": payload.get("echo").cloned().unwrap_or(Value::Null),
        "requestId": context.request_id,
        "functionArn": context.invoked_function_arn,
        "deadlineMs": context.deadline,
        "traceId": context.xray_trace_id,
    }))
}

/// POSTs a diagnostic to /runtime/init/error with a plain HTTP/1.1 request.
fn post_init_error(api: &str, message: &str) -> Result<String, Error> {
    let body = json!({"errorType": "EchoInitError", "errorMessage": message}).to_string();
    let mut stream = TcpStream::connect(api)?;
    write!(
        stream,
        "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: {api}\r\n\
         Lambda-Runtime-Function-Error-Type: Runtime.InitError\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer.lines().next().unwrap_or_default().to_string())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    if let Ok(message) = std::env::var("ECHO_INIT_ERROR") {
        let api = std::env::var("AWS_LAMBDA_RUNTIME_API")?;
        let status = post_init_error(&api, &message)?;
        eprintln!("init failed: {message} (Runtime API answered {status})");
        std::process::exit(1);
    }
    lambda_runtime::run(service_fn(handler)).await
}
