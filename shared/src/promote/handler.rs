//! The promote handler: event → the environments it concerns → `observe` (reads + the two pure
//! decisions) → act: a rollback (record first, then the tags) or a promotion (the tags, through
//! the push's record path) → one log line per decision.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_smithy_types::DateTime;
use tracing::{error, info, warn};

use super::decision::Promotion;
use super::observe::View;
use super::outcome::{EnvironmentError, EnvironmentReport, PromoteError, Summary};
use super::promoter::Promoter;
use super::records::{RollbackRecord, ROLLBACK_DESCRIPTION};
use super::rollback::RollbackDecision;
use super::trigger::environments;
use crate::config::Environment;
use crate::event::promote::{parse_promote_event, PromoteEvent};
use crate::handler::{log_failure, Handler};
use crate::ports::{Alarms, ImageRegistry, ParameterHistory, ParameterStore, RecordStore};
use crate::record::outcome::{EnvironmentOutcome, Outcome, RecordError};
use crate::record::SkipReason;
use crate::record::{Change, TagChange};

impl<P, R, A> Handler for Promoter<P, R, A>
where
    P: ParameterStore + ParameterHistory + RecordStore + Sync,
    R: ImageRegistry + Sync,
    A: Alarms + Sync,
{
    type Response = Summary;
    type Error = PromoteError;

    async fn handle(&self, event: &serde_json::Value) -> Result<Summary, PromoteError> {
        self.promote(event).await.inspect_err(log_failure)
    }
}

