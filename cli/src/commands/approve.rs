//! `tagrelay approve`: lets the release waiting to enter an environment that requires approval
//! in, by writing the approval record (`/tagrelay/{environment}/approval`) for its fingerprint.
//! The core's `Promoter::approve` decides from the same reads as the promote function, and
//! refuses when nothing waits; promote's next run (the approval parameter's change triggers it)
//! promotes it.

use aws_smithy_types::DateTime;
use clap::Args;
use serde::Serialize;
use tagrelay::config::Environment;
use tagrelay::ports::{Alarms, ImageRegistry, ParameterHistory, ParameterStore, RecordStore};
use tagrelay::promote::Promoter;
use tagrelay::record::operator::MAX_REASON_CHARS;

use crate::context::{caller, Context};
use crate::error::CliError;
use crate::report::Render;
use crate::table::Table;

/// Approve the release waiting to enter an environment with `approval: true`; exit 1 (saying
/// what the environment is doing) when none waits.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    #[arg(long = "env", value_name = "ENVIRONMENT")]
    pub environment: String,
    /// Recorded with the approval (a change ticket, why).
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub comment: String,
    /// Who approves, recorded in the approval; default: the USER variable. SSM also records
    /// the IAM identity that wrote the parameter version (`tagrelay history` shows it).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
}

impl ApproveArgs {
    pub async fn run(&self, context: &Context) -> Result<ApproveReport, CliError> {
        let environment = context.environment("--env", &self.environment)?;
        requires_approval(environment)?;
        let by = caller(self.by.as_deref())?;
        let request = ApproveRequest { environment, by: &by, comment: &self.comment, now: crate::time::now() };
        approve(&context.promoter(), request).await
    }
}

pub struct ApproveRequest<'a> {
    pub environment: &'a Environment,
    pub by: &'a str,
    pub comment: &'a str,
    pub now: DateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApproveReport {
    pub environment: String,
    /// The environment the release comes from.
    pub upstream: String,
    /// The release's version in the upstream release record (`/tagrelay/{upstream}/verified`).
    pub release: i64,
    pub fingerprint: String,
    pub by: String,
    pub at: String,
    pub comment: String,
    /// The approval record's parameter and the version written.
    pub parameter: String,
    pub version: i64,
}

pub async fn approve<P, R, A>(
    promoter: &Promoter<P, R, A>,
    request: ApproveRequest<'_>,
) -> Result<ApproveReport, CliError>
where
    P: ParameterStore + ParameterHistory + RecordStore + Sync,
    R: ImageRegistry + Sync,
    A: Alarms + Sync,
{
    let environment = request.environment;
    let upstream = requires_approval(environment)?;
    let comment = request.comment.trim();
    if comment.chars().count() > MAX_REASON_CHARS || comment.chars().any(|c| c.is_control() && c != '\n') {
        return Err(CliError::usage(
            "--comment",
            format!("must be at most {MAX_REASON_CHARS} characters, without control characters"),
        ));
    }
    let approved = promoter.approve(environment, request.by, comment, request.now).await?;
    Ok(ApproveReport {
        environment: environment.name.clone(),
        upstream: upstream.to_owned(),
        release: approved.release,
        fingerprint: approved.approval.fingerprint,
        by: approved.approval.by,
        at: approved.approval.at,
        comment: approved.approval.comment,
        parameter: environment.approval_parameter(),
        version: approved.version,
    })
}

/// The environment the release waiting comes from; a usage error when the environment takes no
/// approval.
fn requires_approval(environment: &Environment) -> Result<&str, CliError> {
    environment.promote_from.as_deref().filter(|_| environment.approval).ok_or_else(|| {
        CliError::usage(
            "--env",
            format!("{} does not require approval (its configuration has no `approval: true`)", environment.name),
        )
    })
}

impl Render for ApproveReport {
    fn render(&self) -> String {
        let mut table = Table::new(&["ENVIRONMENT", "RELEASE", "FINGERPRINT", "BY", "AT", "COMMENT", "VERSION"]);
        table.row([
            self.environment.clone(),
            format!("{} of {}", self.release, self.upstream),
            self.fingerprint.clone(),
            self.by.clone(),
            self.at.clone(),
            self.comment.clone(),
            self.version.to_string(),
        ]);
        format!(
            "{}approved: {} version {}; promote's next run moves release {} of {} into {}\n",
            table.render(),
            self.parameter,
            self.version,
            self.release,
            self.upstream,
            self.environment
        )
    }
}
