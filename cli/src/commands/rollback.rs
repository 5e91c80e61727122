//! `tagrelay rollback`: sets an environment back to its previous good release (the newest
//! release record whose tags differ from what it runs and that it was never rolled back from),
//! through the core's `Promoter::rollback`: the rollback record first, then the tags with pin
//! semantics, so promotion does not undo it. `--dry-run` shows the record path's decision for
//! each tag and writes nothing.

use std::collections::BTreeMap;

use aws_smithy_types::DateTime;
use clap::Args;
use serde::Serialize;
use tagrelay::config::Environment;
use tagrelay::ports::{Alarms, ImageRegistry, ParameterHistory, ParameterStore, RecordStore};
use tagrelay::promote::Promoter;
use tagrelay::record::{EnvironmentOutcome, Outcome, SkipReason};

use crate::commands::change::check_reason;
use crate::context::{caller, Context};
use crate::error::CliError;
use crate::report::Render;
use crate::table::{or_nothing, Table};

/// Set an environment back to its previous good release: the rollback record first, then the
/// tags (the order policy is not asked), so promotion does not bring the release back.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[arg(long = "env", value_name = "ENVIRONMENT")]
    pub environment: String,
    /// Why: recorded in the rollback record and in each parameter's description.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Who rolls back, for the rollback record; default: the USER variable. (SSM also records
    /// the IAM identity that wrote each parameter version, shown by `tagrelay history`.)
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// Show what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl RollbackArgs {
    pub async fn run(&self, context: &Context) -> Result<RollbackReport, CliError> {
        let environment = context.environment("--env", &self.environment)?;
        check_reason(&self.reason, UNSAID)?;
        let by = caller(self.by.as_deref())?;
        let request = RollbackRequest {
            environment,
            by: &by,
            reason: &self.reason,
            dry_run: self.dry_run,
            now: crate::time::now(),
        };
        rollback(&context.promoter(), request).await
    }
}

const UNSAID: &str = "must say why the environment is rolled back; it is recorded in the rollback record";

pub struct RollbackRequest<'a> {
    pub environment: &'a Environment,
    pub by: &'a str,
    pub reason: &'a str,
    pub dry_run: bool,
    pub now: DateTime,
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub environment: String,
    pub dry_run: bool,
    /// The target: its version in the environment's release record
    /// (`/tagrelay/{environment}/verified`).
    pub release: i64,
    /// service → tag it runs now (only the services that change).
    pub from: BTreeMap<String, String>,
    /// service → tag of the target release.
    pub to: BTreeMap<String, String>,
    pub by: String,
    pub at: String,
    pub reason: String,
    /// The rollback record's parameter, and the version written (`null` in a dry run).
    pub parameter: String,
    pub version: Option<i64>,
    /// Per service: the write, or in a dry run what the record path would do.
    pub writes: Vec<ServiceWrite>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceWrite {
    pub service: String,
    #[serde(flatten)]
    pub write: EnvironmentOutcome,
}

pub async fn rollback<P, R, A>(
    promoter: &Promoter<P, R, A>,
    request: RollbackRequest<'_>,
) -> Result<RollbackReport, CliError>
where
    P: ParameterStore + ParameterHistory + RecordStore + Sync,
    R: ImageRegistry + Sync,
    A: Alarms + Sync,
{
    let reason = check_reason(request.reason, UNSAID)?;
    let environment = request.environment;
    let done = promoter.rollback(environment, request.by, reason, request.dry_run, request.now).await?;
    let config = promoter.config();
    let writes = done
        .writes
        .into_iter()
        .map(|write| {
            let service = config
                .services()
                .find(|s| config.parameter_name(&s.name, &environment.name) == write.parameter)
                .map_or_else(|| write.parameter.clone(), |s| s.name.clone());
            ServiceWrite { service, write }
        })
        .collect();
    Ok(RollbackReport {
        environment: environment.name.clone(),
        dry_run: request.dry_run,
        release: done.release,
        from: done.record.from,
        to: done.record.to,
        by: done.record.by,
        at: done.record.at,
        reason: done.record.reason,
        parameter: environment.rollback_parameter(),
        version: done.version,
        writes,
    })
}

impl Render for RollbackReport {
    /// A tag the record path refused (the image gone from ECR, the pattern) is a problem.
    fn problems(&self) -> Vec<String> {
        self.writes
            .iter()
            .filter_map(|ServiceWrite { service, write }| match &write.outcome {
                Outcome::Skip { reason } if *reason != SkipReason::Unchanged => Some(format!(
                    "rollback of {service} to {} in {} refused: {}",
                    self.to.get(service).map_or("?", String::as_str),
                    self.environment,
                    reason.as_str()
                )),
                Outcome::Failed { .. } => Some(format!("rollback of {service} in {} failed", self.environment)),
                _ => None,
            })
            .collect()
    }

    fn render(&self) -> String {
        let mut table = Table::new(&["SERVICE", "FROM", "TO", "DECISION", "VERSION"]);
        for (service, to) in &self.to {
            let write = self.writes.iter().find(|w| &w.service == service);
            let (decision, version) = match write.map(|w| &w.write.outcome) {
                Some(Outcome::Write { version, .. }) => ("write".to_owned(), Some(*version)),
                Some(Outcome::Planned { .. }) => ("would_write".to_owned(), None),
                Some(Outcome::Skip { reason }) => (format!("skip ({})", reason.as_str()), None),
                Some(Outcome::Failed { .. }) => ("error".to_owned(), None),
                None => ("-".to_owned(), None),
            };
            table.row([service.clone(), or_nothing(self.from.get(service)), to.clone(), decision, or_nothing(version)]);
        }
        let record = match self.version {
            Some(version) => format!("recorded first: {} version {version}", self.parameter),
            None => format!("dry run: nothing written (the record would go to {})", self.parameter),
        };
        format!(
            "{}: rollback to release {} by {}: {}\n{}{record}\n",
            self.environment,
            self.release,
            self.by,
            self.reason,
            table.render()
        )
    }
}
