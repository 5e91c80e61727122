//! The local AWS's ECS (testbed/local_aws/ecs_deployments.py, terraform_apply.py): deployments
//! that move as ECS's do, their events, and builds that deploy to ECS as the team's Terraform
//! would. Real HTTP; ECS through its JSON protocol (`LocalAws::ecs`), CodeBuild and SSM through
//! the SDK.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_codebuild::types::StatusType;
use serde_json::{json, Value};
use support::{assert_envelope, is, variable, Sink, WAIT};
use tagrelay::aws::ssm::SsmParameterStore;
use tagrelay::deploy::fingerprint::state;
use tagrelay::deploy::manifest::Manifest;
use tagrelay::ports::StoredParameter;
use tagrelay_testbed::ecs_config::EcsEnvironment;
use tagrelay_testbed::event_pattern::EventPattern;
use tagrelay_testbed::local_aws::{create_codebuild_project, put_parameter, LocalAws, LocalAwsOptions};
use tagrelay_testbed::local_ecs::{ecr_repository_uri, Deployment, EcsService, EcsTarget, DEPLOYMENT_STATE_CHANGE};
use tagrelay_testbed::system::set_up_ecs;
use tagrelay_testbed::workspace_root;

const CLUSTER: &str = "dev";
const SERVICE: &str = "my-api";
const PROJECT: &str = "tagrelay-dev";
const PARAMETER: &str = "/my-api/dev/docker-image-tag";
const SERVICE_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:service/dev/my-api";
/// How long a crashing deployment takes to fail, and other short waits.
const SHORT: Duration = Duration::from_millis(400);
/// How long a rollout takes: long enough to see it IN_PROGRESS on a busy machine.
const ROLLOUT: Duration = Duration::from_millis(1500);

fn image(tag: &str) -> String {
    format!("{}:{tag}", ecr_repository_uri(SERVICE))
}

fn task_definition(revision: u32) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{SERVICE}:{revision}")
}

/// A local AWS (events to `sink`, if any) with the cluster and the service running `initial`,
/// its first deployment completed; deployments take [`ROLLOUT`] to complete, [`SHORT`] to fail.
async fn with_service(sink: Option<&Sink>, circuit_breaker: bool) -> LocalAws {
    let options = LocalAwsOptions { event_sink: sink.map(|s| s.url.clone()), schedule_every: None };
    let aws = LocalAws::start_with(options).await.expect("local AWS");
    aws.set_ecs_behaviour(ROLLOUT, SHORT).await.expect("ECS behaviour");
    aws.create_ecs_cluster(CLUSTER).await.expect("cluster");
    let spec = EcsService {
        circuit_breaker,
        rollback: circuit_breaker,
        ..EcsService::new(CLUSTER, SERVICE, &image("initial"))
    };
    aws.create_ecs_service(&spec, WAIT).await.expect("service, first deployment completed");
    aws
}

/// Registers revision `tag` of the service's task definition and points the service at it,
/// as Terraform's UpdateService does; returns the new task definition's ARN.
async fn update_to(aws: &LocalAws, tag: &str) -> String {
    let container = json!({ "name": SERVICE, "image": image(tag), "memory": 512 });
    let registered = aws
        .ecs("ecs:RegisterTaskDefinition", json!({ "family": SERVICE, "containerDefinitions": [container] }))
        .await
        .expect("RegisterTaskDefinition");
    let arn = registered["taskDefinition"]["taskDefinitionArn"].as_str().expect("arn").to_owned();
    aws.ecs("ecs:UpdateService", json!({ "cluster": CLUSTER, "service": SERVICE, "taskDefinition": arn }))
        .await
        .expect("UpdateService");
    arn
}

async fn primary(aws: &LocalAws) -> Deployment {
    let deployments = aws.ecs_deployments(CLUSTER, SERVICE).await.expect("deployments");
    deployments.into_iter().find(|d| d.status == "PRIMARY").expect("a PRIMARY deployment")
}

fn deployment_event(name: &'static str) -> impl Fn(&Value) -> bool {
    move |e: &Value| is(e, DEPLOYMENT_STATE_CHANGE) && e["detail"]["eventName"] == name
}

