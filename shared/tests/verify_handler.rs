//! Verified deploys through the trigger-deploy handler over in-memory ports: a successful run is
//! a release only when ECS runs its image, rolled out; a rollback or a wrong image holds it
//! like a failed build; a slow rollout times out and a late completion still verifies; the
//! release is recorded once; ECS events and the schedule ask the same question.

mod support;

use aws_smithy_types::DateTime;
use serde_json::{json, Value};
use support::{config, deployment, record, scheduled, FakeBuilds, FakeEcs, FakeParameters, FakeRegistry};
use tagrelay::deploy::fingerprint::fingerprint;
use tagrelay::deploy::verify::{HoldReason, VerifiedBy};
use tagrelay::deploy::{Deployer, IgnoreReason, Outcome, StartReason};
use tagrelay::handler::Handler;
use tagrelay::ports::BuildStatus::Succeeded;
use tagrelay::ports::RolloutState::{Completed, Failed, InProgress};
use tagrelay::ports::{BuildRecord, ParameterStore};

const API: &str = "/my-api/dev/docker-image-tag";
const WORKER: &str = "/worker/dev/docker-image-tag";
const BATCH: &str = "/batch/dev/docker-image-tag";
const DEV: &str = "tagrelay-dev";
const CLUSTER: &str = "dev-cluster";
const REPO: &str = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/my-api";
const NEW_TD: &str = "arn:aws:ecs:eu-west-1:111122223333:task-definition/my-api:2";
const OLD_TD: &str = "arn:aws:ecs:eu-west-1:111122223333:task-definition/my-api:1";

type TestDeployer = Deployer<FakeParameters, FakeBuilds, FakeEcs, FakeRegistry>;

/// dev runs on ECS: my-api as service `api` (container `app`); batch is not an ECS service;
/// worker still holds the placeholder. prod has no cluster.
fn deployer(params: FakeParameters, builds: FakeBuilds) -> TestDeployer {
    let config = config(json!({
        "environments": {
            "dev": { "ecs_cluster": CLUSTER, "verify_timeout": "10m" },
            "prod": {}
        },
        "services": {
            "my-api": { "deploy_on_push": ["dev"], "ecs_service": "api", "container": "app" },
            "worker": { "deploy_on_push": ["dev"] },
            "batch": { "deploy_on_push": ["dev"], "ecs_service": null }
        }
    }));
    let images = FakeRegistry::with(&[
        ("my-api", "42", "sha256:aaa", 100),
        ("batch", "7", "sha256:bbb", 100),
        ("batch", "8", "sha256:ccc", 200),
    ]);
    Deployer::new(config, params, builds, FakeEcs::default(), images)
}

fn parameters() -> FakeParameters {
    FakeParameters::with(&[(API, "42"), (WORKER, "initial"), (BATCH, "7")])
}

/// A deployer whose newest dev build of the current state SUCCEEDED, ended `ended` seconds
/// after the epoch.
async fn after_a_successful_run(ended: i64) -> (TestDeployer, String) {
    let params = parameters();
    let current = fingerprint(&params.get_parameters(&[API.into(), WORKER.into(), BATCH.into()]).await.expect("read"));
    let build = BuildRecord {
        id: format!("{DEV}:1"),
        status: Succeeded,
        fingerprint: Some(current),
        started: Some(DateTime::from_secs(ended - 60)),
        ended: Some(DateTime::from_secs(ended)),
    };
    let d = deployer(params, FakeBuilds::with(DEV, vec![build]));
    (d, format!("{DEV}:1"))
}

fn now() -> i64 {
    DateTime::from(std::time::SystemTime::now()).secs()
}

fn ecs_event(service: &str, name: &str) -> Value {
    json!({
        "version": "0", "id": "ddca6449-b258-46c0-8653-e0e3a6EXAMPLE",
        "detail-type": "ECS Deployment State Change", "source": "aws.ecs",
        "account": "111122223333", "time": "2026-11-30T12:31:14Z", "region": "eu-west-1",
        "resources": [format!("arn:aws:ecs:eu-west-1:111122223333:service/{CLUSTER}/{service}")],
        "detail": { "eventType": "INFO", "eventName": name, "deploymentId": "ecs-svc/2",
                    "updatedAt": "2026-11-30T12:31:10Z", "reason": "ECS deployment ecs-svc/2 completed." }
    })
}

