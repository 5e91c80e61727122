//! In-memory ports for handler tests: they record every call, so a test can assert what was
//! read and written, and inject failures per parameter.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use aws_smithy_types::DateTime;
use tagrelay::config::Config;
use tagrelay::deploy::release::Release;
use tagrelay::ports::{AlarmState, AlarmStatus, AlarmTransition, Alarms};
use tagrelay::ports::{
    AwsError, BuildIdPage, BuildRunner, ImageFacts, ImagePage, ImageRegistry, ListedImage, ParameterHistory,
    ParameterKind, ParameterStore, ParameterVersion, ParameterWrite, StartBuild, StartOutcome, StoredParameter,
};
use tagrelay::ports::{BuildRecord, BuildStatus, FINGERPRINT_VARIABLE};
use tagrelay::ports::{Deployment, EcsServices, RecordStore, RolloutState, ServiceState};

pub fn config(doc: serde_json::Value) -> Config {
    Config::from_json(&doc.to_string()).expect("valid test config")
}

pub fn push_event(repository: &str, tag: &str, digest: &str) -> serde_json::Value {
    serde_json::json!({
        "version": "0",
        "id": "13cde686-328b-6117-af20-0e5566167482",
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": "123456789012",
        "time": "2019-11-16T01:54:34Z",
        "region": "us-west-2",
        "resources": [],
        "detail": {
            "result": "SUCCESS",
            "repository-name": repository,
            "image-digest": digest,
            "action-type": "PUSH",
            "image-tag": tag
        }
    })
}

/// The sweep schedule's "Scheduled Event", as EventBridge delivers it.
pub fn scheduled() -> serde_json::Value {
    serde_json::json!({
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-11-28T08:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/tagrelay-sweep"], "detail": {}
    })
}

fn denied(operation: &'static str, resource: &str) -> AwsError {
    AwsError {
        operation,
        resource: resource.to_owned(),
        code: Some("AccessDeniedException".into()),
        message: "not authorized".into(),
    }
}

/// SSM in memory: every write is a new version, kept in `history` like SSM keeps it.
#[derive(Default)]
pub struct FakeParameters {
    pub values: Mutex<BTreeMap<String, StoredParameter>>,
    pub history: Mutex<BTreeMap<String, Vec<ParameterVersion>>>,
    pub writes: Mutex<Vec<ParameterWrite>>,
    pub get_calls: Mutex<usize>,
    pub failing: BTreeSet<String>,
    /// Names whose `GetParameters` is refused (`unreadable`).
    pub unreadable: BTreeSet<String>,
    /// Writes by someone else, slipped in just before our next write of that parameter: the
    /// interleaving of a race, made deterministic.
    pub interleaved: Mutex<BTreeMap<String, Vec<String>>>,
    /// Every parameter written, in the order of the writes (across parameters).
    pub order: Mutex<Vec<String>>,
    /// How writes are stamped (SSM stamps them with its clock).
    pub clock: Clock,
}

/// The time `FakeParameters` gives a write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Clock {
    /// `1000 + version`: deterministic, for golden output of histories.
    #[default]
    Counter,
    /// The system clock, as SSM's.
    Wall,
    /// `at + version`: a test's fixed "now", still in order.
    From(i64),
}

impl FakeParameters {
    pub fn with(values: &[(&str, &str)]) -> Self {
        let fake = Self::default();
        for (name, value) in values {
            fake.bump(name, value);
        }
        fake
    }