/// The envelope and detail of a deployment event, as in the ECS Developer Guide's samples.
fn assert_deployment_event(event: &Value, event_type: &str, deployment_id: &str, reason: &str) {
    assert_envelope(event, "aws.ecs");
    assert_eq!(event["resources"], json!([SERVICE_ARN]));
    let detail = &event["detail"];
    // Sorted: the key order depends on serde_json's features, not on the event.
    let mut keys: Vec<&str> = detail.as_object().expect("detail").keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["deploymentId", "eventName", "eventType", "reason", "updatedAt"], "{detail}");
    assert_eq!(detail["eventType"], event_type);
    assert_eq!(detail["deploymentId"], deployment_id);
    assert_eq!(detail["reason"], reason);
    let updated = detail["updatedAt"].as_str().expect("updatedAt");
    assert!(updated.len() == 20 && updated.ends_with('Z') && updated.as_bytes()[10] == b'T', "{updated}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_rollout_goes_in_progress_then_completed_with_both_events_in_order() {
    let sink = Sink::start().await;
    let aws = with_service(Some(&sink), true).await;
    let first = primary(&aws).await;
    assert_eq!(first.rollout_state, "COMPLETED");
    assert!(first.id.starts_with("ecs-svc/") && first.id[8..].chars().all(|c| c.is_ascii_digit()), "{first:?}");
    // CreateService's own deployment moved too: IN_PROGRESS, then COMPLETED.
    let (created_at, _) =
        sink.wait_for(0, "the first deployment's COMPLETED", deployment_event("SERVICE_DEPLOYMENT_COMPLETED")).await;
    let described = aws.describe_ecs_service(CLUSTER, SERVICE).await.expect("describe");
    assert_eq!(
        described["deploymentConfiguration"],
        json!({"deploymentCircuitBreaker": {"enable": true, "rollback": true}, "maximumPercent": 200, "minimumHealthyPercent": 100}),
        "kept from CreateService (moto drops it)"
    );

    let revision = update_to(&aws, "1043").await;
    let deployments = aws.ecs_deployments(CLUSTER, SERVICE).await.expect("deployments");
    assert_eq!(deployments.len(), 2, "{deployments:?}");
    let (new, old) = (&deployments[0], &deployments[1]);
    assert_eq!((new.status.as_str(), new.rollout_state.as_str()), ("PRIMARY", "IN_PROGRESS"));
    assert_eq!(new.task_definition, revision);
    assert_ne!(new.id, first.id, "a new deployment, not the old one renamed");
    assert_eq!(new.rollout_state_reason, format!("ECS deployment {} in progress.", new.id));
    assert_eq!(
        (old.id.as_str(), old.status.as_str(), old.rollout_state.as_str()),
        (first.id.as_str(), "ACTIVE", "COMPLETED")
    );
    let described = aws.describe_ecs_service(CLUSTER, SERVICE).await.expect("describe");
    assert_eq!(described["taskDefinition"], revision.as_str(), "the ARN, not what UpdateService was given");

    let done = aws.wait_ecs_rollout(CLUSTER, SERVICE, WAIT).await.expect("rollout");
    assert_eq!((done.id.as_str(), done.rollout_state.as_str()), (new.id.as_str(), "COMPLETED"));
    assert_eq!(done.rollout_state_reason, format!("ECS deployment {} completed.", new.id));
    let described = aws.describe_ecs_service(CLUSTER, SERVICE).await.expect("describe");
    let deployments = described["deployments"].as_array().expect("deployments");
    assert_eq!(deployments.len(), 1, "the old deployment drained: {deployments:?}");
    assert_eq!((deployments[0]["runningCount"].as_i64(), deployments[0]["pendingCount"].as_i64()), (Some(1), Some(0)));
    assert!(deployments[0]["updatedAt"].as_f64() > deployments[0]["createdAt"].as_f64(), "{}", deployments[0]);
    assert_eq!(described["runningCount"], 1);

    let (started_at, started) =
        sink.wait_for(created_at + 1, "IN_PROGRESS", deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS")).await;
    let (_, completed) = sink
        .wait_for(started_at + 1, "COMPLETED after IN_PROGRESS", deployment_event("SERVICE_DEPLOYMENT_COMPLETED"))
        .await;
    assert_deployment_event(&started, "INFO", &new.id, &format!("ECS deployment {} in progress.", new.id));
    assert_deployment_event(&completed, "INFO", &new.id, &format!("ECS deployment {} completed.", new.id));

    // forceNewDeployment with the same task definition: a new deployment too; a desiredCount
    // change alone is none.
    aws.ecs("ecs:UpdateService", json!({ "cluster": CLUSTER, "service": SERVICE, "forceNewDeployment": true }))
        .await
        .expect("force");
    let forced = primary(&aws).await;
    assert_ne!(forced.id, new.id);
    assert_eq!((forced.task_definition.as_str(), forced.rollout_state.as_str()), (revision.as_str(), "IN_PROGRESS"));
    aws.wait_ecs_rollout(CLUSTER, SERVICE, WAIT).await.expect("rollout");
    aws.ecs("ecs:UpdateService", json!({ "cluster": CLUSTER, "service": SERVICE, "desiredCount": 2 }))
        .await
        .expect("scale");
    assert_eq!(primary(&aws).await.id, forced.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_image_with_the_breaker_fails_and_rolls_back_to_the_completed_deployment() {
    let sink = Sink::start().await;
    let aws = with_service(Some(&sink), true).await;
    let completed = primary(&aws).await;
    let (created_at, _) =
        sink.wait_for(0, "the first COMPLETED", deployment_event("SERVICE_DEPLOYMENT_COMPLETED")).await;
    aws.set_crashing_images(&["1044"]).await.expect("crashing");

    let revision = update_to(&aws, "1044").await;
    let failing = primary(&aws).await;
    assert_eq!(failing.task_definition, revision);
    let (failed_at, failed) =
        sink.wait_for(created_at + 1, "FAILED", deployment_event("SERVICE_DEPLOYMENT_FAILED")).await;
    // While the rollback runs: the failed deployment is ACTIVE and FAILED, the rollback PRIMARY.
    let deployments = aws.ecs_deployments(CLUSTER, SERVICE).await.expect("deployments");
    let failed_one = deployments.iter().find(|d| d.id == failing.id).expect("the failed deployment is still listed");
    assert_eq!((failed_one.status.as_str(), failed_one.rollout_state.as_str()), ("ACTIVE", "FAILED"));
    assert_eq!(failed_one.rollout_state_reason, "ECS deployment circuit breaker: tasks failed to start.");
    let rollback = &deployments[0];
    assert_eq!(rollback.status, "PRIMARY");
    assert_eq!(rollback.task_definition, task_definition(1), "the last completed task definition");
    let rolling_back = format!("ECS deployment circuit breaker: rolling back to deploymentId {}.", completed.id);
    assert_eq!(rollback.rollout_state_reason, rolling_back);

    let done = aws.wait_ecs_rollout(CLUSTER, SERVICE, WAIT).await.expect("rollback");
    assert_eq!((done.id.as_str(), done.rollout_state.as_str()), (rollback.id.as_str(), "COMPLETED"));
    assert_eq!(aws.ecs_service_image(CLUSTER, SERVICE, SERVICE).await.expect("image"), image("initial"));
    let described = aws.describe_ecs_service(CLUSTER, SERVICE).await.expect("describe");
    assert_eq!(described["taskDefinition"], task_definition(1), "the service's task definition reverted");

    let (started_at, started) =
        sink.wait_for(created_at + 1, "IN_PROGRESS", deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS")).await;
    let (back_at, back) =
        sink.wait_for(failed_at + 1, "rollback IN_PROGRESS", deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS")).await;
    let (_, back_done) =
        sink.wait_for(back_at + 1, "rollback COMPLETED", deployment_event("SERVICE_DEPLOYMENT_COMPLETED")).await;
    assert!(started_at < failed_at);
    assert_deployment_event(&started, "INFO", &failing.id, &format!("ECS deployment {} in progress.", failing.id));
    assert_deployment_event(&failed, "ERROR", &failing.id, "ECS deployment circuit breaker: tasks failed to start.");
    assert_deployment_event(&back, "INFO", &rollback.id, &rolling_back);
    assert_deployment_event(&back_done, "INFO", &rollback.id, &format!("ECS deployment {} completed.", rollback.id));
    let ecs_events = sink.events().into_iter().filter(|e| is(e, DEPLOYMENT_STATE_CHANGE)).count();
    assert_eq!(ecs_events, 6, "2 for the first deployment, 4 for the failure and its rollback");
    assert_eq!(aws.ecs_pending().await.expect("pending"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_breaker_a_crashing_deployment_stays_in_progress() {
    let sink = Sink::start().await;
    let aws = with_service(Some(&sink), false).await;
    aws.set_crashing_images(&[&image("1044")]).await.expect("crashing, by full reference");
    let revision = update_to(&aws, "1044").await;

    tokio::time::sleep(SHORT * 3).await;
    let stuck = primary(&aws).await;
    assert_eq!((stuck.task_definition.as_str(), stuck.rollout_state.as_str()), (revision.as_str(), "IN_PROGRESS"));
    let described = aws.describe_ecs_service(CLUSTER, SERVICE).await.expect("describe");
    assert!(described["deployments"][0]["failedTasks"].as_i64() > Some(0), "{described}");
    assert_eq!(described["deployments"].as_array().map(Vec::len), Some(2), "the old one still runs");
    assert_eq!(aws.ecs_pending().await.expect("pending"), 0, "nothing more will move by itself");
    assert!(
        sink.events().iter().all(|e| !deployment_event("SERVICE_DEPLOYMENT_FAILED")(e)),
        "FAILED needs the breaker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_events_can_be_dropped_and_describe_services_takes_at_most_10_names() {
    let sink = Sink::start().await;
    let aws = with_service(Some(&sink), true).await;
    let (created_at, _) =
        sink.wait_for(0, "the first COMPLETED", deployment_event("SERVICE_DEPLOYMENT_COMPLETED")).await;
    aws.drop_events(DEPLOYMENT_STATE_CHANGE, 1).await.expect("drop");
    update_to(&aws, "1043").await;
    let (_, completed) =
        sink.wait_for(created_at + 1, "COMPLETED", deployment_event("SERVICE_DEPLOYMENT_COMPLETED")).await;
    let after_first: Vec<Value> = sink.events().into_iter().skip(created_at + 1).collect();
    assert_eq!(after_first, [completed], "the IN_PROGRESS event was lost");

    let names: Vec<String> = (0..11).map(|i| format!("svc-{i}")).collect();
    let err =
        aws.ecs("ecs:DescribeServices", json!({ "cluster": CLUSTER, "services": names })).await.expect_err("11 names");
    let message = err.to_string();
    assert!(message.contains("InvalidParameterException: service names can have at most 10 items."), "{message}");
    let answer = aws
        .ecs("ecs:DescribeServices", json!({ "cluster": CLUSTER, "services": names[..10] }))
        .await
        .expect("10 names are fine");
    assert_eq!(answer["failures"].as_array().map(Vec::len), Some(10), "missing services are failures: {answer}");
}

// ------------------------------------------------------------------------------------------
// Builds that apply to ECS.

/// The fingerprint tagrelay would start a build with, of `PARAMETER` at `version` holding `value`.
/// The state as builds of older tagrelay versions carry it (`name=version@digest`).
fn fingerprint_of(version: i64, value: &str) -> String {
    state(&BTreeMap::from([(PARAMETER.to_owned(), StoredParameter::string(value, version, None))]))
}

/// What trigger-deploy does before a start: the run manifest of `PARAMETER` = `value` at
/// `version`, written with the core's adapter; returns the fingerprint to start the build with.
async fn manifest_of(aws: &LocalAws, version: i64, value: &str) -> String {
    let parameters = BTreeMap::from([(PARAMETER.to_owned(), StoredParameter::string(value, version, None))]);
    let manifest = Manifest::of(CLUSTER, &parameters);
    let store = SsmParameterStore::from_sdk_config(&aws.sdk_config().await);
    let head = format!("/tagrelay/{CLUSTER}/manifest");
    tagrelay::document::write(&store, &head, &manifest.document(), &manifest.description()).await.expect("manifest");
    manifest.fingerprint
}

/// A project whose builds take `duration` and deploy `PARAMETER` to the service.
async fn terraform_project(aws: &LocalAws, duration: Duration, outcome: &str) -> aws_sdk_codebuild::Client {
    let codebuild = aws_sdk_codebuild::Client::new(&aws.sdk_config().await);
    create_codebuild_project(&codebuild, PROJECT, Some(1)).await.expect("project");
    aws.set_build_behaviour(PROJECT, duration, outcome).await.expect("behaviour");
    let target = EcsTarget {
        parameter: PARAMETER.into(),
        service: SERVICE.into(),
        container: SERVICE.into(),
        image_repository: ecr_repository_uri(SERVICE),
    };
    aws.set_ecs_terraform(PROJECT, CLUSTER, &[target]).await.expect("mapping");
    codebuild
}

async fn run_build(codebuild: &aws_sdk_codebuild::Client, fingerprint: Option<&str>) -> (String, StatusType) {
    let mut request = codebuild.start_build().project_name(PROJECT);
    if let Some(fingerprint) = fingerprint {
        request = request.environment_variables_override(variable("TAGRELAY_FINGERPRINT", fingerprint));
    }
    let id = request.send().await.expect("StartBuild").build_value().and_then(|b| b.id()).expect("id").to_owned();
    (id.clone(), wait_build(codebuild, &id).await)
}

async fn wait_build(codebuild: &aws_sdk_codebuild::Client, id: &str) -> StatusType {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = codebuild.batch_get_builds().ids(id).send().await.expect("BatchGetBuilds");
        let status = out.builds().first().and_then(|b| b.build_status()).cloned().expect("a status");
        if status != StatusType::InProgress {
            return status;
        }
        assert!(Instant::now() < deadline, "{id} still IN_PROGRESS");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_deploys_its_fingerprints_values_not_newer_ones() {
    let aws = with_service(None, true).await;
    let ssm = aws_sdk_ssm::Client::new(&aws.sdk_config().await);
    put_parameter(&ssm, PARAMETER, "initial").await.expect("placeholder");
    let version = put_parameter(&ssm, PARAMETER, "1043").await.expect("1043");
    let codebuild = terraform_project(&aws, Duration::from_secs(1), "SUCCEEDED").await;

    // 1044 is written while the build of 1043 runs: the build still deploys 1043, found
    // through its run manifest as the buildspec finds it.
    let fingerprint = manifest_of(&aws, version, "1043").await;
    let build = codebuild
        .start_build()
        .project_name(PROJECT)
        .environment_variables_override(variable("TAGRELAY_FINGERPRINT", &fingerprint))
        .environment_variables_override(variable("TAGRELAY_ENVIRONMENT", CLUSTER))
        .send()
        .await
        .expect("StartBuild");
    put_parameter(&ssm, PARAMETER, "1044").await.expect("1044");
    let id = build.build_value().and_then(|b| b.id()).expect("id");
    assert_eq!(wait_build(&codebuild, id).await, StatusType::Succeeded);
    // Terraform does not wait for steady state: the deployment is IN_PROGRESS when the build ends.
    let deployed = primary(&aws).await;
    assert_eq!(
        (deployed.task_definition.as_str(), deployed.rollout_state.as_str()),
        (task_definition(2).as_str(), "IN_PROGRESS")
    );
    assert_eq!(aws.ecs_service_image(CLUSTER, SERVICE, SERVICE).await.expect("image"), image("1043"));
    aws.wait_ecs_rollout(CLUSTER, SERVICE, WAIT).await.expect("rollout");

    // The same state again, as an older tagrelay started it (each value read at its version):
    // the service already runs it, nothing is registered or deployed.
    let (_, status) = run_build(&codebuild, Some(&fingerprint_of(version, "1043"))).await;
    assert_eq!(status, StatusType::Succeeded);
    assert_eq!(primary(&aws).await.id, deployed.id);

    // A manual build (no fingerprint) deploys what the parameter holds now.
    let (_, status) = run_build(&codebuild, None).await;
    assert_eq!(status, StatusType::Succeeded);
    assert_eq!(aws.ecs_service_image(CLUSTER, SERVICE, SERVICE).await.expect("image"), image("1044"));
    assert_eq!(primary(&aws).await.task_definition, task_definition(3));

    // A fingerprint whose value digest is not what that version holds: the apply fails.
    let (_, status) = run_build(&codebuild, Some(&fingerprint_of(version, "9999"))).await;
    assert_eq!(status, StatusType::Failed);
    assert_eq!(primary(&aws).await.task_definition, task_definition(3), "a failed apply deploys nothing");
    // A fingerprint without a run manifest: nothing says what to deploy, the apply fails.
    let (_, status) = run_build(&codebuild, Some(&format!("sha256:{}", "0".repeat(64)))).await;
    assert_eq!(status, StatusType::Failed);
    assert_eq!(primary(&aws).await.task_definition, task_definition(3), "a failed apply deploys nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_build_touches_nothing() {
    let aws = with_service(None, true).await;
    let ssm = aws_sdk_ssm::Client::new(&aws.sdk_config().await);
    let version = put_parameter(&ssm, PARAMETER, "1043").await.expect("1043");
    let codebuild = terraform_project(&aws, SHORT, "FAILED").await;
    let before = primary(&aws).await;

    let (_, status) = run_build(&codebuild, Some(&fingerprint_of(version, "1043"))).await;
    assert_eq!(status, StatusType::Failed);
    assert_eq!(primary(&aws).await, before, "no deployment");
    let listed = aws.ecs("ecs:ListTaskDefinitions", json!({ "familyPrefix": SERVICE })).await.expect("list");
    assert_eq!(listed["taskDefinitionArns"], json!([task_definition(1)]), "no revision registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecs_environment_is_set_up_as_infra_leaves_it_and_its_events_match_the_rule() {
    let sink = Sink::start().await;
    let aws = LocalAws::start().await.expect("local AWS");
    aws.set_ecs_behaviour(SHORT, SHORT).await.expect("ECS behaviour");
    let sdk = aws.sdk_config().await;
    let (ssm, codebuild) = (aws_sdk_ssm::Client::new(&sdk), aws_sdk_codebuild::Client::new(&sdk));
    create_codebuild_project(&codebuild, PROJECT, Some(1)).await.expect("project");
    aws.set_build_behaviour(PROJECT, SHORT, "SUCCEEDED").await.expect("behaviour");
    let target = |service: &str, container: &str| EcsTarget {
        parameter: format!("/{service}/dev/docker-image-tag"),
        service: service.into(),
        container: container.into(),
        image_repository: ecr_repository_uri(service),
    };
    let environment = EcsEnvironment {
        environment: "dev".into(),
        project: PROJECT.into(),
        cluster: CLUSTER.into(),
        targets: vec![target(SERVICE, "app"), target("worker", "worker")],
        parameters: vec![
            PARAMETER.into(),
            "/migrations/dev/docker-image-tag".into(),
            "/worker/dev/docker-image-tag".into(),
        ],
    };
    set_up_ecs(&aws, &ssm, std::slice::from_ref(&environment), "initial").await.expect("set up");

    for (service, container) in [(SERVICE, "app"), ("worker", "worker")] {
        let running = aws.ecs_service_image(CLUSTER, service, container).await.expect("image");
        assert_eq!(running, format!("{}:initial", ecr_repository_uri(service)));
        let first = aws.ecs_deployments(CLUSTER, service).await.expect("deployments");
        assert_eq!(first.iter().map(|d| d.rollout_state.as_str()).collect::<Vec<_>>(), ["COMPLETED"]);
    }
    for name in &environment.parameters {
        let stored = ssm.get_parameter().name(name).send().await.expect("GetParameter");
        assert_eq!(stored.parameter().and_then(|p| p.value()), Some("initial"), "{name}");
    }

    // The mapping is set: a build deploys a new tag (and only where it changed).
    aws.set_event_sink(&sink.url).await.expect("sink");
    put_parameter(&ssm, PARAMETER, "1043").await.expect("1043");
    let (_, status) = run_build(&codebuild, None).await;
    assert_eq!(status, StatusType::Succeeded);
    assert_eq!(aws.ecs_service_image(CLUSTER, SERVICE, "app").await.expect("image"), image("1043"));
    assert_eq!(aws.ecs_deployments(CLUSTER, "worker").await.expect("worker").len(), 1, "worker unchanged");
    aws.wait_ecs_rollout(CLUSTER, SERVICE, WAIT).await.expect("rollout");

    // Its events pass infra's rule (as LocalSystem routes them to trigger-deploy).
    let rule = EventPattern::from_file(workspace_root().join("infra/event-patterns/ecs-deployment-state-change.json"))
        .expect("the rule the local EventBridge takes");
    let (_, completed) = sink.wait_for(0, "COMPLETED", deployment_event("SERVICE_DEPLOYMENT_COMPLETED")).await;
    let ecs_events: Vec<Value> = sink.events().into_iter().filter(|e| is(e, DEPLOYMENT_STATE_CHANGE)).collect();
    assert_eq!(ecs_events.len(), 2, "{ecs_events:#?}");
    assert!(ecs_events.iter().all(|e| rule.matches(e)), "{ecs_events:#?}");
    let mut failed = completed.clone();
    failed["detail"]["eventName"] = json!("SERVICE_DEPLOYMENT_FAILED");
    assert!(rule.matches(&failed));
    // The same event names in an "ECS Service Action" event are not deployments.
    let mut service_action = completed;
    service_action["detail-type"] = json!("ECS Service Action");
    assert!(!rule.matches(&service_action));
}
