//! The one configuration document (`TAGRELAY_CONFIG`), parsed and validated once at cold start.
//!
//! Parsing is two steps: serde reads the raw shape (unknown fields are refused, so a typo is an
//! error rather than a silently ignored setting), then `validate` turns it into typed values and
//! checks everything that spans fields. Every error names the field path and the bad value.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;
use serde::Deserialize;
use thiserror::Error;

use crate::naming::{check_parameter_name, NameProblem, ParameterTemplate};
use crate::order::{OrderPolicy, UnknownOrder};

/// The environment variable that carries the document.
pub const CONFIG_ENV: &str = "TAGRELAY_CONFIG";
pub const DEFAULT_TAG_PATTERN: &str = "^[0-9]+$";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{CONFIG_ENV} is not set: it must hold the tagrelay configuration document (JSON)")]
    NotSet,
    #[error("{CONFIG_ENV} is not valid: {}", self.detail())]
    Malformed { field: String, message: String },
    #[error("{CONFIG_ENV} is not valid: {}", self.detail())]
    Invalid { field: String, problem: Problem },
}

impl ConfigError {
    /// The field path the error is about (`.` for the whole document).
    pub fn field(&self) -> &str {
        match self {
            Self::NotSet => CONFIG_ENV,
            Self::Malformed { field, .. } | Self::Invalid { field, .. } => field,
        }
    }

    /// What is wrong, field first, without saying where the document came from: the CLI reads
    /// it from a file too.
    pub fn detail(&self) -> String {
        match self {
            Self::NotSet => self.to_string(),
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
}

/// A validated configuration. Fields are private so an unvalidated one cannot be built.
#[derive(Debug, Clone)]
pub struct Config {
    template: ParameterTemplate,
    environments: BTreeMap<String, Environment>,
    services: BTreeMap<String, Service>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub name: String,
    pub codebuild_project: String,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub repository: String,
    pub deploy_on_push: Vec<String>,
    pub tag_pattern: TagPattern,
    pub order: OrderPolicy,
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
    environments: BTreeMap<String, RawEnvironment>,
    services: BTreeMap<String, RawService>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    codebuild_project: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    repository: Option<String>,
    deploy_on_push: Vec<String>,
    tag_pattern: Option<String>,
    order: Option<String>,
}

impl Config {
    /// Reads and validates the document from `TAGRELAY_CONFIG`.
    pub fn from_env() -> Result<Self, ConfigError> {
        match std::env::var(CONFIG_ENV) {
            Ok(document) => Self::from_json(&document),
            Err(_) => Err(ConfigError::NotSet),
        }
    }

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

    let mut environments = BTreeMap::new();
    for (name, env) in raw.environments {
        if name.is_empty() {
            return Err(ConfigError::invalid("environments", Problem::EmptyName));
        }
        let codebuild_project = env.codebuild_project.unwrap_or_else(|| default_codebuild_project(&name));
        if !is_codebuild_project_name(&codebuild_project) {
            return Err(ConfigError::invalid(
                format!("environments.{name}.codebuild_project"),
                Problem::ProjectName(codebuild_project),
            ));
        }
        let environment = Environment { name: name.clone(), codebuild_project };
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

    check_rendered_names(&template, &environments, &services)?;
    Ok(Config { template, environments, services })
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

    Ok(Service { name: name.to_owned(), repository, deploy_on_push, tag_pattern, order })
}

/// Every (service, environment) pair renders a name SSM accepts, and no two pairs share one:
/// trigger-deploy maps a changed name back to exactly one pair.
fn check_rendered_names(
    template: &ParameterTemplate,
    environments: &BTreeMap<String, Environment>,
    services: &BTreeMap<String, Service>,
) -> Result<(), ConfigError> {
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
}
