//! `tagrelay history`: a parameter's versions as SSM keeps them, newest first.

use clap::Args;
use serde::Serialize;
use tagrelay::ports::{ParameterHistory, ParameterVersion};

use crate::context::Context;
use crate::error::CliError;
use crate::report::Render;
use crate::table::{or_nothing, Table};
use crate::time::format_opt;

/// A parameter's versions, newest first: tag, when, by whom, why.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    pub service: String,
    #[arg(long = "env", value_name = "ENVIRONMENT")]
    pub environment: String,
    /// Only the newest N versions.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

impl HistoryArgs {
    pub async fn run(&self, context: &Context) -> Result<HistoryReport, CliError> {
        let service = context.service(&self.service)?;
        let environment = context.environment("--env", &self.environment)?;
        let parameter = context.config.parameter_name(&service.name, &environment.name);
        history(&context.parameters(), &service.name, &environment.name, parameter, self.limit).await
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryReport {
    pub service: String,
    pub environment: String,
    pub parameter: String,
    pub versions: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub version: i64,
    pub tag: String,
    pub changed: Option<String>,
    /// The IAM identity SSM recorded as the writer.
    pub by: Option<String>,
    pub description: Option<String>,
}

pub async fn history<H: ParameterHistory + Sync>(
    store: &H,
    service: &str,
    environment: &str,
    parameter: String,
    limit: Option<usize>,
) -> Result<HistoryReport, CliError> {
    let versions = newest_first(store.parameter_history(&parameter).await?, limit);
    Ok(HistoryReport { service: service.to_owned(), environment: environment.to_owned(), parameter, versions })
}

/// SSM lists versions oldest first (and pages them in that order).
fn newest_first(mut versions: Vec<ParameterVersion>, limit: Option<usize>) -> Vec<HistoryEntry> {
    versions.sort_by_key(|v| std::cmp::Reverse(v.version));
    versions
        .into_iter()
        .take(limit.unwrap_or(usize::MAX))
        .map(|v| HistoryEntry {
            version: v.version,
            tag: v.value,
            changed: format_opt(v.modified_at),
            by: v.modified_by,
            description: v.description,
        })
        .collect()
}

impl Render for HistoryReport {
    fn problems(&self) -> Vec<String> {
        if self.versions.is_empty() {
            vec![format!(
                "{} does not exist: {} has never been recorded in {}",
                self.parameter, self.service, self.environment
            )]
        } else {
            Vec::new()
        }
    }

    fn render(&self) -> String {
        let mut table = Table::new(&["VERSION", "TAG", "CHANGED", "BY", "DESCRIPTION"]);
        for v in &self.versions {
            table.row([
                v.version.to_string(),
                v.tag.clone(),
                or_nothing(v.changed.as_ref()),
                or_nothing(v.by.as_ref()),
                or_nothing(v.description.as_ref()),
            ]);
        }
        format!("{}\n{}", self.parameter, table.render())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(version: i64, value: &str) -> ParameterVersion {
        ParameterVersion { version, value: value.into(), modified_at: None, modified_by: None, description: None }
    }

    #[test]
    fn newest_first_and_limited() {
        let versions = vec![version(1, "7"), version(3, "9"), version(2, "8")];
        let tags: Vec<_> = newest_first(versions.clone(), None).into_iter().map(|e| (e.version, e.tag)).collect();
        assert_eq!(tags, vec![(3, "9".to_owned()), (2, "8".to_owned()), (1, "7".to_owned())]);
        assert_eq!(newest_first(versions, Some(1)).len(), 1);
    }
}
