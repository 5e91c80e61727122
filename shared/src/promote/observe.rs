//! Reads one environment's state through the ports and asks the two pure decisions: the
//! rollback decision (with `rollback_alarms`) and the promotion decision (with `promote_from`).
//! Reads only: the handler acts on the result, and `tagrelay status` shows it.

use crate::document::read_history;
use std::collections::{BTreeMap, BTreeSet};

use aws_smithy_types::DateTime;

use super::decision::{self, Promotion, PromotionFacts};
use super::promoter::Promoter;
use super::records::{stored, unreadable, Approval, RollbackRecord, Stored};
use super::rollback::{self, RollbackDecision, RollbackFacts};
use super::watched::WatchedAlarm;
use crate::config::Environment;
use crate::deploy::release::{releases, StoredRelease};
use crate::ports::{Alarms, AwsError, ImageRegistry, ParameterHistory, ParameterStore};

/// An environment as promote sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub environment: String,
    /// Its image-tag parameters now, by service (those that exist).
    pub current: BTreeMap<String, String>,
    /// When the newest of them was written.
    pub written_at: Option<DateTime>,
    /// Its rollbacks, newest first.
    pub rollbacks: Vec<Stored<RollbackRecord>>,
    /// With `rollback_alarms`: did one fire on what it runs now?
    pub rollback: Option<RollbackDecision>,
    /// With `promote_from`: may an upstream release move in now?
    pub promotion: Option<Promotion>,
}

impl<P, R, A> Promoter<P, R, A>
where
    P: ParameterStore + ParameterHistory + Sync,
    R: ImageRegistry + Sync,
    A: Alarms + Sync,
{
    /// Reads and decides for one environment, as every trigger does.
    pub async fn observe(&self, environment: &Environment, now: DateTime) -> Result<View, AwsError> {
        let config = self.config();
        let (parameters, _, _) = self.ports();
        let names: BTreeMap<String, String> =
            config.services().map(|s| (config.parameter_name(&s.name, &environment.name), s.name.clone())).collect();
        let wanted: Vec<String> = names.keys().cloned().collect();
        // The adapter asks SSM 10 names at a time.
        let tags = parameters.get_parameters(&wanted).await?;
        let written_at = tags.values().filter_map(|p| p.last_modified).max_by_key(DateTime::secs);
        let current: BTreeMap<String, String> = tags
            .into_iter()
            .filter_map(|(name, p)| names.get(&name).map(|service| (service.clone(), p.value)))
            .collect();
        let rollback_history = read_history(parameters, &environment.rollback_parameter()).await?;
        let rollbacks: Vec<Stored<RollbackRecord>> = stored(&rollback_history);
        let unreadable_rollback = unreadable::<RollbackRecord>(&rollback_history);

        let rollback = if environment.rollback_alarms.is_empty() {
            None
        } else {
            let own: Vec<StoredRelease> = releases(&read_history(parameters, &environment.release_parameter()).await?);
            let alarms = self.watch(&environment.rollback_alarms, written_at).await?;
            // The target's images must still be in ECR (a lifecycle policy may have expired
            // them): each one found gone is passed over and the target chosen again.
            let mut unavailable = BTreeSet::new();
            loop {
                let decision = rollback::decide(&RollbackFacts {
                    environment,
                    current: &current,
                    written_at,
                    releases: &own,
                    unavailable: &unavailable,
                    rollbacks: &rollbacks,
                    alarms: &alarms,
                    now,
                });
                let RollbackDecision::Rollback { record, .. } = &decision else { break Some(decision) };
                let gone = self.gone_images(&record.to).await?;
                if gone.is_empty() {
                    break Some(decision);
                }
                unavailable.extend(gone);
            }
        };

        let promotion = match environment.promote_from.as_deref().and_then(|name| config.environment(name)) {
            None => None,
            Some(upstream) => {
                let upstream_releases = releases(&read_history(parameters, &upstream.release_parameter()).await?);
                let upstream_rollbacks: Vec<Stored<RollbackRecord>> =
                    stored(&read_history(parameters, &upstream.rollback_parameter()).await?);
                let soak = i64::try_from(environment.soak.as_secs()).unwrap_or(i64::MAX / 2);
                let since = DateTime::from_secs(now.secs().saturating_sub(soak));
                // D's own rollback alarms gate promotion into it too: no new release goes into
                // an environment whose alarm is firing.
                let mut gate_names = environment.gate_alarms.clone();
                for alarm in &environment.rollback_alarms {
                    if !gate_names.contains(alarm) {
                        gate_names.push(alarm.clone());
                    }
                }
                let gates = self.watch(&gate_names, Some(since)).await?;
                let approvals: Vec<Stored<Approval>> = if environment.approval {
                    stored(&read_history(parameters, &environment.approval_parameter()).await?)
                } else {
                    Vec::new()
                };
                if let Some(version) = unreadable_rollback {
                    // Fail closed: without D's rollback history a rolled-back tag could come back.
                    let parameter = environment.rollback_parameter();
                    return Ok(View {
                        environment: environment.name.clone(),
                        current,
                        written_at,
                        rollbacks,
                        rollback,
                        promotion: Some(Promotion::UnreadableRecord { parameter, version }),
                    });
                }
                Some(decision::decide(&PromotionFacts {
                    config,
                    environment,
                    current: &current,
                    upstream: &upstream_releases,
                    upstream_rollbacks: &upstream_rollbacks,
                    rollbacks: &rollbacks,
                    gates: &gates,
                    approvals: &approvals,
                    now,
                }))
            }
        };
        Ok(View { environment: environment.name.clone(), current, written_at, rollbacks, rollback, promotion })
    }

    /// The (service, tag) pairs of `tags` whose image ECR no longer has.
    pub async fn gone_images(&self, tags: &BTreeMap<String, String>) -> Result<BTreeSet<(String, String)>, AwsError> {
        let (_, images, _) = self.ports();
        let mut gone = BTreeSet::new();
        for (service, tag) in tags {
            let Some(config) = self.config().service(service) else { continue };
            if images.image_by_tag(&config.repository, tag).await?.is_none() {
                gone.insert((service.clone(), tag.clone()));
            }
        }
        Ok(gone)
    }

    /// The alarms' states, and their history since `since` for those that changed state since
    /// then (only those can have a change that matters).
    async fn watch(&self, names: &[String], since: Option<DateTime>) -> Result<Vec<WatchedAlarm>, AwsError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let statuses = self.alarms.describe_alarms(names).await?;
        let mut watched = Vec::with_capacity(names.len());
        for name in names {
            let status = statuses.iter().find(|s| &s.name == name).cloned();
            let changed_since = |since: DateTime| {
                status.as_ref().is_some_and(|s| s.transitioned_at.is_none_or(|at| at.secs() >= since.secs()))
            };
            let changes = match since {
                Some(since) if changed_since(since) => self.alarms.state_changes(name, since).await?,
                _ => Vec::new(),
            };
            watched.push(WatchedAlarm { name: name.clone(), status, changes });
        }
        Ok(watched)
    }
}
