//! The rule patterns of `infra/event-patterns/`, through the test bed's matcher, against the real
//! AWS events of `fixtures/events/`: each rule takes its events and refuses the near misses. (With
//! the narrowing `infra/events.tf` applies: `FIXTURE_RULES` in `infra_terraform.rs`.)

use std::path::PathBuf;

use serde_json::{json, Value};
use tagrelay_testbed::event_pattern::EventPattern;
use tagrelay_testbed::workspace_root;

/// `event` with the value at `pointer` (like `/detail/result`, a field it has) replaced.
fn with(mut event: Value, pointer: &str, value: Value) -> Value {
    *event.pointer_mut(pointer).unwrap_or_else(|| panic!("the event has no {pointer}")) = value;
    event
}

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

#[test]
fn infra_event_patterns_parse_and_match_their_events() {
    let dir = workspace_root().join("infra/event-patterns");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no patterns in {}", dir.display());

    let ecr_push = fixture("ecr-push.json");
    let ssm_create = fixture("ssm-parameter-create.json");
    let build_succeeded = fixture("codebuild-succeeded.json");
    // file name → (events the rule must take, near misses it must refuse)
    let expectations = |name: &str| -> Option<(Vec<Value>, Vec<Value>)> {
        match name {
            "ecr-image-action.json" => Some((
                vec![ecr_push.clone(), fixture("ecr-push-media-types.json"), fixture("ecr-push-empty-tag.json")],
                vec![
                    fixture("ecr-delete.json"),
                    with(ecr_push.clone(), "/detail/result", json!("FAILURE")),
                    with(ecr_push.clone(), "/source", json!("custom.ecr")),
                    ssm_create.clone(),
                ],
            )),
            "parameter-store-change.json" => Some((
                vec![
                    ssm_create.clone(),
                    fixture("ssm-parameter-update-no-description.json"),
                    with(ssm_create.clone(), "/detail/operation", json!("Delete")),
                ],
                vec![
                    with(ssm_create.clone(), "/detail/operation", json!("LabelParameterVersion")),
                    with(ssm_create.clone(), "/detail-type", json!("Parameter Store Policy Action")),
                    ecr_push.clone(),
                ],
            )),
            "codebuild-build-state-change.json" => Some((
                vec![
                    build_succeeded.clone(),
                    with(build_succeeded.clone(), "/detail/build-status", json!("FAILED")),
                    with(build_succeeded.clone(), "/detail/build-status", json!("STOPPED")),
                ],
                vec![
                    fixture("codebuild-in-progress.json"),
                    with(build_succeeded.clone(), "/detail-type", json!("CodeBuild Build Phase Change")),
                    fixture("scheduled-event.json"),
                ],
            )),
            "ecs-deployment-state-change.json" => {
                let completed = fixture("ecs-deployment-completed.json");
                Some((
                    vec![
                        fixture("ecs-deployment-in-progress.json"),
                        fixture("ecs-deployment-rollback-in-progress.json"),
                        completed.clone(),
                        fixture("ecs-deployment-failed.json"),
                    ],
                    vec![
                        // "ECS Service Action" events use the same names (ECS Developer Guide):
                        // the rule filters on the detail-type too.
                        with(completed.clone(), "/detail-type", json!("ECS Service Action")),
                        with(completed.clone(), "/detail/eventName", json!("SERVICE_STEADY_STATE")),
                        with(completed.clone(), "/source", json!("custom.ecs")),
                        build_succeeded.clone(),
                    ],
                ))
            }
            "cloudwatch-alarm-state-change.json" => {
                let metric = fixture("cloudwatch-alarm-metric.json");
                Some((
                    vec![
                        metric.clone(),
                        fixture("cloudwatch-alarm-metric-math.json"),
                        fixture("cloudwatch-alarm-composite.json"),
                    ],
                    vec![
                        // Created, updated and deleted alarms come from the same source.
                        with(metric.clone(), "/detail-type", json!("CloudWatch Alarm Configuration Change")),
                        with(metric.clone(), "/source", json!("custom.cloudwatch")),
                        ssm_create.clone(),
                    ],
                ))
            }
            _ => None,
        }
    };

    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let pattern = EventPattern::from_file(file).unwrap_or_else(|err| panic!("{err}"));
        let (matching, refused) = expectations(name)
            .unwrap_or_else(|| panic!("{name} has no events to check it against: add them to this test"));
        for event in &matching {
            assert!(pattern.matches(event), "{name} should match event {}", event["id"]);
        }
        for event in &refused {
            assert!(!pattern.matches(event), "{name} should refuse {}", event["detail"]);
        }
    }
}
