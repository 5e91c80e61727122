//! trigger-deploy against injected CodeBuild and SSM faults through the real SDK clients.

mod support;

use std::time::Duration;

use aws_sdk_codebuild::operation::batch_get_builds::BatchGetBuildsOutput;
use aws_sdk_codebuild::operation::list_builds_for_project::ListBuildsForProjectOutput;
use aws_sdk_codebuild::operation::start_build::StartBuildOutput;
use aws_sdk_codebuild::types::{Build, EnvironmentVariable, ProjectEnvironment, StatusType};
use aws_sdk_ssm::operation::get_parameters::GetParametersOutput;
use aws_sdk_ssm::operation::put_parameter::PutParameterOutput;
use aws_sdk_ssm::types::Parameter;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use serde_json::json;
use support::config;
use tagrelay::aws::codebuild::CodeBuildRunner;
use tagrelay::aws::ecr::EcrImageRegistry;
use tagrelay::aws::ecs::EcsServiceReader;
use tagrelay::aws::ssm::SsmParameterStore;
use tagrelay::deploy::fingerprint::of_state;
use tagrelay::deploy::Outcome;
use tagrelay::deploy::{DeployError, Deployer, ReconcileError};
use tagrelay::handler::Handler;

const ATTEMPTS: u32 = 3;
const API: &str = "/my-api/dev/docker-image-tag";

fn aws_error(code: &str) -> String {
    json!({ "__type": code, "message": format!("{code} injected by the test") }).to_string()
}

fn retry() -> aws_sdk_codebuild::config::retry::RetryConfig {
    aws_sdk_codebuild::config::retry::RetryConfig::standard()
        .with_max_attempts(ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(5))
}

type SdkDeployer = Deployer<SsmParameterStore, CodeBuildRunner, EcsServiceReader, EcrImageRegistry>;

/// ECS and ECR answer nothing: no test here gets as far as verifying (the environment has no
/// cluster, and no build of the current state succeeds).
fn deployer(ssm_rules: &[&Rule], codebuild_rules: &[&Rule]) -> SdkDeployer {
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, ssm_rules.iter().copied(), |c| c.retry_config(retry()));
    let codebuild = mock_client!(aws_sdk_codebuild, RuleMode::MatchAny, codebuild_rules.iter().copied(), |c| c
        .retry_config(retry()));
    let config =
        config(json!({ "environments": { "dev": {} }, "services": { "my-api": { "deploy_on_push": ["dev"] } } }));
    let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, &[], |c| c.retry_config(retry()));
    let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, &[], |c| c.retry_config(retry()));
    Deployer::new(
        config,
        SsmParameterStore::new(ssm),
        CodeBuildRunner::new(codebuild),
        EcsServiceReader::new(ecs),
        EcrImageRegistry::new(ecr),
    )
}

fn parameters() -> Rule {
    mock!(aws_sdk_ssm::Client::get_parameters).then_output(|| {
        GetParametersOutput::builder()
            .parameters(Parameter::builder().name(API).value("1043").version(7).build())
            .build()
    })
}

/// The run manifest's write, before each start.
fn manifest() -> Rule {
    mock!(aws_sdk_ssm::Client::put_parameter)
        .match_requests(|req| req.name() == Some("/tagrelay/dev/manifest"))
        .then_output(|| PutParameterOutput::builder().version(1).build())
}

fn build(id: &str, status: StatusType, fingerprint: Option<&str>) -> Build {
    let mut environment = ProjectEnvironment::builder()
        .r#type(aws_sdk_codebuild::types::EnvironmentType::LinuxContainer)
        .image("aws/codebuild/standard:7.0")
        .compute_type(aws_sdk_codebuild::types::ComputeType::BuildGeneral1Small);
    if let Some(fingerprint) = fingerprint {
        let variable = EnvironmentVariable::builder()
            .name("TAGRELAY_FINGERPRINT")
            .value(fingerprint)
            .build()
            .expect("valid variable");
        environment = environment.environment_variables(variable);
    }
    Build::builder().id(id).build_status(status).environment(environment.build().expect("valid environment")).build()
}

