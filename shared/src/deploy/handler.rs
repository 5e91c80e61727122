//! The trigger-deploy handler: event → which environments to reconcile → read parameters and
//! builds through the ports → pure reconcile → at most one StartBuild → one log line each.

use lambda_runtime::Diagnostic;
use serde::Serialize;
use thiserror::Error;
use tracing::{error, info, warn};

use super::fingerprint::idempotency_token;
use super::history::{deploy_history, newest_builds, MAX_BUILDS_READ};
use super::reconcile::{reconcile, Decision, Desired, StartReason, Trigger};
use crate::config::{Config, Environment};
use crate::event::codebuild::BuildStateChange;
use crate::event::deploy::{parse_deploy_event, DeployEvent};
use crate::event::ssm::{Operation, ParameterChange};
use crate::event::EventError;
use crate::ports::{AwsError, BuildRunner, ParameterStore, StartBuild, StartOutcome};
use crate::ports::{BuildStatus, ENVIRONMENT_VARIABLE, FINGERPRINT_VARIABLE};

/// After a refused start, how many of the project's newest builds are looked at for a running
/// one: with `concurrent_build_limit = 1` a running build is the newest or nearly.
const RUNNING_LOOKUP: usize = 10;

/// The error code CodeBuild refuses a start with, for the project's limit and the account's quota.
const LIMIT_EXCEEDED: &str = "AccountLimitExceededException";

#[derive(Debug, Error)]
pub enum DeployError {
    #[error(transparent)]
    InvalidEvent(#[from] EventError),
    /// Reconciling some environments failed; the others were reconciled. A retry is harmless.
    #[error("reconciling {} of {attempted} environments failed: {}", failed.len(), join(failed))]
    Reconcile { attempted: usize, failed: Vec<AwsError> },
}

fn join(errors: &[AwsError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl From<DeployError> for Diagnostic {
    fn from(err: DeployError) -> Self {
        let error_type = match &err {
            DeployError::InvalidEvent(_) => "InvalidEvent",
            DeployError::Reconcile { .. } => "AwsError",
        };
        Diagnostic { error_type: error_type.to_owned(), error_message: err.to_string() }
    }
}

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
    }
}

/// The function's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub trigger: String,
    /// Set when the event as a whole reconciles nothing.
    pub ignored: Option<IgnoreReason>,
    pub environments: Vec<EnvironmentOutcome>,
}

/// What was done for one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvironmentOutcome {
    pub environment: String,
    pub project: String,
    pub fingerprint: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

crate::names::named_enum! {
    /// What the handler did with one environment's `Decision` (logged as `decision`).
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[serde(tag = "decision")]
    pub enum Outcome {
        Start {
            reason: StartReason,
            build: String,
        } => "start",
        /// `build` runs: a tagrelay or a manual one, seen before starting or after CodeBuild refused
        /// the start for the project's concurrent build limit.
        Wait {
            build: String,
        } => "wait",
        UpToDate {
            build: String,
        } => "up_to_date",
        Hold {
            build: String,
            status: BuildStatus,
        } => "hold",
        NoBaseline => "no_baseline",
        NothingToDeploy => "nothing_to_deploy",
    }
}

impl Outcome {
    /// The decision line's `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Start { reason, .. } => reason.as_str(),
            Self::Wait { .. } => "build_running",
            Self::UpToDate { .. } => "deployed",
            Self::Hold { .. } => "same_state_failed",
            Self::NoBaseline => "no_tagrelay_build_yet",
            Self::NothingToDeploy => "no_parameter",
        }
    }

    pub fn build(&self) -> Option<&str> {
        match self {
            Self::Start { build, .. } | Self::Wait { build } | Self::UpToDate { build } | Self::Hold { build, .. } => {
                Some(build)
            }
            Self::NoBaseline | Self::NothingToDeploy => None,
        }
    }
}

pub struct Deployer<P, B> {
    config: Config,
    parameters: P,
    builds: B,
}

impl<P: ParameterStore + Sync, B: BuildRunner + Sync> Deployer<P, B> {
    pub fn new(config: Config, parameters: P, builds: B) -> Self {
        Self { config, parameters, builds }
    }

