//! What every command needs: the validated configuration and the AWS clients.

use std::path::Path;

use aws_config::SdkConfig;
use tagrelay::aws::cloudwatch::CloudWatchAlarms;
use tagrelay::aws::codebuild::CodeBuildRunner;
use tagrelay::aws::ecr::EcrImageRegistry;
use tagrelay::aws::ecs::EcsServiceReader;
use tagrelay::aws::sqs::SqsDeadLetterQueue;
use tagrelay::aws::ssm::SsmParameterStore;
use tagrelay::config::source::ConfigSource;
use tagrelay::config::{Config, Environment, Service, CONFIG_ENV};
use tagrelay::deploy::Deployer;
use tagrelay::ports::AwsError;
use tagrelay::promote::Promoter;
use tagrelay::record::Recorder;

use crate::error::CliError;

/// The configuration, or where to read it once the SDK is configured.
pub enum ConfigAt {
    Ready(Config),
    /// `TAGRELAY_CONFIG` references an SSM parameter (as the functions get it at scale).
    Referenced(ConfigSource),
}

/// `--config FILE` wins over `TAGRELAY_CONFIG`, which holds the document or a reference to the
/// SSM parameter that holds it (`ssm:<name>[:<version>]`). A document is validated here, before
/// any AWS call: a bad one is a usage error at once.
pub fn locate_config(file: Option<&Path>) -> Result<ConfigAt, CliError> {
    match file {
        Some(path) => {
            let document = std::fs::read_to_string(path)
                .map_err(|source| CliError::ConfigFile { path: path.to_owned(), source })?;
            let config = Config::from_json(&document)
                .map_err(|source| CliError::ConfigFileInvalid { path: path.to_owned(), source })?;
            Ok(ConfigAt::Ready(config))
        }
        None if std::env::var_os(CONFIG_ENV).is_none() => Err(CliError::NoConfig),
        None => match ConfigSource::from_env()? {
            ConfigSource::Inline(document) => Ok(ConfigAt::Ready(Config::from_json(&document)?)),
            reference => Ok(ConfigAt::Referenced(reference)),
        },
    }
}

impl ConfigAt {
    /// The validated configuration, read from SSM when referenced.
    pub async fn load(self, sdk: &SdkConfig) -> Result<Config, CliError> {
        match self {
            Self::Ready(config) => Ok(config),
            Self::Referenced(source) => Ok(source.load(&SsmParameterStore::from_sdk_config(sdk)).await?.0),
        }
    }
}

pub struct Context {
    pub config: Config,
    pub sdk: SdkConfig,
}

impl Context {
    pub fn service(&self, name: &str) -> Result<&Service, CliError> {
        self.config.service(name).ok_or_else(|| {
            let known: Vec<&str> = self.config.services().map(|s| s.name.as_str()).collect();
            CliError::usage(
                "SERVICE",
                format!("{name:?} is not a configured service (configured: {})", known.join(", ")),
            )
        })
    }

    pub fn environment(&self, argument: &'static str, name: &str) -> Result<&Environment, CliError> {
        self.config.environment(name).ok_or_else(|| {
            let known: Vec<&str> = self.config.environments().map(|e| e.name.as_str()).collect();
            CliError::usage(
                argument,
                format!("{name:?} is not a configured environment (configured: {})", known.join(", ")),
            )
        })
    }

    pub fn parameters(&self) -> SsmParameterStore {
        SsmParameterStore::from_sdk_config(&self.sdk)
    }

    pub fn builds(&self) -> CodeBuildRunner {
        CodeBuildRunner::from_sdk_config(&self.sdk)
    }

    pub fn recorder(&self) -> Recorder<SsmParameterStore, EcrImageRegistry> {
        Recorder::new(self.config.clone(), self.parameters(), EcrImageRegistry::from_sdk_config(&self.sdk))
    }

    pub fn deployer(&self) -> Deployer<SsmParameterStore, CodeBuildRunner, EcsServiceReader, EcrImageRegistry> {
        Deployer::new(
            self.config.clone(),
            self.parameters(),
            self.builds(),
            EcsServiceReader::from_sdk_config(&self.sdk),
            EcrImageRegistry::from_sdk_config(&self.sdk),
        )
    }

    /// What the promote function decides and writes with: SSM, ECR and CloudWatch alarms.
    pub fn promoter(&self) -> Promoter<SsmParameterStore, EcrImageRegistry, CloudWatchAlarms> {
        Promoter::new(
            self.config.clone(),
            self.parameters(),
            EcrImageRegistry::from_sdk_config(&self.sdk),
            CloudWatchAlarms::from_sdk_config(&self.sdk),
        )
    }

    pub async fn dead_letter_queue(&self, name_or_url: &str) -> Result<SqsDeadLetterQueue, AwsError> {
        SqsDeadLetterQueue::locate(aws_sdk_sqs::Client::new(&self.sdk), name_or_url).await
    }
}

/// Who a record names as its author: `--by`, else the `USER` variable. (SSM also keeps the IAM
/// identity that wrote each parameter version; `tagrelay history` shows it.)
pub fn caller(by: Option<&str>) -> Result<String, CliError> {
    let from_env = std::env::var("USER").ok();
    let name = by.or(from_env.as_deref()).map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Err(CliError::usage("--by", "say who you are: USER is not set (or empty) in this environment"));
    }
    if name.chars().count() > MAX_CALLER_CHARS || name.chars().any(char::is_control) {
        return Err(CliError::usage(
            "--by",
            format!("must be at most {MAX_CALLER_CHARS} characters, without control characters"),
        ));
    }
    Ok(name.to_owned())
}

/// The longest `--by` recorded.
pub const MAX_CALLER_CHARS: usize = 128;
