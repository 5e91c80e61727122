//! trigger-deploy's handler with the real SDK adapters against the local AWS: the newest
//! tagrelay build behind more than a page of manual builds.

use std::time::Duration;

use serde_json::{json, Value};
use tagrelay::aws::codebuild::CodeBuildRunner;
use tagrelay::aws::ssm::SsmParameterStore;
use tagrelay::aws::ParameterStore;
use tagrelay::config::Config;
use tagrelay::deploy::build::BuildStatus;
use tagrelay::deploy::fingerprint::fingerprint;
use tagrelay::deploy::handler::Decision;
use tagrelay::deploy::history::{deploy_history, newest_builds};
use tagrelay::deploy::Deployer;
use tagrelay_tests::local_aws::{create_codebuild_project, LocalAws};

const DEV: &str = "tagrelay-dev";
const API: &str = "/my-api/dev/docker-image-tag";

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

fn scheduled() -> Value {
    json!({
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-28T08:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/tagrelay-sweep"], "detail": {}
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
    ssm.put_parameter()
        .name(API)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .expect("PutParameter");
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
    let d = Deployer::new(config(), store.clone(), runner.clone());
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
    let stored = store.get_parameters(&[API.to_owned()]).await.expect("read");
    let current = fingerprint(&stored.into_iter().map(|(name, p)| (name, p.version)).collect());
    assert_eq!(deployed.fingerprint.as_deref(), Some(current.as_str()));

    // The manual build's end event starts no needless first run; the sweep finds it in sync.
    for event in [build_ended(&last_manual), scheduled()] {
        let summary = d.handle(&event).await.expect("reconciled");
        assert_eq!(summary.environments[0].decision, Decision::UpToDate { build: deployed.id.clone() });
    }
    // A lost change is caught by the sweep behind them.
    put(&ssm, "1044").await;
    let summary = d.handle(&scheduled()).await.expect("reconciled");
    assert!(matches!(summary.environments[0].decision, Decision::Start { .. }), "{summary:?}");
}
