//! The ECS part of a tagrelay config, as [`crate::system::LocalSystem`] sets it up: which
//! environments run on which cluster, and which service and container each parameter deploys.
//!
//! Read from the JSON document itself rather than through `tagrelay::config`, so the test bed
//! does not depend on how the core exposes these fields:
//! `environments.<env>.ecs_cluster` (absent: the environment has no ECS services),
//! `services.<svc>.ecs_service` (absent: the service's name; `null`: not an ECS service),
//! `services.<svc>.container` (absent: the service's name), and the top-level
//! `parameter_placeholder` (absent: `"initial"`), the value image-tag parameters are created with.

use serde_json::Value;
use tagrelay::config::Config;

use crate::local_ecs::{ecr_repository_uri, EcsService, EcsTarget};
use crate::HarnessError;

/// What infra/ creates the image-tag parameters with when the config does not say.
pub const DEFAULT_PLACEHOLDER: &str = "initial";

/// One environment with an ECS cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsEnvironment {
    pub environment: String,
    pub project: String,
    pub cluster: String,
    pub targets: Vec<EcsTarget>,
    /// Every image-tag parameter of the environment (ECS services or not), sorted.
    pub parameters: Vec<String>,
}

impl EcsEnvironment {
    /// The services to create before the first build: each runs `<repository>:<placeholder>`,
    /// the value its parameter is created with, with the circuit breaker and rollback on.
    pub fn services(&self, placeholder: &str) -> Vec<EcsService> {
        self.targets
            .iter()
            .map(|target| {
                let image = format!("{}:{placeholder}", target.image_repository);
                EcsService {
                    container: target.container.clone(),
                    ..EcsService::new(&self.cluster, &target.service, &image)
                }
            })
            .collect()
    }
}

/// The environments of `document` that have an `ecs_cluster`, with their ECS targets; `config` is
/// the same document as the core reads it (parameter names, repositories, projects).
pub fn ecs_environments(document: &Value, config: &Config) -> Result<Vec<EcsEnvironment>, HarnessError> {
    let mut environments = Vec::new();
    for environment in config.environments() {
        let cluster = match &document["environments"][&environment.name]["ecs_cluster"] {
            Value::Null => continue,
            Value::String(cluster) if !cluster.is_empty() => cluster.clone(),
            other => return Err(invalid(format!("environments.{}.ecs_cluster: {other}", environment.name))),
        };
        let mut targets = Vec::new();
        for service in config.services() {
            let raw = &document["services"][&service.name];
            let ecs_service = match raw.get("ecs_service") {
                None => service.name.clone(),
                Some(Value::Null) => continue,
                Some(Value::String(name)) if !name.is_empty() => name.clone(),
                Some(other) => return Err(invalid(format!("services.{}.ecs_service: {other}", service.name))),
            };
            let container = match raw.get("container") {
                None | Some(Value::Null) => service.name.clone(),
                Some(Value::String(name)) if !name.is_empty() => name.clone(),
                Some(other) => return Err(invalid(format!("services.{}.container: {other}", service.name))),
            };
            targets.push(EcsTarget {
                parameter: config.parameter_name(&service.name, &environment.name),
                service: ecs_service,
                container,
                image_repository: ecr_repository_uri(&service.repository),
            });
        }
        environments.push(EcsEnvironment {
            environment: environment.name.clone(),
            project: environment.codebuild_project.clone(),
            cluster,
            targets,
            parameters: config.parameter_names(&environment.name),
        });
    }
    Ok(environments)
}

/// The top-level `parameter_placeholder`, or [`DEFAULT_PLACEHOLDER`].
pub fn parameter_placeholder(document: &Value) -> Result<String, HarnessError> {
    match &document["parameter_placeholder"] {
        Value::Null => Ok(DEFAULT_PLACEHOLDER.to_owned()),
        Value::String(value) if !value.is_empty() => Ok(value.clone()),
        other => Err(invalid(format!("parameter_placeholder: {other}"))),
    }
}

