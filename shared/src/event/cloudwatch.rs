//! EventBridge "CloudWatch Alarm State Change" (source `aws.cloudwatch`): a metric or composite
//! alarm changed its state value. CloudWatch guarantees their delivery ("Alarm events and
//! EventBridge", CloudWatch User Guide) but EventBridge may still deliver one twice or late, so
//! an event only says *which alarm to look at*; promote reads the alarms again with
//! DescribeAlarms. Unknown fields are ignored (`configuration` differs by alarm kind; composite
//! alarms add `actionsSuppressedBy`, tagged alarms `alarmTags`).

use serde::Deserialize;

use super::{parse, EventError};
use crate::ports::AlarmState;

pub const ALARM_STATE_CHANGE: (&str, &str) = ("aws.cloudwatch", "CloudWatch Alarm State Change");

#[derive(Debug, Deserialize)]
struct Envelope {
    detail: Detail,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    alarm_name: String,
    state: State,
    #[serde(default)]
    previous_state: Option<State>,
}

#[derive(Debug, Deserialize)]
struct State {
    value: String,
    #[serde(default)]
    timestamp: Option<String>,
}

/// One state change of one alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmStateChange {
    pub alarm_name: String,
    pub state: AlarmState,
    /// `detail.previousState.value`; every AWS sample has it, but nothing promises it.
    pub previous_state: Option<AlarmState>,
    /// `detail.state.timestamp` as CloudWatch writes it, e.g. `2019-10-02T17:04:40.989+0000`
    /// (milliseconds and a `+0000` offset: not RFC 3339). Informational: the decisions read the
    /// alarm's history, not the event's clock.
    pub state_timestamp: Option<String>,
}

/// Parses the event; an error names the field (`detail.state.value` for a state value that is
/// not `OK`, `ALARM` or `INSUFFICIENT_DATA`).
pub fn parse_alarm_state_change(event: &serde_json::Value) -> Result<AlarmStateChange, EventError> {
    let Envelope { detail } = parse(event)?;
    let state = state_value(&detail.state.value, "detail.state.value")?;
    let previous_state = match &detail.previous_state {
        Some(previous) => Some(state_value(&previous.value, "detail.previousState.value")?),
        None => None,
    };
    Ok(AlarmStateChange {
        alarm_name: detail.alarm_name,
        state,
        previous_state,
        state_timestamp: detail.state.timestamp,
    })
}

fn state_value(value: &str, field: &str) -> Result<AlarmState, EventError> {
    AlarmState::from_name(value).ok_or_else(|| EventError::Malformed {
        field: field.to_owned(),
        message: format!("expected one of {}, got {value:?}", AlarmState::NAMES.join(", ")),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(detail: serde_json::Value) -> serde_json::Value {
        json!({ "source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change", "resources": [], "detail": detail })
    }

    #[test]
    fn a_minimal_event_parses() {
        let change = parse_alarm_state_change(&event(json!({ "alarmName": "api-5xx", "state": { "value": "ALARM" } })))
            .expect("parses");
        assert_eq!(
            change,
            AlarmStateChange {
                alarm_name: "api-5xx".into(),
                state: AlarmState::Alarm,
                previous_state: None,
                state_timestamp: None
            }
        );
    }

    #[test]
    fn a_missing_or_odd_field_is_named() {
        let cases = [
            (json!({ "state": { "value": "OK" } }), "detail"),
            (json!({ "alarmName": "a" }), "detail"),
            (json!({ "alarmName": 7, "state": { "value": "OK" } }), "detail.alarmName"),
            (json!({ "alarmName": "a", "state": { "value": "MUTED" } }), "detail.state.value"),
            (json!({ "alarmName": "a", "state": { "value": "ok" } }), "detail.state.value"),
            (json!({ "alarmName": "a", "state": {} }), "detail.state"),
            (
                json!({ "alarmName": "a", "state": { "value": "OK" }, "previousState": { "value": "" } }),
                "detail.previousState.value",
            ),
        ];
        for (detail, field) in cases {
            let err = parse_alarm_state_change(&event(detail.clone())).expect_err("must fail");
            assert_eq!(err.field(), field, "{detail}: {err}");
        }
        let err = parse_alarm_state_change(&json!({ "detail-type": "x" })).expect_err("no detail");
        assert_eq!(err.field(), ".", "{err}");
    }
}
