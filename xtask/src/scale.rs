//! `make bench-scale`, and the last part of `make bench` (`cargo run -p xtask -- scale [--services N]
//! [--environments M] [--pushes P] [--build-seconds S] [--cold-starts K] [--isolated I]
//! [--sweeps W] [--inline-config]`): one installation at the size of issue 13 on the local AWS, measured.
//!
//! * The configuration: N services (default 1,000) × M environments (default 10): `dev` takes
//!   every push (`deploy_on_push`), `staging` is promoted from dev, and the other eight are
//!   production regions promoted from staging, without soak, gate, approval or alarms, so one
//!   push travels the whole chain within the run. Services name their tag pattern and order
//!   policy, as teams write them; repositories sit under team prefixes. No ECS cluster: at this
//!   size ECS verification would measure moto's ECS, not tagrelay (a build's success is the
//!   release, as for any environment without `ecs_cluster`).
//! * Set-up (timed apart): the N × M image-tag parameters on the placeholder (in bulk, inside
//!   moto), the configuration stored in SSM in "tagrelay parts/1" at `/tagrelay/_config`
//!   (`TAGRELAY_CONFIG=ssm:/tagrelay/_config:<version>`; `--inline-config`: the document itself),
//!   then `LocalSystem`: a CodeBuild project per environment (concurrent build limit 1, builds of
//!   S seconds, default 5), an ECR repository per service, the three release functions behind
//!   the Runtime API emulator and the local EventBridge.
//! * Init: K cold starts of each function (default 3) against that SSM: process start to the first
//!   `/next` poll, the function's own "configuration loaded" line (read and parse times), its AWS calls and
//!   its peak memory.
//! * The burst: P pushes (default 1,000) as fast as one client pushes them, to services picked by a
//!   fixed pseudo-random sequence, each service's tags counting up; then the pipeline runs until
//!   it is quiet (no event in flight, no build running). Then I pushes (default 3) one at a time,
//!   each to quiet: what a push costs when nothing coalesces it; then W scheduled sweeps (default
//!   3) with nothing to do: what the safety net takes of the limits at rest.
//! * The local EventBridge gives each invocation up to 15 minutes (Lambda's maximum) rather than
//!   infra/'s 60 s, so a slow one (moto is slower than AWS) is measured, not cut short and retried;
//!   the tables count the invocations over 60 s.
//!
//! It prints the tables `docs/performance.md` reports (and writes them to `target/scale-bench.md`):
//! per function the events, their AWS calls by operation (each call attributed to its invocation
//! by the trace header, see `LocalAws::call_counts`), invocation times, peak RSS; builds against
//! pushes; the calls per push, in the burst and alone, and the push rate each account limit
//! sustains at that many calls (limit ÷ calls per push). It checks that every push reached every
//! environment, and says so; it asserts nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tagrelay::aws::ssm::SsmParameterStore;
use tagrelay::config::{Config, DEFAULT_PLACEHOLDER};
use tagrelay::ports::ParameterStore;
use tagrelay_testbed::event_router::{AsyncInvokeConfig, Delivery};
use tagrelay_testbed::local_aws::{push_image, CallCounts, LocalAws};
use tagrelay_testbed::runtime_api::{lambda_binary, FunctionProcess, Invocation, RuntimeApi};
use tagrelay_testbed::system::{FunctionOptions, LocalSystem};
use tagrelay_testbed::workspace_root;
use tagrelay_tests::events::scheduled;

use crate::error::TaskError;

pub const USAGE: &str = "scale [--services N] [--environments M] [--pushes P] [--build-seconds S] \
                         [--cold-starts K] [--isolated I] [--sweeps W] [--inline-config]";
const FUNCTIONS: [&str; 3] = ["record-image-tag", "trigger-deploy", "promote"];
const CONFIG_HEAD: &str = "/tagrelay/_config";
/// Production regions after dev and staging; more environments are `prod-<n>`.
const PRODUCTION: [&str; 8] =
    ["prod-use1", "prod-use2", "prod-usw2", "prod-euw1", "prod-euc1", "prod-apne1", "prod-apse2", "prod-sae1"];
const TEAMS: usize = 40;
/// Linux's limit on one environment string (`KEY=value` and its NUL): MAX_ARG_STRLEN, 32 pages.
const ENV_STRING_LIMIT: usize = 32 * 4096;
const SPAWN_WAIT: Duration = Duration::from_secs(60);
const QUIET_TIMEOUT: Duration = Duration::from_secs(4 * 60 * 60);
/// infra/'s default `schedule_expression`, `rate(5 minutes)`.
const SWEEP_INTERVAL: Duration = Duration::from_secs(300);
/// infra/'s default `lambda_timeout`: an invocation longer than this would time out in AWS.
const LAMBDA_TIMEOUT: Duration = Duration::from_secs(60);
/// The local EventBridge's invocation timeout here: Lambda's maximum, so that no invocation is
/// cut short and retried while it runs (moto is slower than AWS); the tables count those over
/// `LAMBDA_TIMEOUT`.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub services: usize,
    pub environments: usize,
    pub pushes: usize,
    pub build: Duration,
    pub cold_starts: usize,
    /// Pushes made one at a time after the burst, each to quiet.
    pub isolated: usize,
    /// Scheduled sweeps after those, each to quiet.
    pub sweeps: usize,
    pub inline_config: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            services: 1_000,
            environments: 10,
            pushes: 1_000,
            build: Duration::from_secs(5),
            cold_starts: 3,
            isolated: 3,
            sweeps: 3,
            inline_config: false,
        }
    }
}

