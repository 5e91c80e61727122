//! An emulator of the Lambda Runtime API, and function processes that poll it.
//!
//! It speaks the protocol of <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>
//! over HTTP/1.1 on 127.0.0.1 (keep-alive, as `lambda_runtime`'s client expects):
//!
//! * `GET  /2018-06-01/runtime/invocation/next`: long-polls until [`RuntimeApi::invoke`] queues
//!   an event; answers 200 with the event as body and the `Lambda-Runtime-Aws-Request-Id`,
//!   `Lambda-Runtime-Deadline-Ms`, `Lambda-Runtime-Invoked-Function-Arn` and
//!   `Lambda-Runtime-Trace-Id` headers.
//! * `POST /2018-06-01/runtime/invocation/{id}/response`: 202; the body becomes
//!   [`Outcome::Response`]. An unknown id gets 400, a body over 6 MiB 413.
//! * `POST /2018-06-01/runtime/invocation/{id}/error`: 202; `{"errorType","errorMessage"}`
//!   becomes [`Outcome::Error`].
//! * `POST /2018-06-01/runtime/init/error`: 202; kept for [`RuntimeApi::init_error`].
//!
//! Every invocation handed out is logged with its trace id and times ([`RuntimeApi::invocations`]):
//! how long the function took, and which AWS calls were its (the local AWS counts them by the
//! trace header the SDK sends, `crate::local_aws::CallCounts`).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinHandle;

use crate::http_server::{bind_loopback, error_response, json_response};
use crate::local_aws::{kill_and_reap, ACCOUNT_ID, REGION};
use crate::lock::lock;
use crate::{workspace_root, HarnessError};

/// Overrides where [`lambda_binary`] looks: `<dir>/<name>/bootstrap`.
pub const LAMBDA_DIR_ENV: &str = "TAGRELAY_LAMBDA_DIR";
/// Set to 1 to copy the function's output to the test's stderr as it comes.
pub const SHOW_LOGS_ENV: &str = "TAGRELAY_SHOW_LOGS";

/// Lambda's limit on a synchronous invocation's request and response payloads.
const PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;
const DEFAULT_FUNCTION_NAME: &str = "tagrelay-function";

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The body posted to `/response`: its JSON, `Null` when empty, a `String` when not JSON.
    Response(Value),
    /// What was posted to `/error`.
    Error { error_type: String, error_message: String },
}

/// An error report as the runtime posts it (`{"errorType","errorMessage"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub error_type: String,
    pub error_message: String,
}

/// The Runtime API on 127.0.0.1 and a free port; stops serving when dropped.
pub struct RuntimeApi {
    state: Arc<State>,
    address: SocketAddr,
    server: JoinHandle<()>,
}

struct State {
    function_name: Mutex<String>,
    queue: Mutex<VecDeque<Queued>>,
    queued: Notify,
    pending: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    first_poll: watch::Sender<bool>,
    init_error: watch::Sender<Option<Diagnostic>>,
    /// Every invocation handed to the function, in that order; `running` indexes the unanswered.
    invocations: Mutex<Vec<Invocation>>,
    running: Mutex<HashMap<String, usize>>,
}

struct Queued {
    request_id: String,
    event: Bytes,
    deadline_ms: u128,
    trace_id: String,
    queued_at: Instant,
}

/// One invocation as the Runtime API saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub request_id: String,
    /// The `Lambda-Runtime-Trace-Id` it was sent with. The Rust runtime puts it in
    /// `_X_AMZN_TRACE_ID`, and the AWS SDK sends it as `X-Amzn-Trace-Id` on every call the
    /// function makes for this invocation.
    pub trace_id: String,
    /// When [`RuntimeApi::invoke`] queued it.
    pub queued_at: Instant,
    /// When a `/next` poll handed it to the function.
    pub started_at: Instant,
    /// When the function posted its response or error (`None`: not yet).
    pub ended_at: Option<Instant>,
    /// The event's `detail-type`, when it is an EventBridge event.
    pub detail_type: Option<String>,
    /// Answered with a response (`false`: an error, or no answer yet).
    pub succeeded: bool,
}

