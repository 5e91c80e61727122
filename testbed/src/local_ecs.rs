//! ECS on the local AWS: services whose deployments move as ECS's do
//! (`testbed/local_aws/ecs_deployments.py`) and CodeBuild builds that apply to ECS as the team's
//! Terraform would (`testbed/local_aws/terraform_apply.py`); see `testbed/local_aws/README.md`.
//!
//! The test bed speaks ECS's JSON protocol over one raw HTTP request rather than through an SDK
//! crate: it needs five calls, and the workspace builds no ECS client for them. moto checks no
//! signature; the credential scope in `Authorization` only tells it the service and region.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http_client;
use crate::local_aws::{LocalAws, ACCESS_KEY_ID, ACCOUNT_ID, REGION};
use crate::HarnessError;

/// The detail-type of ECS's deployment events.
pub const DEPLOYMENT_STATE_CHANGE: &str = "ECS Deployment State Change";
const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113";
const TERRAFORM_PATH: &str = "/_tagrelay/ecs/terraform";
const BEHAVIOUR_PATH: &str = "/_tagrelay/ecs/behaviour";
const CRASHING_PATH: &str = "/_tagrelay/ecs/crashing";
const PENDING_PATH: &str = "/_tagrelay/ecs/pending";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

/// One parameter → service mapping of a project's Terraform: the parameter's value is the tag of
/// `image_repository` that `container` of `service` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsTarget {
    pub parameter: String,
    pub service: String,
    pub container: String,
    /// The repository URI, e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com/my-api`.
    pub image_repository: String,
}

/// An ECS service to create: one container running `image`, desired count 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsService {
    pub cluster: String,
    pub service: String,
    pub container: String,
    pub image: String,
    pub circuit_breaker: bool,
    pub rollback: bool,
}

impl EcsService {
    /// A service whose container is named after it, with the circuit breaker and rollback on
    /// (what the team's services use).
    pub fn new(cluster: &str, service: &str, image: &str) -> EcsService {
        EcsService {
            cluster: cluster.to_owned(),
            service: service.to_owned(),
            container: service.to_owned(),
            image: image.to_owned(),
            circuit_breaker: true,
            rollback: true,
        }
    }
}

/// One entry of DescribeServices' `deployments`, the fields tagrelay reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub id: String,
    /// PRIMARY or ACTIVE.
    pub status: String,
    pub task_definition: String,
    /// IN_PROGRESS, COMPLETED or FAILED.
    pub rollout_state: String,
    pub rollout_state_reason: String,
}

impl Deployment {
    fn from_json(value: &Value) -> Deployment {
        let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
        Deployment {
            id: text("id"),
            status: text("status"),
            task_definition: text("taskDefinition"),
            rollout_state: text("rolloutState"),
            rollout_state_reason: text("rolloutStateReason"),
        }
    }
}

/// The URI of the local account's ECR repository `name`, as a task definition names its image.
pub fn ecr_repository_uri(name: &str) -> String {
    format!("{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/{name}")
}

