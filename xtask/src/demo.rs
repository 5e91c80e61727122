//! `make demo` (`cargo run -p xtask -- demo`): the whole pipeline on a local AWS, no account
//! needed. The three release functions run behind local Lambda Runtime APIs; the local AWS emits
//! the EventBridge events; the local EventBridge routes them through `infra/event-patterns/`.
//! Three environments in a chain, each on its own local ECS cluster (circuit breaker and rollback
//! on), so every Terraform run is verified there: pushes land in `dev`; a release verified in dev
//! moves to `staging` by itself after a soak (gate alarm `dev-5xx`); a release verified in staging
//! waits in `prod` for `tagrelay approve`; prod rolls back by itself when `prod-5xx` fires. The
//! demo calls ECR and CloudWatch, runs `tagrelay approve`, and sends the sweep's schedule event
//! where AWS's schedule would notice a soak's end, in four acts:
//!
//! 1. five images pushed in quick succession across two services (one run per environment, one
//!    follow-up), then EventBridge redelivers an old push event late; each run is `verifying`
//!    while ECS rolls out and `verified` (a release record) when it completed; the release soaks,
//!    moves to staging, verifies, waits for approval, is approved and reaches prod;
//! 2. an image whose tasks crash on start: Terraform "succeeds", ECS's circuit breaker rolls the
//!    services back, tagrelay holds (`rollout_failed`), the sweep does not retry it, and it never
//!    leaves dev;
//! 3. a fixed image goes the same way to prod;
//! 4. prod's alarm fires right after: prod goes back to its previous release, once.
//!
//! Everything else happens by itself. It prints the timeline and the end state (with
//! `tagrelay status`); everything it starts stops when it ends.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tagrelay_testbed::event_router::DeliveryOutcome;
use tagrelay_testbed::local_aws::{push_image, ACCOUNT_ID, REGION};
use tagrelay_testbed::system::LocalSystem;
use tagrelay_testbed::HarnessError;
use tagrelay_tests::events::{ecr_push, scheduled};

use crate::error::TaskError;

const BUILD: Duration = Duration::from_secs(2);
/// How long an ECS deployment takes to complete, or to fail when its tasks crash.
const ROLLOUT: Duration = Duration::from_secs(2);
const SETTLE: Duration = Duration::from_secs(120);
const CRASHING: &str = "104";
/// The soak into staging.
const SOAK: Duration = Duration::from_secs(5);

fn config() -> Value {
    json!({
        "environments": {
            "dev": { "ecs_cluster": "dev" },
            "staging": { "ecs_cluster": "staging", "promote_from": "dev", "soak": format!("{}s", SOAK.as_secs()),
                         "gate_alarms": ["dev-5xx"] },
            "prod": { "ecs_cluster": "prod", "promote_from": "staging", "approval": true,
                      "rollback_alarms": ["prod-5xx"], "rollback_window": "30m" }
        },
        "services": {
            "my-api": { "deploy_on_push": ["dev"] },
            "worker": { "repository": "team/worker", "deploy_on_push": ["dev"] }
        }
    })
}

type Timeline = Vec<(Duration, String)>;

/// What AWS does between the demo's steps: the soak ends and the schedule notices it, the
/// release moves to staging and verifies there, and waits for approval for prod.
async fn soak_and_staging(
    system: &LocalSystem,
    start: Instant,
    timeline: &mut Timeline,
    id: &str,
) -> Result<(), TaskError> {
    tokio::time::sleep(SOAK + Duration::from_secs(1)).await;
    timeline.push((
        start.elapsed(),
        format!("EventBridge schedule: the sweep notices the {}s soak has passed", SOAK.as_secs()),
    ));
    system.bridge.put_events(scheduled(id)).await?;
    system.wait_settled(SETTLE).await?;
    Ok(())
}

/// `tagrelay approve --env prod`, as an operator runs it.
async fn approve(
    system: &LocalSystem,
    start: Instant,
    timeline: &mut Timeline,
    comment: &str,
) -> Result<(), TaskError> {
    timeline.push((start.elapsed(), format!("person $ tagrelay approve --env prod --comment '{comment}'")));
    run_cli(system, &["approve", "--env", "prod", "--comment", comment, "--by", "demo"])?;
    system.wait_settled(SETTLE).await?;
    Ok(())
}