impl Options {
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, TaskError> {
        let mut options = Options::default();
        while let Some(flag) = args.next() {
            if flag == "--inline-config" {
                options.inline_config = true;
                continue;
            }
            let value = args.next().ok_or_else(|| TaskError::Usage(format!("{flag} needs a value")))?;
            let number = || value.parse::<usize>().map_err(|_| TaskError::Usage(format!("{flag} {value}: a number")));
            match flag.as_str() {
                "--services" => options.services = number()?,
                "--environments" => options.environments = number()?,
                "--pushes" => options.pushes = number()?,
                "--cold-starts" => options.cold_starts = number()?,
                "--isolated" => options.isolated = number()?,
                "--sweeps" => options.sweeps = number()?,
                "--build-seconds" => {
                    let seconds = value.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0);
                    let seconds = seconds.ok_or_else(|| TaskError::Usage(format!("{flag} {value}: seconds")))?;
                    options.build = Duration::from_secs_f64(seconds);
                }
                _ => return Err(TaskError::Usage(format!("no option {flag}"))),
            }
        }
        if options.services == 0 || options.environments == 0 {
            return Err(TaskError::Usage("--services and --environments must be at least 1".into()));
        }
        Ok(options)
    }
}

pub fn environment_names(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| match i {
            0 => "dev".to_owned(),
            1 => "staging".to_owned(),
            _ => PRODUCTION.get(i - 2).map_or_else(|| format!("prod-{}", i - 1), |name| (*name).to_owned()),
        })
        .collect()
}

pub fn service_name(index: usize) -> String {
    format!("svc-{index:04}")
}

/// The configuration: `dev` takes the pushes, `staging` is promoted from dev, the rest from staging.
pub fn config(services: usize, environments: usize) -> Value {
    let mut envs = Map::new();
    for (i, name) in environment_names(environments).into_iter().enumerate() {
        let env = match i {
            0 => json!({}),
            1 => json!({ "promote_from": "dev" }),
            _ => json!({ "promote_from": "staging" }),
        };
        envs.insert(name, env);
    }
    let mut svcs = Map::new();
    for i in 0..services {
        let name = service_name(i);
        let service = json!({
            "repository": format!("team-{:02}/{name}", i % TEAMS),
            "deploy_on_push": ["dev"],
            "tag_pattern": "^[0-9]+$",
            "order": "numeric",
        });
        svcs.insert(name, service);
    }
    json!({ "parameter_template": "/{service}/{environment}/docker-image-tag", "environments": envs, "services": svcs })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub service: usize,
    pub tag: u64,
}

/// `count` pushes to services picked by a fixed linear congruential sequence; each service's tags
/// count up from 1 (build numbers).
pub fn pushes(count: usize, services: usize) -> Vec<Push> {
    let mut state: u64 = 0x5ca1_e0f1_000d_0001;
    let mut tags = vec![0u64; services];
    (0..count)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let service = ((state >> 33) % services as u64) as usize;
            tags[service] += 1;
            Push { service, tag: tags[service] }
        })
        .collect()
}

pub async fn run(options: Options) -> Result<(), TaskError> {
    let document = config(options.services, options.environments);
    let text = document.to_string();
    let parsed = Config::from_json(&text).map_err(|err| TaskError::Setup(format!("the generated config: {err}")))?;
    let mut out = Report::default();
    out.line(format!(
        "scale run: {} services × {} environments, {} pushes, builds of {:.1} s, config {} bytes ({})",
        options.services,
        options.environments,
        options.pushes,
        options.build.as_secs_f64(),
        text.len(),
        if options.inline_config { "in TAGRELAY_CONFIG" } else { "in SSM, parts" }
    ));

    // Set-up.
    let setup = Instant::now();
    let aws = LocalAws::start().await?;
    aws.warm_up().await?;
    let started = Instant::now();
    let parameters: Vec<(String, String)> = parsed
        .environments()
        .flat_map(|environment| parsed.parameter_names(&environment.name))
        .map(|name| (name, DEFAULT_PLACEHOLDER.to_owned()))
        .collect();
    aws.put_parameters(&parameters).await?;
    let parameters_time = started.elapsed();
    let started = Instant::now();
    let config_env = if options.inline_config {
        ("TAGRELAY_CONFIG".to_owned(), text.clone())
    } else {
        ("TAGRELAY_CONFIG".to_owned(), store_config(&aws, &text).await?)
    };
    let config_time = started.elapsed();
    let started = Instant::now();
    let functions = FunctionOptions {
        env: vec![config_env.clone()],
        invoke: AsyncInvokeConfig { invoke_timeout: INVOKE_TIMEOUT, ..AsyncInvokeConfig::default() },
    };
    let system = LocalSystem::start_on(aws, &document, options.build, functions).await?;
    let system_time = started.elapsed();
    out.heading("Set-up (not measured below)");
    out.table(
        &["step", "time"],
        vec![
            vec![format!("{} image-tag parameters (in bulk, inside moto)", parameters.len()), secs(parameters_time)],
            vec![format!("configuration: {}", shorten(&config_env.1)), secs(config_time)],
            vec![
                format!(
                    "{} CodeBuild projects, {} ECR repositories, DLQs, 3 functions started",
                    options.environments, options.services
                ),
                secs(system_time),
            ],
            vec!["total, with the local AWS's start".into(), secs(setup.elapsed())],
        ],
    );

    cold_starts(&system.aws, &config_env, &text, options.cold_starts, &mut out).await?;
    burst(&system, &parsed, &options, &mut out).await?;

    let path = workspace_root().join("target/scale-bench.md");
    std::fs::write(&path, &out.text).map_err(|source| TaskError::Write { path: path.clone(), source })?;
    println!("\n(written to {})", path.display());
    Ok(())
}

