//! End to end through the event routing: the local AWS emits the events, the local EventBridge
//! routes them through `infra/event-patterns/` to the release functions, and CodeBuild runs
//! are observed in the local AWS. Only AWS calls are made by the tests.

use std::time::Duration;
use tagrelay::deploy::fingerprint::of_state;

use serde_json::{json, Value};
use tagrelay::ports::BuildStatus;
use tagrelay_testbed::event_router::DeliveryOutcome;
use tagrelay_testbed::local_aws::{push_image, put_parameter};
use tagrelay_testbed::system::LocalSystem;
use tagrelay_tests::events::{ecr_push, scheduled};

const DEV: &str = "tagrelay-dev";
const SETTLE: Duration = Duration::from_secs(60);

fn config() -> Value {
    json!({
        "environments": { "dev": {} },
        "services": {
            "my-api": { "deploy_on_push": ["dev"] },
            "worker": { "deploy_on_push": ["dev"] }
        }
    })
}

async fn put(system: &LocalSystem, name: &str, value: &str) {
    put_parameter(&system.ssm, name, value).await.expect("PutParameter");
}

async fn wait_running(system: &LocalSystem) {
    for _ in 0..100 {
        if system.builds(DEV).await.expect("builds").iter().any(|b| b.status == BuildStatus::InProgress) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no build started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_while_a_build_runs_yields_exactly_one_follow_up_with_the_final_fingerprint() {
    let system = LocalSystem::start(&config(), Duration::from_secs(3)).await.expect("local system");
    put(&system, "/my-api/dev/docker-image-tag", "1").await;
    wait_running(&system).await;

    for (name, value) in [("my-api", "2"), ("worker", "a"), ("my-api", "3"), ("worker", "b"), ("my-api", "4")] {
        put(&system, &format!("/{name}/dev/docker-image-tag"), value).await;
    }
    system.wait_settled(SETTLE).await.expect("settles");

    let builds = system.builds(DEV).await.expect("builds");
    assert_eq!(builds.len(), 2, "the first run and exactly one follow-up: {builds:?}");
    let final_state = system.fingerprint("dev").await.expect("fingerprint");
    assert_eq!(
        final_state,
        of_state("/my-api/dev/docker-image-tag=4@4b227777,/worker/dev/docker-image-tag=2@3e23e816")
    );
    assert_eq!(builds[0].fingerprint.as_deref(), Some(final_state.as_str()), "the follow-up deploys the final state");
    assert!(builds.iter().all(|b| b.status == BuildStatus::Succeeded), "no run failed on the lock: {builds:?}");
    assert!(system.bridge.deliveries().iter().all(|d| !d.outcome.is_error()), "no function error");

    // A duplicate of a change event starts nothing.
    let duplicate = system
        .bridge
        .events()
        .into_iter()
        .rev()
        .find(|e| e["detail-type"] == "Parameter Store Change")
        .expect("a change event was routed");
    system.bridge.put_events(duplicate).await.expect("accepted");
    system.wait_settled(SETTLE).await.expect("settles");
    assert_eq!(system.builds(DEV).await.expect("builds").len(), 2, "a duplicate starts nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_state_is_not_retried_until_the_next_change() {
    let system = LocalSystem::start(&config(), Duration::from_millis(500)).await.expect("local system");
    system.aws.set_build_outcomes(DEV, Duration::from_millis(500), &["FAILED"]).await.expect("behaviour");
    put(&system, "/my-api/dev/docker-image-tag", "1").await;
    system.wait_settled(SETTLE).await.expect("settles");
    let builds = system.builds(DEV).await.expect("builds");
    assert_eq!(builds.iter().map(|b| b.status).collect::<Vec<_>>(), vec![BuildStatus::Failed]);

    // The sweep sees the failed state and holds it.
    system.bridge.put_events(scheduled("sweep-1")).await.expect("accepted");
    system.wait_settled(SETTLE).await.expect("settles");
    assert_eq!(system.builds(DEV).await.expect("builds").len(), 1, "held, not retried");
    // The function's stdout is drained by another thread: wait for the line rather than race it.
    let held = system.deploy.wait_for_log_line("\"decision\":\"hold\"", Duration::from_secs(5)).await;
    assert!(
        held.is_some_and(|l| l.contains("\"ERROR\"")),
        "an ERROR line with decision=hold: {:?}",
        system.deploy.log_lines()
    );

    put(&system, "/my-api/dev/docker-image-tag", "2").await;
    system.wait_settled(SETTLE).await.expect("settles");
    let builds = system.builds(DEV).await.expect("builds");
    assert_eq!(builds.len(), 2, "the next change starts a run");
    assert_eq!(builds[0].status, BuildStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_cannot_be_parsed_ends_up_in_the_dead_letter_queue() {
    let system = LocalSystem::start(&config(), Duration::from_millis(500)).await.expect("local system");
    let broken = json!({
        "version": "0", "id": "broken-1", "detail-type": "Parameter Store Change", "source": "aws.ssm",
        "account": "123456789012", "time": "2026-11-28T08:00:00Z", "region": "us-east-1", "resources": [],
        // Passes the rule (one of our parameters, a value change), but its description is no string.
        "detail": { "operation": "Update", "name": "/my-api/dev/docker-image-tag", "type": "String", "description": 7 }
    });
    system.bridge.put_events(broken.clone()).await.expect("accepted");
    system.wait_settled(SETTLE).await.expect("settles");

    let attempts = system.bridge.deliveries().iter().filter(|d| d.outcome.is_error()).count();
    assert_eq!(attempts, 3, "tried once and retried twice");
    let queue = &system.dead_letter_queues[1].1;
    let received = system
        .sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .expect("ReceiveMessage");
    let messages = received.messages();
    assert_eq!(messages.len(), 1);
    let body: Value = serde_json::from_str(messages[0].body().unwrap_or_default()).expect("the event, unchanged");
    assert_eq!(body, broken);
    let error = messages[0].message_attributes().and_then(|a| a.get("ErrorMessage")).and_then(|v| v.string_value());
    assert!(error.is_some_and(|e| e.contains("detail.description") && e.contains("expected a string")), "{error:?}");
    assert!(system.builds(DEV).await.expect("builds").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecr_push_runs_terraform_for_its_environment_by_itself() {
    let system = LocalSystem::start(&config(), Duration::from_millis(500)).await.expect("local system");
    let digest = push_image(&system.ecr, "my-api", "1043").await.expect("push");
    system.wait_settled(SETTLE).await.expect("settles");

    let parameter = system.ssm.get_parameter().name("/my-api/dev/docker-image-tag").send().await.expect("recorded");
    assert_eq!(parameter.parameter().and_then(|p| p.value()), Some("1043"));
    let builds = system.builds(DEV).await.expect("builds");
    assert_eq!(builds.len(), 1);
    assert_eq!(builds[0].fingerprint, Some(of_state("/my-api/dev/docker-image-tag=1@c0aa4a0b")));
    assert_eq!(builds[0].status, BuildStatus::Succeeded);

    // The same push event delivered again changes nothing anywhere.
    system.bridge.put_events(ecr_push("my-api", "1043", &digest)).await.expect("accepted");
    system.wait_settled(SETTLE).await.expect("settles");
    assert_eq!(system.builds(DEV).await.expect("builds").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_build_quota_is_an_error_not_a_silent_wait_and_a_sweep_deploys_once_it_is_raised() {
    let system = LocalSystem::start(&config(), Duration::from_millis(500)).await.expect("local system");
    // A new account: no build of any project may run.
    system.aws.set_account_build_quota(Some(0)).await.expect("quota");
    // Terraform created the parameter with its placeholder; then a push was recorded.
    put(&system, "/my-api/dev/docker-image-tag", "placeholder").await;
    put(&system, "/my-api/dev/docker-image-tag", "1043").await;
    system.wait_settled(SETTLE).await.expect("settles");

    assert!(system.builds(DEV).await.expect("builds").is_empty());
    let deliveries = system.bridge.deliveries();
    let errors: Vec<&str> = deliveries
        .iter()
        .filter_map(|d| match &d.outcome {
            DeliveryOutcome::Error { error_message, .. } => Some(error_message.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 6, "both change events failed, were retried twice and dead-lettered: {deliveries:?}");
    for message in &errors {
        assert!(
            message.contains("Cannot have more than 0 builds in queue for the account")
                && message.contains("Concurrently running builds"),
            "the error names the cause and the quota to raise: {message}"
        );
    }
    assert_eq!(deliveries.iter().filter(|d| d.outcome.is_dead_lettered()).count(), 2);
    assert!(
        deliveries.iter().all(
            |d| !matches!(&d.outcome, DeliveryOutcome::Ok { response } if response.to_string().contains("\"wait\""))
        ),
        "no silent wait"
    );
    let line = system.deploy.wait_for_log_line("AccountLimitExceededException", Duration::from_secs(5)).await;
    assert!(line.is_some_and(|l| l.contains("\"ERROR\"")), "an ERROR line: {:?}", system.deploy.log_lines());

    // The quota is raised; the next sweep starts the first run, as the change was recorded.
    system.aws.set_account_build_quota(None).await.expect("quota lifted");
    system.bridge.put_events(scheduled("sweep-1")).await.expect("accepted");
    system.wait_settled(SETTLE).await.expect("settles");
    let builds = system.builds(DEV).await.expect("builds");
    assert_eq!(builds.len(), 1, "{builds:?}");
    let current = system.fingerprint("dev").await.expect("fingerprint");
    assert_eq!(builds[0].fingerprint.as_deref(), Some(current.as_str()));
    assert_eq!(builds[0].status, BuildStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parameter_deleted_and_created_again_with_another_tag_is_deployed() {
    let system = LocalSystem::start(&config(), Duration::from_millis(500)).await.expect("local system");
    put(&system, "/my-api/dev/docker-image-tag", "1043").await;
    system.wait_settled(SETTLE).await.expect("settles");
    assert_eq!(system.builds(DEV).await.expect("builds").len(), 1);

    system.ssm.delete_parameter().name("/my-api/dev/docker-image-tag").send().await.expect("DeleteParameter");
    put(&system, "/my-api/dev/docker-image-tag", "1044").await; // version 1 again
    system.wait_settled(SETTLE).await.expect("settles");

    let builds = system.builds(DEV).await.expect("builds");
    assert_eq!(builds.len(), 2, "the new tag is deployed: {builds:?}");
    assert_eq!(builds[0].fingerprint, Some(of_state("/my-api/dev/docker-image-tag=1@a0a53112")));
    assert_eq!(builds[0].status, BuildStatus::Succeeded);
    assert!(system.bridge.deliveries().iter().all(|d| !d.outcome.is_error()), "no function error");
}