pub async fn run() -> Result<(), TaskError> {
    let began = Instant::now();
    println!("starting the local AWS, the local ECS, the local EventBridge and the three functions (make lambdas-local's builds)…");
    let system = LocalSystem::start(&config(), BUILD).await?;
    system.aws.set_ecs_behaviour(ROLLOUT, ROLLOUT).await?;
    println!(
        "CodeBuild projects tagrelay-dev, -staging and -prod: concurrent_build_limit 1, a Terraform run takes {}s\n\
         ECS clusters dev, staging and prod: services my-api and worker (circuit breaker and rollback on), a rollout takes {}s\n\
         chain: dev → staging (soak {}s, gate alarm dev-5xx) → prod (approval; rollback on alarm prod-5xx)\n",
        BUILD.as_secs(),
        ROLLOUT.as_secs(),
        SOAK.as_secs()
    );

    let start = Instant::now();
    let mut timeline: Vec<(Duration, String)> = Vec::new();
    let act = |timeline: &mut Vec<(Duration, String)>, title: &str| {
        timeline.push((start.elapsed(), format!("── {title}")));
    };

    act(&mut timeline, "1. five pushes in quick succession, then through the chain to prod");
    let mut first_push = None;
    for (repository, tag) in
        [("my-api", "101"), ("team/worker", "201"), ("my-api", "102"), ("team/worker", "202"), ("my-api", "103")]
    {
        let digest = push_image(&system.ecr, repository, tag).await?;
        first_push.get_or_insert((repository, tag, digest));
        timeline.push((start.elapsed(), format!("CI     push {repository}:{tag}")));
    }
    system.wait_settled(SETTLE).await?;
    // EventBridge delivers at least once: my-api:101's event arrives again, late.
    if let Some((repository, tag, digest)) = first_push {
        timeline.push((start.elapsed(), format!("EventBridge redelivers {repository}:{tag}'s push event, late")));
        system.bridge.put_events(ecr_push(repository, tag, &digest)).await?;
        system.wait_settled(SETTLE).await?;
    }
    soak_and_staging(&system, start, &mut timeline, "demo-soak-1").await?;
    approve(&system, start, &mut timeline, "first release").await?;

    act(&mut timeline, &format!("2. my-api:{CRASHING}, whose tasks crash on start"));
    system.aws.set_crashing_images(&[CRASHING]).await?;
    push_image(&system.ecr, "my-api", CRASHING).await?;
    timeline.push((start.elapsed(), format!("CI     push my-api:{CRASHING}")));
    system.wait_settled(SETTLE).await?;
    timeline.push((start.elapsed(), "EventBridge schedule: the sweep".into()));
    system.bridge.put_events(scheduled("demo-sweep")).await?;
    system.wait_settled(SETTLE).await?;

    act(&mut timeline, "3. the fix, through the chain");
    push_image(&system.ecr, "my-api", "105").await?;
    timeline.push((start.elapsed(), "CI     push my-api:105".into()));
    system.wait_settled(SETTLE).await?;
    soak_and_staging(&system, start, &mut timeline, "demo-soak-2").await?;
    approve(&system, start, &mut timeline, "the fix").await?;

    act(&mut timeline, "4. prod's alarm fires right after");
    timeline.push((start.elapsed(), "CloudWatch prod-5xx: OK → ALARM".into()));
    system.aws.set_alarm_state("prod-5xx", "ALARM", "5xx above threshold").await?;
    system.wait_settled(SETTLE).await?;
    timeline.push((start.elapsed(), "EventBridge schedule: the sweep (the alarm is still in ALARM)".into()));
    system.bridge.put_events(scheduled("demo-sweep-after-rollback")).await?;
    system.wait_settled(SETTLE).await?;

    // A hold's detail is said once; the same hold seen again by the next event says so.
    let mut explained = HashSet::new();
    for delivery in system.bridge.deliveries() {
        let at = delivery.at.saturating_duration_since(start);
        match &delivery.outcome {
            DeliveryOutcome::Ok { response } => {
                timeline.push((at, describe(&delivery.route, response, &mut explained)))
            }
            other => timeline.push((at, format!("{:<6} {other:?}", delivery.route))),
        }
    }
    timeline.sort_by_key(|(at, _)| *at);
    println!("timeline");
    for (at, line) in &timeline {
        println!("  {:>6.2}s  {line}", at.as_secs_f64());
    }

    println!("\nend state");
    for environment in system.config.chain() {
        let project = &environment.codebuild_project;
        let builds = system.builds(project).await?;
        let current = system.fingerprint(&environment.name).await?;
        let deployed = builds.iter().find(|b| b.fingerprint.is_some());
        let in_sync = deployed
            .is_some_and(|b| b.fingerprint.as_deref() == Some(current.as_str()) && b.status.as_str() == "SUCCEEDED");
        println!(
            "  {:<8} {} builds, at most {} at a time; newest {}; {}",
            environment.name,
            builds.len(),
            max_concurrent(&system, project).await?,
            deployed.map(|b| format!("{} {}", short(&b.id), b.status)).unwrap_or_else(|| "none".into()),
            if in_sync { "in sync with its parameters" } else { "BEHIND its parameters" }
        );
        for name in system.config.parameter_names(&environment.name) {
            let parameter = system.ssm.get_parameter().name(&name).send().await.ok();
            let shown = parameter
                .and_then(|p| {
                    p.parameter().map(|p| format!("{} (version {})", p.value().unwrap_or_default(), p.version()))
                })
                .unwrap_or_else(|| "(not set)".into());
            println!("           {name:<38} {shown}");
        }
        for ecs in system.ecs.iter().filter(|e| e.environment == environment.name) {
            for target in &ecs.targets {
                let image = system.aws.ecs_service_image(&ecs.cluster, &target.service, &target.container).await?;
                let deployments = system.aws.ecs_deployments(&ecs.cluster, &target.service).await?;
                let state = deployments.iter().find(|d| d.status == "PRIMARY").map(|d| d.rollout_state.clone());
                println!(
                    "           ECS {:<34} runs {} ({})",
                    format!("{}/{}", ecs.cluster, target.service),
                    without_registry(&image),
                    state.unwrap_or_default()
                );
            }
        }
        let record = environment.release_parameter();
        match system.ssm.get_parameter_history().name(&record).send().await {
            Ok(history) => {
                let versions = history.parameters();
                println!("           {record} ({} releases), newest:", versions.len());
                if let Some(newest) = versions.last() {
                    println!("             {}", newest.value().unwrap_or_default());
                }
            }
            Err(_) => println!("           {record}: no release yet"),
        }
    }
    operator_status(&system)?;
    println!(
        "\nthe demo took {:.0}s; stopping the functions, the local EventBridge and the local AWS",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What an operator sees: the `tagrelay` command (built next to this binary by `make demo`)
/// against the same local AWS.
fn operator_status(system: &LocalSystem) -> Result<(), TaskError> {
    println!("\n$ tagrelay status");
    run_cli(system, &["status"])
}

/// Runs the `tagrelay` command against the local AWS; its output goes to the demo's.
fn run_cli(system: &LocalSystem, args: &[&str]) -> Result<(), TaskError> {
    let cli =
        std::env::current_exe().map_err(HarnessError::io("finding the demo's own path"))?.with_file_name("tagrelay");
    if !cli.is_file() {
        return Err(TaskError::CliNotBuilt { path: cli });
    }
    let status = std::process::Command::new(&cli)
        .args(args)
        .envs(system.aws.env())
        .env("TAGRELAY_CONFIG", config().to_string())
        .status()
        .map_err(HarnessError::io("running tagrelay"))?;
    if !status.success() {
        return Err(TaskError::CliFailed { status });
    }
    Ok(())
}

/// One timeline line from a function's response.
fn describe(route: &str, response: &Value, explained: &mut HashSet<String>) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    if route == "schedule-record" {
        let writes: Vec<String> = response["services"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["decisions"].as_array().cloned().unwrap_or_default())
            .filter(|d| d["decision"] == "write")
            .map(|d| format!("{} = {}", text(&d["parameter"]), text(&d["to"])))
            .collect();
        let said = if writes.is_empty() { "no newer image to record".to_owned() } else { writes.join(", ") };
        return format!("record-image-tag  scheduled sweep: {said}");
    }
    if route == "ecr-image-action" {
        let what = format!("{}:{}", text(&response["repository"]), text(&response["tag"]));
        if let Some(reason) = response["skipped"].as_str() {
            return format!("record-image-tag  {what}: skip ({reason})");
        }
        let decisions: Vec<String> = response["decisions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| match d["decision"].as_str() {
                Some("write") => format!("{} = {}", text(&d["parameter"]), text(&d["to"])),
                _ => format!("{} skip ({})", text(&d["environment"]), text(&d["reason"])),
            })
            .collect();
        return format!("record-image-tag  {what}: {}", decisions.join(", "));
    }
    if route.contains("promote") || route == "alarm-state-change" {
        return describe_promote(response);
    }
    let trigger = text(&response["trigger"]);
    // "build <arn> ended SUCCEEDED" reads better with a short build id, and
    // "ECS SERVICE_DEPLOYMENT_COMPLETED of dev/my-api (ecs-svc/…)" without the deployment id.
    let trigger = match trigger.strip_prefix("build ").and_then(|rest| rest.split_once(" ended ")) {
        Some((id, status)) => format!("build {} ended {status}", short(id)),
        None if trigger.starts_with("ECS ") => trigger.split(" (").next().unwrap_or_default().to_owned(),
        None => trigger,
    };
    if let Some(reason) = response["ignored"].as_str() {
        return format!("trigger-deploy    {trigger}: ignored ({reason})");
    }
    let decisions: Vec<String> = response["environments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let build = e["build"].as_str().map(short).unwrap_or_default();
            match e["decision"].as_str() {
                Some("start") => format!("{}: START {build} ({})", text(&e["environment"]), text(&e["reason"])),
                Some("wait") => format!("{}: coalesced, waits for {build}", text(&e["environment"])),
                Some("verifying") => format!("{}: verifying, ECS rolls out {build}", text(&e["environment"])),
                Some("verified") => format!(
                    "{}: VERIFIED {build} ({}), release record version {}",
                    text(&e["environment"]),
                    text(&e["basis"]),
                    e["version"]
                ),
                Some("hold") if e["detail"].is_string() => {
                    let detail = without_registry(&text(&e["detail"]));
                    let key = format!("{} {build} {detail}", text(&e["environment"]));
                    let said = if explained.insert(key) { detail } else { "still, as above".to_owned() };
                    format!("{}: HOLD {build} ({}): {said}", text(&e["environment"]), text(&e["reason"]))
                }
                Some("hold") => format!("{}: HOLD {build} ({})", text(&e["environment"]), text(&e["status"])),
                Some(other) => format!("{}: {other}", text(&e["environment"])),
                None => String::new(),
            }
        })
        .collect();
    format!("trigger-deploy    {trigger}: {}", decisions.join(", "))
}

