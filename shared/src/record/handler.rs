//! The record-image-tag handler: parse → read state through the ports → decide → write →
//! one log line per decision.

use std::collections::BTreeMap;

use aws_smithy_types::DateTime;
use lambda_runtime::Diagnostic;
use serde::Serialize;
use thiserror::Error;
use tracing::{error, info};

use super::decision::{classify, confirm_image, decide, Decision, ImageState, Push, SkipReason, Target, WriteReason};
use crate::aws::{AwsError, ImageRegistry, ParameterStore, ParameterWrite, StoredParameter};
use crate::config::Config;
use crate::event::ecr::parse_image_action;
use crate::event::EventError;

#[derive(Debug, Error)]
pub enum RecordError {
    #[error(transparent)]
    InvalidEvent(#[from] EventError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// Some writes failed. Those that succeeded are not undone: a retry of the event skips
    /// them as unchanged and writes the rest.
    #[error("{} of {attempted} parameter writes failed; the event is safe to retry: {}", failed.len(), join(failed))]
    Writes { attempted: usize, failed: Vec<AwsError> },
}

fn join(errors: &[AwsError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl From<RecordError> for Diagnostic {
    fn from(err: RecordError) -> Self {
        let error_type = match &err {
            RecordError::InvalidEvent(_) => "InvalidEvent",
            RecordError::Aws(_) => "AwsError",
            RecordError::Writes { .. } => "WriteFailed",
        };
        Diagnostic { error_type: error_type.to_owned(), error_message: err.to_string() }
    }
}

/// The function's response: what was decided, per environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub repository: String,
    pub tag: Option<String>,
    pub service: Option<String>,
    /// Set when the event as a whole was not acted on.
    pub skipped: Option<SkipReason>,
    pub decisions: Vec<EnvironmentDecision>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvironmentDecision {
    pub environment: String,
    pub parameter: String,
    pub previous: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Outcome {
    Write {
        to: String,
        reason: WriteReason,
        version: i64,
    },
    /// A dry run's write (operator command only).
    #[serde(rename = "would_write")]
    Planned {
        to: String,
        reason: WriteReason,
    },
    Skip {
        reason: SkipReason,
    },
    Failed {
        to: String,
        error: String,
    },
}

pub struct Recorder<P, R> {
    pub(super) config: Config,
    pub(super) parameters: P,
    pub(super) images: R,
}

impl<P: ParameterStore + Sync, R: ImageRegistry + Sync> Recorder<P, R> {
    pub fn new(config: Config, parameters: P, images: R) -> Self {
        Self { config, parameters, images }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The ports, for inspection in tests and by callers that share them.
    pub fn ports(&self) -> (&P, &R) {
        (&self.parameters, &self.images)
    }

    /// Handles one invocation. Events not acted on return `Ok` with the reason; an invalid
    /// event or a failing AWS call returns `Err`, so Lambda retries and then dead-letters it.
    pub async fn handle(&self, event: &serde_json::Value) -> Result<Summary, RecordError> {
        let result = self.record(event).await;
        // Failed writes were already logged, one line per environment.
        if let Err(err @ (RecordError::InvalidEvent(_) | RecordError::Aws(_))) = &result {
            error!(decision = "error", error = %err, "event not recorded; it will be retried");
        }
        result
    }

    async fn record(&self, event: &serde_json::Value) -> Result<Summary, RecordError> {
        let event = parse_image_action(event)?;
        let detail = &event.detail;
        let mut summary = Summary {
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
            let outcome = match decide(&push, pushed_at, target) {
                Decision::Skip { reason } => Outcome::Skip { reason },
                Decision::Write { from, to, reason } => {
                    attempted += 1;
                    let description = push_description(&push, target.environment);
                    match self
                        .parameters
                        .put_parameter(&write_for(&push, target, from.is_none(), &to, description))
                        .await
                    {
                        Ok(version) => Outcome::Write { to, reason, version },
                        Err(err) => {
                            let outcome = Outcome::Failed { to, error: err.to_string() };
                            failed.push(err);
                            outcome
                        }
                    }
                }
            };
            log_decision(&push, target, &outcome);
            summary.decisions.push(EnvironmentDecision {
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

    /// Reads every target parameter in one GetParameters call, and for `pushed-at` the push
    /// time of each distinct image they name now.
    async fn read_targets<'a>(&self, push: &Push<'a>, environments: &[&'a str]) -> Result<Vec<Target<'a>>, AwsError> {
        let service = push.service;
        let names: Vec<String> =
            environments.iter().map(|environment| self.config.parameter_name(&service.name, environment)).collect();
        let mut current = self.parameters.get_parameters(&names).await?;
        let pushed_at = self.push_times(push, &current).await?;
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
        let pushed_at = if order_matters { self.push_times(push, &current).await? } else { BTreeMap::new() };
        Ok(target(environment, parameter, &mut current, &pushed_at))
    }

    /// For `pushed-at`, the push time of each distinct image the parameters name now (the
    /// pushed tag's own comes with the push).
    async fn push_times(
        &self,
        push: &Push<'_>,
        current: &BTreeMap<String, StoredParameter>,
    ) -> Result<BTreeMap<String, Option<DateTime>>, AwsError> {
        let service = push.service;
        let mut pushed_at = BTreeMap::new();
        if service.order.needs_push_times() {
            for stored in current.values() {
                if stored.value != push.tag && !pushed_at.contains_key(&stored.value) {
                    let facts = self.images.image_by_tag(&service.repository, &stored.value).await?;
                    pushed_at.insert(stored.value.clone(), facts.and_then(|f| f.pushed_at));
                }
            }
        }
        Ok(pushed_at)
    }
}

fn target<'a>(
    environment: &'a str,
    parameter: String,
    current: &mut BTreeMap<String, StoredParameter>,
    pushed_at: &BTreeMap<String, Option<DateTime>>,
) -> Target<'a> {
    let value = current.remove(&parameter).map(|stored| stored.value);
    let current_pushed_at = value.as_ref().and_then(|v| pushed_at.get(v).copied().flatten());
    Target { environment, parameter, current: value, current_pushed_at }
}

/// An event not acted on: one INFO line saying why, and the reason in the response.
fn skip_event(mut summary: Summary, service: Option<&str>, reason: SkipReason) -> Summary {
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

/// The one way a parameter is written, by the function and by the operator command alike.
pub(super) fn write_for(
    push: &Push<'_>,
    target: &Target<'_>,
    create: bool,
    to: &str,
    description: String,
) -> ParameterWrite {
    let service = &push.service.name;
    let create_with_tags = create.then(|| {
        vec![
            ("service".to_owned(), service.clone()),
            ("environment".to_owned(), target.environment.to_owned()),
            ("managed-by".to_owned(), "tagrelay".to_owned()),
        ]
    });
    ParameterWrite { name: target.parameter.clone(), value: to.to_owned(), description, create_with_tags }
}

pub(super) fn log_decision(push: &Push<'_>, target: &Target<'_>, outcome: &Outcome) {
    let (decision, reason) = match outcome {
        Outcome::Write { reason, .. } => ("write", reason.as_str()),
        Outcome::Planned { reason, .. } => ("would_write", reason.as_str()),
        Outcome::Skip { reason } => ("skip", reason.as_str()),
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