fn invalid(message: String) -> HarnessError {
    HarnessError::Setup {
        what: "the ECS part of the tagrelay config",
        message: format!("{message} (expected a non-empty string)"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The core's view: the document without the ECS fields (which `tagrelay::config` may not
    /// know yet), so this module is tested on its own reading of them.
    fn core_config(document: &Value) -> Config {
        let mut core = document.clone();
        core.as_object_mut().expect("an object").remove("parameter_placeholder");
        for environment in core["environments"].as_object_mut().expect("environments").values_mut() {
            for key in ["ecs_cluster", "verify_timeout"] {
                environment.as_object_mut().expect("an environment").remove(key);
            }
        }
        for service in core["services"].as_object_mut().expect("services").values_mut() {
            for key in ["ecs_service", "container"] {
                service.as_object_mut().expect("a service").remove(key);
            }
        }
        Config::from_json(&core.to_string()).expect("a valid config")
    }

    fn document() -> Value {
        json!({
            "parameter_placeholder": "none-yet",
            "environments": {
                "dev": { "codebuild_project": "tagrelay-dev", "ecs_cluster": "dev-cluster", "verify_timeout": "30m" },
                "prod": { "codebuild_project": "tagrelay-prod" }
            },
            "services": {
                "my-api": { "repository": "team/my-api", "deploy_on_push": ["dev"], "ecs_service": "api", "container": "app" },
                "worker": { "deploy_on_push": [] },
                "migrations": { "deploy_on_push": [], "ecs_service": null }
            }
        })
    }

    #[test]
    fn environments_with_a_cluster_map_each_ecs_service_with_its_defaults() {
        let document = document();
        let environments = ecs_environments(&document, &core_config(&document)).expect("read");
        let uri = |repository: &str| format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{repository}");
        assert_eq!(
            environments,
            [EcsEnvironment {
                environment: "dev".into(),
                project: "tagrelay-dev".into(),
                cluster: "dev-cluster".into(),
                targets: vec![
                    EcsTarget {
                        parameter: "/my-api/dev/docker-image-tag".into(),
                        service: "api".into(),
                        container: "app".into(),
                        image_repository: uri("team/my-api"),
                    },
                    EcsTarget {
                        parameter: "/worker/dev/docker-image-tag".into(),
                        service: "worker".into(),
                        container: "worker".into(),
                        image_repository: uri("worker"),
                    },
                ],
                parameters: vec![
                    "/migrations/dev/docker-image-tag".into(),
                    "/my-api/dev/docker-image-tag".into(),
                    "/worker/dev/docker-image-tag".into(),
                ],
            }]
        );
        assert_eq!(parameter_placeholder(&document).expect("placeholder"), "none-yet");
        let services = environments[0].services("none-yet");
        assert_eq!(services[0].image, format!("{}:none-yet", uri("team/my-api")));
        assert_eq!((services[0].service.as_str(), services[0].container.as_str()), ("api", "app"));
        assert!(services.iter().all(|s| s.circuit_breaker && s.rollback && s.cluster == "dev-cluster"));
    }

    #[test]
    fn defaults_and_wrong_types() {
        let mut document = document();
        document.as_object_mut().expect("object").remove("parameter_placeholder");
        assert_eq!(parameter_placeholder(&document).expect("default"), "initial");

        let config = core_config(&document);
        document["services"]["worker"]["ecs_service"] = json!(7);
        let err = ecs_environments(&document, &config).expect_err("a number is no service name");
        assert!(err.to_string().contains("services.worker.ecs_service: 7"), "{err}");
        document["services"]["worker"]["ecs_service"] = json!("worker");
        document["environments"]["prod"]["ecs_cluster"] = json!("");
        let err = ecs_environments(&document, &config).expect_err("an empty cluster name");
        assert!(matches!(err, HarnessError::Setup { .. }), "{err}");
    }
}
