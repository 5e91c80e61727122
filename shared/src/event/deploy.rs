//! The four events trigger-deploy takes, told apart by `source` and `detail-type`.

use aws_lambda_events::eventbridge::EventBridgeEvent;

use super::codebuild::BuildStateChange;
use super::ecs::{parse_deployment_change, DeploymentChange, DEPLOYMENT_STATE_CHANGE};
use super::ssm::ParameterChange;
use super::{parse, EventError};

pub const PARAMETER_CHANGE: (&str, &str) = ("aws.ssm", "Parameter Store Change");
pub const BUILD_STATE_CHANGE: (&str, &str) = ("aws.codebuild", "CodeBuild Build State Change");
pub const SCHEDULED: (&str, &str) = ("aws.events", "Scheduled Event");

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployEvent {
    ParameterChange(ParameterChange),
    BuildStateChange(BuildStateChange),
    EcsDeployment(DeploymentChange),
    /// The periodic sweep; its detail is empty.
    Scheduled,
}

const EXPECTED: &str =
    "Parameter Store Change, CodeBuild Build State Change, ECS Deployment State Change or Scheduled Event";

/// Parses one of the four. Anything else is an error: a rule routes the wrong events here.
pub fn parse_deploy_event(event: &serde_json::Value) -> Result<DeployEvent, EventError> {
    let envelope: EventBridgeEvent<serde_json::Value> = parse(event)?;
    let kind = (envelope.source.as_str(), envelope.detail_type.as_str());
    if kind == PARAMETER_CHANGE {
        let parsed: EventBridgeEvent<ParameterChange> = parse(event)?;
        Ok(DeployEvent::ParameterChange(parsed.detail))
    } else if kind == BUILD_STATE_CHANGE {
        let parsed: EventBridgeEvent<BuildStateChange> = parse(event)?;
        Ok(DeployEvent::BuildStateChange(parsed.detail))
    } else if kind == DEPLOYMENT_STATE_CHANGE {
        Ok(DeployEvent::EcsDeployment(parse_deployment_change(event)?))
    } else if kind == SCHEDULED {
        Ok(DeployEvent::Scheduled)
    } else {
        Err(EventError::Unexpected { field: "detail-type", expected: EXPECTED, actual: envelope.detail_type })
    }
}
