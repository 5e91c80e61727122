//! The one configuration document (`TAGRELAY_CONFIG`), parsed and validated once at cold start.
//!
//! Parsing is two steps: serde reads the raw shape (unknown fields are refused, so a typo is an
//! error rather than a silently ignored setting), then `validate` turns it into typed values and
//! checks everything that spans fields. Every error names the field path and the bad value.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use thiserror::Error;

use crate::duration::{format_duration, parse_duration, DurationError};
use crate::naming::{check_parameter_name, NameProblem, ParameterTemplate};
use crate::order::{OrderPolicy, UnknownOrder};

mod promotion;
pub mod source;

pub use promotion::DEFAULT_ROLLBACK_WINDOW;
use promotion::{check_chain, check_push_targets, promotion};

/// The environment variable that carries the document.
pub const CONFIG_ENV: &str = "TAGRELAY_CONFIG";
pub const DEFAULT_TAG_PATTERN: &str = "^[0-9]+$";
/// How long after its build ended a rollout may take before the release is held.
pub const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// `verify_timeout` bounds: a shorter one holds healthy rollouts (ECS needs minutes to start,
/// register and drain tasks); past a day the schedule would say "verifying" for ever.
const VERIFY_TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(86_400));
/// What infra/ creates the image-tag parameters with, unless `parameter_placeholder` says otherwise.
pub const DEFAULT_PLACEHOLDER: &str = "initial";
/// A Standard parameter's value holds at most 4 KB.
const MAX_PARAMETER_VALUE: usize = 4096;
/// Where trigger-deploy keeps each environment's release record; no image-tag parameter may
/// live there.
pub const RELEASE_PREFIX: &str = "/tagrelay/";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{CONFIG_ENV} is not set: it must hold the tagrelay configuration document (JSON)")]
    NotSet,
    #[error("{CONFIG_ENV} is not valid: {}", self.detail())]
    Malformed { field: String, message: String },
    #[error("{CONFIG_ENV} is not valid: {}", self.detail())]
    Invalid { field: String, problem: Problem },
    /// Neither a document nor a reference tagrelay can follow.
    #[error("{CONFIG_ENV} is not valid: {}", self.detail())]
    BadReference { value: String },
    /// The referenced document could not be read (`message` says why).
    #[error("{CONFIG_ENV} = {reference}: {message}")]
    Unreadable { reference: String, message: String },
}

impl ConfigError {
    /// The field path the error is about (`.` for the whole document).
    pub fn field(&self) -> &str {
        match self {
            Self::NotSet | Self::BadReference { .. } | Self::Unreadable { .. } => CONFIG_ENV,
            Self::Malformed { field, .. } | Self::Invalid { field, .. } => field,
        }
    }

    /// What is wrong, field first, without saying where the document came from: the CLI reads
    /// it from a file too.
    pub fn detail(&self) -> String {
        match self {
            Self::NotSet | Self::Unreadable { .. } => self.to_string(),
            Self::BadReference { value } => format!(
                "{CONFIG_ENV}: {:?} is neither the configuration document (JSON, starting with '{{') nor a reference to it (ssm:<parameter name>[:<version>])",
                value.chars().take(80).collect::<String>()
            ),
            Self::Malformed { field, message } => format!("{field}: {message}"),
            Self::Invalid { field, problem } => format!("{field}: {problem}"),
        }
    }

    fn invalid(field: impl Into<String>, problem: Problem) -> Self {
        Self::Invalid { field: field.into(), problem }
    }
}

