//! Parameter names: the template that maps (service, environment) to an SSM name, and the
//! rules SSM applies to names, checked before we ever call it.

use std::fmt;

use thiserror::Error;

pub const SERVICE_PLACEHOLDER: &str = "{service}";
pub const ENVIRONMENT_PLACEHOLDER: &str = "{environment}";
pub const DEFAULT_TEMPLATE: &str = "/{service}/{environment}/docker-image-tag";

/// SSM's own limits (PutParameter): hierarchy depth and name length.
const MAX_LEVELS: usize = 15;
/// SSM counts the ARN prefix in its 1,011-character name limit ("includes the characters in the
/// ARN that precede the name you specify", Parameter Store quotas): `arn:<partition>:ssm:<region>:
/// <account>:parameter`. The functions do not know their partition and region when the config is
/// validated, so the longest prefix any partition has today (55 characters, e.g.
/// `arn:aws-iso-b:ssm:us-isob-east-1:123456789012:parameter`) plus room for longer region names
/// is reserved; infra/ checks the exact limit for the region it deploys to.
pub const ARN_PREFIX_BUDGET: usize = 64;
const SSM_NAME_LIMIT: usize = 1011;
pub const MAX_NAME_LEN: usize = SSM_NAME_LIMIT - ARN_PREFIX_BUDGET;

/// Why a name cannot be an SSM parameter name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameProblem {
    #[error("must contain both {SERVICE_PLACEHOLDER} and {ENVIRONMENT_PLACEHOLDER}")]
    MissingPlaceholder,
    #[error("must start with '/' (a fully qualified hierarchy)")]
    NotFullyQualified,
    #[error("may only contain a-z A-Z 0-9 _ . - / (found {0:?})")]
    InvalidCharacter(char),
    #[error("has an empty level ('//' or a trailing '/')")]
    EmptyLevel,
    #[error("has {0} levels; SSM allows at most {MAX_LEVELS}")]
    TooDeep(usize),
    #[error("is {0} characters long; at most {MAX_NAME_LEN} are allowed (SSM's limit of {SSM_NAME_LIMIT} counts the parameter's ARN prefix, up to {ARN_PREFIX_BUDGET} characters)")]
    TooLong(usize),
    #[error("must not start with 'aws' or 'ssm' (reserved by SSM)")]
    ReservedPrefix,
}

/// A validated template such as `/{service}/{environment}/docker-image-tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterTemplate(String);

impl ParameterTemplate {
    /// Accepts a template that has both placeholders and renders an SSM-valid name for
    /// well-formed service and environment names. Names rendered for the configured pairs are
    /// checked again by the config, since those names are part of the result.
    pub fn parse(template: &str) -> Result<Self, NameProblem> {
        if !template.contains(SERVICE_PLACEHOLDER) || !template.contains(ENVIRONMENT_PLACEHOLDER) {
            return Err(NameProblem::MissingPlaceholder);
        }
        let candidate = Self(template.to_owned());
        check_parameter_name(&candidate.render("service", "environment"))?;
        Ok(candidate)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn render(&self, service: &str, environment: &str) -> String {
        self.0.replace(SERVICE_PLACEHOLDER, service).replace(ENVIRONMENT_PLACEHOLDER, environment)
    }
}

impl Default for ParameterTemplate {
    fn default() -> Self {
        Self(DEFAULT_TEMPLATE.to_owned())
    }
}

impl fmt::Display for ParameterTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The rules PutParameter enforces on a fully qualified name. We check them up front so a bad
/// template fails at cold start instead of on the first push.
pub fn check_parameter_name(name: &str) -> Result<(), NameProblem> {
    let Some(path) = name.strip_prefix('/') else {
        return Err(NameProblem::NotFullyQualified);
    };
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'))) {
        return Err(NameProblem::InvalidCharacter(bad));
    }
    let levels: Vec<&str> = path.split('/').collect();
    if levels.iter().any(|level| level.is_empty()) {
        return Err(NameProblem::EmptyLevel);
    }
    if levels.len() > MAX_LEVELS {
        return Err(NameProblem::TooDeep(levels.len()));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameProblem::TooLong(name.len()));
    }
    let first = levels[0].to_ascii_lowercase();
    if first.starts_with("aws") || first.starts_with("ssm") {
        return Err(NameProblem::ReservedPrefix);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_template_renders_the_documented_name() {
        let template = ParameterTemplate::default();
        assert_eq!(template.render("my-api", "dev"), "/my-api/dev/docker-image-tag");
        assert_eq!(ParameterTemplate::parse(DEFAULT_TEMPLATE), Ok(template));
    }

    #[test]
    fn template_needs_both_placeholders() {
        assert_eq!(ParameterTemplate::parse("/{service}/image-tag"), Err(NameProblem::MissingPlaceholder));
        assert_eq!(ParameterTemplate::parse("/{environment}/image-tag"), Err(NameProblem::MissingPlaceholder));
    }

    #[test]
    fn names_ssm_would_refuse_are_refused() {
        let cases = [
            ("{service}/{environment}", NameProblem::NotFullyQualified),
            ("/{service}/{environment}/tag!", NameProblem::InvalidCharacter('!')),
            ("/{service}/{environment} tag", NameProblem::InvalidCharacter(' ')),
            ("/{service}//{environment}", NameProblem::EmptyLevel),
            ("/{service}/{environment}/", NameProblem::EmptyLevel),
            ("/aws/{service}/{environment}", NameProblem::ReservedPrefix),
            ("/SSM-{service}/{environment}", NameProblem::ReservedPrefix),
            ("/a/b/c/d/e/f/g/h/i/j/k/l/m/n/{service}/{environment}", NameProblem::TooDeep(16)),
        ];
        for (template, problem) in cases {
            assert_eq!(ParameterTemplate::parse(template), Err(problem), "{template}");
        }
    }

    #[test]
    fn fifteen_levels_and_reserved_words_later_in_the_path_are_fine() {
        let template = "/a/b/c/d/e/f/g/h/i/j/k/l/m/{service}/{environment}";
        assert!(ParameterTemplate::parse(template).is_ok());
        assert!(ParameterTemplate::parse("/apps/aws-{service}/{environment}").is_ok());
    }

    #[test]
    fn overlong_names_are_refused_counting_the_arn_prefix() {
        // The longest ARN prefix of any partition today must fit in the budget.
        let longest_prefix = "arn:aws-iso-b:ssm:us-isob-east-1:123456789012:parameter";
        assert!(longest_prefix.len() <= ARN_PREFIX_BUDGET);
        let fits = format!("/{}", "a".repeat(MAX_NAME_LEN - 1));
        assert_eq!(check_parameter_name(&fits), Ok(()));
        assert!(longest_prefix.len() + fits.len() <= SSM_NAME_LIMIT, "SSM would accept it");
        // 1,011 characters of name alone: SSM refuses it once the ARN prefix is counted.
        let name = format!("/{}", "a".repeat(SSM_NAME_LIMIT - 1));
        assert_eq!(check_parameter_name(&name), Err(NameProblem::TooLong(SSM_NAME_LIMIT)));
        let just_over = format!("/{}", "a".repeat(MAX_NAME_LEN));
        assert_eq!(check_parameter_name(&just_over), Err(NameProblem::TooLong(MAX_NAME_LEN + 1)));
    }
}