impl Invocation {
    /// From `/next` to the answer: what Lambda bills as the duration.
    pub fn duration(&self) -> Option<Duration> {
        self.ended_at.map(|end| end.duration_since(self.started_at))
    }
}

impl RuntimeApi {
    pub async fn start() -> Result<RuntimeApi, HarnessError> {
        let (listener, address) = bind_loopback("the Runtime API").await?;
        let state = Arc::new(State {
            function_name: Mutex::new(DEFAULT_FUNCTION_NAME.to_string()),
            queue: Mutex::new(VecDeque::new()),
            queued: Notify::new(),
            pending: Mutex::new(HashMap::new()),
            first_poll: watch::Sender::new(false),
            init_error: watch::Sender::new(None),
            invocations: Mutex::new(Vec::new()),
            running: Mutex::new(HashMap::new()),
        });
        let server = tokio::spawn(crate::http_server::serve(listener, state.clone(), |state, request| async move {
            route(&state, request).await
        }));
        Ok(RuntimeApi { state, address, server })
    }

    /// `127.0.0.1:PORT`, the value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// The name in the ARN sent with each invocation; [`FunctionProcess::spawn`] sets it to the
    /// function's name.
    pub fn function_name(&self) -> String {
        lock(&self.state.function_name).clone()
    }

    pub fn function_arn(&self) -> String {
        function_arn(&self.function_name())
    }

    /// Queues `event` for the next `/next` poll and waits for the function's response or error.
    ///
    /// `timeout` is also the deadline sent to the function. Fails at once with
    /// [`HarnessError::FunctionInitFailed`] when the function has reported an init error.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> Result<Outcome, HarnessError> {
        self.invoke_raw(event.to_string().into_bytes(), timeout).await
    }

    /// [`RuntimeApi::invoke`] with a payload of any bytes, JSON or not: Lambda passes an async
    /// event's body through as it is.
    pub async fn invoke_raw(&self, payload: Vec<u8>, timeout: Duration) -> Result<Outcome, HarnessError> {
        let request_id = request_id();
        let (sender, receiver) = oneshot::channel();
        lock(&self.state.pending).insert(request_id.clone(), sender);
        lock(&self.state.queue).push_back(Queued {
            request_id: request_id.clone(),
            event: Bytes::from(payload),
            deadline_ms: now_ms() + timeout.as_millis(),
            trace_id: trace_id(),
            queued_at: Instant::now(),
        });
        self.state.queued.notify_one();

        let mut init_error = self.state.init_error.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            tokio::select! {
                biased;
                outcome = receiver => outcome.ok(),
                _ = init_error.wait_for(Option::is_some) => None,
            }
        })
        .await;
        if let Ok(Some(outcome)) = waited {
            return Ok(outcome);
        }
        // Withdraw it, so a late poll doesn't get it.
        lock(&self.state.pending).remove(&request_id);
        lock(&self.state.queue).retain(|q| q.request_id != request_id);
        if let Some(diagnostic) = self.state.init_error.borrow().clone() {
            return Err(HarnessError::FunctionInitFailed(diagnostic));
        }
        Err(HarnessError::Timeout { what: format!("the function to answer invocation {request_id}"), after: timeout })
    }

    /// Resolves when the runtime first polls `/next`, i.e. once its init is done.
    pub async fn wait_first_poll(&self, timeout: Duration) -> Result<(), HarnessError> {
        let mut polled = self.state.first_poll.subscribe();
        let mut init_error = self.state.init_error.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            tokio::select! {
                biased;
                _ = polled.wait_for(|polled| *polled) => Ok(()),
                diagnostic = init_error.wait_for(Option::is_some) => Err(diagnostic
                    .ok()
                    .and_then(|d| d.clone())),
            }
        })
        .await;
        match waited {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Some(diagnostic))) => Err(HarnessError::FunctionInitFailed(diagnostic)),
            Ok(Err(None)) | Err(_) => Err(HarnessError::Timeout {
                what: "the function's first poll of /runtime/invocation/next".into(),
                after: timeout,
            }),
        }
    }

    /// The init error the function posted, waiting up to `timeout` for one.
    pub async fn init_error(&self, timeout: Duration) -> Option<Diagnostic> {
        let mut init_error = self.state.init_error.subscribe();
        let waited = tokio::time::timeout(timeout, init_error.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(diagnostic)) => diagnostic.clone(),
            _ => None,
        }
    }

    /// Whether the runtime has polled `/next` yet.
    pub fn has_polled(&self) -> bool {
        *self.state.first_poll.borrow()
    }

    /// Every invocation handed to the function so far, in the order it got them.
    pub fn invocations(&self) -> Vec<Invocation> {
        lock(&self.state.invocations).clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        // Dropping the accept task drops its JoinSet, which aborts every connection.
        self.server.abort();
    }
}

