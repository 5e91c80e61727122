//! What a refused start means. CodeBuild refuses a start with `AccountLimitExceededException`
//! for both the project's concurrent build limit and the account's quota of running builds; the
//! project's newest builds tell them apart. Pure, table-tested.

use crate::ports::{AwsError, BuildRecord, BuildStatus};

/// The error code CodeBuild refuses a start with, for the project's limit and the account's quota.
pub const LIMIT_EXCEEDED: &str = "AccountLimitExceededException";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A build of the project runs (it started since we looked): the project's limit. Wait for
    /// its end event.
    ProjectLimit { running_build: String },
    /// No build of the project runs: the account's quota (other projects' builds, or a new
    /// account's quota of 0). No end event will come, so it is an error, retried by Lambda and
    /// alarmed on.
    AccountQuota,
}

/// `newest` are the project's newest builds, newest first, read after the refusal.
pub fn refusal(newest: &[BuildRecord]) -> Refusal {
    match newest.iter().find(|build| build.status == BuildStatus::InProgress) {
        Some(running) => Refusal::ProjectLimit { running_build: running.id.clone() },
        None => Refusal::AccountQuota,
    }
}

/// The error for `Refusal::AccountQuota`: CodeBuild's `message`, and what an operator raises.
pub fn account_quota_error(project: &str, message: &str) -> AwsError {
    AwsError {
        operation: "StartBuild",
        resource: project.to_owned(),
        code: Some(LIMIT_EXCEEDED.to_owned()),
        message: format!(
            "{LIMIT_EXCEEDED}: {message}; no build of {project} is running, so this is the account's \
             quota of concurrently running builds, not the project's concurrent build limit: raise \
             \"Concurrently running builds for <platform>/<compute type> environment\" for the \
             project's compute type in Service Quotas (AWS CodeBuild) for this account and region"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BuildStatus::*;

    fn build(id: &str, status: BuildStatus, fingerprint: Option<&str>) -> BuildRecord {
        BuildRecord { id: id.into(), status, fingerprint: fingerprint.map(str::to_owned), started: None, ended: None }
    }

    #[test]
    fn refusal_table() {
        let limit = |id: &str| Refusal::ProjectLimit { running_build: id.into() };
        let cases: Vec<(&str, Vec<BuildRecord>, Refusal)> = vec![
            ("no build at all: the account's quota", vec![], Refusal::AccountQuota),
            (
                "only ended builds: the account's quota",
                vec![build("p:3", Succeeded, Some("f")), build("p:2", Failed, Some("f")), build("p:1", Stopped, None)],
                Refusal::AccountQuota,
            ),
            ("a status we do not know is not running", vec![build("p:1", Other, Some("f"))], Refusal::AccountQuota),
            (
                "the newest runs: wait for it",
                vec![build("p:2", InProgress, Some("f")), build("p:1", Succeeded, Some("f"))],
                limit("p:2"),
            ),
            (
                "a running build behind newer ended ones",
                vec![build("p:3", Stopped, None), build("p:2", InProgress, Some("f"))],
                limit("p:2"),
            ),
            ("a manual build running holds the limit too", vec![build("p:m", InProgress, None)], limit("p:m")),
        ];
        for (name, newest, expected) in cases {
            assert_eq!(refusal(&newest), expected, "{name}");
        }
    }

    #[test]
    fn the_quota_error_says_what_to_raise() {
        let err = account_quota_error("tagrelay-dev", "Cannot have more than 0 builds in queue for the account");
        assert_eq!(
            (err.operation, err.resource.as_str(), err.code.as_deref()),
            ("StartBuild", "tagrelay-dev", Some(LIMIT_EXCEEDED))
        );
        for said in ["Cannot have more than 0 builds", "no build of tagrelay-dev is running", "Service Quotas"] {
            assert!(err.message.contains(said), "{said:?} in {}", err.message);
        }
    }
}
