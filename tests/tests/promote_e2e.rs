//! Gated promotion and automatic rollback end to end: pushes land in dev, trigger-deploy
//! verifies them on the local ECS and writes the release records, and promote moves them on
//! (dev → staging after a soak and behind a gate alarm, staging → prod after an approval) and
//! rolls prod back when its alarm fires. Everything after a push happens by itself through the
//! local EventBridge and the optimised binaries; the tests make AWS calls, steer the local AWS
//! (alarm states, crashing images, lost events) and send the schedule's "Scheduled Event" where
//! AWS's schedule would notice a soak's end.

use std::time::{Duration, Instant, SystemTime};

use aws_smithy_types::DateTime;
use serde_json::{json, Value};
use tagrelay::aws::{cloudwatch::CloudWatchAlarms, ecr::EcrImageRegistry, ssm::SsmParameterStore};
use tagrelay::promote::Promoter;
use tagrelay::timestamp;
use tagrelay_testbed::local_aws::push_image;
use tagrelay_testbed::local_ecs::ecr_repository_uri;
use tagrelay_testbed::system::LocalSystem;
use tagrelay_tests::events::scheduled;

const SERVICE: &str = "my-api";
const BUILD: Duration = Duration::from_millis(500);
const SETTLE: Duration = Duration::from_secs(60);
/// The soak into staging: short, but long enough to see it hold.
const SOAK: Duration = Duration::from_secs(3);

fn parameter(environment: &str) -> String {
    format!("/{SERVICE}/{environment}/docker-image-tag")
}

async fn start(config: Value) -> LocalSystem {
    let system = LocalSystem::start(&config, BUILD).await.expect("local system");
    system.aws.set_ecs_behaviour(Duration::from_millis(1200), Duration::from_secs(1)).await.expect("ECS timing");
    system
}

async fn value(system: &LocalSystem, name: &str) -> Option<String> {
    let answer = system.ssm.get_parameter().name(name).send().await.ok()?;
    answer.parameter().and_then(|p| p.value()).map(str::to_owned)
}

/// Every value the parameter held, oldest first.
async fn values(system: &LocalSystem, name: &str) -> Vec<String> {
    let Ok(history) = system.ssm.get_parameter_history().name(name).send().await else { return Vec::new() };
    history.parameters().iter().map(|p| p.value().unwrap_or_default().to_owned()).collect()
}

/// The tags of the releases recorded in `environment`, oldest first.
async fn released(system: &LocalSystem, environment: &str) -> Vec<String> {
    let records = values(system, &format!("/tagrelay/{environment}/verified")).await;
    records
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(r).ok())
        .map(|r| r["tags"][SERVICE].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn push(system: &LocalSystem, tag: &str) {
    push_image(&system.ecr, SERVICE, tag).await.expect("push");
}

async fn settle(system: &LocalSystem) {
    system.wait_settled(SETTLE).await.expect("settles");
}

/// The schedule's sweep, as the rule sends it every few minutes, then settled.
async fn sweep(system: &LocalSystem, id: &str) {
    system.bridge.put_events(scheduled(id)).await.expect("accepted");
    settle(system).await;
}

/// promote's decision lines for `environment`.
fn promote_decisions(system: &LocalSystem, environment: &str) -> Vec<Value> {
    system
        .promote
        .log_lines()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["environment"] == environment && line["fields"]["decision"].is_string())
        .collect()
}

fn last_decision(system: &LocalSystem, environment: &str) -> String {
    let lines = promote_decisions(system, environment);
    lines.last().map(|l| l["fields"]["decision"].as_str().unwrap_or_default().to_owned()).unwrap_or_default()
}

fn promoter(
    system: &LocalSystem,
    sdk: &aws_config::SdkConfig,
) -> Promoter<SsmParameterStore, EcrImageRegistry, CloudWatchAlarms> {
    Promoter::new(
        system.config.clone(),
        SsmParameterStore::new(system.ssm.clone()),
        EcrImageRegistry::new(system.ecr.clone()),
        CloudWatchAlarms::from_sdk_config(sdk),
    )
}

/// Approves what waits to enter `environment`, as `tagrelay approve` does, then settles.
async fn approve(system: &LocalSystem, environment: &str) {
    let sdk = system.aws.sdk_config().await;
    let promoter = promoter(system, &sdk);
    let target = system.config.environment(environment).expect("configured").clone();
    promoter.approve(&target, "e2e", "looks good", DateTime::from(SystemTime::now())).await.expect("something waits");
    settle(system).await;
}