    /// Writes stamped by `clock` (promotion compares SSM's times with release times).
    pub fn on(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// A parameter someone made another type by hand.
    pub fn with_kind(self, name: &str, kind: ParameterKind) -> Self {
        if let Some(stored) = self.values.lock().expect("lock").get_mut(name) {
            stored.kind = kind;
        }
        self
    }

    /// Makes `value` be written by someone else right before our next write to `name`.
    pub fn interleave(&self, name: &str, value: &str) {
        self.interleaved.lock().expect("lock").entry(name.to_owned()).or_default().push(value.to_owned());
    }

    /// Every value the parameter held, oldest first.
    pub fn values_of(&self, name: &str) -> Vec<String> {
        self.history
            .lock()
            .expect("lock")
            .get(name)
            .map(|h| h.iter().map(|v| v.value.clone()).collect())
            .unwrap_or_default()
    }

    fn store(&self, name: &str, value: &str, description: Option<&str>) -> i64 {
        let mut values = self.values.lock().expect("lock");
        let version = values.get(name).map_or(1, |p| p.version + 1);
        let at = match self.clock {
            Clock::Counter => DateTime::from_secs(1_000 + version),
            Clock::Wall => DateTime::from(std::time::SystemTime::now()),
            Clock::From(at) => DateTime::from_secs(at + version),
        };
        self.order.lock().expect("lock").push(name.to_owned());
        values.insert(name.to_owned(), StoredParameter::string(value, version, Some(at)));
        self.history.lock().expect("lock").entry(name.to_owned()).or_default().push(ParameterVersion {
            version,
            value: value.to_owned(),
            modified_at: Some(at),
            modified_by: None,
            description: description.map(str::to_owned),
        });
        version
    }

    /// `GetParameters` is refused for any request that names `name` (IAM denies the whole call).
    pub fn unreadable(mut self, name: &str) -> Self {
        self.unreadable.insert(name.to_owned());
        self
    }

    pub fn failing_on(mut self, name: &str) -> Self {
        self.failing.insert(name.to_owned());
        self
    }

    pub fn value(&self, name: &str) -> Option<String> {
        self.values.lock().expect("lock").get(name).map(|p| p.value.clone())
    }

    pub fn writes(&self) -> Vec<ParameterWrite> {
        self.writes.lock().expect("lock").clone()
    }
}

impl ParameterStore for FakeParameters {
    async fn get_parameters(&self, names: &[String]) -> Result<BTreeMap<String, StoredParameter>, AwsError> {
        *self.get_calls.lock().expect("lock") += 1;
        if let Some(name) = names.iter().find(|n| self.unreadable.contains(*n)) {
            return Err(denied("GetParameters", name));
        }
        let values = self.values.lock().expect("lock");
        let history = self.history.lock().expect("lock");
        // As SSM: `name:version` selects a version, and the answer is keyed by the bare name.
        let selected = |selector: &String| match selector.rsplit_once(':') {
            Some((name, version)) => {
                let version: i64 = version.parse().ok()?;
                let found = history.get(name)?.iter().find(|v| v.version == version)?;
                Some((name.to_owned(), StoredParameter::string(found.value.clone(), version, found.modified_at)))
            }
            None => values.get(selector).map(|p| (selector.clone(), p.clone())),
        };
        Ok(names.iter().filter_map(selected).collect())
    }

    async fn put_parameter(&self, write: &ParameterWrite) -> Result<i64, AwsError> {
        if self.failing.contains(&write.name) {
            return Err(denied("PutParameter", &write.name));
        }
        let others = self.interleaved.lock().expect("lock").remove(&write.name).unwrap_or_default();
        for value in others {
            self.store(&write.name, &value, Some("someone else"));
        }
        if write.create_with_tags.is_some() && self.values.lock().expect("lock").contains_key(&write.name) {
            return Err(AwsError {
                operation: "PutParameter",
                resource: write.name.clone(),
                code: Some("ParameterAlreadyExists".into()),
                message: "The parameter already exists.".into(),
            });
        }
        self.writes.lock().expect("lock").push(write.clone());
        Ok(self.store(&write.name, &write.value, Some(&write.description)))
    }
}

impl ParameterHistory for FakeParameters {
    async fn parameter_history(&self, name: &str) -> Result<Vec<ParameterVersion>, AwsError> {
        Ok(self.history.lock().expect("lock").get(name).cloned().unwrap_or_default())
    }
}

impl RecordStore for FakeParameters {
    async fn put_record(&self, parameter: &str, document: &str, description: &str) -> Result<i64, AwsError> {
        if self.failing.contains(parameter) {
            return Err(denied("PutParameter", parameter));
        }
        Ok(self.store(parameter, document, Some(description)))
    }
}

impl FakeParameters {
    /// The releases recorded for `environment`, oldest first.
    pub fn releases(&self, environment: &str) -> Vec<Release> {
        self.values_of(&format!("/tagrelay/{environment}/verified")).iter().filter_map(|v| Release::parse(v)).collect()
    }
}

/// ECS in memory: each cluster's services with their deployments (newest first), and the
/// image each task definition gives each container. Counts DescribeServices calls.
#[derive(Default)]
pub struct FakeEcs {
    pub services: Mutex<BTreeMap<(String, String), Vec<Deployment>>>,
    pub images: Mutex<BTreeMap<(String, String), String>>,
    pub describe_calls: Mutex<usize>,
}

impl FakeEcs {
    /// `service` in `cluster` runs `deployments` (newest first).
    pub fn set(&self, cluster: &str, service: &str, deployments: Vec<Deployment>) {
        self.services.lock().expect("lock").insert((cluster.to_owned(), service.to_owned()), deployments);
    }

