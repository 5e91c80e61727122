//! Parsing of real AWS sample events kept in `tests/fixtures/events/`.

use std::path::PathBuf;

use tagrelay::event::ecr::{parse_image_action, ActionResult, ActionType};

fn fixture(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

#[test]
fn user_guide_push_sample() {
    let event = parse_image_action(&fixture("ecr-push.json")).expect("parses");
    assert_eq!(event.detail.action_type, ActionType::Push);
    assert_eq!(event.detail.result, ActionResult::Success);
    assert_eq!(event.detail.repository_name, "my-repository-name");
    assert_eq!(event.detail.tag(), Some("latest"));
    assert_eq!(
        event.detail.image_digest.as_deref(),
        Some("sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234")
    );
    assert_eq!(event.region.as_deref(), Some("us-west-2"));
}

#[test]
fn user_guide_delete_sample() {
    let event = parse_image_action(&fixture("ecr-delete.json")).expect("parses");
    assert_eq!(event.detail.action_type, ActionType::Delete);
    assert_eq!(event.detail.tag(), Some("latest"));
}

#[test]
fn push_with_media_type_fields() {
    let event = parse_image_action(&fixture("ecr-push-media-types.json")).expect("extra fields are tolerated");
    assert_eq!(event.detail.repository_name, "team/my-api");
    assert_eq!(event.detail.tag(), Some("1043"));
}

#[test]
fn push_with_empty_tag() {
    let event = parse_image_action(&fixture("ecr-push-empty-tag.json")).expect("parses");
    assert_eq!(event.detail.image_tag.as_deref(), Some(""));
    assert_eq!(event.detail.tag(), None, "an empty tag is no tag");

    let mut without = fixture("ecr-push-empty-tag.json");
    without["detail"].as_object_mut().expect("object").remove("image-tag");
    let event = parse_image_action(&without).expect("a missing tag parses too");
    assert_eq!(event.detail.tag(), None);
}

#[test]
fn unknown_action_and_result_values_parse_as_other() {
    let mut event = fixture("ecr-push.json");
    event["detail"]["action-type"] = serde_json::json!("REPLICATE");
    event["detail"]["result"] = serde_json::json!("PARTIAL");
    let parsed = parse_image_action(&event).expect("parses");
    assert_eq!(parsed.detail.action_type, ActionType::Other);
    assert_eq!(parsed.detail.result, ActionResult::Other);
}

#[test]
fn missing_required_fields_are_named() {
    for field in ["repository-name", "action-type", "result"] {
        let mut event = fixture("ecr-push.json");
        event["detail"].as_object_mut().expect("object").remove(field);
        let err = parse_image_action(&event).expect_err("must fail");
        assert_eq!(err.field(), "detail", "{err}");
        assert!(err.to_string().contains(&format!("missing field `{field}`")), "{err}");
    }
    let mut event = fixture("ecr-push.json");
    event["detail"]["repository-name"] = serde_json::json!(42);
    let err = parse_image_action(&event).expect_err("must fail");
    assert_eq!(err.field(), "detail.repository-name", "{err}");
}

mod deploy_events {
    use super::fixture;
    use tagrelay::event::deploy::{parse_deploy_event, DeployEvent};
    use tagrelay::event::ssm::Operation;
    use tagrelay::ports::BuildStatus;

    #[test]
    fn ssm_sample_with_and_without_description() {
        match parse_deploy_event(&fixture("ssm-parameter-create.json")).expect("parses") {
            DeployEvent::ParameterChange(change) => {
                assert_eq!(change.operation, Operation::Create);
                assert_eq!(change.name, "foo");
                assert_eq!(change.description.as_deref(), Some("Sample Parameter"));
            }
            other => panic!("unexpected {other:?}"),
        }
        match parse_deploy_event(&fixture("ssm-parameter-update-no-description.json")).expect("parses") {
            DeployEvent::ParameterChange(change) => {
                assert_eq!(change.operation, Operation::Update);
                assert_eq!(change.name, "/my-api/dev/docker-image-tag");
                assert_eq!(change.description, None);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn codebuild_samples_succeeded_and_in_progress() {
        match parse_deploy_event(&fixture("codebuild-succeeded.json")).expect("parses") {
            DeployEvent::BuildStateChange(change) => {
                assert_eq!(change.build_status, BuildStatus::Succeeded);
                assert_eq!(change.project_name, "my-sample-project");
                assert!(change.build_id.ends_with("my-sample-project:8745a7a9-c340-456a-9166-edf953571bEX"));
            }
            other => panic!("unexpected {other:?}"),
        }
        match parse_deploy_event(&fixture("codebuild-in-progress.json")).expect("parses without phases") {
            DeployEvent::BuildStateChange(change) => assert_eq!(change.build_status, BuildStatus::InProgress),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn scheduled_event_sample() {
        assert_eq!(parse_deploy_event(&fixture("scheduled-event.json")).expect("parses"), DeployEvent::Scheduled);
    }

    #[test]
    fn other_events_and_missing_fields_are_named() {
        let err = parse_deploy_event(&fixture("ecr-push.json")).expect_err("not a deploy event");
        assert_eq!(err.field(), "detail-type", "{err}");
        assert!(err.to_string().contains("ECR Image Action"), "{err}");

        let mut event = fixture("ssm-parameter-create.json");
        event["detail"].as_object_mut().expect("object").remove("name");
        let err = parse_deploy_event(&event).expect_err("no name");
        assert!(err.to_string().contains("missing field `name`"), "{err}");

        let mut event = fixture("codebuild-succeeded.json");
        event["detail"].as_object_mut().expect("object").remove("project-name");
        let err = parse_deploy_event(&event).expect_err("no project");
        assert!(err.to_string().contains("project-name"), "{err}");
    }
}

/// The four "ECS Deployment State Change" samples of the ECS Developer Guide (service deployment
/// events): the service is only in `resources` (long ARN format, so the cluster is in it).
mod ecs_deployment_events {
    use super::fixture;
    use tagrelay::event::ecs::parse_deployment_change;

    #[test]
    fn the_four_samples_parse_with_cluster_service_name_and_deployment() {
        let cases = [
            (
                "ecs-deployment-in-progress.json",
                "SERVICE_DEPLOYMENT_IN_PROGRESS",
                "ECS deployment deploymentId in progress.",
            ),
            (
                "ecs-deployment-rollback-in-progress.json",
                "SERVICE_DEPLOYMENT_IN_PROGRESS",
                "ECS deployment circuit breaker: rolling back to deploymentId deploymentID.",
            ),
            ("ecs-deployment-completed.json", "SERVICE_DEPLOYMENT_COMPLETED", "ECS deployment deploymentID completed."),
            (
                "ecs-deployment-failed.json",
                "SERVICE_DEPLOYMENT_FAILED",
                "ECS deployment circuit breaker: task failed to start.",
            ),
        ];
        for (name, event_name, reason) in cases {
            let change = parse_deployment_change(&fixture(name)).unwrap_or_else(|err| panic!("{name}: {err}"));
            assert_eq!(change.cluster, "default", "{name}");
            assert_eq!(change.service, "servicetest", "{name}");
            assert_eq!(change.event_name, event_name, "{name}");
            assert_eq!(change.deployment_id, "ecs-svc/123", "{name}");
            assert_eq!(change.updated_at.as_deref(), Some("2020-05-23T11:11:11Z"), "{name}");
            assert_eq!(change.reason.as_deref(), Some(reason), "{name}");
        }
    }

    #[test]
    fn a_sample_with_the_short_service_arn_is_refused_naming_the_field() {
        let mut event = fixture("ecs-deployment-completed.json");
        event["resources"] = serde_json::json!(["arn:aws:ecs:us-west-2:111122223333:service/servicetest"]);
        let err = parse_deployment_change(&event).expect_err("the short ARN names no cluster");
        assert_eq!(err.field(), "resources[0]", "{err}");
    }
}

/// The "CloudWatch Alarm State Change" samples of the CloudWatch User Guide ("Alarm events and
/// EventBridge"): a metric alarm, a metric math alarm leaving its initial INSUFFICIENT_DATA
/// (its previous state has no `reasonData`), and a composite alarm with a suppressor (its
/// `state` carries `actionsSuppressedBy`, its `configuration` an `alarmRule`).
mod cloudwatch_alarm_events {
    use super::fixture;
    use tagrelay::event::cloudwatch::{parse_alarm_state_change, ALARM_STATE_CHANGE};
    use tagrelay::ports::AlarmState;

    #[test]
    fn the_samples_parse_with_name_states_and_timestamp() {
        let cases = [
            ("cloudwatch-alarm-metric.json", "ServerCpuTooHigh", AlarmState::Ok, "2019-10-02T17:04:40.989+0000"),
            (
                "cloudwatch-alarm-metric-math.json",
                "TotalNetworkTrafficTooHigh",
                AlarmState::InsufficientData,
                "2019-10-02T17:20:48.554+0000",
            ),
            (
                "cloudwatch-alarm-composite.json",
                "ServiceAggregatedAlarm",
                AlarmState::Ok,
                "2022-07-22T15:57:45.394+0000",
            ),
        ];
        for (name, alarm, previous, timestamp) in cases {
            let event = fixture(name);
            assert_eq!(
                (event["source"].as_str(), event["detail-type"].as_str()),
                (Some(ALARM_STATE_CHANGE.0), Some(ALARM_STATE_CHANGE.1)),
                "{name}"
            );
            let change = parse_alarm_state_change(&event).unwrap_or_else(|err| panic!("{name}: {err}"));
            assert_eq!(change.alarm_name, alarm, "{name}");
            assert_eq!(change.state, AlarmState::Alarm, "{name}");
            assert_eq!(change.previous_state, Some(previous), "{name}");
            assert_eq!(change.state_timestamp.as_deref(), Some(timestamp), "{name}");
        }
    }

    #[test]
    fn an_unknown_state_value_is_refused_naming_the_field() {
        let mut event = fixture("cloudwatch-alarm-composite.json");
        event["detail"]["state"]["value"] = serde_json::json!("SUPPRESSED");
        let err = parse_alarm_state_change(&event).expect_err("not a state CloudWatch has");
        assert_eq!(err.field(), "detail.state.value", "{err}");
        assert!(err.to_string().contains("SUPPRESSED"), "{err}");

        let mut event = fixture("cloudwatch-alarm-metric.json");
        event["detail"].as_object_mut().expect("object").remove("alarmName");
        let err = parse_alarm_state_change(&event).expect_err("no alarm name");
        assert!(err.to_string().contains("missing field `alarmName`"), "{err}");
    }
}