/// One earlier tagrelay build that deployed version 6: the current state (7) is behind.
fn history() -> (Rule, Rule) {
    let list = mock!(aws_sdk_codebuild::Client::list_builds_for_project)
        .then_output(|| ListBuildsForProjectOutput::builder().ids("tagrelay-dev:1").build());
    let get = mock!(aws_sdk_codebuild::Client::batch_get_builds).then_output(|| {
        let deployed = format!("{API}=6@c0aa4a0b");
        BatchGetBuildsOutput::builder().builds(build("tagrelay-dev:1", StatusType::Succeeded, Some(&deployed))).build()
    });
    (list, get)
}

fn refused(message: &'static str) -> Rule {
    let body = json!({ "__type": "AccountLimitExceededException", "message": message }).to_string();
    mock!(aws_sdk_codebuild::Client::start_build).sequence().http_status(400, Some(body)).repeatedly().build()
}

fn event() -> serde_json::Value {
    json!({
        "version": "0", "id": "1", "detail-type": "Parameter Store Change", "source": "aws.ssm",
        "account": "123456789012", "time": "2026-11-28T08:00:00Z", "region": "us-east-1", "resources": [],
        "detail": { "operation": "Update", "name": API, "type": "String" }
    })
}

#[tokio::test]
async fn a_start_refused_while_a_build_of_the_project_runs_is_a_wait_for_it() {
    // Our look found nothing running; when CodeBuild refused, a manual build had just started.
    let list = mock!(aws_sdk_codebuild::Client::list_builds_for_project)
        .sequence()
        .output(|| ListBuildsForProjectOutput::builder().ids("tagrelay-dev:1").build())
        .output(|| ListBuildsForProjectOutput::builder().ids("tagrelay-dev:2").ids("tagrelay-dev:1").build())
        .build();
    let get = mock!(aws_sdk_codebuild::Client::batch_get_builds)
        .sequence()
        .output(|| {
            let deployed = format!("{API}=6@c0aa4a0b");
            BatchGetBuildsOutput::builder()
                .builds(build("tagrelay-dev:1", StatusType::Succeeded, Some(&deployed)))
                .build()
        })
        .output(|| {
            BatchGetBuildsOutput::builder().builds(build("tagrelay-dev:2", StatusType::InProgress, None)).build()
        })
        .build();
    let refused = refused("Cannot have more than 1 builds in queue for the account");
    let d = deployer(&[&parameters(), &manifest()], &[&list, &get, &refused]);

    let summary = d.handle(&event()).await.expect("a wait, not an error");
    assert_eq!(summary.environments[0].outcome, Outcome::Wait { build: "tagrelay-dev:2".into() });
    assert_eq!(refused.num_calls(), 1, "the refusal is not retried by the SDK");
    assert_eq!(list.num_calls(), 2, "looked again after the refusal");
}

#[tokio::test]
async fn a_start_refused_while_nothing_of_the_project_runs_is_the_account_quota_and_an_error() {
    let (list, get) = history();
    let refused = refused("Cannot have more than 0 builds in queue for the account");
    let d = deployer(&[&parameters(), &manifest()], &[&list, &get, &refused]);

    let err = d.handle(&event()).await.expect_err("not a silent wait: no end event will come");
    let DeployError::Reconcile { failed, .. } = &err else { panic!("{err}") };
    let [ReconcileError::Aws(failed)] = failed.as_slice() else { panic!("one AWS failure: {failed:?}") };
    assert_eq!((failed.operation, failed.resource.as_str()), ("StartBuild", "tagrelay-dev"));
    assert_eq!(failed.code.as_deref(), Some("AccountLimitExceededException"));
    let message = err.to_string();
    assert!(message.contains("Cannot have more than 0 builds in queue for the account"), "{message}");
    assert!(message.contains("Concurrently running builds"), "the quota to raise: {message}");
    assert_eq!(refused.num_calls(), 1);
    assert_eq!(list.num_calls(), 2, "looked again after the refusal");
}

