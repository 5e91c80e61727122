//! A local EventBridge: it receives events over HTTP, matches them against rules' patterns, and
//! delivers each match to a local Lambda function the way Lambda's asynchronous invocation does
//! (<https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html>).
//!
//! * `POST {sink}/events` with one event as a JSON object: 200 with
//!   `{"id": <the event's id>, "routes": [<names of the matching routes>]}` once the event is
//!   queued for every matching route. A body that is not JSON, or JSON that is not an object, gets
//!   400; a body over 256 KiB (EventBridge's limit) 413; another path 404; another method 405.
//!   Nothing is lost silently: whatever is not refused is delivered or dead-lettered, and either
//!   way it is in [`LocalEventBridge::deliveries`].
//! * Each matching route gets its own copy, with its own request id.
//! * A target ([`RuntimeApi`]) has one queue, shared by every route that names it (the same `Arc`),
//!   and is invoked one event at a time, in arrival order.
//! * A failed invocation (an error posted by the function, or no answer within
//!   [`AsyncInvokeConfig::invoke_timeout`]) is tried again after `retry_delays[0]`, then
//!   `retry_delays[1]`, …; meanwhile the events behind it go on. A retry rejoins the queue when its
//!   delay is over, behind the events already waiting then.
//! * After the last failure, or when an event is older than
//!   [`AsyncInvokeConfig::max_event_age`] when its turn comes (age counts from when this bridge
//!   accepted it), the event goes to the route's dead-letter SQS queue as Lambda sends it: the
//!   body is the event exactly as received, with the message attributes `RequestID` (String),
//!   `ErrorCode` (Number, `200`) and `ErrorMessage` (String, the first KiB of the error).
//!
//! Unlike Lambda, each attempt reaches the function with a fresh request id: [`RuntimeApi::invoke`]
//! makes its own. The id that stays the same across attempts, as Lambda's does, is
//! [`Delivery::request_id`], and it is the `RequestID` of the dead-letter message.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::MessageAttributeValue;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::event_pattern::{json_kind, EventPattern};
use crate::http_server::{bind_loopback, error_response, json_response};
use crate::lock::lock;
use crate::runtime_api::{request_id, Outcome, RuntimeApi};
use crate::HarnessError;

/// EventBridge's limit on an event (PutEvents entry).
pub const EVENT_SIZE_LIMIT: usize = 256 * 1024;
/// Lambda puts the first KiB of the error message in the dead-letter message.
const ERROR_MESSAGE_LIMIT: usize = 1024;
/// The `ErrorCode` Lambda gives a function error: the status of the Invoke call, which succeeded.
const DEAD_LETTER_ERROR_CODE: &str = "200";

/// A rule with one Lambda target.
pub struct Route {
    /// The rule's name, as it appears in [`Delivery::route`].
    pub name: String,
    pub pattern: EventPattern,
    /// The function. Routes that share one `Arc` share its queue.
    pub target: Arc<RuntimeApi>,
    /// Where an event goes that could not be delivered (an SQS queue URL).
    pub dead_letter_queue_url: String,
}

/// Lambda's asynchronous invocation settings (`PutFunctionEventInvokeConfig`), scaled for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncInvokeConfig {
    /// One delay per retry. Lambda retries twice, about one minute and then two minutes after a
    /// failure; the default here is 200 ms and 400 ms.
    pub retry_delays: Vec<Duration>,
    /// How long an invocation may take (the function's timeout). Default 30 s.
    pub invoke_timeout: Duration,
    /// An event older than this when its turn comes is dead-lettered without being invoked.
    /// Default 6 hours, as Lambda's.
    pub max_event_age: Duration,
}

impl Default for AsyncInvokeConfig {
    fn default() -> Self {
        AsyncInvokeConfig {
            retry_delays: vec![Duration::from_millis(200), Duration::from_millis(400)],
            invoke_timeout: Duration::from_secs(30),
            max_event_age: Duration::from_secs(6 * 60 * 60),
        }
    }
}

