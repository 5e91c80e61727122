//! What one environment looks like to the reconcile decision: its parameters and its builds read
//! through the ports, and the decision on them. Reads only. trigger-deploy acts on the decision
//! (`Deployer::reconcile`); `tagrelay status` shows it, so the operator sees what the function
//! decides, from the same reads.

use std::collections::BTreeMap;

use aws_smithy_types::DateTime;

use super::history::{deploy_history, BuildHistory};
use super::reconcile::{reconcile, Decision, Desired, Trigger};
use crate::config::{Config, Environment};
use crate::ports::{AwsError, BuildRunner, ParameterStore, StoredParameter};

/// One environment as read, and what reconcile decides on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The environment's parameters that exist, by name.
    pub parameters: BTreeMap<String, StoredParameter>,
    pub desired: Desired,
    /// The project's builds, newest first, down to the newest tagrelay build.
    pub history: BuildHistory,
    /// Decision's decision on them, for the trigger observed with.
    pub decision: Decision,
}

impl Observation {
    /// The pure half of `observe`: the decision on what was read.
    pub fn of(parameters: BTreeMap<String, StoredParameter>, history: BuildHistory, trigger: &Trigger) -> Self {
        let desired = Desired::of(&parameters);
        let decision = reconcile(&desired, &history.builds, trigger);
        Self { parameters, desired, history, decision }
    }

    /// When a parameter of the environment was last written (`None` without parameters, or when
    /// SSM reports no time).
    pub fn last_change(&self) -> Option<DateTime> {
        self.parameters.values().filter_map(|p| p.last_modified).max_by_key(|at| at.as_nanos())
    }
}

/// Reads `environment`'s parameters, then its project's builds, and decides for `trigger`.
/// Starts nothing.
pub async fn observe<P, B>(
    config: &Config,
    parameters: &P,
    builds: &B,
    environment: &Environment,
    trigger: &Trigger,
) -> Result<Observation, AwsError>
where
    P: ParameterStore + Sync,
    B: BuildRunner + Sync,
{
    let names = config.parameter_names(&environment.name);
    let stored = parameters.get_parameters(&names).await?;
    let history = deploy_history(builds, &environment.codebuild_project).await?;
    Ok(Observation::of(stored, history, trigger))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{BuildRecord, BuildStatus};

    fn parameter(version: i64, modified: i64) -> StoredParameter {
        StoredParameter::string("7", version, Some(DateTime::from_secs(modified)))
    }

    #[test]
    fn the_decision_is_reconcile_on_what_was_read() {
        let parameters = BTreeMap::from([("/a/dev/tag".to_owned(), parameter(2, 100))]);
        let desired = Desired::of(&parameters);
        let builds = vec![BuildRecord {
            id: "b1".into(),
            status: BuildStatus::Failed,
            fingerprint: Some(desired.fingerprint.clone()),
            started: None,
        }];
        let history = BuildHistory { builds: builds.clone(), bound_reached: false };
        for trigger in [Trigger::Schedule, Trigger::Retry { by: "ana".into() }] {
            let observed = Observation::of(parameters.clone(), history.clone(), &trigger);
            assert_eq!(observed.decision, reconcile(&desired, &builds, &trigger), "{trigger:?}");
            assert_eq!(observed.desired, desired);
        }
    }

    #[test]
    fn the_last_change_is_the_newest_write() {
        let none = Observation::of(BTreeMap::new(), BuildHistory::default(), &Trigger::Schedule);
        assert_eq!(none.last_change(), None);
        assert_eq!(none.decision, Decision::NothingToDeploy);
        let parameters = BTreeMap::from([
            ("/a/dev/tag".to_owned(), parameter(2, 300)),
            ("/b/dev/tag".to_owned(), parameter(1, 100)),
            ("/c/dev/tag".to_owned(), StoredParameter::string("1", 1, None)),
        ]);
        let observed = Observation::of(parameters, BuildHistory::default(), &Trigger::Schedule);
        assert_eq!(observed.last_change(), Some(DateTime::from_secs(300)));
    }
}