    /// The ports, for inspection in tests.
    pub fn ports(&self) -> (&P, &B) {
        (&self.parameters, &self.builds)
    }

    pub async fn handle(&self, event: &serde_json::Value) -> Result<Summary, DeployError> {
        let result = self.deploy(event).await;
        if let Err(err @ DeployError::InvalidEvent(_)) = &result {
            error!(decision = "error", error = %err, "event not handled; it will be retried");
        }
        result
    }

    async fn deploy(&self, event: &serde_json::Value) -> Result<Summary, DeployError> {
        let (trigger, environments) = match parse_deploy_event(event)? {
            DeployEvent::ParameterChange(change) => match self.parameter_trigger(&change) {
                Ok(found) => found,
                Err(ignored) => {
                    return Ok(ignore(format!("parameter {} {:?}", change.name, change.operation), ignored))
                }
            },
            DeployEvent::BuildStateChange(change) => match self.build_trigger(&change) {
                Ok(found) => found,
                Err(ignored) => {
                    return Ok(ignore(format!("build {} {}", change.build_id, change.build_status), ignored))
                }
            },
            DeployEvent::Scheduled => (Trigger::Schedule, self.config.environments().collect()),
        };

        let mut summary = Summary { trigger: trigger.describe(), ignored: None, environments: Vec::new() };
        let mut failed = Vec::new();
        for environment in &environments {
            match self.reconcile(environment, &trigger).await {
                Ok(outcome) => summary.environments.push(outcome),
                Err(err) => {
                    error!(environment = %environment.name, project = %environment.codebuild_project, decision = "error", error = %err, "reconcile failed");
                    failed.push(err);
                }
            }
        }
        if failed.is_empty() {
            Ok(summary)
        } else {
            Err(DeployError::Reconcile { attempted: environments.len(), failed })
        }
    }

    fn parameter_trigger(&self, change: &ParameterChange) -> Result<(Trigger, Vec<&Environment>), IgnoreReason> {
        let Some((service, environment)) = self.config.parameter_owner(&change.name) else {
            return Err(IgnoreReason::ParameterNotOurs);
        };
        match change.operation {
            Operation::Create | Operation::Update => {
                Ok((Trigger::ParameterChange { parameter: change.name.clone() }, vec![environment]))
            }
            Operation::Delete => {
                warn!(service = %service.name, environment = %environment.name, parameter = %change.name, decision = "ignore", reason = IgnoreReason::ParameterDeleted.as_str(), "an image-tag parameter was deleted: Terraform cannot read it until it is written again");
                Err(IgnoreReason::ParameterDeleted)
            }
            Operation::LabelParameterVersion | Operation::Other => Err(IgnoreReason::NotAValueChange),
        }
    }

    fn build_trigger(&self, change: &BuildStateChange) -> Result<(Trigger, Vec<&Environment>), IgnoreReason> {
        let Some(environment) = self.config.environment_for_project(&change.project_name) else {
            return Err(IgnoreReason::ProjectNotOurs);
        };
        if !change.build_status.is_terminal() {
            return Err(IgnoreReason::BuildNotFinished);
        }
        let trigger = Trigger::BuildFinished { build_id: change.build_id.clone(), status: change.build_status };
        Ok((trigger, vec![environment]))
    }