impl<P, R, A> Promoter<P, R, A>
where
    P: ParameterStore + ParameterHistory + RecordStore + Sync,
    R: ImageRegistry + Sync,
    A: Alarms + Sync,
{
    async fn promote(&self, event: &serde_json::Value) -> Result<Summary, PromoteError> {
        let event = parse_promote_event(event)?;
        let trigger = describe(&event);
        let concerned = match environments(self.config(), &event) {
            Ok(list) => list,
            Err(reason) => {
                info!(trigger = %trigger, decision = "ignore", reason = reason.as_str(), "event not acted on");
                return Ok(Summary { trigger, ignored: Some(reason), environments: Vec::new() });
            }
        };
        let now = DateTime::from(SystemTime::now());
        let mut summary = Summary { trigger, ignored: None, environments: Vec::new() };
        let mut failed = Vec::new();
        for (index, environment) in concerned.iter().enumerate() {
            // One budget for the invocation: past it, a later environment waits for the next
            // look rather than reading and writing into the time-out.
            if index > 0 && crate::time_budget::running_out() {
                warn!(environment = %environment.name, decision = SkipReason::Deferred.as_str(), reason = "time_budget", "the invocation's time-out is near: the schedule's next look decides this environment");
                continue;
            }
            match self.decide_and_act(environment, now).await {
                Ok(report) => summary.environments.push(report),
                Err(err) => {
                    error!(environment = %environment.name, decision = "error", error = %err, "promotion or rollback failed");
                    failed.push(err);
                }
            }
        }
        if failed.is_empty() {
            Ok(summary)
        } else {
            Err(PromoteError::Environments { attempted: concerned.len(), failed })
        }
    }

    /// One environment: a rollback first (an environment being rolled back takes no promotion
    /// in the same look), then a promotion.
    pub async fn decide_and_act(
        &self,
        environment: &Environment,
        now: DateTime,
    ) -> Result<EnvironmentReport, EnvironmentError> {
        let name = environment.name.clone();
        let aws = |source| EnvironmentError::Aws { environment: name.clone(), source };
        let View { rollback, promotion, .. } = self.observe(environment, now).await.map_err(aws)?;
        let mut report = EnvironmentReport {
            environment: name.clone(),
            upstream: environment.promote_from.clone(),
            rollback: None,
            rollback_record: None,
            promotion: None,
            writes: Vec::new(),
        };

        if let Some(decision) = rollback {
            log_rollback(environment, &decision);
            match &decision {
                RollbackDecision::Rollback { record, .. } => {
                    report.rollback_record = Some(self.record_rollback(environment, record).await?);
                    report.writes = self.write_rollback(environment, record).await?;
                    stuck_rollback(environment, &report.writes);
                }
                RollbackDecision::Resume { record, .. } => {
                    report.writes = self.write_rollback(environment, record).await?;
                    stuck_rollback(environment, &report.writes);
                }
                _ => {}
            }
            report.rollback = Some(decision);
        }
        if let Some(decision) = promotion {
            // Rolled back in this look: the next look decides promotion from the new state.
            let acted = report.rollback_record.is_some() || report.writes.iter().any(is_write);
            log_promotion(environment, &decision, acted);
            if let (Promotion::Promote { release, verified_at, tags, .. }, false) = (&decision, acted) {
                let from = environment.promote_from.as_deref().unwrap_or_default();
                let change = Change::Release { from, release: *release, verified_at };
                report.writes = self.write_tags(environment, tags, change).await?;
            }
            report.promotion = Some(decision);
        }
        Ok(report)
    }

    /// The rollback record, written before any parameter: a retry then completes the writes
    /// instead of choosing anew.
    pub async fn record_rollback(
        &self,
        environment: &Environment,
        record: &RollbackRecord,
    ) -> Result<i64, EnvironmentError> {
        let name = &environment.name;
        let (parameters, _, _) = self.ports();
        crate::document::write(parameters, &environment.rollback_parameter(), &record.document(), ROLLBACK_DESCRIPTION)
            .await
            .map_err(|err| match err {
                crate::document::DocumentError::Aws { source, .. } => {
                    EnvironmentError::Aws { environment: name.clone(), source }
                }
                source => EnvironmentError::Record { environment: name.clone(), source },
            })
    }

    async fn write_rollback(
        &self,
        environment: &Environment,
        record: &RollbackRecord,
    ) -> Result<Vec<EnvironmentOutcome>, EnvironmentError> {
        self.write_tags(environment, &record.to, Change::Rollback { reason: &record.reason }).await
    }

    /// Each tag through the record path (pattern, ECR image still there, order policy unless a
    /// rollback, race repair, one log line each). Every service is tried; failures are joined.
    pub async fn write_tags(
        &self,
        environment: &Environment,
        tags: &BTreeMap<String, String>,
        change: Change<'_>,
    ) -> Result<Vec<EnvironmentOutcome>, EnvironmentError> {
        let mut written = Vec::with_capacity(tags.len());
        let mut failed = Vec::new();
        let mut deferred = 0;
        for (service, tag) in tags {
            let Some(service) = self.config().service(service) else { continue };
            // At least one write a look, so a look that spent its time reading still moves on.
            let tried = written.len() + failed.len() > 0;
            if deferred > 0 || (tried && crate::time_budget::running_out()) {
                deferred += 1;
                written.push(EnvironmentOutcome {
                    environment: environment.name.clone(),
                    parameter: self.config().parameter_name(&service.name, &environment.name),
                    previous: None,
                    outcome: Outcome::Skip { reason: SkipReason::Deferred },
                });
                continue;
            }
            let request = TagChange { service, environment: &environment.name, tag, change, dry_run: false };
            match self.recorder.change_tag(request).await {
                Ok(outcome) => written.push(outcome),
                Err(RecordError::Writes { failed: some, .. }) => failed.extend(some),
                Err(err) => return Err(EnvironmentError::Write { environment: environment.name.clone(), source: err }),
            }
        }
        if deferred > 0 {
            let done = written.len() - deferred;
            warn!(environment = %environment.name, decision = SkipReason::Deferred.as_str(), reason = "time_budget", written = done, deferred, "the invocation's time-out is near: the schedule's next look writes the rest");
        }
        if failed.is_empty() {
            Ok(written)
        } else {
            let source = RecordError::Writes { attempted: tags.len(), failed };
            Err(EnvironmentError::Write { environment: environment.name.clone(), source })
        }
    }
}

fn is_write(outcome: &EnvironmentOutcome) -> bool {
    matches!(outcome.outcome, Outcome::Write { .. })
}

/// A rollback tag the record path refused (its image vanished since the check, the parameter
/// was retyped): the environment still runs the suspect, and a person must know.
fn stuck_rollback(environment: &Environment, writes: &[EnvironmentOutcome]) {
    let refused =
        |w: &&EnvironmentOutcome| matches!(w.outcome, Outcome::Skip { reason } if reason != SkipReason::Deferred);
    for refused in writes.iter().filter(refused) {
        let Outcome::Skip { reason } = &refused.outcome else { continue };
        if *reason != SkipReason::Unchanged {
            error!(environment = %environment.name, parameter = %refused.parameter, decision = "rollback_stuck", reason = reason.as_str(), "a rollback tag was not written: the environment still runs the release under suspicion");
        }
    }
}

