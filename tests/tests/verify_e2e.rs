//! Verified deploys end to end: a push is recorded, trigger-deploy runs Terraform, the build
//! deploys to the local ECS (as the team's Terraform would), and trigger-deploy verifies on ECS
//! that the new image rolled out before it writes the release record `/tagrelay/dev/verified`.
//! Everything after a push happens by itself: the local AWS emits ECR, SSM, CodeBuild and ECS
//! events, the local EventBridge routes them through `infra/event-patterns/` to the release
//! functions. The tests make only AWS calls, steer the local AWS (crashing images, lost events,
//! rollout timing) and, for the schedule, send the sweep's "Scheduled Event".

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tagrelay::ports::BuildStatus;
use tagrelay_testbed::local_aws::push_image;
use tagrelay_testbed::local_ecs::{ecr_repository_uri, DEPLOYMENT_STATE_CHANGE};
use tagrelay_testbed::system::LocalSystem;
use tagrelay_tests::events::scheduled;

const PROJECT: &str = "tagrelay-dev";
const CLUSTER: &str = "dev-cluster";
const SERVICE: &str = "my-api";
const RELEASE: &str = "/tagrelay/dev/verified";
const BUILD: Duration = Duration::from_millis(500);
const SETTLE: Duration = Duration::from_secs(60);

/// dev runs my-api on ECS (service and container named after it, circuit breaker and rollback
/// on, as `LocalSystem` sets it up); `verify_timeout` is the config's minimum unless a test says.
fn config(verify_timeout: &str) -> Value {
    json!({
        "environments": { "dev": { "ecs_cluster": CLUSTER, "verify_timeout": verify_timeout } },
        "services": { SERVICE: { "deploy_on_push": ["dev"] } }
    })
}

async fn start(verify_timeout: &str, rollout: Duration) -> LocalSystem {
    let system = LocalSystem::start(&config(verify_timeout), BUILD).await.expect("local system");
    system.aws.set_ecs_behaviour(rollout, Duration::from_secs(1)).await.expect("ECS timing");
    system
}

fn image(tag: &str) -> String {
    format!("{}:{tag}", ecr_repository_uri(SERVICE))
}

async fn running_image(system: &LocalSystem) -> String {
    system.aws.ecs_service_image(CLUSTER, SERVICE, SERVICE).await.expect("the service's image")
}

/// The release records, oldest first (the parameter's history).
async fn releases(system: &LocalSystem) -> Vec<Value> {
    let Ok(history) = system.ssm.get_parameter_history().name(RELEASE).send().await else { return Vec::new() };
    history
        .parameters()
        .iter()
        .map(|p| serde_json::from_str(p.value().unwrap_or_default()).expect("a release record is JSON"))
        .collect()
}

/// trigger-deploy's decision lines (JSON, one a line, as Lambda's JSON log format has them).
fn decisions(system: &LocalSystem) -> Vec<Value> {
    system
        .deploy
        .log_lines()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["decision"].is_string())
        .collect()
}

fn count(lines: &[Value], decision: &str, reason: &str) -> usize {
    lines.iter().filter(|l| l["fields"]["decision"] == decision && l["fields"]["reason"] == reason).count()
}

