//! CloudWatch alarms on the local AWS (`testbed/local_aws/cloudwatch_alarms.py`): alarms start in
//! INSUFFICIENT_DATA, a state value change records a `StateUpdate` history item and emits
//! "CloudWatch Alarm State Change"; the SDK's RPC v2 CBOR calls are answered by the launcher's
//! front. See `testbed/local_aws/README.md`.
//!
//! These helpers speak CloudWatch's query protocol to moto over one raw HTTP request, as a
//! person's `aws cloudwatch` (botocore) does: the test bed builds no CloudWatch client, and tests
//! that read through tagrelay's adapter (the SDK, CBOR) then see what moto's own path did.

use std::time::Duration;

use crate::http_client;
use crate::local_aws::{LocalAws, ACCESS_KEY_ID, REGION};
use crate::HarnessError;

/// The detail-type of CloudWatch's alarm events.
pub const ALARM_STATE_CHANGE: &str = "CloudWatch Alarm State Change";
const API_VERSION: &str = "2010-08-01";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

impl LocalAws {
    /// One CloudWatch call in the query protocol: `operation` is `cloudwatch:<Action>`, `params`
    /// its form parameters (`AlarmNames.member.1`, …). The answer's XML, or `HarnessError::Aws`
    /// with CloudWatch's error code and message.
    pub async fn cloudwatch(&self, operation: &'static str, params: &[(&str, &str)]) -> Result<String, HarnessError> {
        let action = operation.strip_prefix("cloudwatch:").unwrap_or(operation);
        let mut body = format!("Action={}&Version={API_VERSION}", form_encode(action));
        for (name, value) in params {
            body.push_str(&format!("&{}={}", form_encode(name), form_encode(value)));
        }
        // moto checks no signature; the credential scope tells it the service and the region.
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20260101/{REGION}/monitoring/aws4_request, \
             SignedHeaders=host, Signature=0"
        );
        let headers = [
            ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
            ("Authorization", authorization.as_str()),
        ];
        let address = format!("127.0.0.1:{}", self.port());
        let call = http_client::request_with_headers(&address, "POST", "/", &headers, &body);
        let (status, answer) = tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| HarnessError::Timeout { what: operation.to_owned(), after: CALL_TIMEOUT })?
            .map_err(HarnessError::io(operation))?;
        if status != 200 {
            let code = xml_text(&answer, "Code").unwrap_or("unknown error");
            let message = xml_text(&answer, "Message").unwrap_or(&answer);
            return Err(HarnessError::Aws { operation, message: format!("{code}: {message} (HTTP {status})") });
        }
        Ok(answer)
    }

    /// Creates (or updates, keeping its state) a metric alarm on `tagrelay-tests/5xx`, as small
    /// as CloudWatch accepts. It starts in INSUFFICIENT_DATA and, with no evaluation here, stays
    /// there until [`LocalAws::set_alarm_state`].
    pub async fn create_alarm(&self, name: &str) -> Result<(), HarnessError> {
        let params = [
            ("AlarmName", name),
            ("Namespace", "tagrelay-tests"),
            ("MetricName", "5xx"),
            ("Statistic", "Sum"),
            ("Period", "60"),
            ("EvaluationPeriods", "1"),
            ("Threshold", "1"),
            ("ComparisonOperator", "GreaterThanOrEqualToThreshold"),
        ];
        self.cloudwatch("cloudwatch:PutMetricAlarm", &params).await.map(drop)
    }

    /// SetAlarmState: `state` is `ALARM`, `OK` or `INSUFFICIENT_DATA`. A new value emits "CloudWatch
    /// Alarm State Change" and records a history item; the same value again only updates the
    /// reason. Fails naming CloudWatch's code for an unknown alarm (`ResourceNotFound`) or state.
    pub async fn set_alarm_state(&self, name: &str, state: &str, reason: &str) -> Result<(), HarnessError> {
        let params = [("AlarmName", name), ("StateValue", state), ("StateReason", reason)];
        self.cloudwatch("cloudwatch:SetAlarmState", &params).await.map(drop)
    }
}

/// `application/x-www-form-urlencoded`: unreserved characters as they are, the rest as `%XX`.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The text of the first `<tag>…</tag>` in `xml` (moto's error documents are flat).
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_and_error_fields() {
        assert_eq!(form_encode("prod api-5xx/ü"), "prod%20api-5xx%2F%C3%BC");
        let error =
            "<ErrorResponse><Error><Code>ResourceNotFound</Code><Message>gone</Message></Error></ErrorResponse>";
        assert_eq!((xml_text(error, "Code"), xml_text(error, "Message")), (Some("ResourceNotFound"), Some("gone")));
        assert_eq!(xml_text("<Error/>", "Code"), None);
    }
}