fn describe(event: &PromoteEvent) -> String {
    match event {
        PromoteEvent::ParameterChange(change) => format!("parameter {} {:?}", change.name, change.operation),
        PromoteEvent::AlarmStateChange(change) => format!("alarm {}", change.alarm_name),
        PromoteEvent::Scheduled => "schedule".to_owned(),
    }
}

fn log_promotion(environment: &Environment, decision: &Promotion, deferred: bool) {
    let (environment, upstream) = (environment.name.as_str(), environment.promote_from.as_deref().unwrap_or_default());
    let name = decision.as_str();
    let release = decision.release().unwrap_or_default();
    match decision {
        Promotion::Promote { .. } if deferred => {
            info!(
                environment,
                upstream,
                decision = name,
                release,
                reason = "rolled_back_now",
                "promotion deferred: the environment was rolled back in this look"
            )
        }
        Promotion::Promote { fingerprint, verified_at, tags, .. } => {
            let services = tags.keys().cloned().collect::<Vec<_>>().join(",");
            info!(environment, upstream, decision = name, release, fingerprint = %fingerprint, verified_at = %verified_at, services = %services, "promoting the upstream release")
        }
        Promotion::AwaitingApproval { fingerprint, .. } => {
            warn!(environment, upstream, decision = name, release, fingerprint = %fingerprint, "release waits for approval: tagrelay approve --env {environment}")
        }
        Promotion::Soaking { until, .. } => {
            info!(environment, upstream, decision = name, release, until = %until, "release soaking")
        }
        Promotion::Blocked { alarm, missing, .. } => {
            let reason = if *missing { "alarm_missing" } else { "alarm_in_alarm" };
            warn!(environment, upstream, decision = name, release, alarm = %alarm, reason, "promotion blocked by a gate alarm")
        }
        Promotion::RolledBack { service, tag, .. } => {
            info!(environment, upstream, decision = name, release, service = %service, tag = %tag, "release holds a tag this environment was rolled back from")
        }
        Promotion::BlockedUpstream { .. } => {
            info!(
                environment,
                upstream,
                decision = name,
                release,
                "the upstream environment rolled back from this release"
            )
        }
        Promotion::UpToDate { .. } => info!(environment, upstream, decision = name, release, "nothing to promote"),
        Promotion::UnreadableRecord { parameter, version } => {
            error!(environment, upstream, decision = name, parameter = %parameter, version, "promotion held: a version of the rollback history is no rollback record (hand-edited or retyped); repair or delete it")
        }
    }
}

fn log_rollback(environment: &Environment, decision: &RollbackDecision) {
    let environment = environment.name.as_str();
    let name = decision.as_str();
    match decision {
        RollbackDecision::Rollback { release, record } => {
            let alarm = record.alarm.as_deref().unwrap_or_default();
            warn!(environment, decision = name, release, alarm, reason = %record.reason, from = ?record.from, to = ?record.to, "rolling back to the previous release")
        }
        RollbackDecision::Resume { rollback, record } => {
            info!(environment, decision = name, rollback, to = ?record.to, "completing a rollback whose writes were interrupted")
        }
        RollbackDecision::Exhausted { alarm, entered_at, rollback } => {
            error!(environment, decision = name, alarm = %alarm, entered_at = %entered_at, rollback, "rollback alarm fired again on the release rolled back to: no second automatic rollback, a person must act")
        }
        RollbackDecision::NoPreviousRelease { alarm, entered_at } => {
            error!(environment, decision = name, alarm = %alarm, entered_at = %entered_at, "rollback alarm fired but there is no earlier release to go back to: a person must act")
        }
        RollbackDecision::Done { alarm, rollback } => {
            info!(environment, decision = name, alarm = %alarm, rollback, "already rolled back for this alarm episode")
        }
        RollbackDecision::OutsideWindow { alarm, entered_at } => {
            info!(environment, decision = name, alarm = %alarm, entered_at = %entered_at, "alarm entered ALARM outside the release's rollback window")
        }
        RollbackDecision::Healthy { missing } if !missing.is_empty() => {
            warn!(environment, decision = name, reason = "alarm_missing", alarm = %missing.join(","), "rollback alarm not found in CloudWatch")
        }
        RollbackDecision::Healthy { .. } => info!(environment, decision = name, "no rollback alarm fired"),
    }
}
