//! The local AWS: moto's server on loopback, standing in for SSM, ECR, CodeBuild and ECS, and sending
//! the EventBridge events AWS would send to a sink of the test's choosing.
//!
//! It runs `testbed/local_aws/launcher.py` with the Python of `make tools`' venv (the interpreter of
//! `.venv/bin/moto_server`): moto 5.2.5 in one process, patched where moto is too thin for
//! tagrelay. See `testbed/local_aws/README.md`. In short:
//!
//! * CodeBuild keeps `concurrentBuildLimit` and refuses a StartBuild over it with
//!   `AccountLimitExceededException` (HTTP 400); honours `idempotencyToken` for 5 minutes;
//!   merges `environmentVariablesOverride` over the project's variables; runs each build for a
//!   duration and ends it with an outcome, both set per project with
//!   [`LocalAws::set_build_behaviour`] (default: 1 s, SUCCEEDED), by time and not on read;
//!   keeps a stopped build STOPPED; lists a project's builds newest first (or by `sortOrder`).
//! * ECS deployments move as ECS's do (IN_PROGRESS → COMPLETED, circuit-breaker FAILED and
//!   rollback), and a build of a project with an ECS mapping deploys its fingerprint's values
//!   before it SUCCEEDS: steered and read through `crate::local_ecs` (`LocalAws::ecs`, …).
//! * CloudWatch alarms start in INSUFFICIENT_DATA; a state value change records a history item and
//!   emits "CloudWatch Alarm State Change"; the SDK's RPC v2 CBOR calls (DescribeAlarms,
//!   DescribeAlarmHistory, …) are answered by the launcher: `crate::local_cloudwatch`.
//! * Every AWS request is counted by service and operation, and by the Lambda invocation that
//!   made it (the SDK's `X-Amzn-Trace-Id`): [`LocalAws::call_counts`],
//!   [`LocalAws::reset_call_counts`], [`CallCounts`].
//! * [`LocalAws::put_parameters`] creates thousands of parameters at once, inside moto (no
//!   request counted, no event), for set-ups at scale.
//! * With [`LocalAwsOptions::event_sink`], "ECR Image Action", "Parameter Store Change",
//!   "CodeBuild Build State Change", "ECS Deployment State Change", "CloudWatch Alarm State
//!   Change" and (with
//!   [`LocalAwsOptions::schedule_every`]) "Scheduled Event" are POSTed as JSON to
//!   `{sink}/events`, in order, when AWS would send them.
//!
//! What moto does differently from AWS, as far as these tests go (read from `moto/ecr/models.py`):
//!
//! * PutImage's digest is `sha256:` + SHA-256 of the manifest's layer digests joined together,
//!   not of the manifest bytes; a manifest without layers gets one of 101 random digests. So every
//!   manifest here has a layer digest of its own (see [`image_manifest`]).
//! * `imagePushedAt` is whole seconds, set when the image is first put; tagging an existing
//!   manifest again keeps it.
//! * DescribeImages for a tag that isn't there fails with `ImageNotFoundException` (HTTP 400),
//!   message `The image with imageId {imageDigest:'null', imageTag:'TAG'} does not exist within
//!   the repository with name 'REPO' in the registry with id '123456789012'`.
//! * Repository names may hold `/` (`team/app`): the name pattern is ECR's; the ARN is
//!   `arn:aws:ecr:us-east-1:123456789012:repository/team/app`.
//! * PutImage to a repository that isn't there is an HTTP 500 (a bare Python exception), not
//!   `RepositoryNotFoundException`: the SDK retries it (3 attempts, about 1 s) and then reports
//!   an unhandled error.
//! * `imageSizeInBytes` is the manifest's `config.size`.
//! * The server answers about 1 s after spawn; the launcher then loads and patches moto's SSM, ECR
//!   and CodeBuild code (about 2 s more on a quiet machine, more beside a build), and AWS calls
//!   wait for that. See [`LocalAws::warm_up`].

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_codebuild::types::{
    ArtifactsType, ComputeType, EnvironmentType, ProjectArtifacts, ProjectEnvironment, ProjectSource, SourceType,
};
use aws_sdk_ecr::config::Credentials;
use aws_sdk_ecr::error::DisplayErrorContext;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::http_client;
use crate::lock::lock;
use crate::{workspace_root, HarnessError};

/// The region every client and child process is pointed at.
pub const REGION: &str = "us-east-1";
/// moto's default account.
pub const ACCOUNT_ID: &str = "123456789012";
/// Dummy credentials: moto accepts any.
pub const ACCESS_KEY_ID: &str = "testing";
pub const SECRET_ACCESS_KEY: &str = "testing";