/// Waits out the soak of the newest staging candidate, then lets the schedule notice.
async fn after_the_soak(system: &LocalSystem, id: &str) {
    tokio::time::sleep(SOAK + Duration::from_millis(1100)).await;
    sweep(system, id).await;
}

/// dev → staging (soak, gate `dev-5xx`) → prod (approval, rollback on `prod-5xx`), each on its
/// own ECS cluster.
fn chain() -> Value {
    json!({
        "environments": {
            "dev": { "ecs_cluster": "dev-cluster", "verify_timeout": "1m" },
            "staging": { "ecs_cluster": "staging-cluster", "verify_timeout": "1m", "promote_from": "dev",
                         "soak": format!("{}s", SOAK.as_secs()), "gate_alarms": ["dev-5xx"] },
            "prod": { "ecs_cluster": "prod-cluster", "verify_timeout": "1m", "promote_from": "staging",
                      "approval": true, "rollback_alarms": ["prod-5xx"], "rollback_window": "10m" }
        },
        "services": { SERVICE: { "deploy_on_push": ["dev"] } }
    })
}

/// One push all the way to prod: dev verifies, staging soaks then takes it and verifies, prod
/// waits for the approval, then takes it and verifies.
async fn release_to_prod(system: &LocalSystem, tag: &str, round: &str) {
    push(system, tag).await;
    settle(system).await;
    assert_eq!(released(system, "dev").await.last().map(String::as_str), Some(tag), "dev verified {tag}");
    assert_ne!(value(system, &parameter("staging")).await.as_deref(), Some(tag), "staging waits for the soak");
    assert_eq!(last_decision(system, "staging"), "soaking");

    after_the_soak(system, &format!("{round}-soak")).await;
    assert_eq!(value(system, &parameter("staging")).await.as_deref(), Some(tag), "promoted after the soak");
    assert_eq!(released(system, "staging").await.last().map(String::as_str), Some(tag), "staging verified {tag}");
    assert_eq!(last_decision(system, "prod"), "awaiting_approval");
    assert_ne!(value(system, &parameter("prod")).await.as_deref(), Some(tag), "prod waits for the approval");

    approve(system, "prod").await;
    assert_eq!(value(system, &parameter("prod")).await.as_deref(), Some(tag), "promoted once approved");
    assert_eq!(released(system, "prod").await.last().map(String::as_str), Some(tag), "prod verified {tag}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_move_through_soak_and_approval_and_prod_rolls_back_once_on_its_alarm() {
    let system = start(chain()).await;
    release_to_prod(&system, "1043", "first").await;

    // Every event delivered again (at least once): nothing moves, nothing is written.
    let before = (values(&system, &parameter("staging")).await, values(&system, &parameter("prod")).await);
    for event in system.bridge.events() {
        system.bridge.put_events(event).await.expect("accepted");
    }
    settle(&system).await;
    let after = (values(&system, &parameter("staging")).await, values(&system, &parameter("prod")).await);
    assert_eq!(before, after, "duplicates change nothing");

    release_to_prod(&system, "1044", "second").await;

    // prod's alarm fires, and its event is lost: the schedule notices, prod goes back to 1043.
    system.aws.drop_events("CloudWatch Alarm State Change", 1).await.expect("drop");
    system.aws.set_alarm_state("prod-5xx", "ALARM", "5xx above threshold").await.expect("alarm");
    settle(&system).await;
    assert_eq!(value(&system, &parameter("prod")).await.as_deref(), Some("1044"), "the event was lost");
    sweep(&system, "rollback").await;
    assert_eq!(value(&system, &parameter("prod")).await.as_deref(), Some("1043"), "rolled back");
    assert_eq!(released(&system, "prod").await.last().map(String::as_str), Some("1043"), "and verified again");
    let rollbacks = values(&system, "/tagrelay/prod/rollback").await;
    assert_eq!(rollbacks.len(), 1, "{rollbacks:?}");
    let record: Value = serde_json::from_str(&rollbacks[0]).expect("JSON");
    assert_eq!((record["from"][SERVICE].as_str(), record["to"][SERVICE].as_str()), (Some("1044"), Some("1043")));
    assert_eq!((record["alarm"].as_str(), record["by"].as_str()), (Some("prod-5xx"), Some("promote")));

    // Still in ALARM, swept again and the alarm's change delivered twice: once per release.
    system.aws.set_alarm_state("prod-5xx", "ALARM", "still failing").await.expect("same state: no event");
    sweep(&system, "after-rollback").await;
    for event in system.bridge.events().into_iter().filter(|e| e["source"] == "aws.cloudwatch") {
        system.bridge.put_events(event).await.expect("accepted");
    }
    settle(&system).await;
    assert_eq!(values(&system, "/tagrelay/prod/rollback").await.len(), 1, "one rollback");
    assert_eq!(values(&system, &parameter("prod")).await, ["initial", "1043", "1044", "1043"]);
    // staging's 1044 was verified before the rollback: the rollback wins over it (and prod's own
    // alarm, still in ALARM, would block anything newer).
    assert_eq!(last_decision(&system, "prod"), "up_to_date", "1044 does not come back into prod");
    let prod = promote_decisions(&system, "prod");
    assert!(prod.iter().any(|l| l["fields"]["decision"] == "rollback_done"), "{prod:#?}");
    assert!(system.bridge.deliveries().iter().all(|d| !d.outcome.is_dead_lettered()), "nothing dead-lettered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_in_alarm_holds_promotion_and_a_crash_looping_release_never_leaves_dev() {
    let mut config = chain();
    config["environments"].as_object_mut().expect("object").remove("prod");
    let system = start(config).await;

    system.aws.set_alarm_state("dev-5xx", "ALARM", "dev errors").await.expect("alarm");
    push(&system, "1043").await;
    settle(&system).await;
    assert_eq!(released(&system, "dev").await, ["1043"]);
    tokio::time::sleep(SOAK + Duration::from_millis(1100)).await;
    sweep(&system, "blocked").await;
    assert_eq!(value(&system, &parameter("staging")).await.as_deref(), Some("initial"), "blocked by the gate");
    assert_eq!(last_decision(&system, "staging"), "blocked");

    // Back to OK: the soak restarts from that change, not from 1043's verification.
    let seen = promote_decisions(&system, "staging").len();
    let recovered = DateTime::from(SystemTime::now()).secs();
    system.aws.set_alarm_state("dev-5xx", "OK", "dev healthy").await.expect("ok");
    settle(&system).await;
    // promote decided once, on the alarm's event: soaking until the change + the soak (1043 was
    // verified long enough ago that its own soak is over).
    let after: Vec<Value> = promote_decisions(&system, "staging").split_off(seen);
    assert_eq!(after.len(), 1, "{after:#?}");
    assert_eq!(after[0]["fields"]["decision"], "soaking", "{after:#?}");
    let until = after[0]["fields"]["until"].as_str().unwrap_or_default().to_owned();
    let soak = i64::try_from(SOAK.as_secs()).expect("small");
    assert!(until >= timestamp::format(DateTime::from_secs(recovered + soak)), "until {until}");
    assert_eq!(value(&system, &parameter("staging")).await.as_deref(), Some("initial"));
    after_the_soak(&system, "recovered").await;
    assert_eq!(value(&system, &parameter("staging")).await.as_deref(), Some("1043"), "promoted after the new soak");

    // INSUFFICIENT_DATA is no alarm: it neither blocks nor restarts the soak.
    system.aws.set_alarm_state("dev-5xx", "INSUFFICIENT_DATA", "no data").await.expect("no data");

    // 1044 crash-loops in dev: ECS rolls it back, it is never verified, it never moves on.
    system.aws.set_crashing_images(&[&format!("{}:1044", ecr_repository_uri(SERVICE))]).await.expect("crash");
    push(&system, "1044").await;
    settle(&system).await;
    after_the_soak(&system, "crash-loop").await;
    assert_eq!(released(&system, "dev").await, ["1043"], "1044 never verified");
    assert_eq!(values(&system, &parameter("staging")).await, ["initial", "1043"], "nothing else promoted");

    // 1045 is good; the event of its release record is lost: the schedule moves it on anyway.
    // Its build starting means the image-tag change was delivered; the next "Parameter Store
    // Change" is the release record's (the build and the rollout take ~2 s).
    let builds = system.builds("tagrelay-dev").await.expect("builds").len();
    push(&system, "1045").await;
    let deadline = Instant::now() + SETTLE;
    while system.builds("tagrelay-dev").await.expect("builds").len() == builds {
        assert!(Instant::now() < deadline, "1045's build started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    system.aws.drop_events("Parameter Store Change", 1).await.expect("drop");
    settle(&system).await;
    assert_eq!(last_decision(&system, "staging"), "up_to_date", "promote never heard of 1045's release");
    assert_eq!(released(&system, "dev").await, ["1043", "1045"]);
    after_the_soak(&system, "recovers").await;
    assert_eq!(value(&system, &parameter("staging")).await.as_deref(), Some("1045"));
    assert_eq!(released(&system, "staging").await, ["1043", "1045"]);
}