/// Stores the document at `CONFIG_HEAD` as tagrelay does (parts when large); the reference.
async fn store_config(aws: &LocalAws, document: &str) -> Result<String, TaskError> {
    let store = SsmParameterStore::from_sdk_config(&aws.sdk_config().await);
    let version = tagrelay::document::write(&store, CONFIG_HEAD, document, "tagrelay configuration (scale bench)")
        .await
        .map_err(|err| TaskError::Setup(format!("storing the configuration: {err}")))?;
    Ok(format!("ssm:{CONFIG_HEAD}:{version}"))
}

struct ColdStart {
    to_first_poll: Duration,
    read_micros: Option<u64>,
    parse_micros: Option<u64>,
    peak_rss_kib: Option<u64>,
    calls: BTreeMap<String, u64>,
}

/// K cold starts per function, the configuration as given and (when it fits an environment
/// string) inline for comparison.
async fn cold_starts(
    aws: &LocalAws,
    config_env: &(String, String),
    document: &str,
    runs: usize,
    out: &mut Report,
) -> Result<(), TaskError> {
    if runs == 0 {
        return Ok(());
    }
    let mut sources = vec![config_env.clone()];
    let inline = ("TAGRELAY_CONFIG".to_owned(), document.to_owned());
    let fits = "TAGRELAY_CONFIG=".len() + document.len() < ENV_STRING_LIMIT;
    if config_env.1 != document && fits {
        sources.push(inline);
    }
    let mut rows = Vec::new();
    for (key, value) in &sources {
        for function in FUNCTIONS {
            let mut samples = Vec::new();
            for _ in 0..runs {
                samples.push(cold_start(aws, function, (key, value)).await?);
            }
            let mut times: Vec<Duration> = samples.iter().map(|s| s.to_first_poll).collect();
            let median_of = |values: Vec<Option<u64>>| {
                let mut values: Vec<u64> = values.into_iter().flatten().collect();
                values.sort_unstable();
                values
                    .get(values.len().saturating_sub(1) / 2)
                    .map_or("–".to_owned(), |v| format!("{:.1}", *v as f64 / 1000.0))
            };
            let read = median_of(samples.iter().map(|s| s.read_micros).collect());
            let parse = median_of(samples.iter().map(|s| s.parse_micros).collect());
            let rss = samples.iter().filter_map(|s| s.peak_rss_kib).max().map_or("–".to_owned(), mib);
            let calls = samples.last().map(|s| describe_calls(&s.calls)).unwrap_or_default();
            rows.push(vec![
                function.to_owned(),
                shorten(value),
                ms_stats(&mut times),
                read,
                parse,
                rss,
                if calls.is_empty() { "none".to_owned() } else { calls },
            ]);
        }
    }
    out.heading(&format!("Init: {runs} cold starts per function (process start → first /next)"));
    out.table(
        &[
            "function",
            "TAGRELAY_CONFIG",
            "start → first /next: median (max) ms",
            "config read ms (median)",
            "config parse + validate ms (median)",
            "peak RSS after init",
            "AWS calls at init",
        ],
        rows,
    );
    Ok(())
}

async fn cold_start(aws: &LocalAws, function: &str, config: (&String, &String)) -> Result<ColdStart, TaskError> {
    let mut env = aws.env();
    env.push((config.0.clone(), config.1.clone()));
    aws.reset_call_counts().await?;
    let api = RuntimeApi::start().await?;
    let started = Instant::now();
    let process = FunctionProcess::spawn(&lambda_binary(function)?, &api, &env)?;
    api.wait_first_poll(SPAWN_WAIT).await?;
    let to_first_poll = started.elapsed();
    let peak_rss_kib = process.pid().and_then(peak_rss);
    let line = process.wait_for_log_line("parse_micros", Duration::from_secs(5)).await;
    let field = |name: &str| line.as_deref().and_then(|line| log_field(line, name));
    let calls = aws.call_counts().await?.untraced();
    Ok(ColdStart {
        to_first_poll,
        read_micros: field("read_micros"),
        parse_micros: field("parse_micros"),
        peak_rss_kib,
        calls,
    })
}

