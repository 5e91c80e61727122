//! EventBridge "ECR Image Action" (source `aws.ecr`). `aws_lambda_events` has no type for its
//! detail, so it is defined here.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};

use super::deploy::SCHEDULED;
use super::{parse, EventError};

pub const SOURCE: &str = "aws.ecr";
pub const DETAIL_TYPE: &str = "ECR Image Action";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionType {
    Push,
    Delete,
    /// An action this version does not know; never acted on.
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionResult {
    Success,
    Failure,
    #[serde(other)]
    Other,
}

/// The `detail` of an ECR Image Action. `image-tag` is absent or empty for untagged pushes;
/// newer events add `artifact-media-type` and `manifest-media-type`, which we do not need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageAction {
    pub action_type: ActionType,
    pub result: ActionResult,
    pub repository_name: String,
    #[serde(default)]
    pub image_digest: Option<String>,
    #[serde(default)]
    pub image_tag: Option<String>,
}

impl ImageAction {
    /// The pushed tag, if the event has a non-empty one.
    pub fn tag(&self) -> Option<&str> {
        self.image_tag.as_deref().filter(|tag| !tag.is_empty())
    }
}

pub type ImageActionEvent = EventBridgeEvent<ImageAction>;

/// Parses an ECR Image Action. An event of another type is an error: it means a rule routes
/// the wrong events here, which someone has to see. The type is checked before the detail, so
/// such an event is named for what it is rather than for a field it lacks.
pub fn parse_image_action(event: &serde_json::Value) -> Result<ImageActionEvent, EventError> {
    for (field, expected) in [("detail-type", DETAIL_TYPE), ("source", SOURCE)] {
        match event.get(field).and_then(serde_json::Value::as_str) {
            Some(actual) if actual != expected => {
                return Err(EventError::Unexpected { field, expected, actual: actual.to_owned() })
            }
            // Missing or not a string: the typed parse below names it.
            _ => {}
        }
    }
    parse(event)
}

/// What record-image-tag takes: a push, or the scheduled record sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordEvent {
    /// The push's detail: nothing else of the envelope is read.
    ImageAction(ImageAction),
    /// The sweep; its detail is empty.
    Scheduled,
}

/// An ECR Image Action, or the schedule's "Scheduled Event". Anything else is an error, named
/// as `parse_image_action` names it.
pub fn parse_record_event(event: &serde_json::Value) -> Result<RecordEvent, EventError> {
    let field = |name: &str| event.get(name).and_then(serde_json::Value::as_str);
    if (field("source"), field("detail-type")) == (Some(SCHEDULED.0), Some(SCHEDULED.1)) {
        return Ok(RecordEvent::Scheduled);
    }
    parse_image_action(event).map(|event| RecordEvent::ImageAction(event.detail))
}