#[tokio::test]
async fn start_build_gets_the_fingerprint_the_environment_and_an_idempotency_token_only() {
    let (list, get) = history();
    let start = mock!(aws_sdk_codebuild::Client::start_build)
        .match_requests(|req| {
            let vars = req.environment_variables_override();
            req.project_name() == Some("tagrelay-dev")
                && req.idempotency_token().is_some_and(|t| t.len() == 32)
                && vars.len() == 2
                && vars
                    .iter()
                    .any(|v| v.name() == "TAGRELAY_FINGERPRINT" && v.value() == of_state(&format!("{API}=7@c0aa4a0b")))
                && vars.iter().any(|v| v.name() == "TAGRELAY_ENVIRONMENT" && v.value() == "dev")
        })
        .then_output(|| StartBuildOutput::builder().build_value(Build::builder().id("tagrelay-dev:2").build()).build());
    let manifest = manifest();
    let d = deployer(&[&parameters(), &manifest], &[&list, &get, &start]);

    let summary = d.handle(&event()).await.expect("started");
    assert!(matches!(&summary.environments[0].outcome, Outcome::Start { build, .. } if build == "tagrelay-dev:2"));
    assert_eq!(start.num_calls(), 1);
    assert_eq!(manifest.num_calls(), 1, "the run manifest is written for the build to find");
}

#[tokio::test]
async fn a_manifest_that_cannot_be_written_starts_nothing() {
    let (list, get) = history();
    let throttled = mock!(aws_sdk_ssm::Client::put_parameter)
        .sequence()
        .http_status(400, Some(aws_error("ThrottlingException")))
        .times(ATTEMPTS as usize + 5)
        .build();
    let start = mock!(aws_sdk_codebuild::Client::start_build).then_output(|| StartBuildOutput::builder().build());
    let d = deployer(&[&parameters(), &throttled], &[&list, &get, &start]);

    let err = d.handle(&event()).await.expect_err("must fail: the build could not find what to deploy");
    assert!(err.to_string().contains("PutParameter /tagrelay/dev/manifest"), "{err}");
    assert_eq!(start.num_calls(), 0, "nothing started without its manifest");
}

#[tokio::test]
async fn throttling_that_outlasts_the_retries_is_an_error_and_starts_nothing() {
    let throttled = mock!(aws_sdk_codebuild::Client::list_builds_for_project)
        .sequence()
        .http_status(400, Some(aws_error("ThrottlingException")))
        .times(ATTEMPTS as usize + 5)
        .build();
    let start = mock!(aws_sdk_codebuild::Client::start_build).then_output(|| StartBuildOutput::builder().build());
    let d = deployer(&[&parameters()], &[&throttled, &start]);

    let err = d.handle(&event()).await.expect_err("must fail");
    assert!(matches!(err, DeployError::Reconcile { .. }), "{err}");
    assert!(err.to_string().contains("ListBuildsForProject tagrelay-dev"), "{err}");
    assert_eq!(throttled.num_calls(), ATTEMPTS as usize);
    assert_eq!(start.num_calls(), 0, "nothing started");
}

#[tokio::test]
async fn throttled_parameter_reads_start_nothing() {
    let throttled = mock!(aws_sdk_ssm::Client::get_parameters)
        .sequence()
        .http_status(400, Some(aws_error("ThrottlingException")))
        .times(ATTEMPTS as usize + 5)
        .build();
    let (list, get) = history();
    let start = mock!(aws_sdk_codebuild::Client::start_build).then_output(|| StartBuildOutput::builder().build());
    let d = deployer(&[&throttled], &[&list, &get, &start]);

    let err = d.handle(&event()).await.expect_err("must fail");
    assert!(err.to_string().contains("GetParameters"), "{err}");
    assert_eq!(start.num_calls(), 0);
}
