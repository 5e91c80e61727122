//! `tagrelay promote` and `tagrelay pin`: one environment's tag, set through the same decision
//! and write as a push (`tagrelay::record::operator`). A promotion or pin that writes is recorded
//! first in the environment's rollback record (`tagrelay::promote::operator`), so automatic
//! promotion does not undo a person's change.

use aws_smithy_types::DateTime;
use clap::Args;
use serde::Serialize;
use tagrelay::config::{Environment, Service};
use tagrelay::ports::{Alarms, ImageRegistry, ParameterHistory, ParameterStore, RecordStore};
use tagrelay::promote::operator::ByHand;
use tagrelay::promote::Promoter;
use tagrelay::record::operator::MAX_REASON_CHARS;
use tagrelay::record::{EnvironmentOutcome, Outcome, SkipReason};

use crate::context::{caller, Context};
use crate::error::CliError;
use crate::report::Render;
use crate::table::{or_nothing, Table};

/// Copy a service's tag from one environment to another, if the image exists and the
/// order policy allows it; recorded so that automatic promotion does not undo it.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    pub service: String,
    /// The environment whose tag is copied.
    #[arg(long, value_name = "ENVIRONMENT")]
    pub from: String,
    /// The environment that gets it.
    #[arg(long, value_name = "ENVIRONMENT")]
    pub to: String,
    /// Who promotes, for the record; default: the USER variable.
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// Show what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl PromoteArgs {
    pub async fn run(&self, context: &Context) -> Result<ChangeReport, CliError> {
        let service = context.service(&self.service)?;
        let from = context.environment("--from", &self.from)?;
        let to = context.environment("--to", &self.to)?;
        if from.name == to.name {
            return Err(CliError::usage("--to", "must name another environment than --from"));
        }
        let by = caller(self.by.as_deref())?;
        let now = crate::time::now();
        let request = PromoteRequest { service, from: &from.name, to, by: &by, dry_run: self.dry_run, now };
        promote(&context.promoter(), request).await
    }
}

/// Set an older tag on purpose (a rollback), with a reason recorded in the parameter and in the
/// environment's rollback record (so promotion does not undo it).
#[derive(Debug, Args)]
pub struct PinArgs {
    pub service: String,
    #[arg(long = "env", value_name = "ENVIRONMENT")]
    pub environment: String,
    #[arg(long, value_name = "TAG")]
    pub tag: String,
    /// Why: recorded in the parameter's description (shown by `tagrelay history`) and in the
    /// rollback record.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Who pins, for the rollback record; default: the USER variable. (SSM also records the
    /// IAM identity that wrote the parameter, shown by `tagrelay history`.)
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// Show what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl PinArgs {
    pub async fn run(&self, context: &Context) -> Result<ChangeReport, CliError> {
        let service = context.service(&self.service)?;
        let environment = context.environment("--env", &self.environment)?;
        check_reason(&self.reason, PIN_UNSAID)?;
        let by = caller(self.by.as_deref())?;
        let request = PinRequest {
            service,
            environment,
            tag: &self.tag,
            reason: &self.reason,
            by: &by,
            dry_run: self.dry_run,
            now: crate::time::now(),
        };
        pin(&context.promoter(), request).await
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ChangeReport {
    pub command: &'static str,
    pub service: String,
    /// For a promotion: the environment the tag was copied from.
    pub from: Option<String>,
    pub tag: String,
    pub dry_run: bool,
    #[serde(flatten)]
    pub decision: EnvironmentOutcome,
    /// A pin that wrote: the rollback record written before the tag. Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_record: Option<RecordedRollback>,
}

/// A rollback record as written: its parameter and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedRollback {
    pub parameter: String,
    pub version: i64,
}

pub struct PromoteRequest<'a> {
    pub service: &'a Service,
    pub from: &'a str,
    pub to: &'a Environment,
    /// Who promotes, for the record.
    pub by: &'a str,
    pub dry_run: bool,
    pub now: DateTime,
}

pub async fn promote<P, R, A>(
    promoter: &Promoter<P, R, A>,
    request: PromoteRequest<'_>,
) -> Result<ChangeReport, CliError>
where
    P: ParameterStore + ParameterHistory + RecordStore + Sync,
    R: ImageRegistry + Sync,
    A: Alarms + Sync,
{
    let service = request.service;
    let (parameters, _, _) = promoter.ports();
    let source = promoter.config().parameter_name(&service.name, request.from);
    let found = parameters.get_parameters(std::slice::from_ref(&source)).await?;
    let Some(tag) = found.get(&source).map(|p| p.value.clone()) else {
        return Err(CliError::usage(
            "--from",
            format!("{} has no tag in {}: {source} does not exist", service.name, request.from),
        ));
    };
    let environment = request.to;
    let change = by_hand(environment, service, &tag, request.by, request.dry_run, request.now);
    let promoted = promoter.promote_by_hand(change, request.from).await?;
    Ok(ChangeReport {
        command: "promote",
        service: service.name.clone(),
        from: Some(request.from.to_owned()),
        tag,
        dry_run: request.dry_run,
        decision: promoted.outcome,
        rollback_record: promoted
            .record
            .map(|(_, version)| RecordedRollback { parameter: environment.rollback_parameter(), version }),
    })
}

