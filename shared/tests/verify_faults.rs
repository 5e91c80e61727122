//! The ECS adapter against injected faults through the real SDK client: throttling is retried
//! by the SDK and then reported naming the operation, the cluster and the services; failures[]
//! become named missing services; a service that is INACTIVE is missing too; more than 10
//! services are asked in chunks.

use std::time::Duration;

use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::types::{Deployment, DeploymentRolloutState, Failure, Service};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use serde_json::json;
use tagrelay::aws::ecs::EcsServiceReader;
use tagrelay::ports::{EcsServices, RolloutState, ServiceState};

const ATTEMPTS: u32 = 3;

fn retry() -> aws_sdk_ecs::config::retry::RetryConfig {
    aws_sdk_ecs::config::retry::RetryConfig::standard()
        .with_max_attempts(ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(5))
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("svc-{i:02}")).collect()
}

#[tokio::test]
async fn throttling_is_retried_then_reported_naming_the_call() {
    let body = json!({ "__type": "ThrottlingException", "message": "Rate exceeded" }).to_string();
    let throttled =
        mock!(aws_sdk_ecs::Client::describe_services).sequence().http_status(400, Some(body)).repeatedly().build();
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&throttled], |c| c.retry_config(retry()));
    let err = EcsServiceReader::new(client).describe_services("dev", &["api".into()]).await.expect_err("throttled");
    assert_eq!(
        (err.operation, err.resource.as_str(), err.code.as_deref()),
        ("DescribeServices", "dev/api", Some("ThrottlingException"))
    );
    assert_eq!(throttled.num_calls(), ATTEMPTS as usize, "the SDK retried");
}

#[tokio::test]
async fn failures_and_inactive_services_are_missing_and_long_lists_are_chunked() {
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .match_requests(|request| request.services().len() <= 10)
        .then_output(|| {
            let active = Service::builder()
                .service_name("svc-00")
                .status("ACTIVE")
                .deployments(
                    Deployment::builder()
                        .id("ecs-svc/2")
                        .status("PRIMARY")
                        .task_definition("arn:aws:ecs:eu-west-1:1:task-definition/svc-00:2")
                        .rollout_state(DeploymentRolloutState::InProgress)
                        .build(),
                )
                .build();
            let inactive = Service::builder().service_name("svc-01").status("INACTIVE").build();
            DescribeServicesOutput::builder()
                .services(active)
                .services(inactive)
                .failures(
                    Failure::builder().arn("arn:aws:ecs:eu-west-1:1:service/dev/svc-02").reason("MISSING").build(),
                )
                .failures(Failure::builder().arn("arn:aws:ecs:eu-west-1:1:service/svc-11").reason("MISSING").build())
                .build()
        });
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe], |c| c.retry_config(retry()));
    let states = EcsServiceReader::new(client).describe_services("dev", &names(12)).await.expect("described");
    assert_eq!(describe.num_calls(), 2, "12 services: two calls of at most 10");
    let ServiceState::Found { deployments } = &states["svc-00"] else { panic!("{states:?}") };
    assert_eq!(deployments[0].rollout_state, Some(RolloutState::InProgress));
    assert_eq!(states["svc-01"], ServiceState::Missing { reason: "the service is INACTIVE".into() });
    assert_eq!(states["svc-02"], ServiceState::Missing { reason: "MISSING".into() });
    // A short-format ARN in failures[] still names the service.
    assert_eq!(states["svc-11"], ServiceState::Missing { reason: "MISSING".into() });
}
