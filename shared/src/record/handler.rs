//! The record-image-tag handler: parse → read state through the ports → decide → write →
//! one log line per decision.

use std::collections::BTreeMap;

use aws_smithy_types::DateTime;
use tracing::{error, info};

use super::decision::{classify, confirm_image, decide, Decision, ImageState, Push, SkipReason, Target, WriteReason};
use super::outcome::{EnvironmentOutcome, Outcome, PushSummary, RecordError, Summary, WriteFailure};
use super::recorder::Recorder;
use crate::config::Service;
use crate::event::ecr::{parse_record_event, ImageAction, RecordEvent};
use crate::handler::{log_failure, Handler};
use crate::order::can_be_image_tag;
use crate::ports::{AwsError, ImageRegistry, ParameterHistory, ParameterKind, ParameterStore, StoredParameter};

/// One invocation: an ECR push, or the scheduled record sweep.
impl<P: ParameterStore + ParameterHistory + Sync, R: ImageRegistry + Sync> Handler for Recorder<P, R> {
    type Response = Summary;
    type Error = RecordError;

    async fn handle(&self, event: &serde_json::Value) -> Result<Summary, RecordError> {
        let result = match parse_record_event(event) {
            Ok(RecordEvent::ImageAction(detail)) => self.record(&detail).await.map(Summary::Push),
            Ok(RecordEvent::Scheduled) => self.sweep().await.map(Summary::Sweep),
            Err(err) => Err(err.into()),
        };
        result.inspect_err(log_failure)
    }
}

impl<P: ParameterStore + ParameterHistory + Sync, R: ImageRegistry + Sync> Recorder<P, R> {
    async fn record(&self, detail: &ImageAction) -> Result<PushSummary, RecordError> {
        let mut summary = PushSummary {
            repository: detail.repository_name.clone(),
            tag: detail.image_tag.clone(),
            service: None,
            skipped: None,
            decisions: Vec::new(),
        };
        let push = match classify(detail, &self.config) {
            Ok(push) => push,
            Err(ignored) => return Ok(skip_event(summary, ignored.service, ignored.reason)),
        };
        let service = push.service.name.as_str();
        summary.service = Some(service.to_owned());

        // The image check comes first: a stale event needs no parameter read at all.
        let image = match self.images.image_by_tag(&push.service.repository, push.tag).await? {
            Some(facts) => ImageState::Present { digest: facts.digest, pushed_at: facts.pushed_at },
            None => ImageState::Gone,
        };
        let pushed_at = match confirm_image(&push, &image) {
            Ok(pushed_at) => pushed_at,
            Err(reason) => return Ok(skip_event(summary, Some(service), reason)),
        };

        let environments: Vec<&str> = push.service.deploy_on_push.iter().map(String::as_str).collect();
        let targets = self.read_targets(&push, &environments).await?;
        let mut failed = Vec::new();
        let mut attempted = 0;
        for target in &targets {
            let decision = decide(&push, pushed_at, target);
            attempted += usize::from(!matches!(decision, Decision::Skip { .. }));
            let description = push_description(&push, target.environment);
            let outcome = self.apply(&push, pushed_at, target, decision, description, &mut failed).await;
            summary.decisions.push(EnvironmentOutcome {
                environment: target.environment.to_owned(),
                parameter: target.parameter.clone(),
                previous: target.current.clone(),
                outcome,
            });
        }
        if failed.is_empty() {
            Ok(summary)
        } else {
            Err(RecordError::Writes { attempted, failed })
        }
    }

    /// Acts on one target's decision and logs it: the one path every write takes (a push, the
    /// sweep, an operator's change). A failure is logged, pushed onto `failed` and returned as
    /// `Outcome::Failed`, so the other targets still get their turn.
    pub(super) async fn apply(
        &self,
        push: &Push<'_>,
        pushed_at: Option<DateTime>,
        target: &Target<'_>,
        decision: Decision,
        description: String,
        failed: &mut Vec<WriteFailure>,
    ) -> Outcome {
        let outcome = match decision {
            Decision::Skip { reason } => Outcome::Skip { reason },
            Decision::Refuse { kind } => {
                let failure = WriteFailure::NotAString { parameter: target.parameter.clone(), kind };
                let outcome = Outcome::Failed { to: push.tag.to_owned(), error: failure.to_string() };
                failed.push(failure);
                outcome
            }
            Decision::Write { to, reason, .. } => {
                let deliberate = reason == WriteReason::Pinned;
                match self.write_checked(push, pushed_at, target, &to, description, deliberate).await {
                    Ok(written) => Outcome::Write { to, reason, version: written.version, race: written.race },
                    Err(err) => {
                        let outcome = Outcome::Failed { to, error: err.to_string() };
                        failed.push(WriteFailure::Aws(err));
                        outcome
                    }
                }
            }
        };
        log_decision(push, target, &outcome);
        outcome
    }