    /// `task_definition` gives `container` the image `image`.
    pub fn image(&self, task_definition: &str, container: &str, image: &str) {
        self.images.lock().expect("lock").insert((task_definition.to_owned(), container.to_owned()), image.to_owned());
    }

    pub fn describe_calls(&self) -> usize {
        *self.describe_calls.lock().expect("lock")
    }
}

/// One deployment as ECS lists it.
pub fn deployment(
    id: &str,
    primary: bool,
    task_definition: &str,
    state: Option<RolloutState>,
    reason: Option<&str>,
) -> Deployment {
    Deployment {
        id: id.to_owned(),
        status: if primary { "PRIMARY" } else { "ACTIVE" }.to_owned(),
        task_definition: task_definition.to_owned(),
        rollout_state: state,
        rollout_state_reason: reason.map(str::to_owned),
        updated_at: Some(DateTime::from_secs(2_000)),
    }
}

impl EcsServices for FakeEcs {
    async fn describe_services(
        &self,
        cluster: &str,
        services: &[String],
    ) -> Result<BTreeMap<String, ServiceState>, AwsError> {
        *self.describe_calls.lock().expect("lock") += 1;
        let known = self.services.lock().expect("lock");
        Ok(services
            .iter()
            .map(|name| {
                let state = match known.get(&(cluster.to_owned(), name.clone())) {
                    Some(deployments) => ServiceState::Found { deployments: deployments.clone() },
                    None => ServiceState::Missing { reason: "MISSING".to_owned() },
                };
                (name.clone(), state)
            })
            .collect())
    }

    async fn container_image(&self, task_definition: &str, container: &str) -> Result<Option<String>, AwsError> {
        Ok(self.images.lock().expect("lock").get(&(task_definition.to_owned(), container.to_owned())).cloned())
    }
}

/// Images by (repository, tag) with their push time in seconds.
#[derive(Default)]
pub struct FakeRegistry {
    pub images: BTreeMap<(String, String), (String, i64)>,
    pub lookups: Mutex<Vec<String>>,
    pub fail: bool,
}

impl FakeRegistry {
    pub fn with(images: &[(&str, &str, &str, i64)]) -> Self {
        let images = images
            .iter()
            .map(|(repo, tag, digest, at)| (((*repo).to_owned(), (*tag).to_owned()), ((*digest).to_owned(), *at)))
            .collect();
        Self { images, ..Self::default() }
    }

    pub fn lookups(&self) -> Vec<String> {
        self.lookups.lock().expect("lock").clone()
    }
}

impl ImageRegistry for FakeRegistry {
    /// Two images a page, so the sweep's paging is exercised.
    async fn tagged_images(&self, repository: &str, next_token: Option<String>) -> Result<ImagePage, AwsError> {
        if self.fail {
            return Err(denied("DescribeImages", repository));
        }
        let mut by_digest: BTreeMap<&str, ListedImage> = BTreeMap::new();
        for ((repo, tag), (digest, at)) in &self.images {
            if repo == repository {
                let image = by_digest.entry(digest).or_insert_with(|| ListedImage {
                    digest: digest.clone(),
                    tags: Vec::new(),
                    pushed_at: Some(DateTime::from_secs(*at)),
                });
                image.tags.push(tag.clone());
            }
        }
        let start: usize = next_token.map_or(Ok(0), |t| t.parse()).map_err(|_| denied("DescribeImages", "token"))?;
        let images: Vec<ListedImage> = by_digest.into_values().collect();
        let end = (start + 2).min(images.len());
        let next_token = (end < images.len()).then(|| end.to_string());
        Ok(ImagePage { images: images[start..end].to_vec(), next_token })
    }

    async fn image_by_tag(&self, repository: &str, tag: &str) -> Result<Option<ImageFacts>, AwsError> {
        self.lookups.lock().expect("lock").push(format!("{repository}:{tag}"));
        if self.fail {
            return Err(denied("DescribeImages", repository));
        }
        Ok(self
            .images
            .get(&(repository.to_owned(), tag.to_owned()))
            .map(|(digest, at)| ImageFacts { digest: digest.clone(), pushed_at: Some(DateTime::from_secs(*at)) }))
    }
}

/// How the fake CodeBuild refuses a start with `AccountLimitExceededException`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The project's concurrent build limit: a build started by hand a moment ago runs.
    ProjectLimit,
    /// The account's quota of running builds: nothing of the project runs.
    AccountQuota,
}