/// What is wrong with a field whose JSON shape was fine.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Problem {
    #[error("name must not be empty")]
    EmptyName,
    #[error("{template:?} {problem}")]
    Template { template: String, problem: NameProblem },
    #[error("renders parameter name {name:?}, which SSM would refuse: it {problem}")]
    ParameterName { name: String, problem: NameProblem },
    #[error("{first} and {second} both render parameter name {name:?}")]
    NameCollision { name: String, first: String, second: String },
    #[error(transparent)]
    Order(#[from] UnknownOrder),
    #[error("{pattern:?} is not a valid regular expression: {message}")]
    TagPattern { pattern: String, message: String },
    #[error("environment {0:?} is not defined in environments")]
    UnknownEnvironment(String),
    #[error("environment {0:?} is listed more than once")]
    DuplicateEnvironment(String),
    #[error("repository {repository:?} is already claimed by service {claimed_by:?}")]
    RepositoryClaimed { repository: String, claimed_by: String },
    #[error("{0:?} is not a valid ECR repository name")]
    RepositoryName(String),
    #[error("{0:?} is not a valid CodeBuild project name")]
    ProjectName(String),
    #[error("{0:?} is not a valid ECS {1} name: 1 to 255 letters, digits, hyphens and underscores")]
    EcsName(String, &'static str),
    #[error("cluster {cluster:?} is environment {first:?}'s too: both would verify the same ECS services (a service's ECS name is the same in every environment); give each environment its own cluster")]
    SharedCluster { cluster: String, first: String },
    #[error("is {0} bytes long; a parameter value holds 1 to {MAX_PARAMETER_VALUE}")]
    PlaceholderLength(usize),
    #[error("defaults to the service's name {0:?}, which is not a valid ECS {1} name: set it")]
    EcsNameDefault(String, &'static str),
    #[error(transparent)]
    Duration(#[from] DurationError),
    #[error("{} is outside {}..={}", format_duration(*.0), format_duration(VERIFY_TIMEOUT_RANGE.0), format_duration(VERIFY_TIMEOUT_RANGE.1))]
    DurationRange(Duration),
    #[error("renders parameter name {name:?}, under {RELEASE_PREFIX}, where tagrelay keeps its release records")]
    ReservedName { name: String },
    #[error("{} is outside {}..={}", format_duration(*value), format_duration(range.0), format_duration(range.1))]
    OutOfRange { value: Duration, range: (Duration, Duration) },
    #[error("{0:?} is not a CloudWatch alarm name: 1 to 255 characters, no control characters")]
    AlarmName(String),
    #[error("alarm {0:?} is listed twice")]
    DuplicateAlarm(String),
    #[error("is a promotion gate, set without promote_from: it would gate nothing")]
    GateWithoutSource,
    #[error("promotion loops: {0}")]
    PromotionLoop(String),
    #[error(
        "environment {environment:?} is promoted from {upstream:?}: it takes its tags from there, not from pushes"
    )]
    PromotedEnvironment { environment: String, upstream: String },
}

/// A validated configuration. Fields are private so an unvalidated one cannot be built.
#[derive(Debug, Clone)]
pub struct Config {
    template: ParameterTemplate,
    placeholder: String,
    environments: BTreeMap<String, Environment>,
    services: BTreeMap<String, Service>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub name: String,
    pub codebuild_project: String,
    /// The ECS cluster (name, same account and region) whose services run this environment:
    /// set, a successful build is verified on ECS; `None`, the build's success is the release.
    pub ecs_cluster: Option<String>,
    /// How long after the build ended a rollout may still be in progress.
    pub verify_timeout: Duration,
    /// The environment whose verified releases move on into this one (promote).
    pub promote_from: Option<String>,
    /// How long a release must have been verified upstream, with the gate alarms out of ALARM,
    /// before it moves on.
    pub soak: Duration,
    /// Alarms that hold promotion into this environment while in ALARM (or missing).
    pub gate_alarms: Vec<String>,
    /// Whether a person must approve each release (`tagrelay approve`) before it moves on.
    pub approval: bool,
    /// Alarms that roll this environment back to its previous release.
    pub rollback_alarms: Vec<String>,
    /// How long after verification an alarm still rolls the release back.
    pub rollback_window: Duration,
}

impl Environment {
    /// The SSM parameter holding the environment's release records (its history is the list).
    pub fn release_parameter(&self) -> String {
        format!("{RELEASE_PREFIX}{}/verified", self.name)
    }

    /// The SSM parameter holding the run manifests of the builds trigger-deploy starts: one
    /// version per start, described `tagrelay run <fingerprint>` (see `deploy::manifest`).
    pub fn manifest_parameter(&self) -> String {
        format!("{RELEASE_PREFIX}{}/manifest", self.name)
    }

    /// Where `tagrelay approve` records approvals of releases waiting to enter it.
    pub fn approval_parameter(&self) -> String {
        format!("{RELEASE_PREFIX}{}/approval", self.name)
    }

    /// Where rollbacks (automatic, `tagrelay rollback`, `tagrelay pin`) are recorded.
    pub fn rollback_parameter(&self) -> String {
        format!("{RELEASE_PREFIX}{}/rollback", self.name)
    }
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub repository: String,
    pub deploy_on_push: Vec<String>,
    pub tag_pattern: TagPattern,
    pub order: OrderPolicy,
    /// The ECS service that runs it in each environment's cluster; `None` (`"ecs_service":
    /// null`): not an ECS service, never verified.
    pub ecs_service: Option<String>,
    /// The container of the task definition whose image carries the tag.
    pub container: String,
}

/// A compiled `tag_pattern`. Used as written: anchor it (`^…$`) to match whole tags.
#[derive(Debug, Clone)]
pub struct TagPattern(Regex);

impl TagPattern {
    pub fn is_match(&self, tag: &str) -> bool {
        self.0.is_match(tag)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for TagPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    parameter_template: Option<String>,
    parameter_placeholder: Option<String>,
    environments: BTreeMap<String, RawEnvironment>,
    services: BTreeMap<String, RawService>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    codebuild_project: Option<String>,
    ecs_cluster: Option<String>,
    verify_timeout: Option<String>,
    promote_from: Option<String>,
    soak: Option<String>,
    gate_alarms: Option<Vec<String>>,
    approval: Option<bool>,
    rollback_alarms: Option<Vec<String>>,
    rollback_window: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    repository: Option<String>,
    deploy_on_push: Vec<String>,
    tag_pattern: Option<String>,
    order: Option<String>,
    /// Absent: the service's name; `null`: not an ECS service.
    #[serde(default, deserialize_with = "present")]
    ecs_service: Option<Option<String>>,
    container: Option<String>,
}

/// Tells `"field": null` (`Some(None)`) from an absent field (`None`, through `default`).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

impl Config {
    pub fn from_json(document: &str) -> Result<Self, ConfigError> {
        let mut deserializer = serde_json::Deserializer::from_str(document);
        let raw: RawConfig = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
            ConfigError::Malformed { field: err.path().to_string(), message: err.into_inner().to_string() }
        })?;
        validate(raw)
    }

    pub fn parameter_template(&self) -> &ParameterTemplate {
        &self.template
    }

    /// The value image-tag parameters are created with (infra's `parameter_placeholder`): a
    /// parameter still holding it names no image, so nothing is verified for it.
    pub fn parameter_placeholder(&self) -> &str {
        &self.placeholder
    }

    /// The SSM parameter that holds `service`'s tag in `environment`.
    pub fn parameter_name(&self, service: &str, environment: &str) -> String {
        self.template.render(service, environment)
    }

    pub fn environments(&self) -> impl Iterator<Item = &Environment> {
        self.environments.values()
    }

    pub fn environment(&self, name: &str) -> Option<&Environment> {
        self.environments.get(name)
    }

    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values()
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }

    /// The environment whose Terraform runs in `project`.
    pub fn environment_for_project(&self, project: &str) -> Option<&Environment> {
        self.environments.values().find(|environment| environment.codebuild_project == project)
    }

    /// Every parameter of an environment: one per service, sorted by name.
    pub fn parameter_names(&self, environment: &str) -> Vec<String> {
        let mut names: Vec<String> =
            self.services.keys().map(|service| self.template.render(service, environment)).collect();
        names.sort();
        names
    }

    /// The (service, environment) a parameter name belongs to. Validation guarantees every
    /// configured pair renders a distinct name, so the answer is unique.
    pub fn parameter_owner(&self, name: &str) -> Option<(&Service, &Environment)> {
        self.services.values().find_map(|service| {
            self.environments
                .values()
                .find(|environment| self.template.render(&service.name, &environment.name) == name)
                .map(|environment| (service, environment))
        })
    }

    /// The environments whose cluster runs `service` (an ECS service name) in `cluster`: the ones
    /// an "ECS Deployment State Change" of that service concerns.
    pub fn environments_running(&self, cluster: &str, service: &str) -> Vec<&Environment> {
        let ours = self.services.values().any(|s| s.ecs_service.as_deref() == Some(service));
        self.environments.values().filter(|e| ours && e.ecs_cluster.as_deref() == Some(cluster)).collect()
    }

    /// The environments promoted from `upstream`.
    pub fn downstream_of(&self, upstream: &str) -> Vec<&Environment> {
        self.environments.values().filter(|e| e.promote_from.as_deref() == Some(upstream)).collect()
    }

    /// Every environment in promotion order: each chain's source first (by name), then what is
    /// promoted from it, depth first. Validation guarantees there is no loop.
    pub fn chain(&self) -> Vec<&Environment> {
        fn visit<'a>(config: &'a Config, environment: &'a Environment, out: &mut Vec<&'a Environment>) {
            out.push(environment);
            for next in config.downstream_of(&environment.name) {
                visit(config, next, out);
            }
        }
        let mut out = Vec::with_capacity(self.environments.len());
        for root in self.environments.values().filter(|e| e.promote_from.is_none()) {
            visit(self, root, &mut out);
        }
        out
    }

    /// Every alarm promotion or rollback reads, once.
    pub fn alarm_names(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.environments.values().flat_map(|e| e.gate_alarms.iter().chain(&e.rollback_alarms)).cloned().collect();
        names.sort();
        names.dedup();
        names
    }

    /// The service that owns an ECR repository; validation guarantees at most one.
    pub fn service_for_repository(&self, repository: &str) -> Option<&Service> {
        self.services.values().find(|service| service.repository == repository)
    }
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let template = match raw.parameter_template {
        None => ParameterTemplate::default(),
        Some(text) => ParameterTemplate::parse(&text).map_err(|problem| {
            ConfigError::invalid("parameter_template", Problem::Template { template: text, problem })
        })?,
    };

    let placeholder = raw.parameter_placeholder.unwrap_or_else(|| DEFAULT_PLACEHOLDER.to_owned());
    if !(1..=MAX_PARAMETER_VALUE).contains(&placeholder.len()) {
        return Err(ConfigError::invalid("parameter_placeholder", Problem::PlaceholderLength(placeholder.len())));
    }

    let mut environments = BTreeMap::new();
    for (name, env) in raw.environments {
        if name.is_empty() {
            return Err(ConfigError::invalid("environments", Problem::EmptyName));
        }
        let gates = promotion(&name, &env)?;
        let codebuild_project = env.codebuild_project.unwrap_or_else(|| default_codebuild_project(&name));
        if !is_codebuild_project_name(&codebuild_project) {
            return Err(ConfigError::invalid(
                format!("environments.{name}.codebuild_project"),
                Problem::ProjectName(codebuild_project),
            ));
        }
        let field = |suffix: &str| format!("environments.{name}.{suffix}");
        let ecs_cluster = match env.ecs_cluster {
            Some(cluster) if !is_ecs_name(&cluster) => {
                return Err(ConfigError::invalid(field("ecs_cluster"), Problem::EcsName(cluster, "cluster")))
            }
            other => other,
        };
        let verify_timeout = match env.verify_timeout {
            None => DEFAULT_VERIFY_TIMEOUT,
            Some(text) => {
                let timeout =
                    parse_duration(&text).map_err(|err| ConfigError::invalid(field("verify_timeout"), err.into()))?;
                if !(VERIFY_TIMEOUT_RANGE.0..=VERIFY_TIMEOUT_RANGE.1).contains(&timeout) {
                    return Err(ConfigError::invalid(field("verify_timeout"), Problem::DurationRange(timeout)));
                }
                timeout
            }
        };
        let environment = Environment {
            name: name.clone(),
            codebuild_project,
            ecs_cluster,
            verify_timeout,
            promote_from: gates.promote_from,
            soak: gates.soak,
            gate_alarms: gates.gate_alarms,
            approval: gates.approval,
            rollback_alarms: gates.rollback_alarms,
            rollback_window: gates.rollback_window,
        };
        environments.insert(name, environment);
    }

    let mut services: BTreeMap<String, Service> = BTreeMap::new();
    for (name, raw_service) in raw.services {
        let service = validate_service(&name, raw_service, &environments)?;
        if let Some(other) = services.values().find(|s| s.repository == service.repository) {
            return Err(ConfigError::invalid(
                format!("services.{name}.repository"),
                Problem::RepositoryClaimed { repository: service.repository, claimed_by: other.name.clone() },
            ));
        }
        services.insert(name, service);
    }

    check_chain(&environments)?;
    check_push_targets(&environments, &services)?;
    check_rendered_names(&template, &environments, &services)?;
    check_clusters(&environments, &services)?;
    Ok(Config { template, placeholder, environments, services })
}