/// One timeline line from promote's response: per environment, the rollback and promotion
/// decisions and what was written.
fn describe_promote(response: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let trigger = text(&response["trigger"]);
    if let Some(reason) = response["ignored"].as_str() {
        return format!("promote           {trigger}: ignored ({reason})");
    }
    let decisions: Vec<String> = response["environments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let mut said = Vec::new();
            let rollback = &e["rollback"];
            match rollback["decision"].as_str() {
                Some("rollback") => said.push(format!(
                    "ROLLBACK to release {} ({}), recorded first",
                    rollback["release"],
                    text(&rollback["record"]["reason"])
                )),
                Some("rollback_done") => {
                    said.push(format!("already rolled back ({} still in ALARM)", text(&rollback["alarm"])))
                }
                Some("healthy") | None => {}
                Some(other) => said.push(other.to_owned()),
            }
            let promotion = &e["promotion"];
            match promotion["decision"].as_str() {
                Some("promote") => {
                    said.push(format!("PROMOTE release {} of {}", promotion["release"], text(&e["upstream"])))
                }
                Some("soaking") => said.push(format!("soaking until {}", text(&promotion["until"]))),
                Some("awaiting_approval") => said.push(format!(
                    "AWAITING APPROVAL of release {} of {}",
                    promotion["release"],
                    text(&e["upstream"])
                )),
                Some("blocked") => said.push(format!("blocked by alarm {}", text(&promotion["alarm"]))),
                Some(other) => said.push(other.replace('_', " ")),
                None => {}
            }
            let writes: Vec<String> = e["writes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|w| w["decision"] == "write")
                .map(|w| format!("{} = {}", text(&w["parameter"]), text(&w["to"])))
                .collect();
            if !writes.is_empty() {
                said.push(writes.join(", "));
            }
            format!("{}: {}", text(&e["environment"]), said.join("; "))
        })
        .collect();
    format!("promote           {trigger}: {}", decisions.join(", "))
}

