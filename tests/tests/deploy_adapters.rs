//! trigger-deploy's handler with the real SDK adapters against the local AWS: racing reconciles
//! of one state, and the newest tagrelay build behind more than a page of manual builds.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tagrelay::aws::codebuild::CodeBuildRunner;
use tagrelay::aws::ecr::EcrImageRegistry;
use tagrelay::aws::ecs::EcsServiceReader;
use tagrelay::aws::ssm::SsmParameterStore;
use tagrelay::config::Config;
use tagrelay::deploy::fingerprint::fingerprint;
use tagrelay::deploy::history::{deploy_history, newest_builds};
use tagrelay::deploy::verify::VerifiedBy;
use tagrelay::deploy::Deployer;
use tagrelay::deploy::Outcome;
use tagrelay::handler::Handler;
use tagrelay::ports::{AwsError, BuildIdPage, BuildRunner, ParameterStore, StartBuild, StartOutcome};
use tagrelay::ports::{BuildRecord, BuildStatus};
use tagrelay_testbed::local_aws::{create_codebuild_project, put_parameter, LocalAws};
use tagrelay_tests::events::scheduled;
use tokio::sync::Barrier;

const DEV: &str = "tagrelay-dev";
const API: &str = "/my-api/dev/docker-image-tag";

/// The deployer the function wires, with `builds` for CodeBuild (the real adapter or a wrapper).
fn deployer<B: BuildRunner>(
    sdk: &aws_config::SdkConfig,
    parameters: SsmParameterStore,
    builds: B,
) -> Deployer<SsmParameterStore, B, EcsServiceReader, EcrImageRegistry> {
    Deployer::new(
        config(),
        parameters,
        builds,
        EcsServiceReader::from_sdk_config(sdk),
        EcrImageRegistry::from_sdk_config(sdk),
    )
}

fn config() -> Config {
    let doc = json!({ "environments": { "dev": {} }, "services": { "my-api": { "deploy_on_push": ["dev"] } } });
    Config::from_json(&doc.to_string()).expect("valid config")
}

fn parameter_change() -> Value {
    json!({
        "version": "0", "id": "6a7e4feb-b491-4cf7-a9f1-bf3703497718",
        "detail-type": "Parameter Store Change", "source": "aws.ssm",
        "account": "123456789012", "time": "2026-11-28T08:00:00Z", "region": "us-east-1",
        "resources": [format!("arn:aws:ssm:us-east-1:123456789012:parameter{API}")],
        "detail": { "operation": "Update", "name": API, "type": "String" }
    })
}

fn build_ended(build_id: &str) -> Value {
    json!({
        "version": "0", "id": "bfdc1220-60ff-44bd-ae7b-1e6b2e9a38d9",
        "detail-type": "CodeBuild Build State Change", "source": "aws.codebuild",
        "account": "123456789012", "time": "2026-11-28T08:00:00Z", "region": "us-east-1",
        "resources": [], "detail": { "build-status": "SUCCEEDED", "project-name": DEV, "build-id": build_id }
    })
}

async fn put(ssm: &aws_sdk_ssm::Client, value: &str) {
    put_parameter(ssm, API, value).await.expect("PutParameter");
}

