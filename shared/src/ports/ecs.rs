//! What tagrelay reads of ECS to verify a rollout: a service's deployments and the image a task
//! definition gives a container. The verification decision (`deploy::verify`) reads only these.

use std::collections::BTreeMap;
use std::future::Future;

use aws_smithy_types::DateTime;

use super::AwsError;

/// DescribeServices takes at most 10 services per call; the adapter splits longer lists.
pub const DESCRIBE_SERVICES_MAX: usize = 10;

crate::names::named_enum! {
    /// A deployment's `rolloutState`, by ECS's names.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum RolloutState {
        InProgress => "IN_PROGRESS",
        Completed => "COMPLETED",
        Failed => "FAILED",
        /// A state this version does not know.
        Other => "OTHER",
    }
}

/// One deployment of a service, as DescribeServices lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub id: String,
    /// `PRIMARY` (the newest), `ACTIVE` (being replaced) or `INACTIVE`.
    pub status: String,
    pub task_definition: String,
    /// Absent for services whose deployments ECS does not roll (CODE_DEPLOY or EXTERNAL
    /// controller, a Classic Load Balancer): such a service cannot be verified this way.
    pub rollout_state: Option<RolloutState>,
    pub rollout_state_reason: Option<String>,
    pub updated_at: Option<DateTime>,
}

impl Deployment {
    pub fn is_primary(&self) -> bool {
        self.status == "PRIMARY"
    }
}

/// A service as DescribeServices answers for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceState {
    /// Its deployments, newest first as ECS lists them.
    Found { deployments: Vec<Deployment> },
    /// ECS answered with a failure for it (`MISSING`, or the service is `INACTIVE`/`DRAINING`).
    Missing { reason: String },
}

pub trait EcsServices {
    /// The named services of `cluster`, by name. A name ECS does not know is `Missing`, not an
    /// error; a cluster that does not exist is an error.
    fn describe_services(
        &self,
        cluster: &str,
        services: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, ServiceState>, AwsError>> + Send;

    /// The image `container` runs in `task_definition` (family:revision or ARN); `None` when
    /// the task definition has no such container.
    fn container_image(
        &self,
        task_definition: &str,
        container: &str,
    ) -> impl Future<Output = Result<Option<String>, AwsError>> + Send;
}