fn validate_service(
    name: &str,
    raw: RawService,
    environments: &BTreeMap<String, Environment>,
) -> Result<Service, ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::invalid("services", Problem::EmptyName));
    }
    let field = |suffix: &str| format!("services.{name}.{suffix}");

    let repository = raw.repository.unwrap_or_else(|| name.to_owned());
    if !is_ecr_repository_name(&repository) {
        return Err(ConfigError::invalid(field("repository"), Problem::RepositoryName(repository)));
    }

    let order = match raw.order {
        None => OrderPolicy::default(),
        Some(text) => text.parse().map_err(|err: UnknownOrder| ConfigError::invalid(field("order"), err.into()))?,
    };

    let pattern = raw.tag_pattern.unwrap_or_else(|| DEFAULT_TAG_PATTERN.to_owned());
    let tag_pattern = Regex::new(&pattern).map(TagPattern).map_err(|err| {
        ConfigError::invalid(field("tag_pattern"), Problem::TagPattern { pattern, message: err.to_string() })
    })?;

    let mut deploy_on_push: Vec<String> = Vec::with_capacity(raw.deploy_on_push.len());
    for (index, environment) in raw.deploy_on_push.into_iter().enumerate() {
        let at = field(&format!("deploy_on_push[{index}]"));
        if !environments.contains_key(&environment) {
            return Err(ConfigError::invalid(at, Problem::UnknownEnvironment(environment)));
        }
        if deploy_on_push.contains(&environment) {
            return Err(ConfigError::invalid(at, Problem::DuplicateEnvironment(environment)));
        }
        deploy_on_push.push(environment);
    }

    // A name defaulted from the service's is checked only where ECS will see it: a service
    // name that is no ECS name must not break a configuration that verifies nothing.
    let verified_somewhere = environments.values().any(|e| e.ecs_cluster.is_some());
    let ecs_name = |value: Option<String>, suffix: &str, kind: &'static str| match value {
        Some(text) if !is_ecs_name(&text) => Err(ConfigError::invalid(field(suffix), Problem::EcsName(text, kind))),
        Some(text) => Ok(text),
        None if verified_somewhere && !is_ecs_name(name) => {
            Err(ConfigError::invalid(field(suffix), Problem::EcsNameDefault(name.to_owned(), kind)))
        }
        None => Ok(name.to_owned()),
    };
    let ecs_service = match raw.ecs_service {
        Some(None) => None,
        Some(Some(service)) => Some(ecs_name(Some(service), "ecs_service", "service")?),
        None => Some(ecs_name(None, "ecs_service", "service")?),
    };
    // A service that is not on ECS never names a container to ECS: only an explicit one is
    // checked (infra/ renders none for it).
    let container = match (&ecs_service, raw.container) {
        (None, None) => name.to_owned(),
        (_, container) => ecs_name(container, "container", "container")?,
    };

    Ok(Service { name: name.to_owned(), repository, deploy_on_push, tag_pattern, order, ecs_service, container })
}

