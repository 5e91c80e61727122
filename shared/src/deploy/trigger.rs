//! Which environment an event reconciles, or why it reconciles none. Pure: the event and the
//! config in, a `Trigger` and its environment or an `Ignored` out, so every branch is
//! table-tested without AWS. (The schedule reconciles every environment: nothing to decide.)

use crate::config::{Config, Environment};
use crate::event::codebuild::BuildStateChange;
use crate::event::ecs::DeploymentChange;
use crate::event::ssm::{Operation, ParameterChange};

use super::reconcile::Trigger;

crate::names::named_enum! {
    /// Why an event reconciles nothing.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum IgnoreReason {
        /// The parameter is not one of ours.
        ParameterNotOurs => "parameter_not_ours",
        /// A label change (or an unknown operation) does not change the value Terraform reads.
        NotAValueChange => "not_a_value_change",
        /// A deleted parameter: Terraform would fail to read it; an operator has to look.
        ParameterDeleted => "parameter_deleted",
        /// A build event of a project that is not a tagrelay environment's.
        ProjectNotOurs => "project_not_ours",
        /// A build that has not ended: its end event reconciles.
        BuildNotFinished => "build_not_finished",
        /// An ECS deployment of a service no environment with that cluster runs.
        ServiceNotOurs => "service_not_ours",
    }
}

/// An event that is not acted on: the reason, with the owner found before it was given up on.
///
/// A struct here as in `record` (`record::Ignored`): the reason is a named enum (logged and
/// returned by its name), and the struct carries what the event's one log line says besides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ignored<'a> {
    pub service: Option<&'a str>,
    pub environment: Option<&'a str>,
    pub reason: IgnoreReason,
}

impl Ignored<'_> {
    fn because(reason: IgnoreReason) -> Self {
        Self { service: None, environment: None, reason }
    }
}

