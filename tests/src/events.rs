//! EventBridge events as AWS delivers them, built from what the local AWS just did.

use serde_json::{json, Value};

/// An "ECR Image Action" as EventBridge delivers it for a push (or `action`) of `repository:tag`.
pub fn ecr_image_action(action: &str, repository: &str, tag: &str, digest: &str) -> Value {
    json!({
        "version": "0",
        "id": format!("{:08x}-0000-4000-8000-000000000000", fnv1a(&format!("{action}{repository}{tag}{digest}"))),
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

/// A stable event id per content, so a redelivered event looks like the same one.
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193))
}
