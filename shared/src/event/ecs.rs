//! EventBridge "ECS Deployment State Change" (source `aws.ecs`): a service deployment started,
//! completed or failed. ECS sends them at least once and not in order (ECS Developer Guide,
//! "Handling events"), so an event only says *which service to look at*; the state is read
//! again with DescribeServices. Unknown fields are ignored: ECS says it may add some.

use serde::{Deserialize, Serialize};

use super::{parse, EventError};

pub const DEPLOYMENT_STATE_CHANGE: (&str, &str) = ("aws.ecs", "ECS Deployment State Change");

/// The envelope fields we read: the service is only in `resources`.
#[derive(Debug, Deserialize)]
struct Envelope {
    resources: Vec<String>,
    detail: Detail,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    event_name: String,
    deployment_id: String,
    #[serde(default)]
    updated_at: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// One deployment state change of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentChange {
    /// The cluster's name, from the service's long ARN (`…:service/<cluster>/<service>`).
    pub cluster: String,
    pub service: String,
    /// `SERVICE_DEPLOYMENT_IN_PROGRESS`, `_COMPLETED` or `_FAILED`, as sent.
    pub event_name: String,
    pub deployment_id: String,
    pub updated_at: Option<String>,
    pub reason: Option<String>,
}

/// Parses the event; an error names the field. A service ARN in the old short format
/// (`…:service/<service>`) names no cluster and is refused: the rule matches clusters by the
/// long format's prefix, so such an event cannot be ours.
pub fn parse_deployment_change(event: &serde_json::Value) -> Result<DeploymentChange, EventError> {
    let envelope: Envelope = parse(event)?;
    let [arn] = envelope.resources.as_slice() else {
        return Err(EventError::Malformed {
            field: "resources".into(),
            message: format!("expected the one service ARN, got {} entries", envelope.resources.len()),
        });
    };
    let (cluster, service) = cluster_and_service(arn).ok_or_else(|| EventError::Malformed {
        field: "resources[0]".into(),
        message: format!("expected arn:<partition>:ecs:<region>:<account>:service/<cluster>/<service>, got {arn:?}"),
    })?;
    let detail = envelope.detail;
    Ok(DeploymentChange {
        cluster: cluster.to_owned(),
        service: service.to_owned(),
        event_name: detail.event_name,
        deployment_id: detail.deployment_id,
        updated_at: detail.updated_at,
        reason: detail.reason,
    })
}

/// `(cluster, service)` of a long-format service ARN.
pub fn cluster_and_service(arn: &str) -> Option<(&str, &str)> {
    let mut fields = arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some("ecs"), Some(_region), Some(_account), Some(resource)) =
        (fields.next(), fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return None;
    };
    let path = resource.strip_prefix("service/")?;
    let (cluster, service) = path.split_once('/')?;
    (!cluster.is_empty() && !service.is_empty() && !service.contains('/')).then_some((cluster, service))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_arns() {
        let cases = [
            ("arn:aws:ecs:us-west-2:111122223333:service/default/servicetest", Some(("default", "servicetest"))),
            ("arn:aws-cn:ecs:cn-north-1:111122223333:service/prod/my-api", Some(("prod", "my-api"))),
            // The short format of services created before 2021 names no cluster.
            ("arn:aws:ecs:us-west-2:111122223333:service/servicetest", None),
            ("arn:aws:ecs:us-west-2:111122223333:task/default/abc", None),
            ("arn:aws:ecs:us-west-2:111122223333:service/a/b/c", None),
            ("arn:aws:ecs:us-west-2:111122223333:service//b", None),
            ("arn:aws:lambda:us-west-2:111122223333:service/a/b", None),
            ("service/a/b", None),
        ];
        for (arn, expected) in cases {
            assert_eq!(cluster_and_service(arn), expected, "{arn}");
        }
    }

    #[test]
    fn a_missing_or_odd_field_is_named() {
        let event = |resources: serde_json::Value, detail: serde_json::Value| json!({ "source": "aws.ecs", "detail-type": "ECS Deployment State Change", "resources": resources, "detail": detail });
        let detail = json!({ "eventName": "SERVICE_DEPLOYMENT_COMPLETED", "deploymentId": "ecs-svc/1" });
        let arn = "arn:aws:ecs:eu-west-1:111122223333:service/dev/my-api";

        let ok = parse_deployment_change(&event(json!([arn]), detail.clone())).expect("parses");
        assert_eq!((ok.cluster.as_str(), ok.service.as_str(), ok.updated_at), ("dev", "my-api", None));

        let err = parse_deployment_change(&event(json!([]), detail.clone())).expect_err("no service");
        assert_eq!(err.field(), "resources");
        let err = parse_deployment_change(&event(json!(["arn:aws:ecs:eu-west-1:1:service/my-api"]), detail))
            .expect_err("short ARN");
        assert_eq!(err.field(), "resources[0]");
        let err = parse_deployment_change(&event(json!([arn]), json!({ "eventName": "X" }))).expect_err("no id");
        assert_eq!(err.field(), "detail");
    }
}