/// One line of the delivery log: an attempt, or the end of an event's road in a dead-letter queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The event's `id`, `None` if it has none.
    pub event_id: Option<String>,
    /// The event's `detail-type`.
    pub detail_type: Option<String>,
    pub route: String,
    /// The asynchronous request id of this copy of the event: the same for all its attempts.
    pub request_id: String,
    /// 1 for the first invocation, 2 for the first retry, …; for a dead-letter line, the number of
    /// invocations made (0 when the event expired before any).
    pub attempt: u32,
    /// When the bridge accepted the event (the same for every attempt).
    pub accepted_at: Instant,
    /// When this line happened: the attempt's answer, or the dead-lettering.
    pub at: Instant,
    pub outcome: DeliveryOutcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    /// The function answered; its response.
    Ok { response: Value },
    /// The function failed (a timeout is `Sandbox.Timedout`).
    Error { error_type: String, error_message: String },
    /// Sent to the dead-letter queue.
    DeadLettered { reason: DeadLetterReason, queue_url: String, message_id: String },
    /// Sending to the dead-letter queue failed too (Lambda would count a `DeadLetterErrors`).
    DeadLetterFailed { reason: DeadLetterReason, queue_url: String, error: String },
}

impl DeliveryOutcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, DeliveryOutcome::Ok { .. })
    }

    pub fn is_error(&self) -> bool {
        matches!(self, DeliveryOutcome::Error { .. })
    }

    pub fn is_dead_lettered(&self) -> bool {
        matches!(self, DeliveryOutcome::DeadLettered { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// Every attempt failed.
    RetriesExhausted,
    /// The event was older than the maximum event age when its turn came.
    EventAgeExceeded,
}

/// Why an event was refused (the sink answers 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event was refused: {0}")]
pub struct RejectedEvent(pub String);

/// The local EventBridge; stops serving, and stops delivering, when dropped.
pub struct LocalEventBridge {
    shared: Arc<Shared>,
    address: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

struct Shared {
    routes: Vec<RouteEntry>,
    targets: Vec<TargetQueue>,
    sqs: aws_sdk_sqs::Client,
    config: AsyncInvokeConfig,
    deliveries: Mutex<Vec<Delivery>>,
    events: Mutex<Vec<Value>>,
    /// Copies of events not yet delivered or dead-lettered.
    outstanding: watch::Sender<usize>,
    sequence: AtomicU64,
}

struct RouteEntry {
    name: String,
    pattern: EventPattern,
    target: usize,
    dead_letter_queue_url: String,
}

struct TargetQueue {
    api: Arc<RuntimeApi>,
    /// Keyed by (when it may be invoked, arrival sequence).
    waiting: Mutex<BTreeMap<(Instant, u64), Queued>>,
    wake: Notify,
}

/// An accepted event: its text as received, and parsed.
struct Received {
    raw: String,
    id: Option<String>,
    detail_type: Option<String>,
}

struct Queued {
    route: usize,
    event: Arc<Received>,
    request_id: String,
    accepted_at: Instant,
    attempts: u32,
}

impl LocalEventBridge {
    /// Starts the HTTP sink on 127.0.0.1 and a free port, and one delivery worker per target.
    pub async fn start(
        routes: Vec<Route>,
        sqs: aws_sdk_sqs::Client,
        config: AsyncInvokeConfig,
    ) -> Result<LocalEventBridge, HarnessError> {
        let (listener, address) = bind_loopback("the local EventBridge").await?;

        let mut targets: Vec<TargetQueue> = Vec::new();
        let mut entries = Vec::new();
        for route in routes {
            let target = match targets.iter().position(|t| Arc::ptr_eq(&t.api, &route.target)) {
                Some(index) => index,
                None => {
                    targets.push(TargetQueue {
                        api: route.target.clone(),
                        waiting: Mutex::new(BTreeMap::new()),
                        wake: Notify::new(),
                    });
                    targets.len() - 1
                }
            };
            entries.push(RouteEntry {
                name: route.name,
                pattern: route.pattern,
                target,
                dead_letter_queue_url: route.dead_letter_queue_url,
            });
        }
        let shared = Arc::new(Shared {
            routes: entries,
            targets,
            sqs,
            config,
            deliveries: Mutex::new(Vec::new()),
            events: Mutex::new(Vec::new()),
            outstanding: watch::Sender::new(0),
            sequence: AtomicU64::new(0),
        });
        let mut tasks =
            vec![tokio::spawn(crate::http_server::serve(listener, shared.clone(), |shared, request| async move {
                handle(&shared, request).await
            }))];
        for target in 0..shared.targets.len() {
            tasks.push(tokio::spawn(deliver(shared.clone(), target)));
        }
        Ok(LocalEventBridge { shared, address, tasks })
    }

    /// `http://127.0.0.1:PORT`: POST events to `{sink_url}/events`.
    pub fn sink_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Takes `event` as the sink does, without HTTP. Returns the names of the matching routes.
    pub async fn put_events(&self, event: Value) -> Result<Vec<String>, RejectedEvent> {
        let raw = event.to_string();
        accept(&self.shared, raw, event)
    }

    /// The functions events are delivered to, one per target (routes that share a function
    /// share its entry), in the order of the routes that first named them.
    pub fn targets(&self) -> Vec<Arc<RuntimeApi>> {
        self.shared.targets.iter().map(|target| target.api.clone()).collect()
    }

    /// The delivery log so far, in the order things happened.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.shared.deliveries).clone()
    }

    /// Every event accepted so far, matched or not.
    pub fn events(&self) -> Vec<Value> {
        lock(&self.shared.events).clone()
    }

    /// Waits until no event is queued, being invoked, waiting for a retry or being dead-lettered.
    pub async fn wait_idle(&self, timeout: Duration) -> Result<(), HarnessError> {
        let mut outstanding = self.shared.outstanding.subscribe();
        let idle = tokio::time::timeout(timeout, outstanding.wait_for(|n| *n == 0)).await.is_ok_and(|r| r.is_ok());
        if idle {
            return Ok(());
        }
        Err(HarnessError::Timeout {
            what: format!(
                "the local EventBridge to finish its deliveries ({} still outstanding)",
                *self.shared.outstanding.borrow()
            ),
            after: timeout,
        })
    }
}

impl Drop for LocalEventBridge {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Queues a copy of the event for every matching route.
fn accept(shared: &Shared, raw: String, event: Value) -> Result<Vec<String>, RejectedEvent> {
    if !event.is_object() {
        return Err(RejectedEvent(format!("an event is a JSON object, not {}", json_kind(&event))));
    }
    let received = Arc::new(Received {
        raw,
        id: event.get("id").and_then(Value::as_str).map(str::to_string),
        detail_type: event.get("detail-type").and_then(Value::as_str).map(str::to_string),
    });
    let accepted_at = Instant::now();
    let mut matched = Vec::new();
    for (index, route) in shared.routes.iter().enumerate() {
        if !route.pattern.matches(&event) {
            continue;
        }
        matched.push(route.name.clone());
        // Counted before it is visible to the worker, so the count never goes below zero.
        shared.outstanding.send_modify(|n| *n += 1);
        let target = &shared.targets[route.target];
        let sequence = shared.sequence.fetch_add(1, Ordering::Relaxed);
        lock(&target.waiting).insert(
            (accepted_at, sequence),
            Queued { route: index, event: received.clone(), request_id: request_id(), accepted_at, attempts: 0 },
        );
        target.wake.notify_one();
    }
    lock(&shared.events).push(event);
    Ok(matched)
}

/// The delivery worker of one target: one invocation at a time, earliest due first.
async fn deliver(shared: Arc<Shared>, target: usize) {
    let queue = &shared.targets[target];
    loop {
        let next = lock(&queue.waiting).keys().next().copied();
        match next {
            None => queue.wake.notified().await,
            Some((due, _)) if due > Instant::now() => {
                tokio::select! {
                    _ = tokio::time::sleep_until(tokio::time::Instant::from_std(due)) => {}
                    _ = queue.wake.notified() => {}
                }
            }
            Some(key) => {
                let Some(queued) = lock(&queue.waiting).remove(&key) else { continue };
                attempt(&shared, queue, queued).await;
            }
        }
    }
}

async fn attempt(shared: &Shared, queue: &TargetQueue, mut queued: Queued) {
    let config = &shared.config;
    let age = queued.accepted_at.elapsed();
    if age > config.max_event_age {
        let message = format!(
            "EventAgeExceeded: the event waited {age:?}, longer than the maximum event age of {:?}",
            config.max_event_age
        );
        dead_letter(shared, &queued, DeadLetterReason::EventAgeExceeded, &message).await;
        return;
    }

    queued.attempts += 1;
    let outcome = match queue.api.invoke_raw(queued.event.raw.clone().into_bytes(), config.invoke_timeout).await {
        Ok(Outcome::Response(response)) => DeliveryOutcome::Ok { response },
        Ok(Outcome::Error { error_type, error_message }) => DeliveryOutcome::Error { error_type, error_message },
        Err(HarnessError::Timeout { .. }) => DeliveryOutcome::Error {
            error_type: "Sandbox.Timedout".to_string(),
            error_message: format!("Task timed out after {:.2} seconds", config.invoke_timeout.as_secs_f64()),
        },
        Err(HarnessError::FunctionInitFailed(diagnostic)) => {
            DeliveryOutcome::Error { error_type: diagnostic.error_type, error_message: diagnostic.error_message }
        }
        Err(other) => DeliveryOutcome::Error {
            error_type: "LocalEventBridge.InvokeFailed".to_string(),
            error_message: other.to_string(),
        },
    };
    let error_message = match &outcome {
        DeliveryOutcome::Error { error_message, .. } => Some(error_message.clone()),
        _ => None,
    };
    record(shared, &queued, queued.attempts, outcome);

    let Some(error_message) = error_message else {
        finish(shared);
        return;
    };
    let retry = usize::try_from(queued.attempts - 1).ok().and_then(|index| config.retry_delays.get(index)).copied();
    match retry {
        Some(delay) => {
            let sequence = shared.sequence.fetch_add(1, Ordering::Relaxed);
            lock(&queue.waiting).insert((Instant::now() + delay, sequence), queued);
            // The worker is this task: the next loop turn sees the new entry.
        }
        None => dead_letter(shared, &queued, DeadLetterReason::RetriesExhausted, &error_message).await,
    }
}

/// Sends the event to the route's dead-letter queue as Lambda does, and logs it.
async fn dead_letter(shared: &Shared, queued: &Queued, reason: DeadLetterReason, error_message: &str) {
    let queue_url = shared.routes[queued.route].dead_letter_queue_url.clone();
    let attribute = |data_type: &str, value: &str| {
        MessageAttributeValue::builder()
            .data_type(data_type)
            .string_value(value)
            .build()
            .map_err(|err| format!("building the {data_type} attribute: {err}"))
    };
    let sent = async {
        let message = shared
            .sqs
            .send_message()
            .queue_url(&queue_url)
            .message_body(queued.event.raw.clone())
            .message_attributes("RequestID", attribute("String", &queued.request_id)?)
            .message_attributes("ErrorCode", attribute("Number", DEAD_LETTER_ERROR_CODE)?)
            .message_attributes("ErrorMessage", attribute("String", truncate(error_message, ERROR_MESSAGE_LIMIT))?);
        let output = message.send().await.map_err(|err| DisplayErrorContext(&err).to_string())?;
        Ok::<_, String>(output.message_id().unwrap_or_default().to_string())
    };
    let outcome = match sent.await {
        Ok(message_id) => DeliveryOutcome::DeadLettered { reason, queue_url, message_id },
        Err(error) => DeliveryOutcome::DeadLetterFailed { reason, queue_url, error },
    };
    record(shared, queued, queued.attempts, outcome);
    finish(shared);
}

fn record(shared: &Shared, queued: &Queued, attempt: u32, outcome: DeliveryOutcome) {
    lock(&shared.deliveries).push(Delivery {
        event_id: queued.event.id.clone(),
        detail_type: queued.event.detail_type.clone(),
        route: shared.routes[queued.route].name.clone(),
        request_id: queued.request_id.clone(),
        attempt,
        accepted_at: queued.accepted_at,
        at: Instant::now(),
        outcome,
    });
}

fn finish(shared: &Shared) {
    shared.outstanding.send_modify(|n| *n = n.saturating_sub(1));
}

/// At most `limit` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    if path != "/events" {
        return error_response(StatusCode::NOT_FOUND, "NotFound", &format!("no {path} here: POST events to /events"));
    }
    if request.method() != Method::POST {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("{} {path}: POST events to /events", request.method()),
        );
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let body = match Limited::new(request.into_body(), EVENT_SIZE_LIMIT).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "EventTooLarge",
                &format!("the event is over EventBridge's limit of {EVENT_SIZE_LIMIT} bytes"),
            )
        }
        Err(err) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                &format!("could not read the body: {err}"),
            )
        }
    };
    let event: Value = match serde_json::from_slice(&body) {
        Ok(event) => event,
        Err(err) => {
            return error_response(StatusCode::BAD_REQUEST, "InvalidEvent", &format!("the body is not JSON: {err}"))
        }
    };
    // from_slice accepted it, so it is UTF-8.
    let raw = String::from_utf8_lossy(&body).into_owned();
    let id = event.get("id").cloned().unwrap_or(Value::Null);
    match accept(shared, raw, event) {
        Ok(routes) => json_response(StatusCode::OK, &json!({"id": id, "routes": routes})),
        Err(RejectedEvent(message)) => error_response(StatusCode::BAD_REQUEST, "InvalidEvent", &message),
    }
}
