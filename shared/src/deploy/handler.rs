//! The trigger-deploy handler: event → which environments to reconcile → read parameters and
//! builds through the ports → pure reconcile → at most one StartBuild → one log line each.

use futures_util::stream::{self, StreamExt};
use tracing::{error, info, warn};

use super::deployer::Deployer;
use super::fingerprint::idempotency_token;
use super::history::{deploy_history, newest_builds, MAX_BUILDS_READ};
use super::manifest::Manifest;
use super::observe::Observation;
use super::outcome::{DeployError, EnvironmentOutcome, Outcome, ReconcileError, Summary};
use super::reconcile::{Decision, Trigger};
use super::refusal::{account_quota_error, refusal, Refusal};
use super::release::{verified_at, Release, RELEASE_DESCRIPTION};
use super::trigger::{build_trigger, deployment_trigger, parameter_trigger, IgnoreReason, Ignored};
use super::verify::VerifiedBy;
use crate::config::Environment;
use crate::document::DocumentError;
use crate::event::deploy::{parse_deploy_event, DeployEvent};
use crate::handler::{log_failure, Handler};
use crate::ports::{
    AwsError, BuildRunner, EcsServices, ImageRegistry, ParameterStore, RecordStore, StartBuild, StartOutcome,
};
use crate::ports::{BuildStatus, ENVIRONMENT_VARIABLE, FINGERPRINT_VARIABLE};

/// After a refused start, how many of the project's newest builds are looked at for a running
/// one: with `concurrent_build_limit = 1` a running build is the newest or nearly.
const RUNNING_LOOKUP: usize = 10;
/// Environments reconciled at once by the schedule.
const RECONCILE_CONCURRENCY: usize = 4;

/// One invocation: a parameter change, a build's end, an ECS deployment's state change, or the
/// scheduled sweep.
impl<P, B, E, I> Handler for Deployer<P, B, E, I>
where
    P: ParameterStore + RecordStore + Sync,
    B: BuildRunner + Sync,
    E: EcsServices + Sync,
    I: ImageRegistry + Sync,
{
    type Response = Summary;
    type Error = DeployError;

    async fn handle(&self, event: &serde_json::Value) -> Result<Summary, DeployError> {
        self.deploy(event).await.inspect_err(log_failure)
    }
}