/// A numeric field of a JSON log line, at its top level or under `fields`.
fn log_field(line: &str, name: &str) -> Option<u64> {
    let value: Value = serde_json::from_str(line).ok()?;
    value.get(name).or_else(|| value.get("fields").and_then(|fields| fields.get(name))).and_then(Value::as_u64)
}

/// `VmHWM` of a running process (its peak resident set), in KiB.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Default)]
struct FunctionRun {
    name: String,
    invocations: Vec<Invocation>,
    /// Per invocation, in order: its AWS calls by operation.
    calls: Vec<BTreeMap<String, u64>>,
}

impl FunctionRun {
    fn totals(&self) -> BTreeMap<String, u64> {
        let mut totals = BTreeMap::new();
        for calls in &self.calls {
            for (operation, n) in calls {
                *totals.entry(operation.clone()).or_default() += n;
            }
        }
        totals
    }
}

/// What one measured stretch (pushes, then the pipeline until quiet) did.
struct Measurement {
    runs: Vec<FunctionRun>,
    counts: CallCounts,
    deliveries: Vec<Delivery>,
    burst: Duration,
    /// From the last push to the last invocation's answer.
    to_quiet: Duration,
}

impl Measurement {
    /// Several measurements as one: their invocations and deliveries together.
    fn merged(measurements: &[&Measurement]) -> Measurement {
        let mut runs: Vec<FunctionRun> = Vec::new();
        let mut deliveries = Vec::new();
        for measured in measurements {
            for run in &measured.runs {
                let index = match runs.iter().position(|merged| merged.name == run.name) {
                    Some(index) => index,
                    None => {
                        runs.push(FunctionRun { name: run.name.clone(), ..FunctionRun::default() });
                        runs.len() - 1
                    }
                };
                runs[index].invocations.extend(run.invocations.iter().cloned());
                runs[index].calls.extend(run.calls.iter().cloned());
            }
            deliveries.extend(measured.deliveries.iter().cloned());
        }
        Measurement {
            runs,
            counts: CallCounts::default(),
            deliveries,
            burst: measurements.iter().map(|m| m.burst).sum(),
            to_quiet: measurements.iter().map(|m| m.to_quiet).sum(),
        }
    }

    /// Every function's calls by operation.
    fn totals(&self) -> BTreeMap<String, u64> {
        let mut totals = BTreeMap::new();
        for run in &self.runs {
            for (operation, n) in run.totals() {
                *totals.entry(operation).or_default() += n;
            }
        }
        totals
    }
}

/// Which function a route of `LocalSystem` delivers to.
fn function_of_route(route: &str) -> &'static str {
    match route {
        "ecr-image-action" | "schedule-record" => "record-image-tag",
        "promote-parameter-change" | "alarm-state-change" | "schedule-promote" => "promote",
        _ => "trigger-deploy",
    }
}

/// What starts a measured stretch.
enum Stimulus<'a> {
    /// These pushes, one after the other.
    Pushes(&'a [Push]),
    /// One "Scheduled Event" (the sweep's rule), numbered.
    Sweep(usize),
}

/// Applies `stimulus`, waits until the pipeline is quiet, and attributes every AWS call made
/// meanwhile to the invocation that made it.
async fn measure(
    system: &LocalSystem,
    repositories: &BTreeMap<String, String>,
    stimulus: Stimulus<'_>,
) -> Result<Measurement, TaskError> {
    let targets = system.bridge.targets();
    let before: Vec<usize> = targets.iter().map(|target| target.invocations().len()).collect();
    let deliveries_before = system.bridge.deliveries().len();
    system.aws.reset_call_counts().await?;
    let started = Instant::now();
    match stimulus {
        Stimulus::Pushes(pushes) => {
            for push in pushes {
                let repository = &repositories[&service_name(push.service)];
                push_image(&system.ecr, repository, &push.tag.to_string()).await?;
            }
        }
        Stimulus::Sweep(n) => {
            system.bridge.put_events(scheduled(&format!("00000000-0000-4000-8000-{n:012}"))).await?;
        }
    }
    let last_push = Instant::now();
    system.wait_settled(QUIET_TIMEOUT).await?;
    let counts = system.aws.call_counts().await?;

    let mut runs = Vec::new();
    for (target, skip) in targets.iter().zip(before) {
        let invocations: Vec<Invocation> = target.invocations().into_iter().skip(skip).collect();
        let calls = invocations.iter().map(|invocation| counts.of_trace(&invocation.trace_id)).collect();
        runs.push(FunctionRun { name: target.function_name(), invocations, calls });
    }
    runs.sort_by_key(|run| FUNCTIONS.iter().position(|name| *name == run.name));
    let quiet = runs
        .iter()
        .flat_map(|run| run.invocations.iter().filter_map(|invocation| invocation.ended_at))
        .max()
        .unwrap_or(last_push);
    let deliveries = system.bridge.deliveries().split_off(deliveries_before);
    Ok(Measurement {
        runs,
        counts,
        deliveries,
        burst: last_push - started,
        to_quiet: quiet.saturating_duration_since(last_push),
    })
}

