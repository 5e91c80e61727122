//! EventBridge "CloudWatch Alarm State Change" (source `aws.cloudwatch`). Interim: the alarm
//! name only (the full type comes with the CloudWatch test bed work).

use serde::{Deserialize, Serialize};

use super::{parse, EventError};
use aws_lambda_events::eventbridge::EventBridgeEvent;

pub const ALARM_STATE_CHANGE: (&str, &str) = ("aws.cloudwatch", "CloudWatch Alarm State Change");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmStateChange {
    pub alarm_name: String,
}

pub fn parse_alarm_state_change(event: &serde_json::Value) -> Result<AlarmStateChange, EventError> {
    let parsed: EventBridgeEvent<AlarmStateChange> = parse(event)?;
    Ok(parsed.detail)
}
