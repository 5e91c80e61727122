//! The operator's promotion commands: `tagrelay approve` (the approval record for the release
//! waiting), `tagrelay rollback` (back to the previous release, recorded first so promotion
//! does not undo it) and `tagrelay pin` (one tag set by hand, recorded the same way). They
//! decide from the same reads as the function.

use crate::document::read_history;
use std::collections::BTreeSet;

use aws_smithy_types::DateTime;
use thiserror::Error;

use super::decision::Promotion;
use super::outcome::EnvironmentError;
use super::promoter::Promoter;
use super::records::{Approval, RecordError, RollbackRecord, APPROVAL_DESCRIPTION};
use super::rollback::manual_rollback;
use crate::config::{Environment, Service};
use crate::deploy::release::releases;
use crate::ports::{Alarms, AwsError, ImageRegistry, ParameterHistory, ParameterStore, RecordStore};
use crate::record::outcome::{EnvironmentOutcome, Outcome};
use crate::record::{Change, TagChange};
use crate::timestamp;

#[derive(Debug, Error)]
pub enum OperatorError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Environment(#[from] EnvironmentError),
    /// `approve` when no release waits for approval; says what the environment is doing.
    #[error("nothing waits for approval in {environment}: {state}")]
    NothingWaits { environment: String, state: String },
    #[error("{environment} has no earlier release to roll back to (no release record whose tags differ from what it runs and that it was not rolled back from)")]
    NoPreviousRelease { environment: String },
}

/// What `approve` recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved {
    pub release: i64,
    pub approval: Approval,
    pub version: i64,
}

/// A person's change of one tag, as `pin` and `promote_by_hand` take it.
#[derive(Debug, Clone, Copy)]
pub struct ByHand<'a> {
    pub environment: &'a Environment,
    pub service: &'a Service,
    pub tag: &'a str,
    /// Who, for the rollback record.
    pub by: &'a str,
    /// Decide and report; write nothing (no record either).
    pub dry_run: bool,
    pub now: DateTime,
}

/// What `rollback` did or, in a dry run, would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    pub release: i64,
    pub record: RollbackRecord,
    /// The rollback record's version; `None` in a dry run.
    pub version: Option<i64>,
    /// The writes made or, in a dry run, the record path's decision for each (`Planned`, or a
    /// refusal such as an image gone from ECR).
    pub writes: Vec<EnvironmentOutcome>,
}

/// What `pin` did or, in a dry run, would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub outcome: EnvironmentOutcome,
    /// The rollback record written before the tag, with its version; `None` in a dry run and
    /// when the pin writes nothing (the tag is there already, or the record path refused it).
    pub record: Option<(RollbackRecord, i64)>,
}