async fn route(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let Some(resource) = path.strip_prefix("/2018-06-01/runtime/") else {
        return not_found(&method, &path);
    };
    match (&method, resource) {
        (&Method::GET, "invocation/next") => next_invocation(state).await,
        (&Method::POST, "init/error") => {
            let diagnostic = match read_diagnostic(request).await {
                Ok(diagnostic) => diagnostic,
                Err(response) => return response,
            };
            state.init_error.send_replace(Some(diagnostic));
            accepted()
        }
        (&Method::POST, resource) => {
            let Some((request_id, kind)) = resource.strip_prefix("invocation/").and_then(|rest| rest.rsplit_once('/'))
            else {
                return not_found(&method, &path);
            };
            let outcome = match kind {
                "response" => match read_body(request).await {
                    Ok(body) => Outcome::Response(body_value(&body)),
                    Err(response) => return response,
                },
                "error" => match read_diagnostic(request).await {
                    Ok(d) => Outcome::Error { error_type: d.error_type, error_message: d.error_message },
                    Err(response) => return response,
                },
                _ => return not_found(&method, &path),
            };
            let succeeded = matches!(outcome, Outcome::Response(_));
            let index = lock(&state.running).remove(request_id);
            if let Some(index) = index {
                if let Some(invocation) = lock(&state.invocations).get_mut(index) {
                    invocation.ended_at = Some(Instant::now());
                    invocation.succeeded = succeeded;
                }
            }
            match lock(&state.pending).remove(request_id) {
                Some(sender) => {
                    let _ = sender.send(outcome);
                    accepted()
                }
                None => error_response(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestID",
                    &format!("no invocation {request_id} is waiting for an answer"),
                ),
            }
        }
        _ => not_found(&method, &path),
    }
}

async fn next_invocation(state: &State) -> Response<Full<Bytes>> {
    state.first_poll.send_if_modified(|polled| !std::mem::replace(polled, true));
    let queued = loop {
        if let Some(queued) = lock(&state.queue).pop_front() {
            break queued;
        }
        state.queued.notified().await;
    };
    let arn = function_arn(&lock(&state.function_name));
    {
        let mut invocations = lock(&state.invocations);
        lock(&state.running).insert(queued.request_id.clone(), invocations.len());
        invocations.push(Invocation {
            request_id: queued.request_id.clone(),
            trace_id: queued.trace_id.clone(),
            queued_at: queued.queued_at,
            started_at: Instant::now(),
            ended_at: None,
            detail_type: detail_type(&queued.event),
            succeeded: false,
        });
    }
    let mut response = Response::new(Full::new(queued.event));
    for (name, value) in [
        ("lambda-runtime-aws-request-id", queued.request_id),
        ("lambda-runtime-deadline-ms", queued.deadline_ms.to_string()),
        ("lambda-runtime-invoked-function-arn", arn),
        ("lambda-runtime-trace-id", queued.trace_id),
        ("content-type", "application/json".to_string()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(HeaderName::from_static(name), value);
        }
    }
    response
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, Response<Full<Bytes>>> {
    match Limited::new(request.into_body(), PAYLOAD_LIMIT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &format!("the payload is over {PAYLOAD_LIMIT} bytes"),
        )),
        Err(err) => {
            Err(error_response(StatusCode::BAD_REQUEST, "InvalidRequest", &format!("could not read the body: {err}")))
        }
    }
}

