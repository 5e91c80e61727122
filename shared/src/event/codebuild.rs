//! EventBridge "CodeBuild Build State Change" (source `aws.codebuild`). `IN_PROGRESS` events
//! carry no `phases` and no `build-number`; we read neither.

use serde::{Deserialize, Serialize};

use crate::ports::BuildStatus;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BuildStateChange {
    pub build_status: BuildStatus,
    pub project_name: String,
    pub build_id: String,
}
