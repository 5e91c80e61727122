//! EventBridge events as AWS delivers them, built from what the local AWS just did.

use serde_json::{json, Value};
use tagrelay_testbed::local_aws::fake_sha256;

/// An "ECR Image Action" as EventBridge delivers it for a push (or `action`) of `repository:tag`.
pub fn ecr_image_action(action: &str, repository: &str, tag: &str, digest: &str) -> Value {
    json!({
        "version": "0",
        "id": event_id(&format!("{action}{repository}{tag}{digest}")),
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": "123456789012",
        "time": "2026-11-28T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "result": "SUCCESS",
            "repository-name": repository,
            "image-digest": digest,
            "action-type": action,
            "image-tag": tag,
            "artifact-media-type": "application/vnd.docker.container.image.v1+json",
            "manifest-media-type": "application/vnd.docker.distribution.manifest.v2+json"
        }
    })
}

/// A successful push of `repository:tag`.
pub fn ecr_push(repository: &str, tag: &str, digest: &str) -> Value {
    ecr_image_action("PUSH", repository, tag, digest)
}

/// The sweep schedule's "Scheduled Event" (rule `tagrelay-sweep`); `id` tells deliveries apart.
pub fn scheduled(id: &str) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-28T08:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/tagrelay-sweep"], "detail": {}
    })
}

/// A stable event id per content, so a redelivered event looks like the same one.
fn event_id(content: &str) -> String {
    let hex = fake_sha256(content);
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}