fn ssm_change(name: &str) -> Value {
    json!({
        "version": "0", "id": "6a7e4feb-b491-4cf7-a9f1-bf3703497718",
        "detail-type": "Parameter Store Change", "source": "aws.ssm",
        "account": "111122223333", "time": "2026-11-30T12:31:14Z", "region": "eu-west-1",
        "resources": [], "detail": { "operation": "Update", "name": name, "type": "String" }
    })
}

async fn dev_outcome(d: &TestDeployer, event: &Value) -> Outcome {
    let summary = d.handle(event).await.expect("reconciled");
    summary.environments.into_iter().find(|e| e.environment == "dev").expect("dev reconciled").outcome
}

fn ecs(d: &TestDeployer) -> &FakeEcs {
    d.verification_ports().0
}

#[tokio::test]
async fn a_completed_rollout_of_the_tag_is_recorded_once_as_the_release() {
    let (d, build) = after_a_successful_run(now() - 30).await;
    ecs(&d).set(CLUSTER, "api", vec![deployment("ecs-svc/2", true, NEW_TD, Some(Completed), None)]);
    ecs(&d).image(NEW_TD, "app", &format!("{REPO}:42"));

    let outcome = dev_outcome(&d, &ecs_event("api", "SERVICE_DEPLOYMENT_COMPLETED")).await;
    assert_eq!(outcome, Outcome::Verified { build: build.clone(), basis: VerifiedBy::RolloutCompleted, version: 1 });
    let releases = d.ports().0.releases("dev");
    let [release] = releases.as_slice() else { panic!("one release: {releases:?}") };
    // Every service that names an image; not the placeholder.
    assert_eq!(release.tags.iter().map(|(s, t)| format!("{s}={t}")).collect::<Vec<_>>(), ["batch=7", "my-api=42"]);
    assert_eq!(release.digests.get("my-api").map(String::as_str), Some("sha256:aaa"));
    assert_eq!(release.build, build);
    // The COMPLETED deployment's updatedAt (2,000 s) is before the build ended: the build's end.
    assert_eq!(release.verified_at, tagrelay::deploy::release::verified_at(DateTime::from_secs(now() - 30)));

    // Duplicates of every event change nothing, and read ECS no more.
    let calls = ecs(&d).describe_calls();
    for event in [ecs_event("api", "SERVICE_DEPLOYMENT_COMPLETED"), scheduled()] {
        assert_eq!(dev_outcome(&d, &event).await, Outcome::UpToDate { build: build.clone() });
    }
    assert_eq!(ecs(&d).describe_calls(), calls);
    assert_eq!(d.ports().0.releases("dev").len(), 1);
    assert!(d.ports().1.starts().is_empty());
}

#[tokio::test]
async fn a_release_looks_on_ecs_only_at_the_services_its_run_changed() {
    let (d, _) = after_a_successful_run(now() - 30).await;
    ecs(&d).set(CLUSTER, "api", vec![deployment("ecs-svc/2", true, NEW_TD, Some(Completed), None)]);
    ecs(&d).image(NEW_TD, "app", &format!("{REPO}:42"));
    dev_outcome(&d, &ecs_event("api", "SERVICE_DEPLOYMENT_COMPLETED")).await;
    let calls = ecs(&d).describe_calls();

    // batch changes; my-api keeps the tag the release verified. ECS now shows my-api rolling
    // out something else (an infra change of the team's): not this run's doing, not asked.
    d.ports().0.bump(BATCH, "8");
    assert!(matches!(dev_outcome(&d, &ssm_change(BATCH)).await, Outcome::Start { .. }));
    let build = d.ports().1.finish(DEV, Succeeded);
    ecs(&d).set(CLUSTER, "api", vec![deployment("ecs-svc/3", true, OLD_TD, Some(InProgress), None)]);
    let outcome = dev_outcome(&d, &scheduled()).await;
    assert!(matches!(&outcome, Outcome::Verified { build: b, .. } if *b == build), "{outcome:?}");
    assert_eq!(ecs(&d).describe_calls(), calls, "my-api was verified at 42 already");
    let releases = d.ports().0.releases("dev");
    let newest = releases.last().expect("two releases");
    assert_eq!(newest.tags.get("batch").map(String::as_str), Some("8"));
    assert_eq!(newest.digests.get("batch").map(String::as_str), Some("sha256:ccc"));
    assert_eq!(newest.digests.get("my-api").map(String::as_str), Some("sha256:aaa"), "carried from the release");
}

