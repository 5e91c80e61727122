//! What one environment looks like to the reconcile decision: its parameters, its release
//! record and its builds read through the ports, the decision on them and, when the newest run
//! of the current state succeeded but is not recorded as a release yet, its verification on ECS.
//! Reads only. trigger-deploy acts on the decision (`Deployer::reconcile`); `tagrelay status`
//! shows it, so the operator sees what the function decides, from the same reads.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_smithy_types::DateTime;

use tracing::warn;

use super::deployer::Deployer;
use super::history::{deploy_history, BuildHistory};
use super::outcome::ReconcileError;
use super::reconcile::{after_verification, reconcile, Decision, Desired, Trigger};
use super::release::{stored_release, Release};
use super::verify::{check_service, verify, Expected, Seen, ServiceCheck};
use crate::config::Environment;
use crate::document::{resolve, DocumentError};
use crate::ports::{AwsError, BuildRunner, EcsServices, ImageRegistry, ParameterStore, ServiceState, StoredParameter};

/// One environment as read, and what reconcile decides on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The environment's image-tag parameters that exist, by name.
    pub parameters: BTreeMap<String, StoredParameter>,
    /// The newest release record (`None`: none yet, or not a record).
    pub release: Option<Release>,
    pub desired: Desired,
    /// The project's builds, newest first, down to the newest tagrelay build.
    pub history: BuildHistory,
    /// The decision on them, for the trigger observed with.
    pub decision: Decision,
}

impl Observation {
    /// The pure half of `observe` before verification: reconcile on what was read.
    pub fn of(
        parameters: BTreeMap<String, StoredParameter>,
        release: Option<Release>,
        history: BuildHistory,
        trigger: &Trigger,
        placeholder: &str,
    ) -> Self {
        let desired = Desired::of(&parameters, placeholder);
        let decision = reconcile(&desired, &history.builds, trigger);
        Self { parameters, release, desired, history, decision }
    }

    /// When a parameter of the environment was last written (`None` without parameters, or when
    /// SSM reports no time).
    pub fn last_change(&self) -> Option<DateTime> {
        self.parameters.values().filter_map(|p| p.last_modified).max_by_key(|at| at.as_nanos())
    }

    /// Whether the current state's newest run succeeded and is not recorded as a release yet:
    /// the one case that reads ECS.
    fn unverified_success(&self) -> Option<&str> {
        match &self.decision {
            Decision::UpToDate { build }
                if !self.release.as_ref().is_some_and(|r| r.records(&self.desired.fingerprint)) =>
            {
                Some(build)
            }
            _ => None,
        }
    }
}

