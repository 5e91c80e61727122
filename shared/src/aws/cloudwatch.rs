//! CloudWatch adapter: DescribeAlarms (metric and composite alarms, at most 100 names a call,
//! every page) and DescribeAlarmHistory (`StateUpdate` items, parsed into state changes).
//!
//! Both calls name `AlarmTypes` explicitly: without it CloudWatch answers only metric alarms, and a
//! composite gate alarm would look missing (DescribeAlarms and DescribeAlarmHistory API reference,
//! `AlarmTypes`).

use aws_sdk_cloudwatch::types::{AlarmType, HistoryItemType, ScanBy, StateValue};
use aws_sdk_cloudwatch::Client;
use aws_smithy_types::DateTime;
use serde::Deserialize;

use crate::ports::alarms::DESCRIBE_ALARMS_MAX;
use crate::ports::{AlarmState, AlarmStatus, AlarmTransition, Alarms, AwsError};

/// The alarm types promote reads: gate and rollback alarms may be either.
const ALARM_TYPES: [AlarmType; 2] = [AlarmType::MetricAlarm, AlarmType::CompositeAlarm];

#[derive(Debug, Clone)]
pub struct CloudWatchAlarms {
    client: Client,
}

impl CloudWatchAlarms {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Self {
        Self::new(Client::new(sdk))
    }
}

impl Alarms for CloudWatchAlarms {
    async fn describe_alarms(&self, names: &[String]) -> Result<Vec<AlarmStatus>, AwsError> {
        let mut found = Vec::new();
        for chunk in names.chunks(DESCRIBE_ALARMS_MAX) {
            let resource = chunk.join(",");
            let mut next_token = None;
            loop {
                let output = self
                    .client
                    .describe_alarms()
                    .set_alarm_names(Some(chunk.to_vec()))
                    .set_alarm_types(Some(ALARM_TYPES.to_vec()))
                    .set_next_token(next_token)
                    .send()
                    .await
                    .map_err(|err| AwsError::from_sdk("DescribeAlarms", &resource, err))?;
                for alarm in output.metric_alarms() {
                    let transitioned_at = alarm.state_transitioned_timestamp().copied();
                    found.push(status(alarm.alarm_name(), alarm.state_value(), transitioned_at)?);
                }
                for alarm in output.composite_alarms() {
                    let transitioned_at = alarm.state_transitioned_timestamp().copied();
                    found.push(status(alarm.alarm_name(), alarm.state_value(), transitioned_at)?);
                }
                next_token = output.next_token().filter(|token| !token.is_empty()).map(str::to_owned);
                if next_token.is_none() {
                    break;
                }
            }
        }
        Ok(found)
    }

    async fn state_changes(&self, name: &str, since: DateTime) -> Result<Vec<AlarmTransition>, AwsError> {
        let mut changes = Vec::new();
        let mut next_token = None;
        loop {
            let output = self
                .client
                .describe_alarm_history()
                .alarm_name(name)
                .set_alarm_types(Some(ALARM_TYPES.to_vec()))
                .history_item_type(HistoryItemType::StateUpdate)
                .start_date(since)
                .scan_by(ScanBy::TimestampAscending)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|err| AwsError::from_sdk("DescribeAlarmHistory", name, err))?;
            for item in output.alarm_history_items() {
                // A Metrics Insights alarm also records its contributors' (one time series each)
                // state changes; only the alarm's own are its transitions.
                if item.alarm_contributor_id().is_some() {
                    continue;
                }
                if item.history_item_type() != Some(&HistoryItemType::StateUpdate) {
                    continue;
                }
                let (Some(at), Some(data)) = (item.timestamp(), item.history_data()) else { continue };
                if let Some((from, to)) = state_change(data) {
                    changes.push(AlarmTransition { at: *at, from, to });
                }
            }
            next_token = output.next_token().filter(|token| !token.is_empty()).map(str::to_owned);
            if next_token.is_none() {
                break;
            }
        }
        Ok(changes)
    }
}

fn status(
    name: Option<&str>,
    state: Option<&StateValue>,
    transitioned_at: Option<DateTime>,
) -> Result<AlarmStatus, AwsError> {
    let name = name.unwrap_or_default();
    let state = match state {
        Some(StateValue::Ok) => AlarmState::Ok,
        Some(StateValue::Alarm) => AlarmState::Alarm,
        Some(StateValue::InsufficientData) => AlarmState::InsufficientData,
        // A state CloudWatch may add later cannot be judged safe: the caller must not guess.
        other => {
            return Err(AwsError {
                operation: "DescribeAlarms",
                resource: name.to_owned(),
                code: None,
                message: format!("StateValue: expected OK, ALARM or INSUFFICIENT_DATA, got {other:?}"),
            })
        }
    };
    Ok(AlarmStatus { name: name.to_owned(), state, transitioned_at })
}

/// `HistoryData` of a `StateUpdate` item, as CloudWatch writes it:
/// `{"version":"1.0","oldState":{"stateValue":"ALARM","stateReason":…},"newState":{"stateValue":"OK",…}}`
/// (AWS CLI's `describe-alarm-history` example). Only the state values are read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryData {
    old_state: HistoryState,
    new_state: HistoryState,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryState {
    state_value: String,
}