/// The body of an `/error` or `/init/error` post. When it isn't the documented JSON, the
/// `Lambda-Runtime-Function-Error-Type` header gives the type and the raw body the message.
async fn read_diagnostic(request: Request<Incoming>) -> Result<Diagnostic, Response<Full<Bytes>>> {
    let header_type =
        request.headers().get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = read_body(request).await?;
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |name: &str| json.get(name).and_then(Value::as_str).map(str::to_string);
    Ok(Diagnostic {
        error_type: field("errorType").or(header_type).unwrap_or_else(|| "Unknown".to_string()),
        error_message: field("errorMessage").unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned()),
    })
}

/// The `detail-type` of an EventBridge event.
fn detail_type(event: &[u8]) -> Option<String> {
    let event: Value = serde_json::from_slice(event).ok()?;
    event.get("detail-type")?.as_str().map(str::to_owned)
}

fn body_value(body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

fn accepted() -> Response<Full<Bytes>> {
    json_response(StatusCode::ACCEPTED, &serde_json::json!({"status": "OK"}))
}

fn not_found(method: &Method, path: &str) -> Response<Full<Bytes>> {
    error_response(StatusCode::NOT_FOUND, "NotFound", &format!("the Runtime API has no {method} {path}"))
}

fn function_arn(function_name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}")
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default()
}

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A version-4 UUID, as Lambda's request ids are.
pub(crate) fn request_id() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// An X-Ray trace header like Lambda's: `Root=1-<epoch hex>-<96 bits>;Parent=<64 bits>;Sampled=0`.
fn trace_id() -> String {
    let seconds = now_ms() / 1000;
    format!(
        "Root=1-{:08x}-{:08x}{:016x};Parent={:016x};Sampled=0",
        seconds as u32,
        random_u64() as u32,
        random_u64(),
        random_u64()
    )
}

/// `target/<profile>/examples/<name>`, beside the running test's own `target/<profile>/deps/…`.
pub fn example_binary(name: &str) -> Result<PathBuf, HarnessError> {
    let exe = std::env::current_exe().map_err(HarnessError::io("finding the test's own path"))?;
    let path = exe.parent().and_then(Path::parent).map(|profile| profile.join("examples").join(name));
    match path {
        Some(path) if path.is_file() => Ok(path),
        other => Err(HarnessError::ExampleNotBuilt { name: name.to_owned(), path: other.unwrap_or_default() }),
    }
}

/// `<workspace>/target/lambda/host/<name>/bootstrap`, or `$TAGRELAY_LAMBDA_DIR/<name>/bootstrap`,
/// if it is there.
pub fn lambda_binary(name: &str) -> Result<PathBuf, HarnessError> {
    let dir = match std::env::var_os(LAMBDA_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("target/lambda/host"),
    };
    let path = dir.join(name).join("bootstrap");
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::LambdaBinaryNotFound { path })
    }
}

/// A function binary (a `bootstrap`) running against a [`RuntimeApi`]; killed when dropped.
pub struct FunctionProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    drains: Vec<JoinHandle<()>>,
    exit: Option<ExitStatus>,
}