    /// Reconciles one environment, as every event does; public for the operator's `retry`.
    pub async fn reconcile(
        &self,
        environment: &Environment,
        trigger: &Trigger,
    ) -> Result<EnvironmentOutcome, AwsError> {
        let project = &environment.codebuild_project;
        let names = self.config.parameter_names(&environment.name);
        let desired = Desired::of(&self.parameters.get_parameters(&names).await?);
        let history = deploy_history(&self.builds, project).await?;
        if history.bound_reached {
            warn!(environment = %environment.name, project = %project, fingerprint = %desired.fingerprint, "no tagrelay build among the newest {MAX_BUILDS_READ} builds of the project: treated as never deployed");
        }

        let outcome = match reconcile(&desired, &history.builds, trigger) {
            Decision::Start { fingerprint, reason, follows } => {
                // Only what the token is made of: a repeated token with other parameters is
                // CodeBuild's parameter-mismatch error. The trigger is in the decision line. A
                // mismatch is not read as `wait`: it can only mean a bug here (the token's scheme
                // changes with the parameters, so two tagrelay versions never share a token), and
                // InvalidInputException also covers requests that are simply wrong.
                let request = StartBuild {
                    project: project.clone(),
                    environment: vec![
                        (FINGERPRINT_VARIABLE.to_owned(), fingerprint.clone()),
                        (ENVIRONMENT_VARIABLE.to_owned(), environment.name.clone()),
                    ],
                    idempotency_token: idempotency_token(project, &environment.name, &fingerprint, follows.as_deref()),
                };
                match self.builds.start_build(&request).await? {
                    StartOutcome::Started { build_id } => Outcome::Start { reason, build: build_id },
                    StartOutcome::LimitReached { message } => self.refused(project, &message).await?,
                }
            }
            Decision::Wait { running_build } => Outcome::Wait { build: running_build },
            Decision::UpToDate { build } => Outcome::UpToDate { build },
            Decision::Hold { failed_build, status } => Outcome::Hold { build: failed_build, status },
            Decision::NoBaseline => Outcome::NoBaseline,
            Decision::NothingToDeploy => Outcome::NothingToDeploy,
        };
        log_decision(environment, &desired.fingerprint, trigger, &outcome);
        Ok(EnvironmentOutcome {
            environment: environment.name.clone(),
            project: project.clone(),
            fingerprint: desired.fingerprint,
            outcome,
        })
    }

    /// CodeBuild refused the start with `AccountLimitExceededException`, which covers both the
    /// project's concurrent build limit and the account's quota of running builds. A build of the
    /// project running (it started since we looked) is the project's limit: wait for its end
    /// event. None running is the account's quota (other projects' builds, or a new account's
    /// quota of 0): no end event will come, so it is an error, retried by Lambda and alarmed on.
    async fn refused(&self, project: &str, message: &str) -> Result<Outcome, AwsError> {
        let newest = newest_builds(&self.builds, project, RUNNING_LOOKUP).await?;
        if let Some(running) = newest.iter().find(|build| build.status == BuildStatus::InProgress) {
            return Ok(Outcome::Wait { build: running.id.clone() });
        }
        Err(AwsError {
            operation: "StartBuild",
            resource: project.to_owned(),
            code: Some(LIMIT_EXCEEDED.to_owned()),
            message: format!(
                "{LIMIT_EXCEEDED}: {message}; no build of {project} is running, so this is the account's \
                 quota of concurrently running builds, not the project's concurrent build limit: raise \
                 \"Concurrently running builds for <platform>/<compute type> environment\" for the \
                 project's compute type in Service Quotas (AWS CodeBuild) for this account and region"
            ),
        })
    }
}

fn ignore(trigger: String, reason: IgnoreReason) -> Summary {
    if reason != IgnoreReason::ParameterDeleted {
        info!(trigger = %trigger, decision = "ignore", reason = reason.as_str(), "event reconciles nothing");
    }
    Summary { trigger, ignored: Some(reason), environments: Vec::new() }
}

fn log_decision(environment: &Environment, fingerprint: &str, trigger: &Trigger, outcome: &Outcome) {
    let parameter = match trigger {
        Trigger::ParameterChange { parameter } => parameter.as_str(),
        _ => "",
    };
    let (name, reason, build) = (outcome.as_str(), outcome.reason(), outcome.build().unwrap_or(""));
    let trigger = trigger.describe();
    let environment_name = environment.name.as_str();
    let project = environment.codebuild_project.as_str();
    if let Outcome::Hold { status, .. } = outcome {
        // An alarm watches for these: a change failed and is not retried until the next one.
        error!(
            environment = environment_name,
            project,
            parameter,
            fingerprint,
            trigger,
            decision = name,
            reason,
            build,
            status = status.as_str(),
            "deploy held: this state already failed"
        );
    } else {
        info!(
            environment = environment_name,
            project,
            parameter,
            fingerprint,
            trigger,
            decision = name,
            reason,
            build,
            "reconciled"
        );
    }
}