async fn burst(system: &LocalSystem, config: &Config, options: &Options, out: &mut Report) -> Result<(), TaskError> {
    let repositories: BTreeMap<String, String> =
        config.services().map(|service| (service.name.clone(), service.repository.clone())).collect();
    let pushes = pushes(options.pushes, options.services);
    let burst = measure(system, &repositories, Stimulus::Pushes(&pushes)).await?;

    let distinct = {
        let mut services: Vec<usize> = pushes.iter().map(|push| push.service).collect();
        services.sort_unstable();
        services.dedup();
        services.len()
    };
    let failed = burst.deliveries.iter().filter(|delivery| delivery.outcome.is_error()).count();
    let dead_letters = burst.deliveries.iter().filter(|delivery| delivery.outcome.is_dead_lettered()).count();
    let attempts = burst.deliveries.len() - dead_letters;
    out.heading("The burst");
    out.table(
        &["what", "value"],
        vec![
            vec!["pushes (ECR PutImage, one client, in sequence)".into(), pushes.len().to_string()],
            vec!["services pushed to".into(), distinct.to_string()],
            vec![
                "burst wall time (first push → last push)".into(),
                format!(
                    "{} ({:.0} pushes/s)",
                    secs(burst.burst),
                    pushes.len() as f64 / burst.burst.as_secs_f64().max(1e-9)
                ),
            ],
            vec!["last push → quiet (last invocation answered)".into(), secs(burst.to_quiet)],
            vec![
                "invocations by the local EventBridge: attempts, failed, dead-lettered".into(),
                format!("{attempts}, {failed}, {dead_letters}"),
            ],
        ],
    );
    function_tables("Per function", &burst, system, out);
    builds_table(system, config, &pushes, out).await?;

    // One push at a time, each to quiet: what a push costs when nothing coalesces it.
    let mut next_tag: BTreeMap<usize, u64> = BTreeMap::new();
    for push in &pushes {
        next_tag.insert(push.service, push.tag + 1);
    }
    let mut isolated = Vec::new();
    for index in 0..options.isolated.min(options.services) {
        let service = (index * 7919) % options.services;
        let tag = next_tag.get(&service).copied().unwrap_or(1);
        next_tag.insert(service, tag + 1);
        let push = Push { service, tag };
        let measured = measure(system, &repositories, Stimulus::Pushes(std::slice::from_ref(&push))).await?;
        isolated.push((push, measured));
    }
    // The schedule's sweeps, with nothing to do: what the safety net costs at rest.
    let mut sweeps = Vec::new();
    for n in 0..options.sweeps {
        sweeps.push(measure(system, &repositories, Stimulus::Sweep(n)).await?);
    }
    if !isolated.is_empty() {
        let together: Vec<&Measurement> = isolated.iter().map(|(_, measured)| measured).collect();
        let heading = format!("Per function, {} isolated pushes together", isolated.len());
        function_tables(&heading, &Measurement::merged(&together), system, out);
    }
    if !sweeps.is_empty() {
        let together: Vec<&Measurement> = sweeps.iter().collect();
        let heading = format!("Per function, {} scheduled sweeps at rest together", sweeps.len());
        function_tables(&heading, &Measurement::merged(&together), system, out);
    }
    per_push_table(&burst, pushes.len(), &isolated, out);
    extrapolation_table(&burst, pushes.len(), &isolated, &sweeps, out);
    let mut all_pushes = pushes.clone();
    all_pushes.extend(isolated.iter().map(|(push, _)| push.clone()));
    check_end_state(system, config, &all_pushes, out).await
}

