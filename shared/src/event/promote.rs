//! The three events promote takes, told apart by `source` and `detail-type`.

use aws_lambda_events::eventbridge::EventBridgeEvent;

use super::cloudwatch::{parse_alarm_state_change, AlarmStateChange, ALARM_STATE_CHANGE};
use super::deploy::{PARAMETER_CHANGE, SCHEDULED};
use super::ssm::ParameterChange;
use super::{parse, EventError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromoteEvent {
    /// A release record or an approval changed.
    ParameterChange(ParameterChange),
    AlarmStateChange(AlarmStateChange),
    /// The periodic sweep: soaks end and windows close without an event.
    Scheduled,
}

const EXPECTED: &str = "Parameter Store Change, CloudWatch Alarm State Change or Scheduled Event";

/// Parses one of the three. Anything else is an error: a rule routes the wrong events here.
pub fn parse_promote_event(event: &serde_json::Value) -> Result<PromoteEvent, EventError> {
    let envelope: EventBridgeEvent<serde_json::Value> = parse(event)?;
    let kind = (envelope.source.as_str(), envelope.detail_type.as_str());
    if kind == PARAMETER_CHANGE {
        let parsed: EventBridgeEvent<ParameterChange> = parse(event)?;
        Ok(PromoteEvent::ParameterChange(parsed.detail))
    } else if kind == ALARM_STATE_CHANGE {
        Ok(PromoteEvent::AlarmStateChange(parse_alarm_state_change(event)?))
    } else if kind == SCHEDULED {
        Ok(PromoteEvent::Scheduled)
    } else {
        Err(EventError::Unexpected { field: "detail-type", expected: EXPECTED, actual: envelope.detail_type })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn envelope(source: &str, detail_type: &str, detail: serde_json::Value) -> serde_json::Value {
        json!({
            "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": detail_type,
            "source": source, "account": "111122223333", "time": "2026-11-30T12:00:00Z",
            "region": "eu-west-1", "resources": [], "detail": detail
        })
    }

    #[test]
    fn the_three_events_are_told_apart_and_others_refused_naming_the_field() {
        let change = envelope(
            "aws.ssm",
            "Parameter Store Change",
            json!({ "operation": "Update", "name": "/tagrelay/dev/verified", "type": "String" }),
        );
        assert!(
            matches!(parse_promote_event(&change), Ok(PromoteEvent::ParameterChange(c)) if c.name == "/tagrelay/dev/verified")
        );
        let alarm = envelope(
            "aws.cloudwatch",
            "CloudWatch Alarm State Change",
            json!({ "alarmName": "prod-5xx", "state": { "value": "ALARM" } }),
        );
        assert!(
            matches!(parse_promote_event(&alarm), Ok(PromoteEvent::AlarmStateChange(a)) if a.alarm_name == "prod-5xx")
        );
        assert_eq!(
            parse_promote_event(&envelope("aws.events", "Scheduled Event", json!({}))).ok(),
            Some(PromoteEvent::Scheduled)
        );
        let err = parse_promote_event(&envelope("aws.ecr", "ECR Image Action", json!({}))).expect_err("not ours");
        assert_eq!(err.field(), "detail-type");
        let err = parse_promote_event(&envelope("aws.cloudwatch", "CloudWatch Alarm State Change", json!({})))
            .expect_err("no name");
        assert!(err.field().starts_with("detail"), "{err}");
    }
}