/// Overrides where moto_server is found. The launcher runs with moto_server's Python.
pub const MOTO_SERVER_ENV: &str = "TAGRELAY_MOTO_SERVER";
/// The launcher, relative to the workspace root.
pub const LAUNCHER: &str = "testbed/local_aws/launcher.py";
/// The control endpoint that sets how a project's next builds run.
const SINK_PATH: &str = "/_tagrelay/events/sink";
const DROP_PATH: &str = "/_tagrelay/events/drop";
const BEHAVIOUR_PATH: &str = "/_tagrelay/codebuild/behaviour";
const ACCOUNT_PATH: &str = "/_tagrelay/codebuild/account";
const CALLS_PATH: &str = "/_tagrelay/calls";
const CALLS_RESET_PATH: &str = "/_tagrelay/calls/reset";
const PARAMETERS_PATH: &str = "/_tagrelay/ssm/parameters";
/// Parameters per bulk request: keeps each control request's body well under a megabyte.
const PARAMETERS_PER_REQUEST: usize = 2_000;
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

const START_TIMEOUT: Duration = Duration::from_secs(30);
const START_ATTEMPTS: usize = 5;
const PROBE_PATH: &str = "/moto-api/data.json";
const LOG_TAIL_LINES: usize = 200;

/// What the local AWS sends where. The default sends no events at all.
#[derive(Debug, Clone, Default)]
pub struct LocalAwsOptions {
    /// Base URL of an HTTP server on loopback (`http://127.0.0.1:PORT`): every event is POSTed to
    /// `{event_sink}/events` as `application/json`, one event per request, in order.
    pub event_sink: Option<String>,
    /// Send a "Scheduled Event" (rule `tagrelay-sweep`) every period, the first after one period.
    pub schedule_every: Option<Duration>,
}

/// A running local AWS (the launcher process), killed and reaped when dropped.
pub struct LocalAws {
    child: Child,
    endpoint: String,
    port: u16,
    output: Arc<Mutex<VecDeque<String>>>,
    startup: Duration,
}

impl LocalAws {
    /// Starts the local AWS on 127.0.0.1 and a free port, sending no events, and waits until it
    /// answers HTTP.
    pub async fn start() -> Result<LocalAws, HarnessError> {
        LocalAws::start_with(LocalAwsOptions::default()).await
    }

    /// [`LocalAws::start`] with events sent as `options` say.
    pub async fn start_with(options: LocalAwsOptions) -> Result<LocalAws, HarnessError> {
        launch(&moto_server_path(), &options).await
    }