/// The (from, to) of a state change; `None` for data that is not one (another shape, or a state
/// value this version does not know), which the port leaves out.
fn state_change(data: &str) -> Option<(AlarmState, AlarmState)> {
    let data: HistoryData = serde_json::from_str(data).ok()?;
    Some((AlarmState::from_name(&data.old_state.state_value)?, AlarmState::from_name(&data.new_state.state_value)?))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_sdk_cloudwatch::config::http::HttpResponse;
    use aws_sdk_cloudwatch::operation::describe_alarm_history::DescribeAlarmHistoryOutput;
    use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
    use aws_sdk_cloudwatch::types::{AlarmHistoryItem, CompositeAlarm, MetricAlarm};
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_types::body::SdkBody;

    use super::*;

    const ATTEMPTS: u32 = 3;

    fn retry() -> aws_sdk_cloudwatch::config::retry::RetryConfig {
        aws_sdk_cloudwatch::config::retry::RetryConfig::standard()
            .with_max_attempts(ATTEMPTS)
            .with_initial_backoff(Duration::from_millis(1))
            .with_max_backoff(Duration::from_millis(5))
    }

    fn metric(name: &str, state: StateValue, transitioned: Option<i64>) -> MetricAlarm {
        MetricAlarm::builder()
            .alarm_name(name)
            .state_value(state)
            .set_state_transitioned_timestamp(transitioned.map(DateTime::from_secs))
            .build()
    }

    fn both_types(types: &[AlarmType]) -> bool {
        types == ALARM_TYPES
    }

    #[tokio::test]
    async fn names_are_asked_in_chunks_of_100_every_page_read_composite_alarms_included() {
        let names: Vec<String> = (0..101).map(|n| format!("alarm-{n:03}")).collect();
        let first_page = mock!(Client::describe_alarms)
            .match_requests(|r| r.alarm_names().len() == 100 && r.next_token().is_none() && both_types(r.alarm_types()))
            .then_output(|| {
                DescribeAlarmsOutput::builder()
                    .metric_alarms(metric("alarm-000", StateValue::Alarm, Some(1_700_000_000)))
                    .next_token("page-2")
                    .build()
            });
        let second_page = mock!(Client::describe_alarms)
            .match_requests(|r| r.next_token() == Some("page-2") && r.alarm_names().len() == 100)
            .then_output(|| {
                let composite =
                    CompositeAlarm::builder().alarm_name("alarm-001").state_value(StateValue::InsufficientData).build();
                DescribeAlarmsOutput::builder().composite_alarms(composite).build()
            });
        let last_chunk = mock!(Client::describe_alarms)
            .match_requests(|r| r.alarm_names() == ["alarm-100"] && both_types(r.alarm_types()))
            .then_output(|| {
                DescribeAlarmsOutput::builder().metric_alarms(metric("alarm-100", StateValue::Ok, None)).build()
            });
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&first_page, &second_page, &last_chunk]);

        let found = CloudWatchAlarms::new(client).describe_alarms(&names).await.expect("described");
        assert_eq!(
            found,
            [
                AlarmStatus {
                    name: "alarm-000".into(),
                    state: AlarmState::Alarm,
                    transitioned_at: Some(DateTime::from_secs(1_700_000_000)),
                },
                AlarmStatus { name: "alarm-001".into(), state: AlarmState::InsufficientData, transitioned_at: None },
                AlarmStatus { name: "alarm-100".into(), state: AlarmState::Ok, transitioned_at: None },
            ]
        );
        assert_eq!((first_page.num_calls(), second_page.num_calls(), last_chunk.num_calls()), (1, 1, 1));
    }

    #[tokio::test]
    async fn a_state_value_cloudwatch_adds_later_is_an_error_naming_the_alarm() {
        let describe = mock!(Client::describe_alarms).then_output(|| {
            DescribeAlarmsOutput::builder().metric_alarms(metric("odd", StateValue::from("MUTED"), None)).build()
        });
        let client = mock_client!(aws_sdk_cloudwatch, [&describe]);
        let err = CloudWatchAlarms::new(client).describe_alarms(&["odd".into()]).await.expect_err("unknown state");
        assert_eq!((err.operation, err.resource.as_str()), ("DescribeAlarms", "odd"));
        assert!(err.message.contains("StateValue"), "{err}");
    }

    /// `{"__type": code}` in CBOR, as the RPC v2 CBOR protocol sends an error.
    fn cbor_error(code: &str) -> Vec<u8> {
        let mut body = vec![0xa1, 0x66];
        body.extend_from_slice(b"__type");
        body.push(0x60 + u8::try_from(code.len()).expect("a short code"));
        body.extend_from_slice(code.as_bytes());
        body
    }

    #[tokio::test]
    async fn throttling_is_retried_then_reported_naming_the_call_and_the_alarm() {
        let throttled = mock!(Client::describe_alarm_history)
            .sequence()
            .http_response(|| {
                let response = http::Response::builder().status(400).body(SdkBody::from(cbor_error("Throttling")));
                HttpResponse::try_from(response.expect("a response")).expect("an SDK response")
            })
            .repeatedly()
            .build();
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&throttled], |c| c.retry_config(retry()));
        let err = CloudWatchAlarms::new(client)
            .state_changes("api-5xx", DateTime::from_secs(0))
            .await
            .expect_err("throttled");
        assert_eq!(
            (err.operation, err.resource.as_str(), err.code.as_deref()),
            ("DescribeAlarmHistory", "api-5xx", Some("Throttling"))
        );
        assert_eq!(throttled.num_calls(), ATTEMPTS as usize, "the SDK retried");
    }

    fn item(at: i64, data: &str) -> AlarmHistoryItem {
        AlarmHistoryItem::builder()
            .alarm_name("api-5xx")
            .timestamp(DateTime::from_secs(at))
            .history_item_type(HistoryItemType::StateUpdate)
            .history_data(data)
            .build()
    }

    #[tokio::test]
    async fn history_is_read_oldest_first_over_every_page_keeping_only_state_changes() {
        let change = |from: &str, to: &str| {
            format!(r#"{{"version":"1.0","oldState":{{"stateValue":"{from}"}},"newState":{{"stateValue":"{to}"}}}}"#)
        };
        let (ok_to_alarm, alarm_to_ok) = (change("OK", "ALARM"), change("ALARM", "OK"));
        let asked = |r: &aws_sdk_cloudwatch::operation::describe_alarm_history::DescribeAlarmHistoryInput| {
            r.alarm_name() == Some("api-5xx")
                && both_types(r.alarm_types())
                && r.history_item_type() == Some(&HistoryItemType::StateUpdate)
                && r.scan_by() == Some(&ScanBy::TimestampAscending)
                && r.start_date() == Some(&DateTime::from_secs(1_000))
        };
        let first_page = mock!(Client::describe_alarm_history)
            .match_requests(move |r| asked(r) && r.next_token().is_none())
            .then_output(move || {
                let contributor = AlarmHistoryItem::builder()
                    .alarm_name("api-5xx")
                    .alarm_contributor_id("c-1")
                    .timestamp(DateTime::from_secs(1_005))
                    .history_item_type(HistoryItemType::StateUpdate)
                    .history_data(change("OK", "ALARM"))
                    .build();
                DescribeAlarmHistoryOutput::builder()
                    .alarm_history_items(item(1_001, &ok_to_alarm))
                    .alarm_history_items(contributor)
                    .alarm_history_items(item(1_006, r#"{"version":"1.0","type":"Update"}"#))
                    .next_token("more")
                    .build()
            });
        let second_page = mock!(Client::describe_alarm_history)
            .match_requests(move |r| asked(r) && r.next_token() == Some("more"))
            .then_output(move || {
                DescribeAlarmHistoryOutput::builder().alarm_history_items(item(1_010, &alarm_to_ok)).build()
            });
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&first_page, &second_page]);

        let changes =
            CloudWatchAlarms::new(client).state_changes("api-5xx", DateTime::from_secs(1_000)).await.expect("history");
        assert_eq!(
            changes,
            [
                AlarmTransition { at: DateTime::from_secs(1_001), from: AlarmState::Ok, to: AlarmState::Alarm },
                AlarmTransition { at: DateTime::from_secs(1_010), from: AlarmState::Alarm, to: AlarmState::Ok },
            ]
        );
        assert_eq!((first_page.num_calls(), second_page.num_calls()), (1, 1));
    }

    #[test]
    fn history_data_as_cloudwatch_writes_it() {
        // From the AWS CLI's describe-alarm-history example (stateReasonData is an object there).
        let data = r#"{"version":"1.0","oldState":{"stateValue":"ALARM","stateReason":"testing purposes"},"newState":{"stateValue":"OK","stateReason":"Threshold Crossed: 2 datapoints were not greater than the threshold (70.0). The most recent datapoints: [38.958, 40.292].","stateReasonData":{"version":"1.0","queryDate":"2014-04-09T18:59:06.419+0000","startDate":"2014-04-09T18:44:00.000+0000","statistic":"Average","period":300,"recentDatapoints":[38.958,40.292],"threshold":70.0}}}"#;
        assert_eq!(state_change(data), Some((AlarmState::Alarm, AlarmState::Ok)));
        let data =
            r#"{"version":"1.0","oldState":{"stateValue":"INSUFFICIENT_DATA"},"newState":{"stateValue":"ALARM"}}"#;
        assert_eq!(state_change(data), Some((AlarmState::InsufficientData, AlarmState::Alarm)));
    }

    #[test]
    fn other_history_data_is_no_state_change() {
        for data in [
            "",
            "not json",
            r#"{"type":"Update","version":"1.0"}"#,
            r#"{"oldState":{"stateValue":"ALARM"}}"#,
            r#"{"oldState":{"stateValue":"ALARM"},"newState":{"stateValue":"MAYBE"}}"#,
            r#"{"oldState":{"stateValue":1},"newState":{"stateValue":"OK"}}"#,
        ] {
            assert_eq!(state_change(data), None, "{data}");
        }
    }
}