/// A CodeBuild stand-in: builds newest first, listed `page_size` ids a page; a started build is
/// IN_PROGRESS until `finish`; a repeated idempotency token returns the same build, or with
/// other parameters CodeBuild's parameter-mismatch error.
pub struct FakeBuilds {
    pub builds: Mutex<BTreeMap<String, Vec<BuildRecord>>>,
    pub starts: Mutex<Vec<StartBuild>>,
    pub refusal: Option<Refusal>,
    pub page_size: usize,
    /// Every read: `list PROJECT` per ListBuildsForProject page, `get N` per BatchGetBuilds of N ids.
    pub reads: Mutex<Vec<String>>,
    /// Idempotency token → (the request, the build it started).
    pub tokens: Mutex<BTreeMap<String, (StartBuild, String)>>,
}

impl Default for FakeBuilds {
    fn default() -> Self {
        Self {
            builds: Mutex::default(),
            starts: Mutex::default(),
            refusal: None,
            page_size: 100,
            reads: Mutex::default(),
            tokens: Mutex::default(),
        }
    }
}

impl FakeBuilds {
    pub fn with(project: &str, builds: Vec<BuildRecord>) -> Self {
        let fake = Self::default();
        fake.builds.lock().expect("lock").insert(project.to_owned(), builds);
        fake
    }

    pub fn starts(&self) -> Vec<StartBuild> {
        self.starts.lock().expect("lock").clone()
    }

    pub fn reads(&self) -> Vec<String> {
        self.reads.lock().expect("lock").clone()
    }

    /// Ends the newest build of `project` with `status`.
    pub fn finish(&self, project: &str, status: BuildStatus) -> String {
        let mut builds = self.builds.lock().expect("lock");
        let newest = builds.get_mut(project).and_then(|b| b.first_mut()).expect("a build to finish");
        newest.status = status;
        newest.id.clone()
    }

    /// `n` finished builds started by hand, on top of the project's builds.
    pub fn manual_builds(&self, project: &str, n: usize) {
        let mut builds = self.builds.lock().expect("lock");
        let list = builds.entry(project.to_owned()).or_default();
        for _ in 0..n {
            let id = format!("{project}:manual-{}", list.len() + 1);
            list.insert(
                0,
                BuildRecord { id, status: BuildStatus::Succeeded, fingerprint: None, started: None, ended: None },
            );
        }
    }
}

pub fn record(id: &str, status: BuildStatus, fingerprint: Option<&str>) -> BuildRecord {
    BuildRecord { id: id.to_owned(), status, fingerprint: fingerprint.map(str::to_owned), started: None, ended: None }
}

impl BuildRunner for FakeBuilds {
    async fn list_build_ids(&self, project: &str, next: Option<&str>) -> Result<BuildIdPage, AwsError> {
        self.reads.lock().expect("lock").push(format!("list {project}"));
        let builds = self.builds.lock().expect("lock");
        let all: Vec<String> =
            builds.get(project).map(|b| b.iter().map(|b| b.id.clone()).collect()).unwrap_or_default();
        let start: usize = next.map_or(0, |token| token.parse().expect("a token this fake gave"));
        let end = (start + self.page_size).min(all.len());
        Ok(BuildIdPage { ids: all[start..end].to_vec(), next: (end < all.len()).then(|| end.to_string()) })
    }

    async fn get_builds(&self, project: &str, ids: &[String]) -> Result<Vec<BuildRecord>, AwsError> {
        assert!(ids.len() <= 100, "BatchGetBuilds takes at most 100 ids, asked {}", ids.len());
        self.reads.lock().expect("lock").push(format!("get {}", ids.len()));
        let builds = self.builds.lock().expect("lock");
        let all = builds.get(project).cloned().unwrap_or_default();
        Ok(ids.iter().filter_map(|id| all.iter().find(|b| &b.id == id).cloned()).collect())
    }