#[tokio::test]
async fn a_rollout_in_progress_is_verifying_then_verified() {
    let (d, build) = after_a_successful_run(now() - 30).await;
    ecs(&d).set(
        CLUSTER,
        "api",
        vec![
            deployment("ecs-svc/2", true, NEW_TD, Some(InProgress), None),
            deployment("ecs-svc/1", false, OLD_TD, Some(Completed), None),
        ],
    );
    ecs(&d).image(NEW_TD, "app", &format!("{REPO}:42"));
    let outcome = dev_outcome(&d, &ecs_event("api", "SERVICE_DEPLOYMENT_IN_PROGRESS")).await;
    assert!(
        matches!(&outcome, Outcome::Verifying { build: b, rolling, .. } if *b == build && rolling == "my-api: ecs-svc/2"),
        "{outcome:?}"
    );
    assert!(d.ports().0.releases("dev").is_empty(), "no release while rolling");

    ecs(&d).set(CLUSTER, "api", vec![deployment("ecs-svc/2", true, NEW_TD, Some(Completed), None)]);
    let outcome = dev_outcome(&d, &ecs_event("api", "SERVICE_DEPLOYMENT_COMPLETED")).await;
    assert!(matches!(outcome, Outcome::Verified { basis: VerifiedBy::RolloutCompleted, .. }), "{outcome:?}");
}

#[tokio::test]
async fn a_circuit_breaker_rollback_holds_without_a_retry_loop_until_retry_or_a_new_tag() {
    let (d, build) = after_a_successful_run(now() - 30).await;
    let rollback = "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/1.";
    ecs(&d).set(
        CLUSTER,
        "api",
        vec![
            deployment("ecs-svc/3", true, OLD_TD, Some(Completed), Some(rollback)),
            deployment(
                "ecs-svc/2",
                false,
                NEW_TD,
                Some(Failed),
                Some("ECS deployment circuit breaker: tasks failed to start."),
            ),
        ],
    );
    ecs(&d).image(OLD_TD, "app", &format!("{REPO}:41"));

    for event in [ecs_event("api", "SERVICE_DEPLOYMENT_FAILED"), scheduled(), scheduled()] {
        let outcome = dev_outcome(&d, &event).await;
        let Outcome::RolloutHeld { build: held, hold, detail } = &outcome else { panic!("{outcome:?}") };
        assert_eq!((held, *hold), (&build, HoldReason::RolloutFailed));
        assert!(detail.starts_with("my-api: rolled back to") && detail.contains("tasks failed to start"), "{detail}");
        assert_eq!(outcome.as_str(), "hold", "the alarm's decision");
    }
    assert!(d.ports().1.starts().is_empty(), "held: no loop");
    assert!(d.ports().0.releases("dev").is_empty());

    // `tagrelay retry` runs the same state again.
    let dev = d.config().environment("dev").expect("dev").clone();
    let retried = d.reconcile(&dev, &tagrelay::deploy::Trigger::Retry { by: "ana".into() }).await.expect("retried");
    assert!(matches!(retried.outcome, Outcome::Start { reason: StartReason::Retry, .. }), "{retried:?}");
    assert_eq!(d.ports().1.starts().len(), 1);
}

#[tokio::test]
async fn a_new_tag_after_a_held_rollout_deploys_without_reading_ecs() {
    let (d, _) = after_a_successful_run(now() - 30).await;
    ecs(&d).set(CLUSTER, "api", vec![deployment("ecs-svc/1", true, OLD_TD, Some(Completed), None)]);
    ecs(&d).image(OLD_TD, "app", &format!("{REPO}:41"));
    let outcome = dev_outcome(&d, &scheduled()).await;
    assert!(matches!(outcome, Outcome::RolloutHeld { hold: HoldReason::RolloutFailed, .. }), "{outcome:?}");

    // Superseded: the parameters moved on, a run of the new state is due.
    d.ports().0.bump(API, "43");
    let calls = ecs(&d).describe_calls();
    let outcome = dev_outcome(&d, &scheduled()).await;
    assert!(matches!(outcome, Outcome::Start { reason: StartReason::Changed, .. }), "{outcome:?}");
    assert_eq!(ecs(&d).describe_calls(), calls);
}