const PIN_UNSAID: &str = "must say why the tag is pinned; it is recorded in the parameter";

/// `--reason`, trimmed: said (else `--reason: {unsaid}`), and short enough for a parameter's
/// description.
pub fn check_reason<'a>(reason: &'a str, unsaid: &str) -> Result<&'a str, CliError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(CliError::usage("--reason", unsaid));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(CliError::usage("--reason", format!("must be at most {MAX_REASON_CHARS} characters")));
    }
    Ok(reason)
}

pub struct PinRequest<'a> {
    pub service: &'a Service,
    pub environment: &'a Environment,
    pub tag: &'a str,
    pub reason: &'a str,
    /// Who pins, for the rollback record.
    pub by: &'a str,
    pub dry_run: bool,
    pub now: DateTime,
}

pub async fn pin<P, R, A>(promoter: &Promoter<P, R, A>, request: PinRequest<'_>) -> Result<ChangeReport, CliError>
where
    P: ParameterStore + ParameterHistory + RecordStore + Sync,
    R: ImageRegistry + Sync,
    A: Alarms + Sync,
{
    let reason = check_reason(request.reason, PIN_UNSAID)?;
    let (environment, service) = (request.environment, request.service);
    let pinned = promoter
        .pin(by_hand(environment, service, request.tag, request.by, request.dry_run, request.now), reason)
        .await?;
    Ok(ChangeReport {
        command: "pin",
        service: service.name.clone(),
        from: None,
        tag: request.tag.to_owned(),
        dry_run: request.dry_run,
        decision: pinned.outcome,
        rollback_record: pinned
            .record
            .map(|(_, version)| RecordedRollback { parameter: environment.rollback_parameter(), version }),
    })
}

fn by_hand<'a>(
    environment: &'a Environment,
    service: &'a Service,
    tag: &'a str,
    by: &'a str,
    dry_run: bool,
    now: DateTime,
) -> ByHand<'a> {
    ByHand { environment, service, tag, by, dry_run, now }
}

impl Render for ChangeReport {
    /// A refusal is a problem; "already there" is not.
    fn problems(&self) -> Vec<String> {
        match &self.decision.outcome {
            Outcome::Skip { reason } if *reason != SkipReason::Unchanged => vec![format!(
                "{} {} refused for {} in {}: {}",
                self.command,
                self.tag,
                self.service,
                self.decision.environment,
                explain(*reason)
            )],
            _ => Vec::new(),
        }
    }

    fn render(&self) -> String {
        let (decision, reason, version) = match &self.decision.outcome {
            Outcome::Write { reason, version, .. } => ("write", reason.as_str(), Some(*version)),
            Outcome::Planned { reason, .. } => ("would_write", reason.as_str(), None),
            Outcome::Skip { reason } => ("skip", reason.as_str(), None),
            Outcome::Failed { .. } => ("error", "write_failed", None),
        };
        let mut table =
            Table::new(&["SERVICE", "ENVIRONMENT", "PARAMETER", "PREVIOUS", "TAG", "DECISION", "REASON", "VERSION"]);
        table.row([
            self.service.clone(),
            self.decision.environment.clone(),
            self.decision.parameter.clone(),
            or_nothing(self.decision.previous.as_ref()),
            self.tag.clone(),
            decision.to_owned(),
            reason.to_owned(),
            or_nothing(version),
        ]);
        let mut out = table.render();
        if let Some(record) = &self.rollback_record {
            out.push_str(&format!(
                "recorded as a person's change: {} version {} (automatic promotion into {} now takes only releases verified after it)\n",
                record.parameter, record.version, self.decision.environment
            ));
        }
        out
    }
}

fn explain(reason: SkipReason) -> &'static str {
    match reason {
        SkipReason::NotNewer => "the order policy does not allow it: the tag is not newer than the one there",
        SkipReason::TagNotOrderable => "the order policy cannot order this tag (use `tagrelay pin` on purpose)",
        SkipReason::ImageGone => "ECR has no image with this tag any more",
        SkipReason::TagMoved => "the tag now points at another image",
        SkipReason::TagPatternMismatch => "the tag does not match the service's tag_pattern",
        _ => reason.as_str(),
    }
}