impl FunctionProcess {
    /// Starts `binary` the way Lambda starts a `provided` runtime.
    ///
    /// The environment is Lambda's, not the test's: it is cleared, then given `PATH`, `TZ=:UTC`,
    /// `AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME` (the binary's directory name, or its
    /// own name when it isn't `bootstrap`), `AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128`,
    /// `AWS_LAMBDA_FUNCTION_VERSION=$LATEST`, `AWS_LAMBDA_LOG_FORMAT=JSON`, the log group and
    /// stream names, `RUST_LOG`/`RUST_BACKTRACE`/`AWS_LAMBDA_LOG_LEVEL` when the test has them,
    /// and last `env`, which wins. So a function that is not given [`crate::LocalAws::env`]
    /// cannot reach real AWS with the developer's credentials.
    pub fn spawn(
        binary: &Path,
        runtime_api: &RuntimeApi,
        env: &[(String, String)],
    ) -> Result<FunctionProcess, HarnessError> {
        if !binary.is_file() {
            return Err(HarnessError::LambdaBinaryNotFound { path: binary.to_path_buf() });
        }
        let function_name = env
            .iter()
            .rev()
            .find(|(key, _)| key == "AWS_LAMBDA_FUNCTION_NAME")
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| function_name_of(binary));
        *lock(&runtime_api.state.function_name) = function_name.clone();

        let mut command = Command::new(binary);
        command.env_clear();
        for key in ["PATH", "RUST_LOG", "RUST_BACKTRACE", "AWS_LAMBDA_LOG_LEVEL"] {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        command
            .env("TZ", ":UTC")
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", &function_name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function_name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("tagrelay-tests/[$LATEST]{:016x}", random_u64()))
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = binary.parent() {
            command.current_dir(dir);
        }
        let mut child =
            command.spawn().map_err(|source| HarnessError::Spawn { what: binary.display().to_string(), source })?;

        let lines = Arc::new(Mutex::new(Vec::new()));
        let show = std::env::var_os(SHOW_LOGS_ENV).is_some_and(|v| v == "1");
        let mut drains = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            drains.push(tokio::spawn(collect_lines(stdout, lines.clone(), show.then(|| function_name.clone()))));
        }
        if let Some(stderr) = child.stderr.take() {
            drains.push(tokio::spawn(collect_lines(stderr, lines.clone(), show.then(|| function_name.clone()))));
        }
        Ok(FunctionProcess { child, lines, drains, exit: None })
    }

    /// Every line the process wrote to stdout and stderr so far.
    pub fn log_lines(&self) -> Vec<String> {
        lock(&self.lines).clone()
    }

    /// Waits up to `timeout` for a line containing `needle` (output arrives asynchronously).
    pub async fn wait_for_log_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = lock(&self.lines).iter().find(|l| l.contains(needle)) {
                return Some(line.clone());
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The exit status, waiting up to `timeout` for the process to exit. Once it has, all of its
    /// output is in [`FunctionProcess::log_lines`].
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exit.is_none() {
            let status = tokio::time::timeout(timeout, self.child.wait()).await;
            self.exit = status.ok().and_then(Result::ok);
            if self.exit.is_some() {
                for drain in self.drains.drain(..) {
                    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
                }
            }
        }
        self.exit
    }

    /// The process id (None once it has been reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

fn function_name_of(binary: &Path) -> String {
    let own_name = binary.file_name().and_then(|n| n.to_str());
    let name = if own_name == Some("bootstrap") {
        binary.parent().and_then(|dir| dir.file_name()).and_then(|n| n.to_str())
    } else {
        binary.file_stem().and_then(|n| n.to_str())
    };
    name.unwrap_or(DEFAULT_FUNCTION_NAME).to_string()
}

async fn collect_lines(reader: impl AsyncRead + Unpin, lines: Arc<Mutex<Vec<String>>>, show_as: Option<String>) {
    let mut reader = BufReader::new(reader).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        if let Some(name) = &show_as {
            eprintln!("[{name}] {line}");
        }
        lock(&lines).push(line);
    }
}