impl<P, R, A> Promoter<P, R, A>
where
    P: ParameterStore + ParameterHistory + RecordStore + Sync,
    R: ImageRegistry + Sync,
    A: Alarms + Sync,
{
    /// Approves the release waiting to enter `environment` (refused when none waits).
    pub async fn approve(
        &self,
        environment: &Environment,
        by: &str,
        comment: &str,
        now: DateTime,
    ) -> Result<Approved, OperatorError> {
        let view = self.observe(environment, now).await?;
        let (release, fingerprint) = match view.promotion {
            Some(Promotion::AwaitingApproval { release, fingerprint }) => (release, fingerprint),
            other => {
                let state = other.map_or_else(|| "it is not promoted from anywhere".to_owned(), |p| describe(&p));
                return Err(OperatorError::NothingWaits { environment: environment.name.clone(), state });
            }
        };
        let approval =
            Approval { fingerprint, by: by.to_owned(), at: timestamp::format(now), comment: comment.to_owned() };
        let (parameters, _, _) = self.ports();
        let version = crate::document::write(
            parameters,
            &environment.approval_parameter(),
            &approval.document(),
            APPROVAL_DESCRIPTION,
        )
        .await
        .map_err(|err| match err {
            RecordError::Aws { source, .. } => OperatorError::Aws(source),
            other => OperatorError::Record(other),
        })?;
        Ok(Approved { release, approval, version })
    }

    /// Rolls `environment` back to its previous good release: the rollback record first, then
    /// the tags (pin semantics). A dry run decides and writes nothing.
    pub async fn rollback(
        &self,
        environment: &Environment,
        by: &str,
        reason: &str,
        dry_run: bool,
        now: DateTime,
    ) -> Result<RolledBack, OperatorError> {
        let view = self.observe(environment, now).await?;
        let (parameters, _, _) = self.ports();
        let own = releases(&read_history(parameters, &environment.release_parameter()).await?);
        let mut unavailable = BTreeSet::new();
        let (release, record) = loop {
            let Some((release, record)) =
                manual_rollback(&view.current, &own, &view.rollbacks, &unavailable, by, reason, now)
            else {
                return Err(OperatorError::NoPreviousRelease { environment: environment.name.clone() });
            };
            let gone = self.gone_images(&record.to).await?;
            if gone.is_empty() {
                break (release, record);
            }
            unavailable.extend(gone);
        };
        if dry_run {
            let writes = self.plan_tags(environment, &record.to).await?;
            return Ok(RolledBack { release, record, version: None, writes });
        }
        let version = self.record_rollback(environment, &record).await?;
        let rollback_reason = format!("by {by}: {reason}");
        let writes = self.write_tags(environment, &record.to, Change::Rollback { reason: &rollback_reason }).await?;
        Ok(RolledBack { release, record, version: Some(version), writes })
    }

    /// Sets `service`'s tag in `environment` by hand (pin semantics: the order policy is not
    /// asked). When it will write, the rollback record (`from` the tag there, `to` this one) is
    /// written first, so promotion then considers only upstream releases verified after it.
    /// Nothing is recorded in a dry run, or when the tag is there already or refused.
    pub async fn pin(&self, change: ByHand<'_>, reason: &str) -> Result<Pinned, OperatorError> {
        self.record_and_change(change, reason, Change::Pin { reason }).await
    }

    /// `tagrelay promote` by hand: the order policy applies as for a push; a write is recorded
    /// like a pin first, so promotion does not take the environment back to an older upstream
    /// release (under `pushed-at` or `none` it cannot tell from the tags which is newer).
    pub async fn promote_by_hand(&self, change: ByHand<'_>, from: &str) -> Result<Pinned, OperatorError> {
        let reason = format!("promoted by hand from {from}");
        self.record_and_change(change, &reason, Change::Promote { from }).await
    }

    /// A person's change of one tag: decided as a dry run first; only a write is recorded (the
    /// rollback record, before the tag), then made.
    async fn record_and_change(
        &self,
        request: ByHand<'_>,
        reason: &str,
        change: Change<'_>,
    ) -> Result<Pinned, OperatorError> {
        let ByHand { environment, service, tag, by, dry_run, now } = request;
        let name = &environment.name;
        let write_error = |source| EnvironmentError::Write { environment: name.clone(), source };
        let change = |dry_run| TagChange { service, environment: name, tag, change, dry_run };
        let planned = self.recorder.change_tag(change(true)).await.map_err(write_error)?;
        if dry_run || !matches!(planned.outcome, Outcome::Planned { .. }) {
            return Ok(Pinned { outcome: planned, record: None });
        }
        let record = RollbackRecord {
            from: planned.previous.iter().map(|previous| (service.name.clone(), previous.clone())).collect(),
            to: [(service.name.clone(), tag.to_owned())].into(),
            alarm: None,
            at: timestamp::format(now),
            by: by.to_owned(),
            reason: reason.to_owned(),
        };
        let version = self.record_rollback(environment, &record).await?;
        let outcome = self.recorder.change_tag(change(false)).await.map_err(write_error)?;
        Ok(Pinned { outcome, record: Some((record, version)) })
    }

    /// What the record path would decide for each tag (a dry run: nothing is written).
    async fn plan_tags(
        &self,
        environment: &Environment,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<EnvironmentOutcome>, EnvironmentError> {
        let mut planned = Vec::with_capacity(tags.len());
        for (service, tag) in tags {
            let Some(service) = self.config().service(service) else { continue };
            let change = Change::Rollback { reason: "dry run" };
            let request = TagChange { service, environment: &environment.name, tag, change, dry_run: true };
            let outcome = self
                .recorder
                .change_tag(request)
                .await
                .map_err(|source| EnvironmentError::Write { environment: environment.name.clone(), source })?;
            planned.push(outcome);
        }
        Ok(planned)
    }
}

/// A promotion state in words, for the refusal of `approve`.
pub fn describe(promotion: &Promotion) -> String {
    match promotion {
        Promotion::UpToDate { .. } => "up to date".to_owned(),
        Promotion::RolledBack { release, service, tag } => {
            format!("release {release} holds {service}:{tag}, rolled back from here")
        }
        Promotion::BlockedUpstream { release } => format!("release {release} was rolled back upstream"),
        Promotion::Blocked { release, alarm, missing: true } => {
            format!("release {release} blocked: alarm {alarm} does not exist")
        }
        Promotion::Blocked { release, alarm, .. } => format!("release {release} blocked by alarm {alarm}"),
        Promotion::Soaking { release, until } => format!("release {release} soaking until {until}"),
        Promotion::AwaitingApproval { release, .. } => format!("release {release} awaiting approval"),
        Promotion::UnreadableRecord { parameter, version } => {
            format!("promotion held: {parameter} version {version} is no rollback record")
        }
        Promotion::Promote { release, .. } => format!("release {release} is being promoted"),
    }
}