/// Waits for a decision line (the function's output is drained by another thread).
async fn wait_decision(system: &LocalSystem, decision: &str, reason: &str) -> Value {
    let needle = format!("\"decision\":\"{decision}\"");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = decisions(system);
        if let Some(line) =
            lines.iter().find(|l| l["fields"]["decision"] == decision && l["fields"]["reason"] == reason)
        {
            return line.clone();
        }
        assert!(Instant::now() < deadline, "no {needle} reason={reason} line: {:#?}", system.deploy.log_lines());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn push(system: &LocalSystem, tag: &str) -> String {
    push_image(&system.ecr, SERVICE, tag).await.expect("push")
}

/// Every event routed so far, delivered again (EventBridge delivers at least once), then settled.
async fn redeliver_everything(system: &LocalSystem) {
    let events = system.bridge.events();
    assert!(events.iter().any(|e| e["detail-type"] == DEPLOYMENT_STATE_CHANGE), "ECS events were routed");
    for event in events {
        system.bridge.put_events(event).await.expect("accepted");
    }
    system.wait_settled(SETTLE).await.expect("settles");
}

/// One release record per fingerprint.
fn assert_one_record_per_fingerprint(records: &[Value]) {
    let mut seen = BTreeMap::new();
    for record in records {
        *seen.entry(record["fingerprint"].as_str().unwrap_or_default().to_owned()).or_insert(0) += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "one release record per fingerprint: {records:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_push_is_verified_on_ecs_and_recorded_once_as_the_release() {
    let system = start("1m", Duration::from_millis(1500)).await;
    let digest = push(&system, "1043").await;
    system.wait_settled(SETTLE).await.expect("settles");

    let builds = system.builds(PROJECT).await.expect("builds");
    assert_eq!(builds.len(), 1, "{builds:?}");
    assert_eq!(builds[0].status, BuildStatus::Succeeded);
    assert_eq!(running_image(&system).await, image("1043"), "the service runs the tag");
    let primary = system.aws.wait_ecs_rollout(CLUSTER, SERVICE, SETTLE).await.expect("rollout");
    assert_eq!(primary.rollout_state, "COMPLETED");

    // The build's end found the rollout in progress; its completion event verified it.
    let verifying = wait_decision(&system, "verifying", "rollout_in_progress").await;
    assert_eq!(verifying["level"], "INFO");
    let verified = wait_decision(&system, "verified", "rollout_completed").await;
    assert!(
        verified["fields"]["trigger"].as_str().is_some_and(|t| t.starts_with("ECS SERVICE_DEPLOYMENT_COMPLETED")),
        "{verified}"
    );

    let records = releases(&system).await;
    let [record] = records.as_slice() else { panic!("one release record: {records:#?}") };
    let fingerprint = system.fingerprint("dev").await.expect("fingerprint");
    assert_eq!(record["fingerprint"], fingerprint.as_str());
    assert_eq!(record["tags"], json!({ SERVICE: "1043" }));
    assert_eq!(record["digests"], json!({ SERVICE: digest }));
    assert_eq!(record["build"], builds[0].id.as_str());
    let at = record["verified_at"].as_str().expect("verified_at");
    assert!(at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T', "RFC 3339 UTC, whole seconds: {at}");

    // Its write is a Parameter Store Change like any other, which infra's rule (image-tag
    // parameters by name) routes nowhere.
    assert!(system.bridge.events().iter().any(|e| e["detail"]["name"] == RELEASE), "SSM emitted the change");
    assert!(
        system.bridge.deliveries().iter().all(|d| !format!("{:?}", d.outcome).contains(RELEASE)),
        "no function was invoked for it: {:#?}",
        system.bridge.deliveries()
    );

    // Duplicates of every event: no second build, no second record, nothing verified again.
    let before = decisions(&system);
    redeliver_everything(&system).await;
    assert_eq!(system.builds(PROJECT).await.expect("builds").len(), 1, "a duplicate starts nothing");
    assert_eq!(releases(&system).await.len(), 1, "one release record");
    let after = decisions(&system);
    assert_eq!(count(&after, "verified", "rollout_completed"), count(&before, "verified", "rollout_completed"));
    assert!(after.len() > before.len(), "the duplicates were reconciled");
    assert!(system.bridge.deliveries().iter().all(|d| !d.outcome.is_error()), "no function error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_image_is_rolled_back_held_without_a_retry_loop_and_a_later_push_recovers() {
    let system = start("1m", Duration::from_millis(500)).await;
    push(&system, "1043").await;
    system.wait_settled(SETTLE).await.expect("settles");
    assert_eq!(releases(&system).await.len(), 1, "1043 is released");

    // 1044's tasks never start: Terraform "succeeds", the circuit breaker fails the deployment
    // and rolls the service back to 1043.
    system.aws.set_crashing_images(&["1044"]).await.expect("crashing");
    push(&system, "1044").await;
    system.wait_settled(SETTLE).await.expect("settles");
    let builds = system.builds(PROJECT).await.expect("builds");
    assert_eq!(builds.iter().map(|b| b.status).collect::<Vec<_>>(), [BuildStatus::Succeeded; 2]);
    assert_eq!(running_image(&system).await, image("1043"), "rolled back");

    let held = wait_decision(&system, "hold", "rollout_failed").await;
    assert_eq!(held["level"], "ERROR", "the alarm's metric filter counts it: {held}");
    assert_eq!(held["fields"]["build"], builds[0].id.as_str());
    let detail = held["fields"]["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("my-api: ") && detail.contains("1044"), "says what failed: {detail}");
    assert_eq!(releases(&system).await.len(), 1, "1044 is no release");

    // No retry loop: the schedule sees the same hold, tick after tick, and starts nothing.
    let holds = count(&decisions(&system), "hold", "rollout_failed");
    for tick in 1..=3 {
        system.bridge.put_events(scheduled(&format!("tick-{tick}"))).await.expect("accepted");
        system.wait_settled(SETTLE).await.expect("settles");
    }
    assert_eq!(system.builds(PROJECT).await.expect("builds").len(), 2, "held, not retried");
    assert_eq!(count(&decisions(&system), "hold", "rollout_failed"), holds + 3, "held on every tick");

    // A fixed image deploys and verifies.
    push(&system, "1045").await;
    system.wait_settled(SETTLE).await.expect("settles");
    let builds = system.builds(PROJECT).await.expect("builds");
    assert_eq!(builds.len(), 3, "{builds:?}");
    assert_eq!(running_image(&system).await, image("1045"));
    let records = releases(&system).await;
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!(records[1]["tags"], json!({ SERVICE: "1045" }));
    assert_eq!(records[1]["build"], builds[0].id.as_str());

    // Duplicates of every event, the crash's included, change nothing.
    redeliver_everything(&system).await;
    assert_eq!(system.builds(PROJECT).await.expect("builds").len(), 3, "a duplicate starts nothing");
    let records = releases(&system).await;
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_one_record_per_fingerprint(&records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_ecs_event_is_recovered_by_the_schedule() {
    let system = start("1m", Duration::from_secs(2)).await;
    // Both events of the push's deployment are lost: IN_PROGRESS and COMPLETED.
    system.aws.drop_events(DEPLOYMENT_STATE_CHANGE, 2).await.expect("drop");
    push(&system, "1043").await;
    system.wait_settled(SETTLE).await.expect("settles");

    assert_eq!(running_image(&system).await, image("1043"));
    let primary = system.aws.wait_ecs_rollout(CLUSTER, SERVICE, SETTLE).await.expect("rollout");
    assert_eq!(primary.rollout_state, "COMPLETED", "ECS is done");
    assert!(system.bridge.deliveries().iter().all(|d| d.route != "ecs-deployment-state-change"), "events lost");
    wait_decision(&system, "verifying", "rollout_in_progress").await;
    assert!(releases(&system).await.is_empty(), "nothing told trigger-deploy the rollout completed");

    system.bridge.put_events(scheduled("sweep-1")).await.expect("accepted");
    system.wait_settled(SETTLE).await.expect("settles");
    let verified = wait_decision(&system, "verified", "rollout_completed").await;
    assert_eq!(verified["fields"]["trigger"], "scheduled sweep");
    let records = releases(&system).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["tags"], json!({ SERVICE: "1043" }));
    assert_eq!(system.builds(PROJECT).await.expect("builds").len(), 1);
}

/// Slow: `verify_timeout`'s minimum is a minute, so the rollout here takes a little longer
/// (about 75 s of wall time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_longer_than_verify_timeout_is_held_and_its_late_completion_verifies() {
    const TIMEOUT: Duration = Duration::from_secs(60);
    let system = start("1m", TIMEOUT + Duration::from_secs(6)).await;
    push(&system, "1043").await;

    // Not wait_settled: ECS will move for another minute. Wait for the build's end instead.
    wait_decision(&system, "verifying", "rollout_in_progress").await;
    let builds = system.builds(PROJECT).await.expect("builds");
    assert_eq!(builds.len(), 1);
    let ended = builds[0].ended.expect("the build ended").secs();
    // The deadline is the build's end + verify_timeout (whole seconds).
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let past_deadline = u64::try_from(ended).expect("a time after 1970") + TIMEOUT.as_secs() + 1;
    tokio::time::sleep(Duration::from_secs(past_deadline.saturating_sub(now()))).await;

    system.bridge.put_events(scheduled("sweep-1")).await.expect("accepted");
    let held = wait_decision(&system, "hold", "verify_timed_out").await;
    assert_eq!(held["level"], "ERROR", "{held}");
    assert!(held["fields"]["detail"].as_str().is_some_and(|d| d.starts_with("still rolling out: my-api: ")), "{held}");
    assert!(releases(&system).await.is_empty());

    // The rollout completes after all: its event verifies (the time-out only bounds waiting).
    system.wait_settled(SETTLE).await.expect("settles");
    wait_decision(&system, "verified", "rollout_completed").await;
    assert_eq!(releases(&system).await.len(), 1);
    assert_eq!(system.builds(PROJECT).await.expect("builds").len(), 1, "held, never retried");
}

/// Once ECS's rollback has completed, the failed deployment is drained and the rollback
/// deployment's reason reads "ECS deployment <id> completed.": nothing says a rollback happened.
/// The hold's detail (the alarm's line, and every later sweep's) must not then claim the run
/// never deployed the tag: it says both are possible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_rollback_is_still_explained_as_a_rollback() {
    let system = start("1m", Duration::from_millis(500)).await;
    push(&system, "1043").await;
    system.wait_settled(SETTLE).await.expect("settles");
    system.aws.set_crashing_images(&["1044"]).await.expect("crashing");
    push(&system, "1044").await;
    system.wait_settled(SETTLE).await.expect("settles");

    system.bridge.put_events(scheduled("sweep-1")).await.expect("accepted");
    system.wait_settled(SETTLE).await.expect("settles");
    let last = decisions(&system).into_iter().rev().find(|l| l["fields"]["reason"] == "rollout_failed");
    let detail = last.as_ref().and_then(|l| l["fields"]["detail"].as_str()).unwrap_or_default().to_owned();
    assert!(detail.contains("rolled back"), "{detail}");
    assert!(!detail.ends_with(": the run did not deploy the tag"), "{detail}");
}