    /// Reads every target parameter in one GetParameters call, and for `pushed-at` the push
    /// time of each distinct image they name now.
    pub(super) async fn read_targets<'a>(
        &self,
        push: &Push<'a>,
        environments: &[&'a str],
    ) -> Result<Vec<Target<'a>>, AwsError> {
        self.read_service_targets(push.service, Some(push.tag), environments).await
    }

    /// The targets of `service` in `environments`; `except` is a tag whose push time the
    /// caller already has.
    pub(super) async fn read_service_targets<'a>(
        &self,
        service: &Service,
        except: Option<&str>,
        environments: &[&'a str],
    ) -> Result<Vec<Target<'a>>, AwsError> {
        let names = self.parameter_names(service, environments);
        let current = self.parameters.get_parameters(&names).await?;
        self.service_targets(service, except, environments, names, current).await
    }

    /// The image-tag parameters of `service` in `environments`, in order.
    pub(super) fn parameter_names(&self, service: &Service, environments: &[&str]) -> Vec<String> {
        environments.iter().map(|environment| self.config.parameter_name(&service.name, environment)).collect()
    }

    /// The targets of `service` from parameters already read (`current`, keyed by `names`, the
    /// parameters of `environments` in order).
    pub(super) async fn service_targets<'a>(
        &self,
        service: &Service,
        except: Option<&str>,
        environments: &[&'a str],
        names: Vec<String>,
        mut current: BTreeMap<String, StoredParameter>,
    ) -> Result<Vec<Target<'a>>, AwsError> {
        let pushed_at = self.push_times(service, except, &current).await?;
        let targets = environments
            .iter()
            .copied()
            .zip(names)
            .map(|(environment, parameter)| target(environment, parameter, &mut current, &pushed_at))
            .collect();
        Ok(targets)
    }

    /// One environment's target, for an operator's change. Without `order_matters` (a pin) the
    /// push times of the current images are not looked up: nothing compares them.
    pub(super) async fn read_target<'a>(
        &self,
        push: &Push<'a>,
        environment: &'a str,
        order_matters: bool,
    ) -> Result<Target<'a>, AwsError> {
        let parameter = self.config.parameter_name(&push.service.name, environment);
        let mut current = self.parameters.get_parameters(std::slice::from_ref(&parameter)).await?;
        let pushed_at = if order_matters {
            self.push_times(push.service, Some(push.tag), &current).await?
        } else {
            BTreeMap::new()
        };
        Ok(target(environment, parameter, &mut current, &pushed_at))
    }

    /// For `pushed-at`, the push time of each distinct image the parameters name now (the
    /// pushed tag's own comes with the push). A value that cannot be an ECR tag is not looked
    /// up: it orders as nothing, like a placeholder.
    async fn push_times(
        &self,
        service: &Service,
        except: Option<&str>,
        current: &BTreeMap<String, StoredParameter>,
    ) -> Result<BTreeMap<String, Option<DateTime>>, AwsError> {
        let mut pushed_at = BTreeMap::new();
        if service.order.needs_push_times() {
            for stored in current.values() {
                if Some(stored.value.as_str()) != except {
                    self.push_time(service, &stored.value, &mut pushed_at).await?;
                }
            }
        }
        Ok(pushed_at)
    }

    /// Looks up `tag`'s push time once into `known`.
    pub(super) async fn push_time(
        &self,
        service: &Service,
        tag: &str,
        known: &mut BTreeMap<String, Option<DateTime>>,
    ) -> Result<Option<DateTime>, AwsError> {
        if let Some(at) = known.get(tag) {
            return Ok(*at);
        }
        let at = if can_be_image_tag(tag) {
            self.images.image_by_tag(&service.repository, tag).await?.and_then(|facts| facts.pushed_at)
        } else {
            None
        };
        known.insert(tag.to_owned(), at);
        Ok(at)
    }
}

pub(super) fn target<'a>(
    environment: &'a str,
    parameter: String,
    current: &mut BTreeMap<String, StoredParameter>,
    pushed_at: &BTreeMap<String, Option<DateTime>>,
) -> Target<'a> {
    let stored = current.remove(&parameter);
    let current_pushed_at = stored.as_ref().and_then(|s| pushed_at.get(&s.value).copied().flatten());
    Target {
        environment,
        parameter,
        current_pushed_at,
        version: stored.as_ref().map_or(0, |s| s.version),
        kind: stored.as_ref().map_or(ParameterKind::String, |s| s.kind),
        last_modified: stored.as_ref().and_then(|s| s.last_modified),
        current: stored.map(|s| s.value),
    }
}

/// An event not acted on: one INFO line saying why, and the reason in the response.
fn skip_event(mut summary: PushSummary, service: Option<&str>, reason: SkipReason) -> PushSummary {
    info!(
        service,
        repository = %summary.repository,
        tag = summary.tag.as_deref().unwrap_or(""),
        decision = "skip",
        reason = reason.as_str(),
        "push not recorded"
    );
    summary.service = service.map(str::to_owned);
    summary.skipped = Some(reason);
    summary
}

fn push_description(push: &Push<'_>, environment: &str) -> String {
    let digest = push.digest.unwrap_or("unknown digest");
    format!("Image tag of {} in {environment}, recorded by tagrelay from ECR push {digest}", push.service.name)
}

pub(super) fn log_decision(push: &Push<'_>, target: &Target<'_>, outcome: &Outcome) {
    let (decision, reason) = match outcome {
        Outcome::Write { reason, .. } | Outcome::Planned { reason, .. } => (outcome.as_str(), reason.as_str()),
        Outcome::Skip { reason } => (outcome.as_str(), reason.as_str()),
        Outcome::Failed { .. } => ("error", "write_failed"),
    };
    let message = match outcome {
        Outcome::Write { .. } => "parameter written",
        Outcome::Planned { .. } => "parameter would be written (dry run)",
        Outcome::Skip { .. } => "parameter left as it is",
        Outcome::Failed { .. } => "parameter write failed",
    };
    let service = push.service.name.as_str();
    // Always present, so every decision line has the same fields ("" for a new parameter).
    let previous = target.current.as_deref().unwrap_or("");
    if let Outcome::Failed { error, .. } = outcome {
        error!(service, environment = target.environment, parameter = %target.parameter, tag = push.tag, previous, decision, reason, error = %error, "{message}");
    } else {
        info!(service, environment = target.environment, parameter = %target.parameter, tag = push.tag, previous, decision, reason, "{message}");
    }
}