    /// [`LocalAws::start`] with the moto_server at `path` (the launcher runs with its Python).
    pub async fn start_at(path: &Path) -> Result<LocalAws, HarnessError> {
        launch(path, &LocalAwsOptions::default()).await
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The moto process id (None once it has been reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// How long moto took from spawn to its first good HTTP answer (across port retries).
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The last lines moto printed (its request log among them).
    pub fn log_tail(&self) -> Vec<String> {
        lock(&self.output).iter().cloned().collect()
    }

    /// SDK config for clients that talk to this moto: region us-east-1, static dummy credentials,
    /// the moto endpoint, latest behaviour version.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, None, "tagrelay-tests"))
            .endpoint_url(&self.endpoint)
            .load()
            .await
    }

    /// Waits until the launcher has loaded and patched moto's SSM, ECR and CodeBuild code, and
    /// moto has set each service up, rather than in the first call a test times (2-3 s here on a
    /// quiet machine, more beside a build).
    pub async fn warm_up(&self) -> Result<(), HarnessError> {
        let config = self.sdk_config().await;
        let ssm = aws_sdk_ssm::Client::new(&config);
        let ecr = aws_sdk_ecr::Client::new(&config);
        let codebuild = aws_sdk_codebuild::Client::new(&config);
        let (ssm_result, ecr_result, codebuild_result) = tokio::join!(
            ssm.describe_parameters().max_results(1).send(),
            ecr.describe_repositories().max_results(1).send(),
            codebuild.list_projects().send(),
        );
        ssm_result.map_err(|err| aws_error("ssm:DescribeParameters", &err))?;
        ecr_result.map_err(|err| aws_error("ecr:DescribeRepositories", &err))?;
        codebuild_result.map_err(|err| aws_error("codebuild:ListProjects", &err))?;
        Ok(())
    }

    /// How the project's next builds run: each stays IN_PROGRESS for `duration`, then ends as
    /// `outcome` (`SUCCEEDED`, `FAILED`, `FAULT` or `TIMED_OUT`). Replaces what was set before;
    /// builds already started keep theirs. Unset, a build runs 1 s and SUCCEEDS.
    pub async fn set_build_behaviour(
        &self,
        project: &str,
        duration: Duration,
        outcome: &str,
    ) -> Result<(), HarnessError> {
        self.post_behaviour(serde_json::json!({
            "project": project,
            "duration_seconds": duration.as_secs_f64(),
            "outcome": outcome,
        }))
        .await
    }

    /// Like [`LocalAws::set_build_behaviour`], for a sequence: the project's next builds end as
    /// `outcomes` say, one each, in order; builds after those SUCCEED.
    pub async fn set_build_outcomes(
        &self,
        project: &str,
        duration: Duration,
        outcomes: &[&str],
    ) -> Result<(), HarnessError> {
        self.post_behaviour(serde_json::json!({
            "project": project,
            "duration_seconds": duration.as_secs_f64(),
            "outcomes": outcomes,
        }))
        .await
    }

    async fn post_behaviour(&self, body: serde_json::Value) -> Result<(), HarnessError> {
        self.post_control(BEHAVIOUR_PATH, "local-aws:SetBuildBehaviour", body).await
    }

    /// The account's quota of running builds, across projects: at `Some(n)` running builds,
    /// StartBuild fails with `AccountLimitExceededException` "Cannot have more than n builds in
    /// queue for the account" (a new account's quota can be 0). `None` lifts it.
    pub async fn set_account_build_quota(&self, max_builds_in_queue: Option<u32>) -> Result<(), HarnessError> {
        let body = serde_json::json!({ "max_builds_in_queue": max_builds_in_queue });
        self.post_control(ACCOUNT_PATH, "local-aws:SetAccountBuildQuota", body).await
    }

    /// Sends every event from now on to `{sink}/events` (a loopback base URL). For a sink that
    /// can only start once this local AWS runs: the local EventBridge needs its SQS first.
    pub async fn set_event_sink(&self, sink: &str) -> Result<(), HarnessError> {
        self.post_control(SINK_PATH, "local-aws:SetEventSink", serde_json::json!({ "url": sink })).await
    }

    /// Loses the next `count` events of `detail_type`, as a best-effort delivery may.
    pub async fn drop_events(&self, detail_type: &str, count: u32) -> Result<(), HarnessError> {
        let body = serde_json::json!({ "detail_type": detail_type, "count": count });
        self.post_control(DROP_PATH, "local-aws:DropEvents", body).await
    }

    /// Every AWS request counted since the start or the last [`LocalAws::reset_call_counts`].
    pub async fn call_counts(&self) -> Result<CallCounts, HarnessError> {
        let answer = self.control(CALLS_PATH, "local-aws:CallCounts", serde_json::json!({})).await?;
        CallCounts::from_answer(&answer)
    }

    /// Starts counting again from zero; returns what was counted until now.
    pub async fn reset_call_counts(&self) -> Result<CallCounts, HarnessError> {
        let answer = self.control(CALLS_RESET_PATH, "local-aws:ResetCallCounts", serde_json::json!({})).await?;
        CallCounts::from_answer(&answer)
    }

    /// Creates (or overwrites) String parameters in the Standard tier straight in moto's model, as
    /// a Terraform apply long before the test would have: no request is counted and no event is
    /// sent, whatever the sink. Thousands a second, where PutParameter makes a few hundred.
    pub async fn put_parameters(&self, parameters: &[(String, String)]) -> Result<(), HarnessError> {
        for chunk in parameters.chunks(PARAMETERS_PER_REQUEST) {
            let list: Vec<serde_json::Value> =
                chunk.iter().map(|(name, value)| serde_json::json!({ "name": name, "value": value })).collect();
            self.post_control(PARAMETERS_PATH, "local-aws:PutParameters", serde_json::json!({ "parameters": list }))
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn post_control(
        &self,
        path: &str,
        operation: &'static str,
        body: serde_json::Value,
    ) -> Result<(), HarnessError> {
        self.control(path, operation, body).await.map(drop)
    }

    /// POSTs `body` to a control endpoint; its JSON answer.
    pub(crate) async fn control(
        &self,
        path: &str,
        operation: &'static str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, HarnessError> {
        let (address, body) = (format!("127.0.0.1:{}", self.port), body.to_string());
        let post = http_client::request(&address, "POST", path, &body);
        let (status, answer) = match tokio::time::timeout(CONTROL_TIMEOUT, post).await {
            Ok(result) => result.map_err(HarnessError::io(format!("POST {path}")))?,
            Err(_) => return Err(HarnessError::Timeout { what: format!("POST {path}"), after: CONTROL_TIMEOUT }),
        };
        if status != 200 {
            return Err(HarnessError::Aws { operation, message: format!("HTTP {status}: {answer}") });
        }
        serde_json::from_str(&answer)
            .map_err(|err| HarnessError::Aws { operation, message: format!("not JSON ({err}): {answer}") })
    }

    /// Environment for a child process (a function binary) to reach this moto.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// What the local AWS counted: each AWS request once, when it arrived (so SDK retries and
/// refused calls count, as they do against an account's limits), named `service:Operation`
/// (`ssm:GetParameters`; the service is the SigV4 signing name, so CloudWatch is `monitoring`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// `service:Operation` → requests.
    pub calls: BTreeMap<String, u64>,
    /// The `X-Amzn-Trace-Id` a function's SDK sent (one per invocation: the Runtime API's
    /// `Lambda-Runtime-Trace-Id`) → its requests by `service:Operation`. Requests without one (a
    /// function's init, the test's own) are only in `calls`.
    pub by_trace: BTreeMap<String, BTreeMap<String, u64>>,
}

impl CallCounts {
    /// Every request counted.
    pub fn total(&self) -> u64 {
        self.calls.values().sum()
    }

    /// Requests of one operation, e.g. `("ssm", "GetParameters")`.
    pub fn get(&self, service: &str, operation: &str) -> u64 {
        self.calls.get(&format!("{service}:{operation}")).copied().unwrap_or(0)
    }

    /// The requests made under `trace` (an invocation's trace header), by operation.
    pub fn of_trace(&self, trace: &str) -> BTreeMap<String, u64> {
        self.by_trace.get(trace).cloned().unwrap_or_default()
    }

    /// The requests made under no trace: `calls` less every invocation's.
    pub fn untraced(&self) -> BTreeMap<String, u64> {
        let mut rest = self.calls.clone();
        for calls in self.by_trace.values() {
            for (operation, n) in calls {
                if let Some(left) = rest.get_mut(operation) {
                    *left = left.saturating_sub(*n);
                }
            }
        }
        rest.retain(|_, n| *n > 0);
        rest
    }

    fn from_answer(answer: &serde_json::Value) -> Result<CallCounts, HarnessError> {
        let bad = |what: &str| HarnessError::Aws {
            operation: "local-aws:CallCounts",
            message: format!("the answer has no {what}: {answer}"),
        };
        let mut counts = CallCounts::default();
        for entry in answer.get("calls").and_then(serde_json::Value::as_array).ok_or_else(|| bad("calls list"))? {
            let field = |name: &str| entry.get(name).and_then(serde_json::Value::as_str).ok_or_else(|| bad(name));
            let n = entry.get("count").and_then(serde_json::Value::as_u64).ok_or_else(|| bad("count"))?;
            counts.calls.insert(format!("{}:{}", field("service")?, field("operation")?), n);
        }
        let traces = answer.get("by_trace").and_then(serde_json::Value::as_object).ok_or_else(|| bad("by_trace"))?;
        for (trace, calls) in traces {
            let calls = calls.as_object().ok_or_else(|| bad("by_trace object"))?;
            let calls =
                calls.iter().map(|(operation, n)| Ok((operation.clone(), n.as_u64().ok_or_else(|| bad("count"))?)));
            counts.by_trace.insert(trace.clone(), calls.collect::<Result<_, HarnessError>>()?);
        }
        Ok(counts)
    }
}

/// Where moto_server is: `$TAGRELAY_MOTO_SERVER`, else `<workspace>/.venv/bin/moto_server`.
pub fn moto_server_path() -> PathBuf {
    match std::env::var_os(MOTO_SERVER_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => workspace_root().join(".venv/bin/moto_server"),
    }
}

/// Creates a CodeBuild project as small as CodeBuild accepts: no source, an inline buildspec,
/// a small Linux container, no artifacts, a service role named after the project. `None` leaves
/// the project without a concurrent build limit.
pub async fn create_codebuild_project(
    client: &aws_sdk_codebuild::Client,
    name: &str,
    concurrent_build_limit: Option<i32>,
) -> Result<(), HarnessError> {
    let invalid = |err: aws_sdk_codebuild::error::BuildError| HarnessError::setup("a CodeBuild project request", err);
    let source = ProjectSource::builder()
        .r#type(SourceType::NoSource)
        .buildspec("version: 0.2\nphases:\n  build:\n    commands:\n      - terraform apply -auto-approve\n")
        .build()
        .map_err(invalid)?;
    let artifacts = ProjectArtifacts::builder().r#type(ArtifactsType::NoArtifacts).build().map_err(invalid)?;
    let environment = ProjectEnvironment::builder()
        .r#type(EnvironmentType::LinuxContainer)
        .image("aws/codebuild/amazonlinux2-x86_64-standard:5.0")
        .compute_type(ComputeType::BuildGeneral1Small)
        .build()
        .map_err(invalid)?;
    client
        .create_project()
        .name(name)
        .source(source)
        .artifacts(artifacts)
        .environment(environment)
        .service_role(format!("arn:aws:iam::{ACCOUNT_ID}:role/{name}-codebuild"))
        .set_concurrent_build_limit(concurrent_build_limit)
        .send()
        .await
        .map_err(|err| aws_error("codebuild:CreateProject", &err))?;
    Ok(())
}

/// Creates an ECR repository (mutable tags). Names may contain `/`.
pub async fn create_repository(ecr: &aws_sdk_ecr::Client, name: &str) -> Result<(), HarnessError> {
    ecr.create_repository()
        .repository_name(name)
        .send()
        .await
        .map_err(|err| aws_error("ecr:CreateRepository", &err))?;
    Ok(())
}

/// Writes a String parameter as a person or Terraform would (overwriting), outside tagrelay.
pub async fn put_parameter(ssm: &aws_sdk_ssm::Client, name: &str, value: &str) -> Result<i64, HarnessError> {
    let out = ssm
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .map_err(|err| aws_error("ssm:PutParameter", &err))?;
    Ok(out.version())
}

/// Puts a new image under `tag` and returns the digest moto gave it.
///
/// Every call puts a manifest of its own, so every call gets a new digest; pushing a tag again
/// moves it to the new image, as `docker push` of a rebuilt image does.
pub async fn push_image(ecr: &aws_sdk_ecr::Client, repository: &str, tag: &str) -> Result<String, HarnessError> {
    static PUSHES: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let seed = format!("{repository}:{tag}:{}:{}:{nanos}", std::process::id(), PUSHES.fetch_add(1, Ordering::Relaxed));
    let output = ecr
        .put_image()
        .repository_name(repository)
        .image_tag(tag)
        .image_manifest(image_manifest(&seed))
        .send()
        .await
        .map_err(|err| aws_error("ecr:PutImage", &err))?;
    output.image().and_then(|image| image.image_id()).and_then(|id| id.image_digest()).map(str::to_string).ok_or_else(
        || HarnessError::Aws { operation: "ecr:PutImage", message: "the answer has no image digest".into() },
    )
}

/// A small Docker image manifest (schema 2) whose config and layer digests follow from `seed`:
/// the same seed gives the same manifest (and the same digest in moto), another seed another.
pub fn image_manifest(seed: &str) -> String {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1469,
            "digest": format!("sha256:{}", fake_sha256(&format!("config:{seed}"))),
        },
        "layers": [{
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": 2_811_478,
            "digest": format!("sha256:{}", fake_sha256(&format!("layer:{seed}"))),
        }],
    })
    .to_string()
}

