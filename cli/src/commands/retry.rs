//! `tagrelay retry`: run a held environment's state again, e.g. after fixing the Terraform that
//! failed. The same reconcile as every event, with the one trigger that may start a failed state.

use clap::Args;
use serde::Serialize;
use tagrelay::config::Environment;
use tagrelay::deploy::reconcile::Trigger;
use tagrelay::deploy::{Deployer, EnvironmentOutcome};
use tagrelay::ports::{BuildRunner, EcsServices, ImageRegistry, ParameterStore, RecordStore};

use crate::context::Context;
use crate::error::CliError;
use crate::report::Render;
use crate::table::{or_nothing, Table};

/// Run a held environment's current state again (after fixing what made its run fail).
/// Otherwise the same as any event: starts a run if behind, nothing if in sync or running.
#[derive(Debug, Args)]
pub struct RetryArgs {
    #[arg(long = "env", value_name = "ENVIRONMENT")]
    pub environment: String,
}

impl RetryArgs {
    pub async fn run(&self, context: &Context) -> Result<RetryReport, CliError> {
        let environment = context.environment("--env", &self.environment)?;
        // Said in the decision line (the trigger), so the log says who asked for the run.
        let by = std::env::var("USER").unwrap_or_else(|_| "an operator".to_owned());
        retry(&context.deployer(), environment, &format!("{by} with tagrelay retry")).await
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RetryReport {
    #[serde(flatten)]
    pub outcome: EnvironmentOutcome,
}

pub async fn retry<P, B, E, I>(
    deployer: &Deployer<P, B, E, I>,
    environment: &Environment,
    by: &str,
) -> Result<RetryReport, CliError>
where
    P: ParameterStore + RecordStore + Sync,
    B: BuildRunner + Sync,
    E: EcsServices + Sync,
    I: ImageRegistry + Sync,
{
    let outcome = deployer.reconcile(environment, &Trigger::Retry { by: by.to_owned() }).await?;
    Ok(RetryReport { outcome })
}

/// A retry reports what it decided; nothing it decides is a problem (a failure is an error).
impl Render for RetryReport {
    fn render(&self) -> String {
        let outcome = &self.outcome.outcome;
        let mut table = Table::new(&["ENVIRONMENT", "DECISION", "REASON", "BUILD", "FINGERPRINT"]);
        table.row([
            self.outcome.environment.clone(),
            outcome.as_str().to_owned(),
            outcome.reason().to_owned(),
            or_nothing(outcome.build()),
            self.outcome.fingerprint.clone(),
        ]);
        table.render()
    }
}