/// A change to one of our parameters reconciles its environment, unless it did not change the
/// value Terraform reads, or deleted it (Terraform cannot read it until it is written again).
pub fn parameter_trigger<'a>(
    config: &'a Config,
    change: &ParameterChange,
) -> Result<(Trigger, &'a Environment), Ignored<'a>> {
    let Some((service, environment)) = config.parameter_owner(&change.name) else {
        return Err(Ignored::because(IgnoreReason::ParameterNotOurs));
    };
    let ignore = |reason| Ignored { service: Some(&service.name), environment: Some(&environment.name), reason };
    match change.operation {
        Operation::Create | Operation::Update => {
            Ok((Trigger::ParameterChange { parameter: change.name.clone() }, environment))
        }
        Operation::Delete => Err(ignore(IgnoreReason::ParameterDeleted)),
        Operation::LabelParameterVersion | Operation::Other => Err(ignore(IgnoreReason::NotAValueChange)),
    }
}

/// A build of an environment's project that ended reconciles that environment: changes that
/// landed while it ran are picked up now.
pub fn build_trigger<'a>(
    config: &'a Config,
    change: &BuildStateChange,
) -> Result<(Trigger, &'a Environment), Ignored<'a>> {
    let Some(environment) = config.environment_for_project(&change.project_name) else {
        return Err(Ignored::because(IgnoreReason::ProjectNotOurs));
    };
    if !change.build_status.is_terminal() {
        return Err(Ignored {
            environment: Some(&environment.name),
            ..Ignored::because(IgnoreReason::BuildNotFinished)
        });
    }
    let trigger = Trigger::BuildFinished { build_id: change.build_id.clone(), status: change.build_status };
    Ok((trigger, environment))
}

/// An ECS deployment's state change reconciles every environment whose cluster runs the
/// service: reconcile then verifies there, reading ECS again (the event only says where to look).
pub fn deployment_trigger<'a>(
    config: &'a Config,
    change: &DeploymentChange,
) -> Result<(Trigger, Vec<&'a Environment>), Ignored<'a>> {
    let environments = config.environments_running(&change.cluster, &change.service);
    if environments.is_empty() {
        return Err(Ignored::because(IgnoreReason::ServiceNotOurs));
    }
    let trigger = Trigger::EcsDeployment {
        service: format!("{}/{}", change.cluster, change.service),
        deployment: change.deployment_id.clone(),
        event: change.event_name.clone(),
    };
    Ok((trigger, environments))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::BuildStatus::{self, *};

    const API: &str = "/my-api/dev/docker-image-tag";

    fn config() -> Config {
        let doc = serde_json::json!({
            "environments": { "dev": {}, "prod": {} },
            "services": { "my-api": { "deploy_on_push": ["dev"] } }
        });
        Config::from_json(&doc.to_string()).expect("valid test config")
    }

    fn change(name: &str, operation: Operation) -> ParameterChange {
        ParameterChange { operation, name: name.to_owned(), description: None }
    }

    fn ignored(
        service: Option<&'static str>,
        environment: Option<&'static str>,
        reason: IgnoreReason,
    ) -> Ignored<'static> {
        Ignored { service, environment, reason }
    }

    #[test]
    fn parameter_trigger_table() {
        let config = config();
        let found = |parameter: &str| Ok((Trigger::ParameterChange { parameter: parameter.to_owned() }, "dev"));
        let owned = |reason| Err(ignored(Some("my-api"), Some("dev"), reason));
        let cases = [
            (change(API, Operation::Create), found(API)),
            (change(API, Operation::Update), found(API)),
            (
                change("/my-api/prod/docker-image-tag", Operation::Update),
                Ok((Trigger::ParameterChange { parameter: "/my-api/prod/docker-image-tag".into() }, "prod")),
            ),
            (change(API, Operation::Delete), owned(IgnoreReason::ParameterDeleted)),
            (change(API, Operation::LabelParameterVersion), owned(IgnoreReason::NotAValueChange)),
            (change(API, Operation::Other), owned(IgnoreReason::NotAValueChange)),
            (
                change("/my-api/qa/docker-image-tag", Operation::Update),
                Err(ignored(None, None, IgnoreReason::ParameterNotOurs)),
            ),
            (change("/unrelated", Operation::Create), Err(ignored(None, None, IgnoreReason::ParameterNotOurs))),
        ];
        for (change, expected) in cases {
            let actual = parameter_trigger(&config, &change).map(|(trigger, env)| (trigger, env.name.as_str()));
            assert_eq!(actual, expected, "{change:?}");
        }
    }

    #[test]
    fn build_trigger_table() {
        let config = config();
        let build = |project: &str, status: BuildStatus| BuildStateChange {
            build_status: status,
            project_name: project.to_owned(),
            build_id: format!("{project}:9"),
        };
        let ended = |status| Ok((Trigger::BuildFinished { build_id: "tagrelay-dev:9".into(), status }, "dev"));
        let cases = [
            (build("tagrelay-dev", Succeeded), ended(Succeeded)),
            (build("tagrelay-dev", Failed), ended(Failed)),
            (build("tagrelay-dev", Fault), ended(Fault)),
            (build("tagrelay-dev", TimedOut), ended(TimedOut)),
            (build("tagrelay-dev", Stopped), ended(Stopped)),
            (build("tagrelay-dev", InProgress), Err(ignored(None, Some("dev"), IgnoreReason::BuildNotFinished))),
            (build("tagrelay-dev", Other), Err(ignored(None, Some("dev"), IgnoreReason::BuildNotFinished))),
            (build("someone-elses", Succeeded), Err(ignored(None, None, IgnoreReason::ProjectNotOurs))),
        ];
        for (change, expected) in cases {
            let actual = build_trigger(&config, &change).map(|(trigger, env)| (trigger, env.name.as_str()));
            assert_eq!(actual, expected, "{change:?}");
        }
    }

    #[test]
    fn deployment_trigger_table() {
        let doc = serde_json::json!({
            "environments": { "dev": { "ecs_cluster": "main" }, "prod": { "ecs_cluster": "prod" }, "ci": {} },
            "services": {
                "my-api": { "deploy_on_push": ["dev"], "ecs_service": "api" },
                "batch": { "deploy_on_push": ["dev"], "ecs_service": null }
            }
        });
        let config = Config::from_json(&doc.to_string()).expect("valid");
        let change = |cluster: &str, service: &str| DeploymentChange {
            cluster: cluster.into(),
            service: service.into(),
            event_name: "SERVICE_DEPLOYMENT_COMPLETED".into(),
            deployment_id: "ecs-svc/1".into(),
            updated_at: None,
            reason: None,
        };
        let environments = |cluster: &str, service: &str| {
            deployment_trigger(&config, &change(cluster, service))
                .map(|(trigger, envs)| (trigger, envs.iter().map(|e| e.name.clone()).collect::<Vec<_>>()))
                .map_err(|ignored| ignored.reason)
        };
        let trigger = |service: &str| Trigger::EcsDeployment {
            service: service.into(),
            deployment: "ecs-svc/1".into(),
            event: "SERVICE_DEPLOYMENT_COMPLETED".into(),
        };
        // One environment per cluster (the config refuses two): its own.
        assert_eq!(environments("main", "api"), Ok((trigger("main/api"), vec!["dev".to_owned()])));
        assert_eq!(environments("prod", "api"), Ok((trigger("prod/api"), vec!["prod".to_owned()])));
        assert_eq!(environments("main", "my-api"), Err(IgnoreReason::ServiceNotOurs), "runs as api");
        assert_eq!(environments("main", "batch"), Err(IgnoreReason::ServiceNotOurs), "not an ECS service");
        assert_eq!(environments("other", "api"), Err(IgnoreReason::ServiceNotOurs));
    }
}
