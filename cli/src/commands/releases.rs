//! `tagrelay releases`: an environment's verified releases, newest first, as trigger-deploy
//! recorded them in `/tagrelay/{environment}/verified` (the parameter's versions are the list).

use std::collections::BTreeMap;
use tagrelay::document::read_history;

use clap::Args;
use serde::Serialize;
use tagrelay::deploy::release::{releases, StoredRelease};
use tagrelay::ports::{ParameterHistory, ParameterStore, ParameterVersion};

use crate::context::Context;
use crate::error::CliError;
use crate::report::Render;
use crate::table::Table;

/// An environment's verified releases, newest first: when, which build, each service's tag.
#[derive(Debug, Args)]
pub struct ReleasesArgs {
    #[arg(long = "env", value_name = "ENVIRONMENT")]
    pub environment: String,
    /// Only the newest N releases.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

impl ReleasesArgs {
    pub async fn run(&self, context: &Context) -> Result<ReleasesReport, CliError> {
        let environment = context.environment("--env", &self.environment)?;
        let parameter = environment.release_parameter();
        release_history(&context.parameters(), &environment.name, parameter, self.limit).await
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReleasesReport {
    pub environment: String,
    /// The release record's parameter.
    pub parameter: String,
    /// Newest first, one per fingerprint; empty when none is recorded yet.
    pub releases: Vec<ReleaseEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseEntry {
    /// The parameter version that recorded it.
    pub version: i64,
    /// RFC 3339 UTC: when ECS showed it rolled out (or its build ended, with nothing to verify).
    pub verified_at: String,
    /// The CodeBuild build that deployed it.
    pub build: String,
    /// service → tag.
    pub tags: BTreeMap<String, String>,
    /// service → image digest, where known.
    pub digests: BTreeMap<String, String>,
    pub fingerprint: String,
}

pub async fn release_history<H: ParameterStore + ParameterHistory + Sync>(
    store: &H,
    environment: &str,
    parameter: String,
    limit: Option<usize>,
) -> Result<ReleasesReport, CliError> {
    let releases = listed(&read_history(store, &parameter).await?, limit);
    Ok(ReleasesReport { environment: environment.to_owned(), parameter, releases })
}

/// The core's list (newest first, one per fingerprint, versions that are not records skipped),
/// limited.
fn listed(history: &[ParameterVersion], limit: Option<usize>) -> Vec<ReleaseEntry> {
    releases(history)
        .into_iter()
        .take(limit.unwrap_or(usize::MAX))
        .map(|StoredRelease { version, release }| ReleaseEntry {
            version,
            verified_at: release.verified_at,
            build: release.build,
            tags: release.tags,
            digests: release.digests,
            fingerprint: release.fingerprint,
        })
        .collect()
}

impl Render for ReleasesReport {
    fn render(&self) -> String {
        if self.releases.is_empty() {
            return format!("{}\nno release recorded yet\n", self.parameter);
        }
        let mut table = Table::new(&["VERSION", "VERIFIED", "BUILD", "TAGS", "FINGERPRINT"]);
        for r in &self.releases {
            // One token per cell (no spaces), so `awk` can pick the columns.
            let tags = r.tags.iter().map(|(service, tag)| format!("{service}={tag}")).collect::<Vec<_>>().join(",");
            table.row([r.version.to_string(), r.verified_at.clone(), r.build.clone(), tags, r.fingerprint.clone()]);
        }
        format!("{}\n{}", self.parameter, table.render())
    }
}

#[cfg(test)]
mod tests {
    use tagrelay::deploy::release::Release;

    use super::*;

    fn version(version: i64, fingerprint: &str, tag: &str) -> ParameterVersion {
        let release = Release {
            fingerprint: fingerprint.into(),
            tags: BTreeMap::from([("my-api".into(), tag.into())]),
            digests: BTreeMap::new(),
            build: format!("tagrelay-dev:{version}"),
            verified_at: format!("2026-11-28T09:0{version}:00Z"),
        };
        let value = release.document();
        ParameterVersion { version, value, modified_at: None, modified_by: None, description: None }
    }

    #[test]
    fn newest_first_once_each_and_limited() {
        let history = vec![version(1, "a", "1"), version(2, "b", "2"), version(3, "b", "2"), version(4, "c", "3")];
        let listed_versions = |limit| listed(&history, limit).into_iter().map(|r| r.version).collect::<Vec<_>>();
        assert_eq!(listed_versions(None), [4, 3, 1]);
        assert_eq!(listed_versions(Some(2)), [4, 3]);
        let newest = &listed(&history, Some(1))[0];
        assert_eq!(
            (newest.verified_at.as_str(), newest.build.as_str(), newest.fingerprint.as_str()),
            ("2026-11-28T09:04:00Z", "tagrelay-dev:4", "c")
        );
        assert_eq!(newest.tags, BTreeMap::from([("my-api".to_owned(), "3".to_owned())]));
    }

    #[test]
    fn no_release_yet_says_so() {
        let report =
            ReleasesReport { environment: "dev".into(), parameter: "/tagrelay/dev/verified".into(), releases: vec![] };
        assert_eq!(report.render(), "/tagrelay/dev/verified\nno release recorded yet\n");
        assert!(report.problems().is_empty(), "not a problem: nothing was verified yet");
    }
}
