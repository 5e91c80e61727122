//! ECS adapter: DescribeServices (split into calls of at most 10) and DescribeTaskDefinition.

use std::collections::BTreeMap;

use aws_sdk_ecs::types::DeploymentRolloutState;
use aws_sdk_ecs::Client;

use crate::ports::ecs::DESCRIBE_SERVICES_MAX;
use crate::ports::{AwsError, Deployment, EcsServices, RolloutState, ServiceState};

#[derive(Debug, Clone)]
pub struct EcsServiceReader {
    client: Client,
}

impl EcsServiceReader {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Self {
        Self::new(Client::new(sdk))
    }
}

impl EcsServices for EcsServiceReader {
    async fn describe_services(
        &self,
        cluster: &str,
        services: &[String],
    ) -> Result<BTreeMap<String, ServiceState>, AwsError> {
        let mut found = BTreeMap::new();
        for chunk in services.chunks(DESCRIBE_SERVICES_MAX) {
            let resource = format!("{cluster}/{}", chunk.join(","));
            let output = self
                .client
                .describe_services()
                .cluster(cluster)
                .set_services(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|err| AwsError::from_sdk("DescribeServices", &resource, err))?;
            for service in output.services() {
                let Some(name) = service.service_name() else { continue };
                if !chunk.iter().any(|asked| asked == name) {
                    continue;
                }
                // A deleted service is still described for a while, as INACTIVE or DRAINING.
                let state = match service.status() {
                    Some(status) if status != "ACTIVE" => {
                        ServiceState::Missing { reason: format!("the service is {status}") }
                    }
                    _ => ServiceState::Found { deployments: service.deployments().iter().map(deployment).collect() },
                };
                found.insert(name.to_owned(), state);
            }
            for failure in output.failures() {
                // The failure names the service by ARN (long or short format): its last segment.
                let Some(name) = failure.arn().and_then(|arn| arn.rsplit('/').next()) else { continue };
                if chunk.iter().any(|asked| asked == name) {
                    let reason = failure.reason().unwrap_or("unknown").to_owned();
                    let detail = failure.detail().map(|d| format!(": {d}")).unwrap_or_default();
                    found.insert(name.to_owned(), ServiceState::Missing { reason: format!("{reason}{detail}") });
                }
            }
        }
        Ok(found)
    }

    async fn container_image(&self, task_definition: &str, container: &str) -> Result<Option<String>, AwsError> {
        let output = self
            .client
            .describe_task_definition()
            .task_definition(task_definition)
            .send()
            .await
            .map_err(|err| AwsError::from_sdk("DescribeTaskDefinition", task_definition, err))?;
        Ok(output
            .task_definition()
            .map(|definition| definition.container_definitions())
            .unwrap_or_default()
            .iter()
            .find(|definition| definition.name() == Some(container))
            .and_then(|definition| definition.image())
            .map(str::to_owned))
    }
}

fn deployment(deployment: &aws_sdk_ecs::types::Deployment) -> Deployment {
    Deployment {
        id: deployment.id().unwrap_or_default().to_owned(),
        status: deployment.status().unwrap_or_default().to_owned(),
        task_definition: deployment.task_definition().unwrap_or_default().to_owned(),
        rollout_state: deployment.rollout_state().map(rollout_state),
        rollout_state_reason: deployment.rollout_state_reason().map(str::to_owned),
        updated_at: deployment.updated_at().copied(),
    }
}

fn rollout_state(state: &DeploymentRolloutState) -> RolloutState {
    match state {
        DeploymentRolloutState::InProgress => RolloutState::InProgress,
        DeploymentRolloutState::Completed => RolloutState::Completed,
        DeploymentRolloutState::Failed => RolloutState::Failed,
        _ => RolloutState::Other,
    }
}