/// 64 hex digits that depend on all of `input` (not a real SHA-256: moto only checks the shape).
pub fn fake_sha256(input: &str) -> String {
    // FNV-1a, 64 bits, four lanes with different offsets.
    (0u64..4)
        .map(|lane| {
            let mut hash = 0xcbf2_9ce4_8422_2325u64 ^ lane.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            for byte in input.bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
            format!("{hash:016x}")
        })
        .collect()
}

fn aws_error(operation: &'static str, err: &(dyn std::error::Error + 'static)) -> HarnessError {
    HarnessError::Aws { operation, message: DisplayErrorContext(err).to_string() }
}

/// The Python that runs moto_server: its `#!` line (a venv's console script names the venv's
/// Python), else the `python` beside it.
fn moto_python(moto_server: &Path) -> PathBuf {
    let shebang = std::fs::read(moto_server).ok().and_then(|bytes| {
        let first = bytes.split(|&b| b == b'\n').next()?.strip_prefix(b"#!")?.to_vec();
        let line = String::from_utf8(first).ok()?;
        let interpreter = PathBuf::from(line.split_whitespace().next()?);
        let shell = interpreter.file_name().is_some_and(|name| name == "sh" || name == "env");
        (interpreter.is_absolute() && !shell).then_some(interpreter)
    });
    shebang.unwrap_or_else(|| moto_server.with_file_name("python"))
}