/// Every (service, environment) pair renders a name SSM accepts, and no two pairs share one:
/// trigger-deploy maps a changed name back to exactly one pair.
fn check_rendered_names(
    template: &ParameterTemplate,
    environments: &BTreeMap<String, Environment>,
    services: &BTreeMap<String, Service>,
) -> Result<(), ConfigError> {
    for environment in environments.values() {
        let name = environment.release_parameter();
        if let Err(problem) = check_parameter_name(&name) {
            let field = format!("environments.{}", environment.name);
            return Err(ConfigError::invalid(field, Problem::ParameterName { name, problem }));
        }
    }
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for service in services.keys() {
        for environment in environments.keys() {
            let name = template.render(service, environment);
            if let Err(problem) = check_parameter_name(&name) {
                // Blame the service if it fails on its own, otherwise the environment.
                let field = if check_parameter_name(&template.render(service, "environment")).is_err() {
                    format!("services.{service}")
                } else {
                    format!("environments.{environment}")
                };
                return Err(ConfigError::invalid(field, Problem::ParameterName { name, problem }));
            }
            if name.starts_with(RELEASE_PREFIX) {
                return Err(ConfigError::invalid("parameter_template", Problem::ReservedName { name }));
            }
            let pair = format!("{service}/{environment}");
            if let Some(first) = seen.insert(name.clone(), pair.clone()) {
                return Err(ConfigError::invalid(
                    "parameter_template",
                    Problem::NameCollision { name, first, second: pair },
                ));
            }
        }
    }
    Ok(())
}

