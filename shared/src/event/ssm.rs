//! EventBridge "Parameter Store Change" (source `aws.ssm`). It carries the parameter's name and
//! the operation, never its value or version; `description` may be absent.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    Create,
    Update,
    Delete,
    LabelParameterVersion,
    /// An operation this version does not know; never acted on.
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ParameterChange {
    pub operation: Operation,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}