impl<P, B, E, I> Deployer<P, B, E, I>
where
    P: ParameterStore + RecordStore + Sync,
    B: BuildRunner + Sync,
    E: EcsServices + Sync,
    I: ImageRegistry + Sync,
{
    async fn deploy(&self, event: &serde_json::Value) -> Result<Summary, DeployError> {
        let (trigger, environments) = match parse_deploy_event(event)? {
            DeployEvent::ParameterChange(change) => match parameter_trigger(&self.config, &change) {
                Ok((trigger, environment)) => (trigger, vec![environment]),
                Err(ignored) => {
                    let trigger = format!("parameter {} {:?}", change.name, change.operation);
                    return Ok(ignore(trigger, &change.name, ignored));
                }
            },
            DeployEvent::BuildStateChange(change) => match build_trigger(&self.config, &change) {
                Ok((trigger, environment)) => (trigger, vec![environment]),
                Err(ignored) => {
                    return Ok(ignore(format!("build {} {}", change.build_id, change.build_status), "", ignored))
                }
            },
            DeployEvent::EcsDeployment(change) => match deployment_trigger(&self.config, &change) {
                Ok(found) => found,
                Err(ignored) => {
                    let trigger = format!("ECS {} of {}/{}", change.event_name, change.cluster, change.service);
                    return Ok(ignore(trigger, "", ignored));
                }
            },
            DeployEvent::Scheduled => (Trigger::Schedule, self.config.environments().collect()),
        };

        let mut summary = Summary { trigger: trigger.describe(), ignored: None, environments: Vec::new() };
        let mut failed = Vec::new();
        // The schedule reconciles every environment: a few at a time, in order (each one's
        // reads are its own; at 1,000 services an idle environment is ~100 GetParameters).
        let reconciled: Vec<_> = stream::iter(&environments)
            .map(|environment| self.reconcile(environment, &trigger))
            .buffered(RECONCILE_CONCURRENCY)
            .collect()
            .await;
        for (environment, result) in environments.iter().zip(reconciled) {
            match result {
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

    /// Reconciles one environment, as every event does; public for the operator's `retry`.
    pub async fn reconcile(
        &self,
        environment: &Environment,
        trigger: &Trigger,
    ) -> Result<EnvironmentOutcome, ReconcileError> {
        let project = &environment.codebuild_project;
        let history = deploy_history(&self.builds, project).await?;
        // A running build holds the state lock, a manual one too, and its end event reconciles
        // again: decided without reading the parameters, which at 1,000 services is 100
        // GetParameters calls saved on every event of a burst.
        if let Some(running) = history.running().map(|build| build.id.clone()) {
            let outcome = Outcome::Wait { build: running };
            log_decision(environment, "", trigger, &outcome);
            return Ok(EnvironmentOutcome {
                environment: environment.name.clone(),
                project: project.clone(),
                fingerprint: String::new(),
                outcome,
            });
        }
        // A queued event whose change the newest run already has: one call, not ⌈N/10⌉.
        if let (Trigger::ParameterChange { parameter }, Some(newest)) = (trigger, history.newest_tagrelay()) {
            if self.change_in_newest_run(environment, parameter, newest).await? {
                let outcome = Outcome::Included { build: newest.id.clone() };
                let fingerprint = newest.fingerprint.clone().unwrap_or_default();
                log_decision(environment, &fingerprint, trigger, &outcome);
                return Ok(EnvironmentOutcome {
                    environment: environment.name.clone(),
                    project: project.clone(),
                    fingerprint,
                    outcome,
                });
            }
        }
        let Observation { parameters, desired, history, decision, .. } =
            self.observe_with(environment, trigger, history).await?;
        if history.bound_reached {
            warn!(environment = %environment.name, project = %project, fingerprint = %desired.fingerprint, "no tagrelay build among the newest {MAX_BUILDS_READ} builds of the project: treated as never deployed");
        }

        let outcome = match decision {
            Decision::Start { fingerprint, reason, follows } => {
                // Only what the token is made of: a repeated token with other parameters is
                // CodeBuild's parameter-mismatch error. The trigger is in the decision line. A
                // mismatch is not read as `wait`: it can only mean a bug here (the token's scheme
                // changes with the parameters, so two tagrelay versions never share a token), and
                // InvalidInputException also covers requests that are simply wrong.
                // The manifest first: the build finds what to deploy in it, so a build never
                // starts without one. Racing starts may write it twice; the build takes the newest.
                let manifest = Manifest::of(&environment.name, &parameters);
                self.write_manifest(environment, &manifest).await?;
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
            Decision::Verified { build, release, basis } => {
                let version = self.record_release(environment, &release).await?;
                Outcome::Verified { build, basis, version }
            }
            Decision::Verifying { build, rolling, deadline } => {
                let rolling =
                    rolling.iter().map(|(service, d)| format!("{service}: {d}")).collect::<Vec<_>>().join(", ");
                Outcome::Verifying { build, rolling, deadline: verified_at(deadline) }
            }
            Decision::RolloutHeld { build, reason, detail } => Outcome::RolloutHeld { build, hold: reason, detail },
        };
        log_decision(environment, &desired.fingerprint, trigger, &outcome);
        Ok(EnvironmentOutcome {
            environment: environment.name.clone(),
            project: project.clone(),
            fingerprint: desired.fingerprint,
            outcome,
        })
    }

    /// Writes the run manifest of a build about to start.
    async fn write_manifest(&self, environment: &Environment, manifest: &Manifest) -> Result<i64, ReconcileError> {
        let written = crate::document::write(
            &self.parameters,
            &environment.manifest_parameter(),
            &manifest.document(),
            &manifest.description(),
        )
        .await;
        written.map_err(|err| match err {
            DocumentError::Aws { source, .. } => ReconcileError::Aws(source),
            other => ReconcileError::Release(other.into()),
        })
    }

    /// Writes the release record. Racing reconciles may both write it: the same record, since
    /// every field is a function of what they read; readers take each fingerprint once.
    async fn record_release(&self, environment: &Environment, release: &Release) -> Result<i64, ReconcileError> {
        let document = release.document();
        let written =
            crate::document::write(&self.parameters, &environment.release_parameter(), &document, RELEASE_DESCRIPTION)
                .await;
        written.map_err(|err| match err {
            DocumentError::Aws { source, .. } => ReconcileError::Aws(source),
            other => ReconcileError::Release(other.into()),
        })
    }

    /// CodeBuild refused the start (see `refusal`): a build of the project running is `wait`,
    /// none is the account's quota, an error.
    async fn refused(&self, project: &str, message: &str) -> Result<Outcome, AwsError> {
        let newest = newest_builds(&self.builds, project, RUNNING_LOOKUP).await?;
        match refusal(&newest) {
            Refusal::ProjectLimit { running_build } => Ok(Outcome::Wait { build: running_build }),
            Refusal::AccountQuota => Err(account_quota_error(project, message)),
        }
    }
}

/// An event that reconciles nothing: one line saying why (a WARN for a deleted parameter,
/// which someone has to look at), and the reason in the response.
fn ignore(trigger: String, parameter: &str, ignored: Ignored<'_>) -> Summary {
    let Ignored { service, environment, reason } = ignored;
    if reason == IgnoreReason::ParameterDeleted {
        warn!(
            service,
            environment,
            parameter,
            decision = "ignore",
            reason = reason.as_str(),
            "an image-tag parameter was deleted: Terraform cannot read it until it is written again"
        );
    } else {
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
    // An alarm watches for holds: a change that failed to deploy (the build, or its rollout)
    // and is not retried until the next one.
    let held = match outcome {
        Outcome::Hold { status, .. } => Some((status.as_str(), "", "deploy held: this state already failed")),
        Outcome::RolloutHeld { detail, .. } => Some((
            BuildStatus::Succeeded.as_str(),
            detail.as_str(),
            "deploy held: the run succeeded but the rollout did not",
        )),
        _ => None,
    };
    if let Some((status, detail, message)) = held {
        error!(
            environment = environment_name,
            project,
            parameter,
            fingerprint,
            trigger,
            decision = name,
            reason,
            build,
            status,
            detail,
            "{message}"
        );
    } else if let Outcome::Verified { basis: VerifiedBy::RolloutStateUnsupported, .. } = outcome {
        warn!(
            environment = environment_name,
            project,
            fingerprint,
            trigger,
            decision = name,
            reason,
            build,
            "ECS reports no rollout state for these services (CODE_DEPLOY or EXTERNAL controller, Classic Load Balancer): the build's success is the release"
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