/// An image reference without the local registry's host (`my-api:103`).
fn without_registry(text: &str) -> String {
    text.replace(&format!("{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/"), "")
}

/// `tagrelay-dev:6f1c…` for a build id or ARN.
fn short(id: &str) -> String {
    let id = id.rsplit('/').next().unwrap_or(id);
    match id.split_once(':') {
        Some((project, uuid)) => format!("{project}:{}", uuid.chars().take(8).collect::<String>()),
        None => id.to_owned(),
    }
}

/// The most builds of `project` that ran at the same time, from their start and end times.
async fn max_concurrent(system: &LocalSystem, project: &str) -> Result<usize, HarnessError> {
    let listed =
        system.codebuild.list_builds_for_project().project_name(project).send().await.map_err(|err| {
            HarnessError::Aws { operation: "codebuild:ListBuildsForProject", message: err.to_string() }
        })?;
    if listed.ids().is_empty() {
        return Ok(0);
    }
    let builds = system
        .codebuild
        .batch_get_builds()
        .set_ids(Some(listed.ids().to_vec()))
        .send()
        .await
        .map_err(|err| HarnessError::Aws { operation: "codebuild:BatchGetBuilds", message: err.to_string() })?;
    let spans: Vec<(f64, f64)> = builds
        .builds()
        .iter()
        .filter_map(|b| Some((b.start_time()?.as_secs_f64(), b.end_time().map_or(f64::MAX, |t| t.as_secs_f64()))))
        .collect();
    Ok(spans.iter().map(|(start, _)| spans.iter().filter(|(s, e)| s <= start && start < e).count()).max().unwrap_or(0))
}