    async fn start_build(&self, request: &StartBuild) -> Result<StartOutcome, AwsError> {
        if let Some((earlier, build_id)) = self.tokens.lock().expect("lock").get(&request.idempotency_token) {
            if earlier != request {
                return Err(AwsError {
                    operation: "StartBuild",
                    resource: request.project.clone(),
                    code: Some("InvalidInputException".into()),
                    message: "Idempotency token was used with a different request: parameter mismatch".into(),
                });
            }
            return Ok(StartOutcome::Started { build_id: build_id.clone() });
        }
        let mut builds = self.builds.lock().expect("lock");
        let list = builds.entry(request.project.clone()).or_default();
        match self.refusal {
            Some(Refusal::ProjectLimit) => {
                let id = format!("{}:manual-{}", request.project, list.len() + 1);
                list.insert(
                    0,
                    BuildRecord { id, status: BuildStatus::InProgress, fingerprint: None, started: None, ended: None },
                );
                return Ok(StartOutcome::LimitReached {
                    message: "Cannot have more than 1 builds in queue for the account".into(),
                });
            }
            Some(Refusal::AccountQuota) => {
                return Ok(StartOutcome::LimitReached {
                    message: "Cannot have more than 0 builds in queue for the account".into(),
                });
            }
            None => {}
        }
        self.starts.lock().expect("lock").push(request.clone());
        let fingerprint = request.environment.iter().find(|(k, _)| k == FINGERPRINT_VARIABLE).map(|(_, v)| v.clone());
        let id = format!("{}:{}", request.project, list.len() + 1);
        list.insert(
            0,
            BuildRecord { id: id.clone(), status: BuildStatus::InProgress, fingerprint, started: None, ended: None },
        );
        self.tokens.lock().expect("lock").insert(request.idempotency_token.clone(), (request.clone(), id.clone()));
        Ok(StartOutcome::Started { build_id: id })
    }
}

impl FakeParameters {
    /// Simulates a PutParameter by someone else: the value and the version change.
    pub fn bump(&self, name: &str, value: &str) {
        self.store(name, value, None);
    }
}

/// CloudWatch alarms in memory: each alarm's state, when it last changed, and its changes.
#[derive(Default)]
pub struct FakeAlarms {
    pub alarms: Mutex<BTreeMap<String, (AlarmStatus, Vec<AlarmTransition>)>>,
}

impl FakeAlarms {
    /// `name` changes to `state` at `at` (seconds), remembered as a history item.
    pub fn set(&self, name: &str, state: AlarmState, at: i64) {
        let mut alarms = self.alarms.lock().expect("lock");
        let at = DateTime::from_secs(at);
        let entry = alarms.entry(name.to_owned()).or_insert_with(|| {
            let status =
                AlarmStatus { name: name.to_owned(), state: AlarmState::InsufficientData, transitioned_at: None };
            (status, Vec::new())
        });
        if entry.0.state != state {
            entry.1.push(AlarmTransition { at, from: entry.0.state, to: state });
            entry.0.state = state;
            entry.0.transitioned_at = Some(at);
        }
    }
}

impl Alarms for FakeAlarms {
    async fn describe_alarms(&self, names: &[String]) -> Result<Vec<AlarmStatus>, AwsError> {
        let alarms = self.alarms.lock().expect("lock");
        Ok(names.iter().filter_map(|n| alarms.get(n).map(|(status, _)| status.clone())).collect())
    }

    async fn state_changes(&self, name: &str, since: DateTime) -> Result<Vec<AlarmTransition>, AwsError> {
        let alarms = self.alarms.lock().expect("lock");
        let changes = alarms.get(name).map(|(_, changes)| changes.clone()).unwrap_or_default();
        Ok(changes.into_iter().filter(|c| c.at.secs() >= since.secs()).collect())
    }
}

impl FakeParameters {
    /// `environment` verified `service` at `tag`, at `at` (seconds): a release record as
    /// trigger-deploy writes it. Returns its fingerprint.
    pub fn verify(&self, environment: &str, service: &str, tag: &str, at: i64) -> String {
        self.verify_release(environment, &[(service, tag)], at)
    }

    /// `environment` verified each `(service, tag)` together, at `at` (seconds).
    pub fn verify_release(&self, environment: &str, tags: &[(&str, &str)], at: i64) -> String {
        let state: Vec<String> =
            tags.iter().map(|(service, tag)| format!("/{service}/{environment}/docker-image-tag=1@{tag}")).collect();
        let tag = tags.iter().map(|(_, tag)| *tag).collect::<Vec<_>>().join("+");
        let release = Release {
            fingerprint: state.join(","),
            tags: tags.iter().map(|(service, tag)| ((*service).to_owned(), (*tag).to_owned())).collect(),
            digests: BTreeMap::new(),
            build: format!("tagrelay-{environment}:{tag}"),
            verified_at: tagrelay::timestamp::format(DateTime::from_secs(at)),
        };
        self.bump(&format!("/tagrelay/{environment}/verified"), &release.document());
        release.fingerprint
    }
}
