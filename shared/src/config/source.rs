//! Where the configuration document comes from. `TAGRELAY_CONFIG` holds either the document
//! itself (JSON: local runs, small installations, the test bed) or a reference to an SSM
//! parameter that holds it, `ssm:<name>:<version>` (or `ssm:<name>`, the newest version), in
//! "tagrelay parts/1" when large (`crate::document`). A Lambda function's variables together
//! hold 4 KB, some 36 services; a parameter in parts holds 800 KB. infra/ pins the version in the
//! reference, so a change of configuration changes the functions' environment (new cold starts
//! read it; the version is in their init line) and starts no Terraform run by itself.

use std::time::Instant;

use super::{Config, ConfigError, CONFIG_ENV};
use crate::document::{format::sha256_hex, read};
use crate::ports::ParameterStore;

const SSM_SCHEME: &str = "ssm:";

/// What `TAGRELAY_CONFIG` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// The document itself.
    Inline(String),
    /// An SSM parameter that holds it; `version` `None` is the newest.
    Ssm { name: String, version: Option<i64> },
}

/// What was loaded, for the init line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// `environment`, or the reference followed.
    pub source: String,
    pub bytes: usize,
    /// SHA-256 of the document: the same configuration has the same one wherever it is stored.
    pub sha256: String,
    pub services: usize,
    pub environments: usize,
    /// Reading (when referenced) and parsing and validating, in microseconds.
    pub read_micros: u128,
    pub parse_micros: u128,
}

impl ConfigSource {
    /// `TAGRELAY_CONFIG` read.
    pub fn from_env() -> Result<Self, ConfigError> {
        match std::env::var(CONFIG_ENV) {
            Ok(value) => Self::parse(&value),
            Err(_) => Err(ConfigError::NotSet),
        }
    }

    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let trimmed = value.trim();
        if trimmed.starts_with('{') {
            return Ok(Self::Inline(value.to_owned()));
        }
        let bad = || ConfigError::BadReference { value: value.to_owned() };
        let Some(reference) = trimmed.strip_prefix(SSM_SCHEME) else { return Err(bad()) };
        // A parameter name holds no ':'; a trailing `:<digits>` is the version.
        let (name, version) = match reference.rsplit_once(':') {
            Some((name, version)) => {
                let version: i64 = version.parse().ok().filter(|v| *v >= 1).ok_or_else(bad)?;
                (name, Some(version))
            }
            None => (reference, None),
        };
        if name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace) {
            return Err(bad());
        }
        Ok(Self::Ssm { name: name.to_owned(), version })
    }

    /// Whether reading it needs AWS.
    pub fn is_reference(&self) -> bool {
        matches!(self, Self::Ssm { .. })
    }

    /// How it is said in logs and errors.
    pub fn describe(&self) -> String {
        match self {
            Self::Inline(_) => "environment".to_owned(),
            Self::Ssm { name, version: Some(version) } => format!("{SSM_SCHEME}{name}:{version}"),
            Self::Ssm { name, version: None } => format!("{SSM_SCHEME}{name}"),
        }
    }

    /// The validated configuration. `store` is only asked for a reference.
    pub async fn load<S: ParameterStore>(&self, store: &S) -> Result<(Config, Loaded), ConfigError> {
        let started = Instant::now();
        let document = match self {
            Self::Inline(document) => document.clone(),
            Self::Ssm { name, version } => {
                let selector = version.map_or_else(|| name.clone(), |v| format!("{name}:{v}"));
                let unreadable = |message: String| ConfigError::Unreadable { reference: self.describe(), message };
                match read(store, name, &selector).await {
                    Ok(Some(document)) => document,
                    Ok(None) => return Err(unreadable("no such parameter (or version)".to_owned())),
                    Err(err) => return Err(unreadable(err.to_string())),
                }
            }
        };
        let read_micros = started.elapsed().as_micros();
        let parsing = Instant::now();
        let config = Config::from_json(&document)?;
        let loaded = Loaded {
            source: self.describe(),
            bytes: document.len(),
            sha256: sha256_hex(&document),
            services: config.services().count(),
            environments: config.environments().count(),
            read_micros,
            parse_micros: parsing.elapsed().as_micros(),
        };
        Ok((config, loaded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_or_a_reference_and_anything_else_names_the_variable() {
        let parse = |value: &str| ConfigSource::parse(value).expect(value);
        assert_eq!(parse(" {\"a\":1}"), ConfigSource::Inline(" {\"a\":1}".into()));
        assert_eq!(
            parse("ssm:/tagrelay/_config:7"),
            ConfigSource::Ssm { name: "/tagrelay/_config".into(), version: Some(7) }
        );
        assert_eq!(
            parse("ssm:/tagrelay/_config"),
            ConfigSource::Ssm { name: "/tagrelay/_config".into(), version: None }
        );
        for bad in ["", "s3://bucket/key", "ssm:", "ssm:/a:0", "ssm:/a:x", "ssm:/a:b:3", "ssm:/a b", "[1]"] {
            let err = ConfigSource::parse(bad).expect_err(bad);
            assert_eq!(err.field(), CONFIG_ENV, "{bad}");
            assert!(err.to_string().contains("ssm:<parameter name>[:<version>]"), "{bad}: {err}");
        }
        assert_eq!(
            ConfigSource::Ssm { name: "/c".into(), version: Some(3) }.describe(),
            "ssm:/c:3",
            "the init line says which version"
        );
    }
}
