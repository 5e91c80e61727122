//! `tagrelay retry`: run a held environment's state again, e.g. after fixing the Terraform that
//! failed. The same reconcile as every event, with the one trigger that may start a failed state.

use serde::Serialize;
use tagrelay::config::Environment;
use tagrelay::deploy::handler::{Deployer, EnvironmentOutcome};
use tagrelay::deploy::reconcile::Trigger;
use tagrelay::ports::{BuildRunner, ParameterStore};

use crate::error::CliError;
use crate::table::{or_nothing, Table};

#[derive(Debug, Clone, Serialize)]
pub struct RetryReport {
    #[serde(flatten)]
    pub outcome: EnvironmentOutcome,
}

pub async fn retry<P, B>(
    deployer: &Deployer<P, B>,
    environment: &Environment,
    by: &str,
) -> Result<RetryReport, CliError>
where
    P: ParameterStore + Sync,
    B: BuildRunner + Sync,
{
    let outcome = deployer.reconcile(environment, &Trigger::Retry { by: by.to_owned() }).await?;
    Ok(RetryReport { outcome })
}

impl RetryReport {
    pub fn render(&self) -> String {
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