/// ECR: 2–256 characters, lowercase path components of `[a-z0-9]` joined by `.`, `_`, `-`,
/// separated by `/`.
fn is_ecr_repository_name(name: &str) -> bool {
    let component_ok = |component: &str| {
        !component.is_empty()
            && component
                .split(['.', '_', '-'])
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
    };
    (2..=256).contains(&name.len()) && name.split('/').all(component_ok)
}

/// The project `infra/` creates for an environment: `tagrelay-<environment>`, with characters
/// CodeBuild does not allow in a name replaced by `-`.
pub fn default_codebuild_project(environment: &str) -> String {
    let safe: String =
        environment.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect();
    format!("tagrelay-{safe}")
}

/// Two environments on one cluster would check the same ECS services (a service's ECS name is
/// the same in every environment): one would be held for the other's rollout, or verified by
/// it. Refused while any service is on ECS; give each environment its own cluster.
fn check_clusters(
    environments: &BTreeMap<String, Environment>,
    services: &BTreeMap<String, Service>,
) -> Result<(), ConfigError> {
    if services.values().all(|service| service.ecs_service.is_none()) {
        return Ok(());
    }
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for environment in environments.values() {
        let Some(cluster) = environment.ecs_cluster.as_deref() else { continue };
        if let Some(first) = seen.insert(cluster, &environment.name) {
            return Err(ConfigError::invalid(
                format!("environments.{}.ecs_cluster", environment.name),
                Problem::SharedCluster { cluster: cluster.to_owned(), first: first.to_owned() },
            ));
        }
    }
    Ok(())
}