async fn launch(moto_server: &Path, options: &LocalAwsOptions) -> Result<LocalAws, HarnessError> {
    if !moto_server.is_file() {
        return Err(HarnessError::MotoNotFound { path: moto_server.to_path_buf() });
    }
    let python = moto_python(moto_server);
    if !python.is_file() {
        return Err(HarnessError::MotoNotFound { path: python });
    }
    let launcher = workspace_root().join(LAUNCHER);
    if !launcher.is_file() {
        return Err(HarnessError::Spawn {
            what: format!("the local AWS launcher ({})", launcher.display()),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let mut args = vec![launcher.display().to_string()];
    if let Some(sink) = &options.event_sink {
        args.extend(["--event-sink".to_string(), sink.clone()]);
    }
    if let Some(every) = options.schedule_every.filter(|every| !every.is_zero()) {
        args.extend(["--schedule-seconds".to_string(), every.as_secs_f64().to_string()]);
    }
    let started = Instant::now();
    let mut last_error = None;
    for _ in 0..START_ATTEMPTS {
        let port = free_port()?;
        match start_on(&python, &args, port, started).await {
            Ok(aws) => return Ok(aws),
            // Another process took the port between our probe and the launcher's bind: try another.
            Err(StartError::PortTaken(err)) => last_error = Some(err),
            Err(StartError::Fatal(err)) => return Err(err),
        }
    }
    Err(last_error
        .unwrap_or_else(|| HarnessError::MotoExited { status: "no attempt made".into(), output: String::new() }))
}

enum StartError {
    PortTaken(HarnessError),
    Fatal(HarnessError),
}

async fn start_on(python: &Path, args: &[String], port: u16, started: Instant) -> Result<LocalAws, StartError> {
    let mut child = Command::new(python)
        .args(args)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env("PYTHONUNBUFFERED", "1")
        // The launcher imports its sibling modules: leave no __pycache__ in the tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| {
            StartError::Fatal(HarnessError::Spawn { what: format!("the local AWS ({})", python.display()), source })
        })?;

    let output = Arc::new(Mutex::new(VecDeque::new()));
    let mut drains = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        drains.push(tokio::spawn(drain_lines(stdout, output.clone())));
    }
    if let Some(stderr) = child.stderr.take() {
        drains.push(tokio::spawn(drain_lines(stderr, output.clone())));
    }

    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            // Let the drains take what it printed last.
            for drain in drains {
                let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
            }
            let output = lock(&output).iter().cloned().collect::<Vec<_>>().join("\n");
            let err = HarnessError::MotoExited { status: status.to_string(), output: output.clone() };
            return Err(if output.contains("in use") { StartError::PortTaken(err) } else { StartError::Fatal(err) });
        }
        if probe(port).await {
            return Ok(LocalAws { child, endpoint, port, output, startup: started.elapsed() });
        }
        if Instant::now() >= deadline {
            kill_and_reap(&mut child);
            let output = lock(&output).iter().cloned().collect::<Vec<_>>().join("\n");
            return Err(StartError::Fatal(HarnessError::Timeout {
                what: format!("the local AWS to answer HTTP on {endpoint}; its output:\n{output}"),
                after: START_TIMEOUT,
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// True when moto answers its own API with 200 on `port` (so not some other server on it).
async fn probe(port: u16) -> bool {
    let address = format!("127.0.0.1:{port}");
    let answer = http_client::request(&address, "GET", PROBE_PATH, "");
    matches!(tokio::time::timeout(Duration::from_secs(2), answer).await, Ok(Ok((200, _))))
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> Result<u16, HarnessError> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(HarnessError::io("binding 127.0.0.1:0 to find a free port"))?;
    let port = listener.local_addr().map_err(HarnessError::io("reading the free port"))?.port();
    Ok(port)
}

async fn drain_lines(reader: impl AsyncRead + Unpin, output: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(reader).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut output = lock(&output);
        if output.len() == LOG_TAIL_LINES {
            output.pop_front();
        }
        output.push_back(line);
    }
}

/// SIGKILL, then wait (a short, bounded, blocking wait) so no zombie is left behind.
pub(crate) fn kill_and_reap(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = child.start_kill();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            _ => return,
        }
    }
}
