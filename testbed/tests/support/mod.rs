//! Shared by the test bed's tests: an event sink that keeps what the local AWS sends.
#![allow(dead_code)] // each test crate uses part of it

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_codebuild::types::{EnvironmentVariable, EnvironmentVariableType};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::Value;
use tagrelay_testbed::http_server::{bind_loopback, serve};
use tokio::sync::Notify;

pub const WAIT: Duration = Duration::from_secs(30);

/// A loopback HTTP server that keeps every JSON body POSTed to `/events`, in arrival order.
pub struct Sink {
    pub url: String,
    state: Arc<SinkState>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct SinkState {
    events: Mutex<Vec<Value>>,
    arrived: Notify,
}

impl Sink {
    pub async fn start() -> Sink {
        let (listener, address) = bind_loopback("the test's event sink").await.expect("bind");
        let state = Arc::new(SinkState::default());
        let server = tokio::spawn(serve(listener, state.clone(), |state, request: Request<Incoming>| async move {
            let ok = request.uri().path() == "/events"
                && request.headers().get("content-type").is_some_and(|v| v == "application/json");
            let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let status = match serde_json::from_slice::<Value>(&body) {
                Ok(event) if ok => {
                    state.events.lock().expect("events").push(event);
                    state.arrived.notify_waiters();
                    200
                }
                _ => 400,
            };
            let mut answer = Response::new(Full::new(Bytes::new()));
            *answer.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
            answer
        }));
        Sink { url: format!("http://{address}"), state, server }
    }

    pub fn events(&self) -> Vec<Value> {
        self.state.events.lock().expect("events").clone()
    }

    /// Waits for the first event (at or after `from`) that `matches`; returns its index and itself.
    pub async fn wait_for(&self, from: usize, what: &str, matches: impl Fn(&Value) -> bool) -> (usize, Value) {
        let deadline = Instant::now() + WAIT;
        loop {
            let notified = self.state.arrived.notified();
            if let Some(found) = self.events().into_iter().enumerate().skip(from).find(|(_, e)| matches(e)) {
                return found;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {what} within {WAIT:?}; received: {:#?}", self.events());
            let _ = tokio::time::timeout(left, notified).await;
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub fn is(event: &Value, detail_type: &str) -> bool {
    event["detail-type"] == detail_type
}

pub fn assert_envelope(event: &Value, source: &str) {
    assert_eq!(event["version"], "0");
    assert_eq!(event["source"], source);
    assert_eq!(event["account"], "123456789012");
    assert_eq!(event["region"], "us-east-1");
    assert!(event["id"].as_str().is_some_and(|id| id.len() == 36), "{event}");
    let time = event["time"].as_str().expect("time");
    assert!(time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    assert!(event["resources"].is_array());
}

/// A plaintext build variable, as StartBuild overrides carry them.
pub fn variable(name: &str, value: &str) -> EnvironmentVariable {
    EnvironmentVariable::builder()
        .name(name)
        .value(value)
        .r#type(EnvironmentVariableType::Plaintext)
        .build()
        .expect("name and value are set")
}