impl LocalAws {
    /// One ECS call: `operation` is `ecs:<Action>`; the answer's JSON, or `HarnessError::Aws`
    /// with ECS's error code and message.
    pub async fn ecs(&self, operation: &'static str, request: Value) -> Result<Value, HarnessError> {
        let action = operation.strip_prefix("ecs:").unwrap_or(operation);
        let target = format!("{TARGET_PREFIX}.{action}");
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20260101/{REGION}/ecs/aws4_request, \
             SignedHeaders=host, Signature=0"
        );
        let headers = [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", target.as_str()),
            ("Authorization", authorization.as_str()),
        ];
        let address = format!("127.0.0.1:{}", self.port());
        let body = request.to_string();
        let call = http_client::request_with_headers(&address, "POST", "/", &headers, &body);
        let (status, answer) = tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| HarnessError::Timeout { what: operation.to_owned(), after: CALL_TIMEOUT })?
            .map_err(HarnessError::io(operation))?;
        let parsed: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
        if status != 200 {
            let code = parsed["__type"].as_str().unwrap_or("unknown error");
            let message = parsed["message"].as_str().unwrap_or(&answer);
            return Err(HarnessError::Aws { operation, message: format!("{code}: {message} (HTTP {status})") });
        }
        Ok(parsed)
    }

    /// What `project`'s builds deploy to ECS when they apply (replacing what was set): each
    /// target's service in `cluster` gets the tag its parameter holds at the build's fingerprint.
    /// An empty `targets` makes the project's builds touch nothing.
    pub async fn set_ecs_terraform(
        &self,
        project: &str,
        cluster: &str,
        targets: &[EcsTarget],
    ) -> Result<(), HarnessError> {
        let services: serde_json::Map<String, Value> = targets
            .iter()
            .map(|t| {
                let target =
                    json!({"service": t.service, "container": t.container, "image_repository": t.image_repository});
                (t.parameter.clone(), target)
            })
            .collect();
        let body = json!({ "project": project, "cluster": cluster, "services": services });
        self.post_control(TERRAFORM_PATH, "local-aws:SetEcsTerraform", body).await
    }

    /// How long a deployment takes to complete (`rollout`) or, when its image crashes, to fail
    /// (`failure`). Unset, both are 1 s.
    pub async fn set_ecs_behaviour(&self, rollout: Duration, failure: Duration) -> Result<(), HarnessError> {
        let body = json!({ "rollout_seconds": rollout.as_secs_f64(), "failure_seconds": failure.as_secs_f64() });
        self.post_control(BEHAVIOUR_PATH, "local-aws:SetEcsBehaviour", body).await
    }

    /// The images whose tasks never start (full references `repo:tag`, or bare tags), replacing
    /// the previous list; deployments started from now on see it.
    pub async fn set_crashing_images(&self, images: &[&str]) -> Result<(), HarnessError> {
        self.post_control(CRASHING_PATH, "local-aws:SetCrashingImages", json!({ "images": images })).await
    }

    /// How many deployments will still change by themselves (0: ECS is still). A crashing
    /// deployment without the circuit breaker stays IN_PROGRESS and is not counted.
    pub async fn ecs_pending(&self) -> Result<u64, HarnessError> {
        let answer = self.control(PENDING_PATH, "local-aws:EcsPending", json!({})).await?;
        answer["timers"].as_u64().ok_or_else(|| HarnessError::Aws {
            operation: "local-aws:EcsPending",
            message: format!("no timer count in {answer}"),
        })
    }

    pub async fn create_ecs_cluster(&self, name: &str) -> Result<(), HarnessError> {
        self.ecs("ecs:CreateCluster", json!({ "clusterName": name })).await.map(drop)
    }

    /// Registers the service's first task definition (family = service name) and creates the
    /// service; its first deployment starts IN_PROGRESS. See [`LocalAws::create_ecs_service`].
    pub async fn start_ecs_service(&self, spec: &EcsService) -> Result<(), HarnessError> {
        let container = json!({ "name": spec.container, "image": spec.image, "memory": 512, "essential": true });
        let registered = self
            .ecs(
                "ecs:RegisterTaskDefinition",
                json!({ "family": spec.service, "containerDefinitions": [container], "requiresCompatibilities": ["FARGATE"],
                        "networkMode": "awsvpc", "cpu": "256", "memory": "512" }),
            )
            .await?;
        let task_definition = registered["taskDefinition"]["taskDefinitionArn"].as_str().unwrap_or_default();
        let breaker = json!({ "enable": spec.circuit_breaker, "rollback": spec.rollback });
        self.ecs(
            "ecs:CreateService",
            json!({ "cluster": spec.cluster, "serviceName": spec.service, "taskDefinition": task_definition,
                    "desiredCount": 1, "launchType": "FARGATE",
                    "deploymentConfiguration": { "deploymentCircuitBreaker": breaker,
                                                 "maximumPercent": 200, "minimumHealthyPercent": 100 } }),
        )
        .await
        .map(drop)
    }

    /// [`LocalAws::start_ecs_service`], then waits until its first deployment COMPLETED, so a
    /// later rollback has somewhere to go; a first deployment that fails is a `Setup` error.
    pub async fn create_ecs_service(&self, spec: &EcsService, timeout: Duration) -> Result<(), HarnessError> {
        self.start_ecs_service(spec).await?;
        self.wait_first_rollout(spec, timeout).await
    }

    pub(crate) async fn wait_first_rollout(&self, spec: &EcsService, timeout: Duration) -> Result<(), HarnessError> {
        let primary = self.wait_ecs_rollout(&spec.cluster, &spec.service, timeout).await?;
        if primary.rollout_state != "COMPLETED" {
            let message =
                format!("its first deployment is {}: {}", primary.rollout_state, primary.rollout_state_reason);
            return Err(HarnessError::Setup { what: "an ECS service", message });
        }
        Ok(())
    }

    /// The service as DescribeServices answers it.
    pub async fn describe_ecs_service(&self, cluster: &str, service: &str) -> Result<Value, HarnessError> {
        let answer = self.ecs("ecs:DescribeServices", json!({ "cluster": cluster, "services": [service] })).await?;
        answer["services"].get(0).cloned().ok_or_else(|| HarnessError::Aws {
            operation: "ecs:DescribeServices",
            message: format!("{service} not found in {cluster}: {}", answer["failures"]),
        })
    }

    /// The service's deployments, PRIMARY first.
    pub async fn ecs_deployments(&self, cluster: &str, service: &str) -> Result<Vec<Deployment>, HarnessError> {
        let described = self.describe_ecs_service(cluster, service).await?;
        let deployments = described["deployments"].as_array().map(Vec::as_slice).unwrap_or_default();
        Ok(deployments.iter().map(Deployment::from_json).collect())
    }

    /// The image `container` runs in the service's current task definition.
    pub async fn ecs_service_image(
        &self,
        cluster: &str,
        service: &str,
        container: &str,
    ) -> Result<String, HarnessError> {
        let described = self.describe_ecs_service(cluster, service).await?;
        let task_definition = described["taskDefinition"].as_str().unwrap_or_default();
        let answer = self.ecs("ecs:DescribeTaskDefinition", json!({ "taskDefinition": task_definition })).await?;
        let containers = answer["taskDefinition"]["containerDefinitions"].as_array().cloned().unwrap_or_default();
        let found = containers.iter().find(|c| c["name"] == container).and_then(|c| c["image"].as_str());
        found.map(str::to_owned).ok_or_else(|| HarnessError::Aws {
            operation: "ecs:DescribeTaskDefinition",
            message: format!("{task_definition} has no container {container}"),
        })
    }

    /// Waits until the service's PRIMARY deployment is no longer IN_PROGRESS; returns it.
    pub async fn wait_ecs_rollout(
        &self,
        cluster: &str,
        service: &str,
        timeout: Duration,
    ) -> Result<Deployment, HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            let deployments = self.ecs_deployments(cluster, service).await?;
            if let Some(primary) = deployments.into_iter().find(|d| d.status == "PRIMARY") {
                if primary.rollout_state != "IN_PROGRESS" {
                    return Ok(primary);
                }
            }
            if Instant::now() >= deadline {
                let what = format!("the rollout of {cluster}/{service} to end");
                return Err(HarnessError::Timeout { what, after: timeout });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