fn function_tables(heading: &str, measured: &Measurement, system: &LocalSystem, out: &mut Report) {
    let processes =
        [("record-image-tag", &system.record), ("trigger-deploy", &system.deploy), ("promote", &system.promote)];
    let mut rows = Vec::new();
    for run in &measured.runs {
        let events = run.invocations.len();
        let errors = run.invocations.iter().filter(|invocation| !invocation.succeeded).count();
        let totals: Vec<u64> = run.calls.iter().map(|calls| calls.values().sum()).collect();
        let total: u64 = totals.iter().sum();
        let mut durations: Vec<Duration> = run.invocations.iter().filter_map(Invocation::duration).collect();
        let over = durations.iter().filter(|duration| **duration > LAMBDA_TIMEOUT).count();
        let mut handled: Vec<Duration> = measured
            .deliveries
            .iter()
            .filter(|delivery| delivery.outcome.is_ok() && function_of_route(&delivery.route) == run.name)
            .map(|delivery| delivery.at.saturating_duration_since(delivery.accepted_at))
            .collect();
        let process = processes.iter().find(|(name, _)| *name == run.name).map(|(_, process)| process);
        let rss = process.and_then(|process| process.pid()).and_then(peak_rss).map_or("–".to_owned(), mib);
        rows.push(vec![
            run.name.clone(),
            events.to_string(),
            errors.to_string(),
            total.to_string(),
            format!("{:.1}", total as f64 / events.max(1) as f64),
            totals.iter().max().copied().unwrap_or(0).to_string(),
            ms_percentiles(&mut durations),
            over.to_string(),
            ms_percentiles(&mut handled),
            rss,
        ]);
    }
    out.heading(heading);
    out.table(
        &[
            "function",
            "invocations",
            "errors",
            "AWS calls",
            "calls/invocation",
            "max calls in one",
            "invocation ms p50 / p95 / max",
            "over 60 s",
            "event accepted → handled ms p50 / p95 / max",
            "peak RSS (VmHWM)",
        ],
        rows,
    );

    let mut rows = Vec::new();
    for run in &measured.runs {
        let mut kinds: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (index, invocation) in run.invocations.iter().enumerate() {
            let kind = invocation.detail_type.clone().unwrap_or_else(|| "(not an event)".into());
            kinds.entry(kind).or_default().push(index);
        }
        for (kind, indices) in kinds {
            let mut operations: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
            for &index in &indices {
                for (operation, n) in &run.calls[index] {
                    let entry = operations.entry(operation.as_str()).or_default();
                    entry.0 += n;
                    entry.1 = entry.1.max(*n);
                }
            }
            let mut durations: Vec<Duration> = indices.iter().filter_map(|&i| run.invocations[i].duration()).collect();
            let timing = ms_percentiles(&mut durations);
            let events = indices.len();
            if operations.is_empty() {
                operations.insert("(none)", (0, 0));
            }
            for (operation, (total, max)) in operations {
                rows.push(vec![
                    run.name.clone(),
                    kind.clone(),
                    events.to_string(),
                    operation.to_owned(),
                    total.to_string(),
                    format!("{:.2}", total as f64 / events as f64),
                    max.to_string(),
                    timing.clone(),
                ]);
            }
        }
    }
    out.heading(&format!("{heading}: AWS calls per event, by event and operation"));
    out.table(
        &[
            "function",
            "event",
            "events",
            "operation",
            "total",
            "avg/event",
            "max/event",
            "invocation ms p50 / p95 / max",
        ],
        rows,
    );
}

/// The set-up starts no build: every build of the projects is the burst's.
async fn builds_table(
    system: &LocalSystem,
    config: &Config,
    pushes: &[Push],
    out: &mut Report,
) -> Result<(), TaskError> {
    let mut rows = Vec::new();
    let mut total = 0;
    for environment in config.environments() {
        let builds = system.builds(&environment.codebuild_project).await?;
        let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
        for build in &builds {
            *by_status.entry(format!("{:?}", build.status)).or_default() += 1;
        }
        total += builds.len();
        let statuses: Vec<String> = by_status.iter().map(|(status, n)| format!("{status} {n}")).collect();
        rows.push(vec![environment.name.clone(), builds.len().to_string(), statuses.join(", ")]);
    }
    rows.push(vec!["all".into(), total.to_string(), format!("for {} pushes", pushes.len())]);
    out.heading("Builds started (one Terraform run each) against pushes");
    out.table(&["environment", "builds", "outcomes"], rows);
    Ok(())
}

/// Calls per push by operation: the burst's (every function's calls over all its pushes) and an
/// isolated push's (one push, the pipeline quiet before and after).
fn per_push_table(burst: &Measurement, pushes: usize, isolated: &[(Push, Measurement)], out: &mut Report) {
    let burst_totals = burst.totals();
    let mut isolated_totals: BTreeMap<String, u64> = BTreeMap::new();
    for (_, measured) in isolated {
        for (operation, n) in measured.totals() {
            *isolated_totals.entry(operation).or_default() += n;
        }
    }
    let mut operations: Vec<&String> = burst_totals.keys().chain(isolated_totals.keys()).collect();
    operations.sort();
    operations.dedup();
    let per = |n: u64, of: usize| if of == 0 { "–".to_owned() } else { format!("{:.2}", n as f64 / of as f64) };
    let mut rows: Vec<Vec<String>> = operations
        .into_iter()
        .map(|operation| {
            let in_burst = burst_totals.get(operation).copied().unwrap_or(0);
            let alone = isolated_totals.get(operation).copied().unwrap_or(0);
            vec![operation.clone(), in_burst.to_string(), per(in_burst, pushes), per(alone, isolated.len())]
        })
        .collect();
    let untraced = burst.counts.untraced();
    rows.push(vec![
        "(the bench's own in the burst: pushes, settle polling)".into(),
        untraced.values().sum::<u64>().to_string(),
        describe_calls(&untraced),
        String::new(),
    ]);
    let quiet: Vec<String> = isolated.iter().map(|(_, measured)| secs(measured.to_quiet)).collect();
    out.heading(&format!(
        "The functions' AWS calls per push: the burst ({pushes} pushes) and {} isolated pushes (push → quiet: {})",
        isolated.len(),
        if quiet.is_empty() { "–".to_owned() } else { quiet.join(", ") }
    ));
    out.table(&["operation", "calls in the burst", "per push, burst", "per push, isolated"], rows);
}