/// ECS cluster, service and container names: 1–255 letters, digits, hyphens and underscores.
fn is_ecs_name(name: &str) -> bool {
    (1..=255).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// CodeBuild: 2–255 characters, `[A-Za-z0-9][A-Za-z0-9_-]*`.
fn is_codebuild_project_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    (2..=255).contains(&name.len())
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn example() -> serde_json::Value {
        json!({
            "parameter_template": "/{service}/{environment}/docker-image-tag",
            "environments": {
                "dev": { "codebuild_project": "tagrelay-dev" },
                "prod": { "codebuild_project": "tagrelay-prod" }
            },
            "services": {
                "my-api": { "repository": "my-api", "deploy_on_push": ["dev"], "tag_pattern": "^[0-9]+$", "order": "numeric" }
            }
        })
    }

    fn parse(doc: &serde_json::Value) -> Result<Config, ConfigError> {
        Config::from_json(&doc.to_string())
    }

    fn error_of(doc: serde_json::Value) -> ConfigError {
        match parse(&doc) {
            Ok(_) => panic!("expected an invalid config: {doc}"),
            Err(err) => err,
        }
    }

    #[test]
    fn the_documented_example_parses() {
        let config = parse(&example()).expect("valid");
        let service = config.service_for_repository("my-api").expect("claimed");
        assert_eq!(service.name, "my-api");
        assert_eq!(service.deploy_on_push, vec!["dev".to_owned()]);
        assert_eq!(service.order, OrderPolicy::Numeric);
        assert_eq!(config.parameter_name("my-api", "prod"), "/my-api/prod/docker-image-tag");
        assert_eq!(config.environment("prod").map(|e| e.codebuild_project.as_str()), Some("tagrelay-prod"));
        assert!(config.service_for_repository("other").is_none());
    }

    #[test]
    fn names_map_back_to_their_service_and_environment() {
        let config = parse(&example()).expect("valid");
        let (service, environment) = config.parameter_owner("/my-api/prod/docker-image-tag").expect("ours");
        assert_eq!((service.name.as_str(), environment.name.as_str()), ("my-api", "prod"));
        assert!(config.parameter_owner("/my-api/qa/docker-image-tag").is_none());
        assert!(config.parameter_owner("/other/dev/docker-image-tag").is_none());
        assert_eq!(config.environment_for_project("tagrelay-prod").map(|e| e.name.as_str()), Some("prod"));
        assert!(config.environment_for_project("someone-elses").is_none());
        assert_eq!(config.parameter_names("dev"), vec!["/my-api/dev/docker-image-tag".to_owned()]);
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let config = parse(&json!({
            "environments": { "dev": {} },
            "services": { "web": { "deploy_on_push": ["dev"] } }
        }))
        .expect("valid");
        assert_eq!(config.environment("dev").map(|e| e.codebuild_project.as_str()), Some("tagrelay-dev"));
        let web = config.service("web").expect("present");
        assert_eq!(web.repository, "web");
        assert_eq!(web.order, OrderPolicy::Numeric);
        assert_eq!(web.tag_pattern.as_str(), DEFAULT_TAG_PATTERN);
        assert_eq!(config.parameter_template().as_str(), "/{service}/{environment}/docker-image-tag");
        assert!(web.tag_pattern.is_match("1043"));
        assert!(!web.tag_pattern.is_match("latest"));
    }

    #[test]
    fn not_json_names_the_position() {
        let err = Config::from_json("{\"environments\": {").expect_err("invalid");
        assert!(matches!(err, ConfigError::Malformed { .. }), "{err}");
        assert!(err.to_string().contains("line 1 column"), "{err}");
    }

    #[test]
    fn shape_errors_name_the_field_path() {
        let mut doc = example();
        doc["services"]["my-api"]["deploy_on_push"] = json!("dev");
        let err = error_of(doc);
        assert_eq!(err.field(), "services.my-api.deploy_on_push");

        let mut doc = example();
        doc["services"]["my-api"]["oder"] = json!("numeric");
        let err = error_of(doc);
        assert_eq!(err.field(), "services.my-api.oder");
        assert!(err.to_string().contains("unknown field `oder`"), "{err}");

        let mut doc = example();
        doc["environments"]["dev"] = json!({ "codebuild_project": 7 });
        let err = error_of(doc);
        assert_eq!(err.field(), "environments.dev.codebuild_project");
        assert!(err.to_string().contains("expected a string"), "{err}");

        let err = error_of(json!({ "environments": {} }));
        assert!(err.to_string().contains("missing field `services`"), "{err}");
    }

    #[test]
    fn the_default_codebuild_project_is_always_a_valid_name() {
        let config = parse(&json!({ "environments": { "qa.1": {} }, "services": {} })).expect("valid");
        assert_eq!(config.environment("qa.1").map(|e| e.codebuild_project.as_str()), Some("tagrelay-qa-1"));
    }

    #[test]
    fn full_regex_syntax_is_accepted() {
        let mut doc = example();
        doc["services"]["my-api"]["tag_pattern"] = json!("(?i)^v\\d+\\p{L}?$");
        let config = parse(&doc).expect("valid");
        let pattern = &config.service("my-api").expect("present").tag_pattern;
        assert!(pattern.is_match("V12é"));
        assert!(!pattern.is_match("12"));
    }

    #[test]
    fn unknown_order_names_field_and_value() {
        let mut doc = example();
        doc["services"]["my-api"]["order"] = json!("fifo");
        let err = error_of(doc);
        assert_eq!(err.field(), "services.my-api.order");
        assert!(err.to_string().contains("\"fifo\""), "{err}");
    }

    #[test]
    fn bad_regex_names_field_and_value() {
        let mut doc = example();
        doc["services"]["my-api"]["tag_pattern"] = json!("^[0-9+$");
        let err = error_of(doc);
        assert_eq!(err.field(), "services.my-api.tag_pattern");
        assert!(err.to_string().contains("\"^[0-9+$\""), "{err}");
    }

    #[test]
    fn deploy_on_push_must_name_defined_environments_once() {
        let mut doc = example();
        doc["services"]["my-api"]["deploy_on_push"] = json!(["dev", "stage"]);
        let err = error_of(doc);
        assert_eq!(err.field(), "services.my-api.deploy_on_push[1]");
        assert!(matches!(&err, ConfigError::Invalid { problem: Problem::UnknownEnvironment(e), .. } if e == "stage"));

        let mut doc = example();
        doc["services"]["my-api"]["deploy_on_push"] = json!(["dev", "dev"]);
        let err = error_of(doc);
        assert!(matches!(err, ConfigError::Invalid { problem: Problem::DuplicateEnvironment(_), .. }));
    }

    #[test]
    fn a_repository_belongs_to_one_service() {
        let mut doc = example();
        doc["services"]["worker"] = json!({ "repository": "my-api", "deploy_on_push": [] });
        let err = error_of(doc);
        assert_eq!(err.field(), "services.worker.repository");
        assert!(err.to_string().contains("already claimed by service \"my-api\""), "{err}");

        // The default repository (the service name) counts as a claim too.
        let mut doc = example();
        doc["services"]["my-api"]["repository"] = json!("team/api");
        doc["services"]["team-api"] = json!({ "repository": "team/api", "deploy_on_push": [] });
        assert_eq!(error_of(doc).field(), "services.team-api.repository");
    }

    #[test]
    fn repository_names_follow_ecr_rules() {
        for good in ["my-api", "team/my_api", "a1/b.c/d-e"] {
            assert!(is_ecr_repository_name(good), "{good}");
        }
        for bad in ["My-Api", "team//api", "/api", "api-", "a", "x y"] {
            assert!(!is_ecr_repository_name(bad), "{bad}");
        }
        let mut doc = example();
        doc["services"]["my-api"]["repository"] = json!("My-Api");
        assert_eq!(error_of(doc).field(), "services.my-api.repository");
    }

    #[test]
    fn codebuild_project_names_are_checked() {
        let mut doc = example();
        doc["environments"]["dev"]["codebuild_project"] = json!("tagrelay dev");
        let err = error_of(doc);
        assert_eq!(err.field(), "environments.dev.codebuild_project");
        assert!(err.to_string().contains("\"tagrelay dev\""), "{err}");
    }

    #[test]
    fn template_problems_name_the_template() {
        let cases = [
            ("/{service}/docker-image-tag", NameProblem::MissingPlaceholder),
            ("{service}/{environment}", NameProblem::NotFullyQualified),
            ("/aws/{service}/{environment}", NameProblem::ReservedPrefix),
            ("/{service}/{environment}/tag*", NameProblem::InvalidCharacter('*')),
        ];
        for (template, expected) in cases {
            let mut doc = example();
            doc["parameter_template"] = json!(template);
            let err = error_of(doc);
            assert_eq!(err.field(), "parameter_template");
            match err {
                ConfigError::Invalid { problem: Problem::Template { problem, .. }, .. } => {
                    assert_eq!(problem, expected, "{template}")
                }
                other => panic!("{template}: unexpected {other}"),
            }
        }
    }

    #[test]
    fn names_that_render_badly_blame_the_service_or_environment() {
        let mut doc = example();
        doc["services"]["my api"] = json!({ "deploy_on_push": [], "repository": "other" });
        let err = error_of(doc);
        assert_eq!(err.field(), "services.my api");
        assert!(err.to_string().contains("\"/my api/dev/docker-image-tag\""), "{err}");

        let mut doc = example();
        doc["environments"]["qa*"] = json!({ "codebuild_project": "tagrelay-qa" });
        assert_eq!(error_of(doc).field(), "environments.qa*");
    }

    #[test]
    fn two_pairs_may_not_share_a_parameter() {
        let doc = json!({
            "parameter_template": "/{service}-{environment}/tag",
            "environments": {
                "b-c": { "codebuild_project": "p1" },
                "c": { "codebuild_project": "p2" }
            },
            "services": {
                "a": { "deploy_on_push": [], "repository": "r1" },
                "a-b": { "deploy_on_push": [], "repository": "r2" }
            }
        });
        let err = error_of(doc);
        assert_eq!(err.field(), "parameter_template");
        assert!(err.to_string().contains("\"/a-b-c/tag\""), "{err}");
    }

    #[test]
    fn ecs_coordinates_default_to_the_service_and_can_be_switched_off() {
        let config = parse(&json!({
            "environments": { "dev": { "ecs_cluster": "dev-cluster", "verify_timeout": "20m" }, "ci": {} },
            "services": {
                "web": { "deploy_on_push": ["dev"] },
                "api": { "deploy_on_push": ["dev"], "ecs_service": "api-svc", "container": "app" },
                "batch": { "deploy_on_push": ["dev"], "ecs_service": null }
            }
        }))
        .expect("valid");
        let dev = config.environment("dev").expect("dev");
        assert_eq!((dev.ecs_cluster.as_deref(), dev.verify_timeout), (Some("dev-cluster"), Duration::from_secs(1200)));
        let ci = config.environment("ci").expect("ci");
        assert_eq!((ci.ecs_cluster.as_deref(), ci.verify_timeout), (None, DEFAULT_VERIFY_TIMEOUT));
        assert_eq!(dev.release_parameter(), "/tagrelay/dev/verified");
        let web = config.service("web").expect("web");
        assert_eq!((web.ecs_service.as_deref(), web.container.as_str()), (Some("web"), "web"));
        let api = config.service("api").expect("api");
        assert_eq!((api.ecs_service.as_deref(), api.container.as_str()), (Some("api-svc"), "app"));
        assert_eq!(config.service("batch").expect("batch").ecs_service, None);

        let names = |envs: Vec<&Environment>| envs.into_iter().map(|e| e.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(config.environments_running("dev-cluster", "api-svc")), ["dev"]);
        assert!(config.environments_running("dev-cluster", "api").is_empty(), "api runs as api-svc");
        assert!(config.environments_running("dev-cluster", "batch").is_empty(), "batch is not an ECS service");
        assert!(config.environments_running("other", "web").is_empty());
    }

    #[test]
    fn ecs_names_and_durations_are_checked_naming_the_field() {
        let doc = |env: serde_json::Value, service: serde_json::Value| json!({ "environments": { "dev": env }, "services": { "web": service } });
        let service = json!({ "deploy_on_push": ["dev"] });
        let cases = [
            (doc(json!({ "ecs_cluster": "" }), service.clone()), "environments.dev.ecs_cluster"),
            (doc(json!({ "ecs_cluster": "a/b" }), service.clone()), "environments.dev.ecs_cluster"),
            (doc(json!({ "ecs_cluster": "x".repeat(256) }), service.clone()), "environments.dev.ecs_cluster"),
            (doc(json!({ "verify_timeout": "30" }), service.clone()), "environments.dev.verify_timeout"),
            (doc(json!({ "verify_timeout": "1w" }), service.clone()), "environments.dev.verify_timeout"),
            (doc(json!({ "verify_timeout": "30s" }), service.clone()), "environments.dev.verify_timeout"),
            (doc(json!({ "verify_timeout": "2d" }), service.clone()), "environments.dev.verify_timeout"),
            (doc(json!({}), json!({ "deploy_on_push": ["dev"], "ecs_service": "a b" })), "services.web.ecs_service"),
            (doc(json!({}), json!({ "deploy_on_push": ["dev"], "container": "" })), "services.web.container"),
            (doc(json!({ "verify_timeout": 30 }), service.clone()), "environments.dev.verify_timeout"),
        ];
        for (document, field) in cases {
            let err = error_of(document.clone());
            assert_eq!(err.field(), field, "{document}: {err}");
        }
        let err = error_of(doc(json!({ "verify_timeout": "2d" }), service.clone()));
        assert!(err.to_string().contains("2d is outside 1m..=1d"), "{err}");
        assert!(parse(&doc(json!({ "verify_timeout": "1m", "ecs_cluster": "A_b-1" }), service)).is_ok());

        // A service name that is no ECS name matters only where ECS is used.
        let dotted = |env: serde_json::Value, service: serde_json::Value| json!({ "environments": { "dev": env }, "services": { "web.v2": service } });
        let plain = json!({ "deploy_on_push": ["dev"] });
        assert!(parse(&dotted(json!({}), plain.clone())).is_ok(), "no cluster: no ECS name needed");
        let not_on_ecs = json!({ "deploy_on_push": ["dev"], "ecs_service": null });
        assert!(
            parse(&dotted(json!({ "ecs_cluster": "c" }), not_on_ecs)).is_ok(),
            "not an ECS service: no ECS name needed"
        );
        let err = error_of(dotted(json!({ "ecs_cluster": "c" }), plain));
        assert_eq!(err.field(), "services.web.v2.ecs_service", "{err}");
        assert!(err.to_string().contains("defaults to the service's name"), "{err}");
        let named = json!({ "deploy_on_push": ["dev"], "ecs_service": "web-v2", "container": "app" });
        assert!(parse(&dotted(json!({ "ecs_cluster": "c" }), named)).is_ok());
    }

    #[test]
    fn two_environments_may_not_verify_on_one_cluster() {
        let doc = |batch_on_ecs: bool| {
            let service = if batch_on_ecs {
                json!({ "deploy_on_push": ["dev"] })
            } else {
                json!({ "deploy_on_push": ["dev"], "ecs_service": null })
            };
            json!({
                "environments": { "dev": { "ecs_cluster": "main" }, "qa": { "ecs_cluster": "main" }, "prod": { "ecs_cluster": "prod" } },
                "services": { "batch": service }
            })
        };
        let err = error_of(doc(true));
        assert_eq!(err.field(), "environments.qa.ecs_cluster", "{err}");
        assert!(err.to_string().contains(r#"cluster "main" is environment "dev"'s too"#), "{err}");
        assert!(parse(&doc(false)).is_ok(), "nothing is verified on ECS: nothing to mix up");
    }

    #[test]
    fn the_placeholder_defaults_to_infras_and_fits_a_parameter() {
        assert_eq!(parse(&example()).expect("valid").parameter_placeholder(), DEFAULT_PLACEHOLDER);
        let mut doc = example();
        doc["parameter_placeholder"] = json!("none-yet");
        assert_eq!(parse(&doc).expect("valid").parameter_placeholder(), "none-yet");
        for bad in [String::new(), "x".repeat(4097)] {
            doc["parameter_placeholder"] = json!(bad);
            assert_eq!(error_of(doc.clone()).field(), "parameter_placeholder");
        }
    }

    #[test]
    fn no_image_tag_parameter_may_live_where_the_release_records_do() {
        let err = error_of(json!({
            "parameter_template": "/tagrelay/{environment}/{service}",
            "environments": { "dev": {} },
            "services": { "web": { "deploy_on_push": ["dev"] } }
        }));
        assert_eq!(err.field(), "parameter_template");
        assert!(matches!(err, ConfigError::Invalid { problem: Problem::ReservedName { .. }, .. }), "{err}");
    }
}