#[tokio::test]
async fn a_rollout_past_the_time_out_holds_and_a_late_completion_lifts_the_hold() {
    let (d, build) = after_a_successful_run(now() - 601).await;
    ecs(&d).set(CLUSTER, "api", vec![deployment("ecs-svc/2", true, NEW_TD, Some(InProgress), None)]);
    ecs(&d).image(NEW_TD, "app", &format!("{REPO}@sha256:aaa"));
    let outcome = dev_outcome(&d, &scheduled()).await;
    let Outcome::RolloutHeld { hold, detail, .. } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(*hold, HoldReason::VerifyTimedOut);
    assert_eq!(detail, "still rolling out: my-api: ecs-svc/2");

    ecs(&d).set(CLUSTER, "api", vec![deployment("ecs-svc/2", true, NEW_TD, Some(Completed), None)]);
    let outcome = dev_outcome(&d, &ecs_event("api", "SERVICE_DEPLOYMENT_COMPLETED")).await;
    assert_eq!(outcome, Outcome::Verified { build, basis: VerifiedBy::RolloutCompleted, version: 1 });
}

#[tokio::test]
async fn a_missing_service_holds_naming_it() {
    let (d, _) = after_a_successful_run(now() - 30).await;
    let outcome = dev_outcome(&d, &scheduled()).await;
    let Outcome::RolloutHeld { hold, detail, .. } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(
        (*hold, detail.as_str()),
        (HoldReason::RolloutFailed, "my-api: service api is not in the cluster (MISSING)")
    );
}

#[tokio::test]
async fn events_of_services_no_environment_runs_are_ignored() {
    let (d, _) = after_a_successful_run(now() - 30).await;
    for service in ["my-api", "batch", "other"] {
        let summary = d.handle(&ecs_event(service, "SERVICE_DEPLOYMENT_COMPLETED")).await.expect("handled");
        assert_eq!(summary.ignored, Some(IgnoreReason::ServiceNotOurs), "{service}");
        assert!(summary.environments.is_empty());
    }
    assert_eq!(ecs(&d).describe_calls(), 0);
}

#[tokio::test]
async fn an_environment_without_a_cluster_is_released_by_its_build() {
    let params = FakeParameters::with(&[("/my-api/prod/docker-image-tag", "42")]);
    let prod = "/my-api/prod/docker-image-tag=1@73475cb4";
    let d = deployer(params, FakeBuilds::with("tagrelay-prod", vec![record("tagrelay-prod:1", Succeeded, Some(prod))]));
    let summary = d.handle(&scheduled()).await.expect("reconciled");
    let prod_outcome = summary.environments.iter().find(|e| e.environment == "prod").expect("prod");
    assert_eq!(
        prod_outcome.outcome,
        Outcome::Verified { build: "tagrelay-prod:1".into(), basis: VerifiedBy::BuildSucceeded, version: 1 }
    );
    assert_eq!(ecs(&d).describe_calls(), 0);
    assert_eq!(d.ports().0.releases("prod")[0].tags.get("my-api").map(String::as_str), Some("42"));
}

#[tokio::test]
async fn a_failed_release_write_fails_the_event_so_lambda_retries_it() {
    let params = parameters().failing_on("/tagrelay/dev/verified");
    let current = fingerprint(&params.get_parameters(&[API.into(), WORKER.into(), BATCH.into()]).await.expect("read"));
    let d = deployer(params, FakeBuilds::with(DEV, vec![record(&format!("{DEV}:1"), Succeeded, Some(&current))]));
    ecs(&d).set(CLUSTER, "api", vec![deployment("ecs-svc/2", true, NEW_TD, Some(Completed), None)]);
    ecs(&d).image(NEW_TD, "app", &format!("{REPO}:42"));
    let err = d.handle(&scheduled()).await.expect_err("the write failed: Lambda retries the event");
    assert!(err.to_string().contains("PutParameter /tagrelay/dev/verified"), "{err}");
    assert!(d.ports().0.releases("dev").is_empty());
}