/// An account limit the calls count against.
struct Limit {
    what: &'static str,
    operations: &'static [&'static str],
    /// Requests per second by default and with Parameter Store's higher throughput; `None`: not
    /// published (docs/performance.md says where each figure comes from).
    default_tps: Option<f64>,
    higher_tps: Option<f64>,
}

const LIMITS: [Limit; 6] = [
    Limit {
        what: "SSM reads (GetParameter, GetParameters, GetParametersByPath: shared)",
        operations: &["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
        default_tps: Some(40.0),
        higher_tps: Some(3_000.0),
    },
    Limit {
        what: "SSM PutParameter",
        operations: &["ssm:PutParameter"],
        default_tps: Some(3.0),
        higher_tps: Some(10.0),
    },
    Limit {
        what: "SSM GetParameterHistory",
        operations: &["ssm:GetParameterHistory"],
        default_tps: None,
        higher_tps: None,
    },
    Limit { what: "ECR DescribeImages", operations: &["ecr:DescribeImages"], default_tps: None, higher_tps: None },
    Limit {
        what: "CodeBuild ListBuildsForProject + BatchGetBuilds",
        operations: &["codebuild:ListBuildsForProject", "codebuild:BatchGetBuilds"],
        default_tps: None,
        higher_tps: None,
    },
    Limit { what: "CodeBuild StartBuild", operations: &["codebuild:StartBuild"], default_tps: None, higher_tps: None },
];

/// calls per push c_k for each limit k; the push rate a limit L_k sustains is L_k / c_k, and
/// the account sustains the smallest of them.
fn extrapolation_table(
    burst: &Measurement,
    pushes: usize,
    isolated: &[(Push, Measurement)],
    sweeps: &[Measurement],
    out: &mut Report,
) {
    let burst_totals = burst.totals();
    let mut isolated_totals: BTreeMap<String, u64> = BTreeMap::new();
    for (_, measured) in isolated {
        for (operation, n) in measured.totals() {
            *isolated_totals.entry(operation).or_default() += n;
        }
    }
    let mut sweep_totals: BTreeMap<String, u64> = BTreeMap::new();
    for measured in sweeps {
        for (operation, n) in measured.totals() {
            *sweep_totals.entry(operation).or_default() += n;
        }
    }
    let per_push = |totals: &BTreeMap<String, u64>, limit: &Limit, of: usize| {
        let calls: u64 = limit.operations.iter().map(|operation| totals.get(*operation).copied().unwrap_or(0)).sum();
        calls as f64 / of.max(1) as f64
    };
    let mut rows = Vec::new();
    for limit in &LIMITS {
        let in_burst = per_push(&burst_totals, limit, pushes);
        let alone = per_push(&isolated_totals, limit, isolated.len());
        // What the sweeps take of the limit on average, every SWEEP_INTERVAL.
        let baseline = per_push(&sweep_totals, limit, sweeps.len()) / SWEEP_INTERVAL.as_secs_f64();
        let rate = |tps: Option<f64>, calls: f64| match tps {
            Some(tps) if tps <= baseline => "0 (the sweeps take it all)".to_owned(),
            Some(tps) if calls > 0.0 => format!("{:.2}", (tps - baseline) / calls),
            Some(_) => "∞".to_owned(),
            None => "not published".to_owned(),
        };
        let tps = |tps: Option<f64>| tps.map_or("?".to_owned(), |tps| format!("{tps}"));
        rows.push(vec![
            limit.what.to_owned(),
            format!("{in_burst:.2}"),
            if isolated.is_empty() { "–".to_owned() } else { format!("{alone:.2}") },
            if sweeps.is_empty() {
                "–".to_owned()
            } else {
                format!("{:.1} ({baseline:.2}/s)", baseline * SWEEP_INTERVAL.as_secs_f64())
            },
            format!("{} / {}", tps(limit.default_tps), tps(limit.higher_tps)),
            format!("{} / {}", rate(limit.default_tps, in_burst), rate(limit.higher_tps, in_burst)),
            if isolated.is_empty() {
                "–".to_owned()
            } else {
                format!("{} / {}", rate(limit.default_tps, alone), rate(limit.higher_tps, alone))
            },
        ]);
    }
    out.heading(&format!(
        "Extrapolation: sustained pushes per second each limit allows ((limit − sweeps every {} s) ÷ calls per push)",
        SWEEP_INTERVAL.as_secs()
    ));
    out.table(
        &[
            "limit",
            "calls/push, burst",
            "calls/push, isolated",
            "calls/sweep (per second)",
            "TPS default / higher throughput",
            "pushes/s, burst-shaped: default / higher",
            "pushes/s, isolated: default / higher",
        ],
        rows,
    );
}

async fn check_end_state(
    system: &LocalSystem,
    config: &Config,
    pushes: &[Push],
    out: &mut Report,
) -> Result<(), TaskError> {
    let mut newest: BTreeMap<String, u64> = BTreeMap::new();
    for push in pushes {
        let tag = newest.entry(service_name(push.service)).or_default();
        *tag = (*tag).max(push.tag);
    }
    let store = SsmParameterStore::new(system.ssm.clone());
    let mut behind = Vec::new();
    for environment in config.environments() {
        let names: Vec<String> =
            newest.keys().map(|service| config.parameter_name(service, &environment.name)).collect();
        let stored = store
            .get_parameters(&names)
            .await
            .map_err(|err| TaskError::Setup(format!("reading the end state: {err}")))?;
        for (service, tag) in &newest {
            let name = config.parameter_name(service, &environment.name);
            let value = stored.get(&name).map(|p| p.value.clone()).unwrap_or_default();
            if value != tag.to_string() {
                behind.push(format!("{name} = {value:?}, expected {tag}"));
            }
        }
    }
    out.heading("End state");
    if behind.is_empty() {
        out.line(format!(
            "every pushed service's newest tag is in all {} environments ({} parameters checked)",
            config.environments().count(),
            newest.len() * config.environments().count()
        ));
    } else {
        out.line(format!("{} parameters do not hold the newest tag, e.g.:", behind.len()));
        for line in behind.iter().take(10) {
            out.line(format!("  {line}"));
        }
    }
    Ok(())
}

fn describe_calls(calls: &BTreeMap<String, u64>) -> String {
    calls.iter().map(|(operation, n)| format!("{operation} {n}")).collect::<Vec<_>>().join(", ")
}

fn shorten(value: &str) -> String {
    if value.len() <= 60 {
        return value.to_owned();
    }
    format!("the document itself ({} bytes)", value.len())
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn secs(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn ms_percentiles(samples: &mut [Duration]) -> String {
    if samples.is_empty() {
        return "–".into();
    }
    samples.sort();
    format!(
        "{:.0} / {:.0} / {:.0}",
        ms(percentile(samples, 0.5)),
        ms(percentile(samples, 0.95)),
        ms(percentile(samples, 1.0))
    )
}

fn ms_stats(samples: &mut [Duration]) -> String {
    if samples.is_empty() {
        return "–".into();
    }
    samples.sort();
    format!("{:.0} ({:.0})", ms(percentile(samples, 0.5)), ms(percentile(samples, 1.0)))
}

/// What the run prints, kept to be written out too.
#[derive(Default)]
struct Report {
    text: String,
}

impl Report {
    fn line(&mut self, line: String) {
        println!("{line}");
        let _ = writeln!(self.text, "{line}");
    }

    fn heading(&mut self, heading: &str) {
        self.line(String::new());
        self.line(format!("### {heading}"));
        self.line(String::new());
    }

    fn table(&mut self, header: &[&str], rows: Vec<Vec<String>>) {
        self.line(format!("| {} |", header.join(" | ")));
        self.line(format!("|{}", "---|".repeat(header.len())));
        for row in rows {
            self.line(format!("| {} |", row.join(" | ")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_configuration_is_valid_and_chains_dev_staging_and_production() {
        let document = config(1_000, 10);
        let text = document.to_string();
        let parsed = Config::from_json(&text).expect("valid");
        assert_eq!(parsed.services().count(), 1_000);
        let environments: Vec<String> = parsed.environments().map(|e| e.name.clone()).collect();
        assert_eq!(environments.len(), 10);
        assert_eq!(environment_names(10)[..3], ["dev", "staging", "prod-use1"]);
        assert_eq!(environment_names(11)[10], "prod-9");
        // Too large for a Lambda function's environment (4 KB), under Linux's 128 KiB per string.
        assert!((100_000..ENV_STRING_LIMIT).contains(&text.len()), "{} bytes", text.len());
    }

    #[test]
    fn pushes_spread_over_services_with_tags_counting_up_per_service() {
        let pushes = pushes(1_000, 1_000);
        let mut last = BTreeMap::new();
        for push in &pushes {
            let previous = last.insert(push.service, push.tag).unwrap_or(0);
            assert_eq!(push.tag, previous + 1);
        }
        assert!((550..700).contains(&last.len()), "{} services", last.len());
        assert_eq!(pushes, super::pushes(1_000, 1_000), "deterministic");
    }

    #[test]
    fn options_parse_and_refuse() {
        let parse = |args: &[&str]| Options::parse(args.iter().map(|a| (*a).to_owned()));
        assert_eq!(parse(&[]).expect("defaults"), Options::default());
        let options = parse(&["--services", "100", "--pushes", "50", "--build-seconds", "0.5", "--inline-config"])
            .expect("parsed");
        assert_eq!((options.services, options.pushes, options.inline_config), (100, 50, true));
        assert_eq!(options.build, Duration::from_millis(500));
        for bad in [&["--services"][..], &["--services", "x"], &["--what", "1"], &["--services", "0"]] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
