//! The one write path: PutParameter, then the race check of `race.rs` — read the versions written
//! between our read and our write, and put back a newer value we overwrote without seeing it.
//! Every writer goes through it: a push, the record sweep, `tagrelay promote` and `pin`.

use std::collections::BTreeMap;

use aws_smithy_types::DateTime;
use tracing::{info, warn};

use super::decision::{Push, Target};
use super::outcome::{RaceReport, Restored};
use super::race::{after_write, raced, BlindWrite, RaceVerdict};
use super::recorder::Recorder;
use crate::order::TagFacts;
use crate::ports::{AwsError, ImageRegistry, ParameterHistory, ParameterStore, ParameterWrite};

/// A restore may itself race a writer; past this many rounds the next event or sweep finishes.
const MAX_RESTORES: usize = 3;

pub(super) struct Written {
    pub version: i64,
    pub race: Option<RaceReport>,
}

impl<P: ParameterStore + ParameterHistory + Sync, R: ImageRegistry + Sync> Recorder<P, R> {
    /// Writes `to` over what `target` read (`pushed_at` is `to`'s push time, for `pushed-at`),
    /// then repairs a lost race. `deliberate` (a pin) keeps its value whatever it overwrote, and
    /// says so.
    pub(super) async fn write_checked(
        &self,
        push: &Push<'_>,
        pushed_at: Option<DateTime>,
        target: &Target<'_>,
        to: &str,
        description: String,
        deliberate: bool,
    ) -> Result<Written, AwsError> {
        let write = write_for(push, target, target.current.is_none(), to, description);
        let version = self.put_or_overwrite(write).await?;
        let mut race: Option<RaceReport> = None;
        let (mut base, mut ours, mut ours_at, mut latest) = (target.version, to.to_owned(), pushed_at, version);
        let mut push_times = BTreeMap::new();
        for _ in 0..MAX_RESTORES {
            if !raced(base, latest) {
                break;
            }
            let history = self.parameters.parameter_history(&target.parameter).await?;
            let window: Vec<_> = history.into_iter().filter(|v| v.version > base && v.version < latest).collect();
            let report = race.get_or_insert_with(|| RaceReport { overwritten: Vec::new(), restored: None });
            report.overwritten.extend(window.iter().map(|v| format!("{}={}", v.version, v.value)));
            let policy = push.service.order;
            if policy.needs_push_times() && !deliberate {
                for v in &window {
                    self.push_time(push.service, &v.value, &mut push_times).await?;
                }
            }
            let blind: Vec<BlindWrite<'_>> = window
                .iter()
                .map(|v| BlindWrite {
                    version: v.version,
                    facts: TagFacts { tag: &v.value, pushed_at: push_times.get(&v.value).copied().flatten() },
                })
                .collect();
            let (value, overwritten_version) =
                match after_write(policy, deliberate, TagFacts { tag: &ours, pushed_at: ours_at }, &blind) {
                    RaceVerdict::Keep => break,
                    RaceVerdict::Restore { value, overwritten_version } => (value, overwritten_version),
                };
            let description = format!(
                "Image tag of {} in {}, restored by tagrelay: version {overwritten_version} ({value}) was overwritten by a concurrent write of {ours} (version {latest})",
                push.service.name, target.environment
            );
            let restore = ParameterWrite {
                name: target.parameter.clone(),
                value: value.clone(),
                description,
                create_with_tags: None,
            };
            let restored_version = self.parameters.put_parameter(&restore).await?;
            info!(
                service = %push.service.name,
                environment = target.environment,
                parameter = %target.parameter,
                tag = %value,
                previous = %ours,
                decision = "write",
                reason = "restored",
                overwritten_version,
                version = restored_version,
                "a concurrent write had overwritten a newer tag without seeing it; the newer tag is written back"
            );
            report.restored = Some(Restored { value: value.clone(), version: restored_version });
            ours_at = push_times.get(&value).copied().flatten();
            (base, ours, latest) = (latest, value, restored_version);
        }
        if deliberate {
            if let Some(report) = &race {
                warn!(
                    service = %push.service.name,
                    environment = target.environment,
                    parameter = %target.parameter,
                    tag = to,
                    decision = "write",
                    reason = "pinned_over_concurrent_write",
                    overwritten = %report.overwritten.join(","),
                    "the pin overwrote a write it had not seen; the pin stands"
                );
            }
        }
        Ok(Written { version, race })
    }

    /// Creates or overwrites. A create that finds the parameter already there lost a race with
    /// another creator: it overwrites, and the race check judges what the other one wrote.
    async fn put_or_overwrite(&self, write: ParameterWrite) -> Result<i64, AwsError> {
        match self.parameters.put_parameter(&write).await {
            Err(err) if write.create_with_tags.is_some() && err.code.as_deref() == Some("ParameterAlreadyExists") => {
                self.parameters.put_parameter(&ParameterWrite { create_with_tags: None, ..write }).await
            }
            result => result,
        }
    }
}

/// The one way a parameter is written, by the function and by the operator command alike.
fn write_for(push: &Push<'_>, target: &Target<'_>, create: bool, to: &str, description: String) -> ParameterWrite {
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