async fn wait_idle(runner: &CodeBuildRunner) {
    for _ in 0..100 {
        let builds = newest_builds(runner, DEV, 100).await.expect("builds");
        if builds.iter().all(|b| b.status != BuildStatus::InProgress) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("a build still runs");
}

/// The real adapter, except that StartBuild waits until both racers got there: both reconciles
/// read the same builds before either start lands, every time.
struct Rendezvous {
    inner: CodeBuildRunner,
    barrier: Arc<Barrier>,
}

impl BuildRunner for Rendezvous {
    async fn list_build_ids(&self, project: &str, next: Option<&str>) -> Result<BuildIdPage, AwsError> {
        self.inner.list_build_ids(project, next).await
    }

    async fn get_builds(&self, project: &str, ids: &[String]) -> Result<Vec<BuildRecord>, AwsError> {
        self.inner.get_builds(project, ids).await
    }

    async fn start_build(&self, request: &StartBuild) -> Result<StartOutcome, AwsError> {
        // Bounded: a racer that decided not to start must not hang the other.
        let _ = tokio::time::timeout(Duration::from_secs(10), self.barrier.wait()).await;
        self.inner.start_build(request).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_and_a_sweep_racing_on_the_same_state_start_one_build_and_neither_fails() {
    let aws = LocalAws::start().await.expect("local AWS");
    let sdk = aws.sdk_config().await;
    create_codebuild_project(&aws_sdk_codebuild::Client::new(&sdk), DEV, Some(1)).await.expect("project");
    aws.set_build_behaviour(DEV, Duration::from_millis(300), "SUCCEEDED").await.expect("behaviour");
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let runner = CodeBuildRunner::from_sdk_config(&sdk);

    // A baseline, so that the sweep is behind too once the parameter changes.
    put(&ssm, "1").await;
    let first = deployer(&sdk, SsmParameterStore::from_sdk_config(&sdk), runner.clone());
    first.handle(&parameter_change()).await.expect("the first run");
    wait_idle(&runner).await;
    put(&ssm, "2").await;

    let barrier = Arc::new(Barrier::new(2));
    let racer = || {
        let builds = Rendezvous { inner: runner.clone(), barrier: barrier.clone() };
        deployer(&sdk, SsmParameterStore::from_sdk_config(&sdk), builds)
    };
    let (change, sweep) = (racer(), racer());
    let (change_event, sweep_event) = (parameter_change(), scheduled("sweep-1"));
    let (by_change, by_sweep) = tokio::join!(change.handle(&change_event), sweep.handle(&sweep_event));

    let by_change = by_change.expect("no parameter mismatch, no error");
    let by_sweep = by_sweep.expect("no parameter mismatch, no error");
    let (a, b) = (&by_change.environments[0].outcome, &by_sweep.environments[0].outcome);
    assert!(matches!(a, Outcome::Start { .. }), "{a:?}");
    assert_eq!(a, b, "both got the one build");
    let builds = newest_builds(&runner, DEV, 100).await.expect("builds");
    assert_eq!(builds.len(), 2, "the baseline and exactly one more: {builds:?}");
    assert_eq!(Some(builds[0].id.as_str()), a.build());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_tagrelay_build_is_found_behind_more_than_a_page_of_manual_builds() {
    let aws = LocalAws::start().await.expect("local AWS");
    let sdk = aws.sdk_config().await;
    let client = aws_sdk_codebuild::Client::new(&sdk);
    // No limit, builds end at once: 105 manual builds are started quickly.
    create_codebuild_project(&client, DEV, None).await.expect("project");
    aws.set_build_behaviour(DEV, Duration::ZERO, "SUCCEEDED").await.expect("behaviour");
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let store = SsmParameterStore::from_sdk_config(&sdk);
    let runner = CodeBuildRunner::from_sdk_config(&sdk);

    put(&ssm, "1043").await;
    let d = deployer(&sdk, store.clone(), runner.clone());
    d.handle(&parameter_change()).await.expect("the first run");
    wait_idle(&runner).await;
    let mut last_manual = String::new();
    for _ in 0..105 {
        let started = client.start_build().project_name(DEV).send().await.expect("a manual StartBuild");
        last_manual = started.build_value().and_then(|b| b.id()).unwrap_or_default().to_owned();
    }
    wait_idle(&runner).await;

    let history = deploy_history(&runner, DEV).await.expect("read");
    assert_eq!(history.builds.len(), 106, "paged past the first 100 ids");
    assert!(!history.bound_reached);
    let deployed = history.builds.last().expect("the tagrelay build");
    let current = fingerprint(&store.get_parameters(&[API.to_owned()]).await.expect("read"));
    assert_eq!(deployed.fingerprint.as_deref(), Some(current.as_str()));

    // The manual build's end event starts no needless first run: it finds the deployed state
    // (and records it as the release, the environment has no cluster); the sweep finds it in sync.
    let summary = d.handle(&build_ended(&last_manual)).await.expect("reconciled");
    assert_eq!(
        summary.environments[0].outcome,
        Outcome::Verified { build: deployed.id.clone(), basis: VerifiedBy::BuildSucceeded, version: 1 }
    );
    let summary = d.handle(&scheduled("sweep-1")).await.expect("reconciled");
    assert_eq!(summary.environments[0].outcome, Outcome::UpToDate { build: deployed.id.clone() });
    // A lost change is caught by the sweep behind them.
    put(&ssm, "1044").await;
    let summary = d.handle(&scheduled("sweep-1")).await.expect("reconciled");
    assert!(matches!(summary.environments[0].outcome, Outcome::Start { .. }), "{summary:?}");
}
