//! The operator's promotion commands: `tagrelay approve` (the approval record for the release
//! waiting) and `tagrelay rollback` (back to the previous release, recorded first so promotion
//! does not undo it). Both decide from the same reads as the function.

use aws_smithy_types::DateTime;
use thiserror::Error;

use super::decision::Promotion;
use super::outcome::EnvironmentError;
use super::promoter::Promoter;
use super::records::{Approval, RecordError, RollbackRecord, APPROVAL_DESCRIPTION};
use super::rollback::manual_rollback;
use crate::config::Environment;
use crate::deploy::release::releases;
use crate::ports::{Alarms, AwsError, ImageRegistry, ParameterHistory, ParameterStore, RecordStore};
use crate::record::outcome::EnvironmentOutcome;
use crate::record::Change;
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

/// What `rollback` did or, in a dry run, would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    pub release: i64,
    pub record: RollbackRecord,
    /// The rollback record's version; `None` in a dry run.
    pub version: Option<i64>,
    pub writes: Vec<EnvironmentOutcome>,
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
        let document = approval.document()?;
        let (parameters, _, _) = self.ports();
        let version = parameters.put_record(&environment.approval_parameter(), &document, APPROVAL_DESCRIPTION).await?;
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
        let own = releases(&parameters.parameter_history(&environment.release_parameter()).await?);
        let Some((release, record)) = manual_rollback(&view.current, &own, &view.rollbacks, by, reason, now) else {
            return Err(OperatorError::NoPreviousRelease { environment: environment.name.clone() });
        };
        if dry_run {
            return Ok(RolledBack { release, record, version: None, writes: Vec::new() });
        }
        let version = self.record_rollback(environment, &record).await?;
        let rollback_reason = format!("by {by}: {reason}");
        let writes = self.write_tags(environment, &record.to, Change::Rollback { reason: &rollback_reason }).await?;
        Ok(RolledBack { release, record, version: Some(version), writes })
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
        Promotion::Promote { release, .. } => format!("release {release} is being promoted"),
    }
}