impl<P, B, E, I> Deployer<P, B, E, I>
where
    P: ParameterStore + Sync,
    B: BuildRunner + Sync,
    E: EcsServices + Sync,
    I: ImageRegistry + Sync,
{
    /// Reads `environment`'s parameters and release record (one GetParameters), then its
    /// project's builds, and decides for `trigger`; verifies on ECS when that is the question.
    /// Starts and writes nothing.
    pub async fn observe(&self, environment: &Environment, trigger: &Trigger) -> Result<Observation, ReconcileError> {
        let history = deploy_history(&self.builds, &environment.codebuild_project).await?;
        self.observe_with(environment, trigger, history).await
    }

    /// `observe` with the project's builds already read.
    pub async fn observe_with(
        &self,
        environment: &Environment,
        trigger: &Trigger,
        history: BuildHistory,
    ) -> Result<Observation, ReconcileError> {
        let release_parameter = environment.release_parameter();
        let mut names = self.config.parameter_names(&environment.name);
        names.push(release_parameter.clone());
        let mut stored = self.parameters.get_parameters(&names).await?;
        let mut current = stored.remove(&release_parameter);
        if let Some(record) = current.as_mut() {
            // A record in parts (1,000 services) is read whole; one whose parts are gone is no
            // record, like a hand edit: the next verified release writes a new one.
            match resolve(&self.parameters, &release_parameter, &record.value).await {
                Ok(document) => record.value = document,
                Err(DocumentError::Aws { source, .. }) => return Err(source.into()),
                Err(err) => {
                    warn!(environment = %environment.name, parameter = %release_parameter, error = %err, "release record unreadable; treated as none")
                }
            }
        }
        let release = stored_release(&release_parameter, current)?;
        let mut observation = Observation::of(stored, release, history, trigger, self.config.parameter_placeholder());
        if let Some(build) = observation.unverified_success().map(str::to_owned) {
            observation.decision = self.verify_release(environment, &observation, &build, trigger).await?;
        }
        Ok(observation)
    }

    /// The run `build` of the current state succeeded: what ECS says of it.
    async fn verify_release(
        &self,
        environment: &Environment,
        observation: &Observation,
        build: &str,
        trigger: &Trigger,
    ) -> Result<Decision, AwsError> {
        // Services whose parameter names an image: a parameter still holding the placeholder
        // names none, and nothing of it is verified or recorded.
        let mut tags = BTreeMap::new();
        let mut digests = BTreeMap::new();
        let mut expected = Vec::new();
        for service in self.config.services() {
            let name = self.config.parameter_name(&service.name, &environment.name);
            let Some(stored) = observation.parameters.get(&name) else { continue };
            if stored.value == self.config.parameter_placeholder() {
                continue;
            }
            // A service whose tag the newest release already verified keeps that verification
            // and digest: only what this run changed is looked up on ECR and ECS. At 1,000
            // services a release that changes one reads one image and one service, not 1,000.
            let recorded = observation.release.as_ref().filter(|r| r.tags.get(&service.name) == Some(&stored.value));
            if let Some(digest) = recorded.and_then(|r| r.digests.get(&service.name)) {
                tags.insert(service.name.clone(), stored.value.clone());
                digests.insert(service.name.clone(), digest.clone());
                continue;
            }
            let digest = self.images.image_by_tag(&service.repository, &stored.value).await?.map(|image| image.digest);
            tags.insert(service.name.clone(), stored.value.clone());
            if let Some(digest) = &digest {
                digests.insert(service.name.clone(), digest.clone());
            }
            if let (Some(_), Some(ecs_service)) = (&environment.ecs_cluster, &service.ecs_service) {
                expected.push(Expected {
                    service: service.name.clone(),
                    ecs_service: ecs_service.clone(),
                    container: service.container.clone(),
                    repository: service.repository.clone(),
                    tag: stored.value.clone(),
                    digest,
                });
            }
        }
        let checks = match &environment.ecs_cluster {
            Some(cluster) if !expected.is_empty() => self.check_services(cluster, &expected).await?,
            _ => Vec::new(),
        };
        let now = DateTime::from(SystemTime::now());
        let record = observation.history.builds.iter().find(|b| b.id == build);
        // The time-out counts from the build's end, which CodeBuild reports for every ended
        // build; without it, from the parameters' last change (before the build): never from
        // `now`, which would push the deadline on at every look.
        let ended = record.and_then(|b| b.ended.or(b.started)).or(observation.last_change()).unwrap_or(now);
        let verification = verify(&checks, ended, environment.verify_timeout, now);
        Ok(after_verification(verification, build, &observation.desired.fingerprint, trigger, tags, digests))
    }

    /// DescribeServices for the expected services, then the image of each PRIMARY deployment.
    async fn check_services(
        &self,
        cluster: &str,
        expected: &[Expected],
    ) -> Result<Vec<(String, ServiceCheck)>, AwsError> {
        let mut names: Vec<String> = expected.iter().map(|e| e.ecs_service.clone()).collect();
        names.sort();
        names.dedup();
        let states = self.ecs.describe_services(cluster, &names).await?;
        let mut checks = Vec::new();
        for wanted in expected {
            let seen = match states.get(&wanted.ecs_service) {
                None => Seen::Missing { reason: "ECS did not describe it".to_owned() },
                Some(ServiceState::Missing { reason }) => Seen::Missing { reason: reason.clone() },
                Some(ServiceState::Found { deployments }) => {
                    let primary = deployments.iter().find(|d| d.is_primary() && d.rollout_state.is_some());
                    let primary_image = match primary {
                        Some(primary) => self.ecs.container_image(&primary.task_definition, &wanted.container).await?,
                        None => None,
                    };
                    Seen::Deployments { deployments: deployments.clone(), primary_image }
                }
            };
            checks.push((wanted.service.clone(), check_service(wanted, &seen)));
        }
        Ok(checks)
    }
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
        let desired = Desired::of(&parameters, "initial");
        let builds = vec![BuildRecord {
            id: "b1".into(),
            status: BuildStatus::Failed,
            fingerprint: Some(desired.fingerprint.clone()),
            started: None,
            ended: None,
        }];
        let history = BuildHistory { builds: builds.clone(), bound_reached: false };
        for trigger in [Trigger::Schedule, Trigger::Retry { by: "ana".into() }] {
            let observed = Observation::of(parameters.clone(), None, history.clone(), &trigger, "initial");
            assert_eq!(observed.decision, reconcile(&desired, &builds, &trigger), "{trigger:?}");
            assert_eq!(observed.desired, desired);
        }
    }

    #[test]
    fn the_last_change_is_the_newest_write() {
        let none = Observation::of(BTreeMap::new(), None, BuildHistory::default(), &Trigger::Schedule, "initial");
        assert_eq!(none.last_change(), None);
        assert_eq!(none.decision, Decision::NothingToDeploy);
        let parameters = BTreeMap::from([
            ("/a/dev/tag".to_owned(), parameter(2, 300)),
            ("/b/dev/tag".to_owned(), parameter(1, 100)),
            ("/c/dev/tag".to_owned(), StoredParameter::string("1", 1, None)),
        ]);
        let observed = Observation::of(parameters, None, BuildHistory::default(), &Trigger::Schedule, "initial");
        assert_eq!(observed.last_change(), Some(DateTime::from_secs(300)));
    }

    #[test]
    fn only_a_success_not_yet_recorded_as_a_release_is_verified() {
        let parameters = BTreeMap::from([("/a/dev/tag".to_owned(), parameter(2, 100))]);
        let fingerprint = Desired::of(&parameters, "initial").fingerprint;
        let build = |status| BuildRecord {
            id: "b1".into(),
            status,
            fingerprint: Some(fingerprint.clone()),
            started: None,
            ended: None,
        };
        let history = |status| BuildHistory { builds: vec![build(status)], bound_reached: false };
        let release = |fingerprint: &str| Release {
            fingerprint: fingerprint.into(),
            tags: BTreeMap::new(),
            digests: BTreeMap::new(),
            build: "b0".into(),
            verified_at: "2026-11-30T00:00:00Z".into(),
        };
        let observed = |status, record: Option<Release>| {
            Observation::of(parameters.clone(), record, history(status), &Trigger::Schedule, "initial")
                .unverified_success()
                .map(str::to_owned)
        };
        assert_eq!(observed(BuildStatus::Succeeded, None), Some("b1".to_owned()));
        assert_eq!(observed(BuildStatus::Succeeded, Some(release("/a/dev/tag=1@00000000"))), Some("b1".to_owned()));
        assert_eq!(observed(BuildStatus::Succeeded, Some(release(&fingerprint))), None, "already a release");
        assert_eq!(observed(BuildStatus::Failed, None), None, "held, not verified");
        assert_eq!(observed(BuildStatus::InProgress, None), None, "waits");
    }
}
