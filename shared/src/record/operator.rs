//! Writes other than a push's (`tagrelay promote`, `tagrelay pin`, and the promote function's
//! promotions and rollbacks): the same checks, decision, write and log line as a push, so
//! nothing can do by hand or by promotion what the pipeline would refuse — except a pin or a
//! rollback, which skip only the order policy, on purpose and with a recorded reason.

use super::decision::{confirm_image, decide, decide_pin, Decision, ImageState, Push, SkipReason, Target};
use super::handler::log_decision;
use super::outcome::{EnvironmentOutcome, Outcome, RecordError};
use super::recorder::Recorder;
use crate::config::Service;
use crate::ports::{ImageRegistry, ParameterHistory, ParameterStore};

/// SSM keeps at most 1024 characters of description; the rest of it is tagrelay's own words.
pub const MAX_REASON_CHARS: usize = 800;

/// What the operator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// Copy the tag another environment runs; the order policy must allow it.
    Promote { from: &'a str },
    /// Set this tag whatever the order policy says (a rollback); the reason is recorded.
    Pin { reason: &'a str },
    /// The promote function moves a release verified in `from` (its release record `release`,
    /// verified at `verified_at`) on; the order policy must allow it.
    Release { from: &'a str, release: i64, verified_at: &'a str },
    /// Back to an earlier release (the promote function on an alarm, or `tagrelay rollback`):
    /// pin semantics; `reason` says why ("alarm A in ALARM at T").
    Rollback { reason: &'a str },
}

/// One environment's tag, set by an operator.
#[derive(Debug, Clone, Copy)]
pub struct TagChange<'a> {
    pub service: &'a Service,
    pub environment: &'a str,
    pub tag: &'a str,
    pub change: Change<'a>,
    /// Decide and report, write nothing.
    pub dry_run: bool,
}

impl<P: ParameterStore + ParameterHistory + Sync, R: ImageRegistry + Sync> Recorder<P, R> {
    /// Applies an operator's change to one environment. A refusal (the image is gone, the tag
    /// does not fit the pattern, the order policy says no) is an `Outcome::Skip` with its reason.
    pub async fn change_tag(&self, request: TagChange<'_>) -> Result<EnvironmentOutcome, RecordError> {
        let service = request.service;
        let parameter = self.config.parameter_name(&service.name, request.environment);
        let refused = |reason| EnvironmentOutcome {
            environment: request.environment.to_owned(),
            parameter: parameter.clone(),
            previous: None,
            outcome: Outcome::Skip { reason },
        };
        if !service.tag_pattern.is_match(request.tag) {
            return Ok(refused(SkipReason::TagPatternMismatch));
        }
        let image = match self.images.image_by_tag(&service.repository, request.tag).await? {
            Some(facts) => ImageState::Present { digest: facts.digest, pushed_at: facts.pushed_at },
            None => ImageState::Gone,
        };
        let digest = match &image {
            ImageState::Present { digest, .. } => Some(digest.clone()),
            ImageState::Gone => None,
        };
        let push = Push { service, tag: request.tag, digest: digest.as_deref() };
        let pushed_at = match confirm_image(&push, &image) {
            Ok(pushed_at) => pushed_at,
            Err(reason) => return Ok(refused(reason)),
        };

        let order_matters = matches!(request.change, Change::Promote { .. } | Change::Release { .. });
        let target = &self.read_target(&push, request.environment, order_matters).await?;
        let decision = match request.change {
            Change::Promote { .. } | Change::Release { .. } => decide(&push, pushed_at, target),
            Change::Pin { .. } | Change::Rollback { .. } => decide_pin(request.tag, target),
        };
        let outcome = match decision {
            Decision::Write { to, reason, .. } if request.dry_run => {
                let planned = Outcome::Planned { to, reason };
                log_decision(&push, target, &planned);
                planned
            }
            decision => {
                let description = description(&push, target, request.change);
                let mut failed = Vec::new();
                let outcome = self.apply(&push, pushed_at, target, decision, description, &mut failed).await;
                if !failed.is_empty() {
                    return Err(RecordError::Writes { attempted: 1, failed });
                }
                outcome
            }
        };
        Ok(EnvironmentOutcome {
            environment: target.environment.to_owned(),
            parameter: target.parameter.clone(),
            previous: target.current.clone(),
            outcome,
        })
    }
}

/// The parameter's description says who set the tag and why: `tagrelay history` shows it.
fn description(push: &Push<'_>, target: &Target<'_>, change: Change<'_>) -> String {
    let (service, environment) = (&push.service.name, target.environment);
    let digest = push.digest.unwrap_or("unknown digest");
    match change {
        Change::Promote { from } => {
            format!("Image tag of {service} in {environment}, promoted from {from} with tagrelay ({digest})")
        }
        Change::Pin { reason } => {
            let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
            format!("Pinned with tagrelay ({digest}): {reason}")
        }
        Change::Release { from, release, verified_at } => {
            format!("Image tag of {service} in {environment}, promoted from {from} (release {release}, verified {verified_at}) by tagrelay ({digest})")
        }
        Change::Rollback { reason } => {
            let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
            format!("rollback: {reason} ({digest})")
        }
    }
}
