//! The trigger-deploy handler over in-memory ports: bursts coalesce into one follow-up run,
//! duplicates start nothing, a failed state is held, the schedule needs a baseline or a recorded
//! change, manual builds do not hide the baseline, a refused start is told apart.

mod support;

use serde_json::{json, Value};
use support::{config, record, scheduled, FakeBuilds, FakeEcs, FakeParameters, FakeRegistry, Refusal};
use tagrelay::deploy::fingerprint::of_state;
use tagrelay::deploy::manifest::find;
use tagrelay::deploy::reconcile::{Decision, StartReason, Trigger};
use tagrelay::deploy::verify::VerifiedBy;
use tagrelay::deploy::{DeployError, Deployer, ReconcileError};
use tagrelay::deploy::{IgnoreReason, Outcome};
use tagrelay::handler::Handler;
use tagrelay::ports::BuildStatus::{self, *};

const API: &str = "/my-api/dev/docker-image-tag";
const WORKER: &str = "/worker/dev/docker-image-tag";
const DEV: &str = "tagrelay-dev";

fn deploy_config() -> tagrelay::config::Config {
    config(json!({
        "environments": { "dev": {}, "prod": {} },
        "services": { "my-api": { "deploy_on_push": ["dev"] }, "worker": { "deploy_on_push": ["dev"] } }
    }))
}

fn ssm_change(name: &str, operation: &str) -> Value {
    json!({
        "version": "0", "id": "6a7e4feb-b491-4cf7-a9f1-bf3703497718",
        "detail-type": "Parameter Store Change", "source": "aws.ssm",
        "account": "123456789012", "time": "2026-11-28T08:00:00Z", "region": "us-east-1",
        "resources": [format!("arn:aws:ssm:us-east-1:123456789012:parameter{name}")],
        "detail": { "operation": operation, "name": name, "type": "String" }
    })
}

fn build_change(project: &str, build_id: &str, status: BuildStatus) -> Value {
    json!({
        "version": "0", "id": "bfdc1220-60ff-44bd-ae7b-1e6b2e9a38d9",
        "detail-type": "CodeBuild Build State Change", "source": "aws.codebuild",
        "account": "123456789012", "time": "2026-11-28T08:00:00Z", "region": "us-east-1",
        "resources": [], "detail": { "build-status": status.as_str(), "project-name": project, "build-id": build_id }
    })
}

type TestDeployer = Deployer<FakeParameters, FakeBuilds, FakeEcs, FakeRegistry>;

fn deployer(params: FakeParameters, builds: FakeBuilds) -> TestDeployer {
    Deployer::new(deploy_config(), params, builds, FakeEcs::default(), FakeRegistry::default())
}

fn env_var<'a>(start: &'a tagrelay::ports::StartBuild, name: &str) -> Option<&'a str> {
    start.environment.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn a_parameter_change_starts_one_fingerprinted_run_for_its_environment() {
    let params = FakeParameters::with(&[(API, "1043"), (WORKER, "abc")]);
    let d = deployer(params, FakeBuilds::default());

    let summary = d.handle(&ssm_change(API, "Update")).await.expect("reconciled");

    let starts = d.ports().1.starts();
    assert_eq!(starts.len(), 1);
    let start = &starts[0];
    assert_eq!(start.project, DEV);
    // SHA-256 of the state: name=version@(first 8 hex digits of the value's SHA-256), sorted.
    let fingerprint = of_state(&format!("{API}=1@c0aa4a0b,{WORKER}=1@ba7816bf"));
    assert_eq!(env_var(start, "TAGRELAY_FINGERPRINT"), Some(fingerprint.as_str()));
    // The run manifest names every value at its version, under the description the build finds.
    let history = d.ports().0.history.lock().expect("lock").get("/tagrelay/dev/manifest").cloned().unwrap_or_default();
    let manifest = find(&history, &fingerprint).expect("the manifest of the run");
    let values: Vec<(&str, i64, &str)> =
        manifest.parameters.iter().map(|(n, e)| (n.as_str(), e.version, e.value.as_str())).collect();
    assert_eq!(values, [(API, 1, "1043"), (WORKER, 1, "abc")]);
    assert_eq!(manifest.environment, "dev");
    assert_eq!(env_var(start, "TAGRELAY_ENVIRONMENT"), Some("dev"));
    let names: Vec<&str> = start.environment.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["TAGRELAY_FINGERPRINT", "TAGRELAY_ENVIRONMENT"], "nothing that differs per trigger");
    assert_eq!(start.idempotency_token.len(), 32);

    assert_eq!(summary.environments.len(), 1, "only dev is reconciled");
    assert_eq!(summary.environments[0].fingerprint, fingerprint);
    assert_eq!(
        summary.environments[0].outcome,
        Outcome::Start { reason: StartReason::FirstRun, build: format!("{DEV}:1") }
    );
    let body = serde_json::to_value(&summary).expect("serialisable");
    assert_eq!(body["environments"][0]["decision"], "start");
    assert_eq!(body["environments"][0]["reason"], "first_run");
}

#[tokio::test]
async fn a_queued_change_the_newest_run_already_has_is_decided_in_one_read() {
    let params = FakeParameters::with(&[(API, "1"), (WORKER, "a")]);
    let d = deployer(params, FakeBuilds::default());
    d.handle(&ssm_change(API, "Update")).await.expect("first run");
    d.ports().0.bump(API, "2");
    let finished = d.ports().1.finish(DEV, Succeeded);
    d.handle(&build_change(DEV, &finished, Succeeded)).await.expect("the follow-up with API at 2");
    d.ports().1.finish(DEV, Succeeded);

    // API's event was queued behind the others (Lambda hands them over one at a time): run 2
    // deployed API at version 2 already. One read (API and the manifest's head), not every
    // parameter of the environment; nothing starts.
    *d.ports().0.get_calls.lock().expect("lock") = 0;
    let summary = d.handle(&ssm_change(API, "Update")).await.expect("reconciled");
    assert_eq!(summary.environments[0].outcome, Outcome::Included { build: format!("{DEV}:2") });
    assert_eq!(*d.ports().0.get_calls.lock().expect("lock"), 1);
    let body = serde_json::to_value(&summary).expect("serialisable");
    assert_eq!(body["environments"][0]["decision"], "included");

    // A change the run does not have is reconciled in full, and starts the next run.
    d.ports().0.bump(WORKER, "b");
    let summary = d.handle(&ssm_change(WORKER, "Update")).await.expect("reconciled");
    assert_eq!(
        summary.environments[0].outcome,
        Outcome::Start { reason: StartReason::Changed, build: format!("{DEV}:3") }
    );
}

#[tokio::test]
async fn a_burst_during_a_run_yields_exactly_one_follow_up_with_the_final_state() {
    let params = FakeParameters::with(&[(API, "1"), (WORKER, "a")]);
    let d = deployer(params, FakeBuilds::default());
    d.handle(&ssm_change(API, "Update")).await.expect("first run");

    // Five more pushes land while the first run holds the state lock: each is decided from the
    // builds alone, without reading the parameters (at 1,000 services, 100 calls each).
    let reads = *d.ports().0.get_calls.lock().expect("lock");
    for (name, value) in [(API, "2"), (WORKER, "b"), (API, "3"), (API, "4"), (WORKER, "c")] {
        d.ports().0.bump(name, value);
        let summary = d.handle(&ssm_change(name, "Update")).await.expect("reconciled");
        assert_eq!(summary.environments[0].outcome, Outcome::Wait { build: format!("{DEV}:1") });
    }
    assert_eq!(*d.ports().0.get_calls.lock().expect("lock"), reads, "no parameter read while a build runs");
    assert_eq!(d.ports().1.starts().len(), 1, "no run collides with the running one");

    let finished = d.ports().1.finish(DEV, Succeeded);
    let summary = d.handle(&build_change(DEV, &finished, Succeeded)).await.expect("reconciled");
    assert_eq!(
        summary.environments[0].outcome,
        Outcome::Start { reason: StartReason::Changed, build: format!("{DEV}:2") }
    );

    let starts = d.ports().1.starts();
    assert_eq!(starts.len(), 2, "exactly one follow-up run");
    assert_eq!(
        env_var(&starts[1], "TAGRELAY_FINGERPRINT"),
        Some(of_state(&format!("{API}=4@4b227777,{WORKER}=3@2e7d2c03")).as_str())
    );

    // When it ends, the environment is verified (no cluster: the build's success is the
    // release, recorded once), then up to date, and nothing more starts.
    let finished = d.ports().1.finish(DEV, Succeeded);
    let summary = d.handle(&build_change(DEV, &finished, Succeeded)).await.expect("reconciled");
    let verified = Outcome::Verified { build: format!("{DEV}:2"), basis: VerifiedBy::BuildSucceeded, version: 1 };
    assert_eq!(summary.environments[0].outcome, verified);
    let summary = d.handle(&build_change(DEV, &finished, Succeeded)).await.expect("a duplicate");
    assert_eq!(summary.environments[0].outcome, Outcome::UpToDate { build: format!("{DEV}:2") });
    assert_eq!(d.ports().1.starts().len(), 2);
    let releases = d.ports().0.releases("dev");
    assert_eq!(releases.len(), 1, "one release per fingerprint");
    assert_eq!(releases[0].fingerprint, of_state(&format!("{API}=4@4b227777,{WORKER}=3@2e7d2c03")));
    assert_eq!(releases[0].build, format!("{DEV}:2"));
}

#[tokio::test]
async fn a_duplicate_change_event_starts_nothing() {
    let d = deployer(FakeParameters::with(&[(API, "1")]), FakeBuilds::default());
    d.handle(&ssm_change(API, "Update")).await.expect("first run");
    let finished = d.ports().1.finish(DEV, Succeeded);
    d.handle(&build_change(DEV, &finished, Succeeded)).await.expect("reconciled");

    // The change is in run 1, which deployed it: said so, from one read.
    let summary = d.handle(&ssm_change(API, "Update")).await.expect("reconciled");
    assert_eq!(summary.environments[0].outcome, Outcome::Included { build: format!("{DEV}:1") });
    let summary = d.handle(&scheduled()).await.expect("reconciled");
    let dev = summary.environments.iter().find(|e| e.environment == "dev").expect("dev");
    assert_eq!(dev.outcome, Outcome::UpToDate { build: format!("{DEV}:1") });
    assert_eq!(d.ports().1.starts().len(), 1);
}

#[tokio::test]
async fn a_failed_state_is_held_until_the_next_change() {
    let d = deployer(FakeParameters::with(&[(API, "1")]), FakeBuilds::default());
    d.handle(&ssm_change(API, "Update")).await.expect("first run");
    let failed = d.ports().1.finish(DEV, Failed);

    for event in [build_change(DEV, &failed, Failed), scheduled()] {
        let summary = d.handle(&event).await.expect("reconciled");
        let dev = summary.environments.iter().find(|e| e.environment == "dev").expect("dev");
        assert_eq!(dev.outcome, Outcome::Hold { build: failed.clone(), status: Failed });
    }
    // The change's own event, again: it is in the failed run, nothing new to start.
    let summary = d.handle(&ssm_change(API, "Update")).await.expect("reconciled");
    assert_eq!(summary.environments[0].outcome, Outcome::Included { build: failed.clone() });
    assert_eq!(d.ports().1.starts().len(), 1, "a broken change is not retried in a loop");

    d.ports().0.bump(API, "2");
    let summary = d.handle(&ssm_change(API, "Update")).await.expect("reconciled");
    assert!(matches!(summary.environments[0].outcome, Outcome::Start { reason: StartReason::Changed, .. }));
}

#[tokio::test]
async fn observing_reads_what_the_handler_decides_on_and_starts_nothing() {
    let d = deployer(FakeParameters::with(&[(API, "1"), (WORKER, "7")]), FakeBuilds::default());
    d.handle(&ssm_change(API, "Update")).await.expect("first run");
    let failed = d.ports().1.finish(DEV, Failed);
    let config = deploy_config();
    let dev = config.environment("dev").expect("dev");
    let builds = d.ports().1;

    let observed = d.observe(dev, &Trigger::Schedule).await.expect("observed");
    assert_eq!(observed.decision, Decision::Hold { failed_build: failed.clone(), status: Failed });
    assert_eq!(observed.parameters.keys().collect::<Vec<_>>(), [API, WORKER]);
    assert_eq!(observed.history.builds.len(), 1);
    let decided = d.reconcile(dev, &Trigger::Schedule).await.expect("reconciled");
    assert_eq!(decided.outcome, Outcome::Hold { build: failed, status: Failed });
    assert_eq!(decided.fingerprint, observed.desired.fingerprint);

    let retry = Trigger::Retry { by: "ana".into() };
    let observed = d.observe(dev, &retry).await.expect("observed");
    assert!(matches!(observed.decision, Decision::Start { reason: StartReason::Retry, .. }));
    assert_eq!(builds.starts().len(), 1, "observing starts nothing, whatever it decides");
}

#[tokio::test]
async fn a_stopped_run_is_started_again_with_a_new_idempotency_token() {
    let d = deployer(FakeParameters::with(&[(API, "1")]), FakeBuilds::default());
    d.handle(&ssm_change(API, "Update")).await.expect("first run");
    let stopped = d.ports().1.finish(DEV, Stopped);
    let summary = d.handle(&build_change(DEV, &stopped, Stopped)).await.expect("reconciled");
    assert!(matches!(summary.environments[0].outcome, Outcome::Start { reason: StartReason::PreviousStopped, .. }));
    let starts = d.ports().1.starts();
    assert_eq!(starts.len(), 2);
    assert_ne!(starts[0].idempotency_token, starts[1].idempotency_token);
}

#[tokio::test]
async fn the_schedule_starts_no_first_run_until_a_change_is_recorded_and_catches_a_lost_event() {
    // As infra/ creates them: the placeholder at version 1.
    let params = FakeParameters::with(&[(API, "initial"), ("/my-api/prod/docker-image-tag", "initial")]);
    let d = deployer(params, FakeBuilds::with(DEV, vec![record("manual:1", Succeeded, None)]));
    let summary = d.handle(&scheduled()).await.expect("reconciled");
    let decisions: Vec<_> = summary.environments.iter().map(|e| (e.environment.as_str(), e.outcome.clone())).collect();
    assert_eq!(decisions, vec![("dev", Outcome::NoBaseline), ("prod", Outcome::NoBaseline)]);
    assert!(d.ports().1.starts().is_empty(), "installing tagrelay runs no Terraform anywhere");

    // A value was written since Terraform created the parameter, and its event was lost (or its
    // start failed): the sweep starts the first run.
    d.ports().0.bump(API, "1043");
    let summary = d.handle(&scheduled()).await.expect("reconciled");
    let dev = summary.environments.iter().find(|e| e.environment == "dev").expect("dev");
    assert!(matches!(dev.outcome, Outcome::Start { reason: StartReason::FirstRun, .. }), "{dev:?}");
    let prod = summary.environments.iter().find(|e| e.environment == "prod").expect("prod");
    assert_eq!(prod.outcome, Outcome::NoBaseline, "prod's parameter is as Terraform created it");

    // Without Terraform-managed parameters (manage_image_tag_parameters = false) the first push
    // creates the parameter at version 1 with its tag: a recorded change too, if its event is lost.
    let d = deployer(FakeParameters::with(&[(API, "1043")]), FakeBuilds::default());
    let summary = d.handle(&scheduled()).await.expect("reconciled");
    let dev = summary.environments.iter().find(|e| e.environment == "dev").expect("dev");
    assert!(matches!(dev.outcome, Outcome::Start { reason: StartReason::FirstRun, .. }), "{dev:?}");

    // dev has a baseline; a change whose event was lost is found by the sweep.
    let fingerprint = format!("{API}=1@6b86b273");
    let builds = FakeBuilds::with(DEV, vec![record(&format!("{DEV}:1"), Succeeded, Some(&fingerprint))]);
    let d = deployer(FakeParameters::with(&[(API, "1")]), builds);
    d.ports().0.bump(API, "2");
    let summary = d.handle(&scheduled()).await.expect("reconciled");
    let dev = summary.environments.iter().find(|e| e.environment == "dev").expect("dev");
    assert!(matches!(dev.outcome, Outcome::Start { reason: StartReason::Changed, .. }), "{dev:?}");
    let prod = summary.environments.iter().find(|e| e.environment == "prod").expect("prod");
    assert_eq!(prod.outcome, Outcome::NothingToDeploy);
}

#[tokio::test]
async fn a_start_refused_by_the_concurrent_build_limit_is_a_wait_for_the_build_that_runs() {
    let builds = FakeBuilds { refusal: Some(Refusal::ProjectLimit), ..FakeBuilds::default() };
    let d = deployer(FakeParameters::with(&[(API, "1")]), builds);
    let summary = d.handle(&ssm_change(API, "Update")).await.expect("not an error");
    // The build someone started between our look and our start.
    assert_eq!(summary.environments[0].outcome, Outcome::Wait { build: format!("{DEV}:manual-1") });
}

#[tokio::test]
async fn a_start_refused_by_the_account_quota_is_an_error_that_names_the_quota() {
    let builds = FakeBuilds { refusal: Some(Refusal::AccountQuota), ..FakeBuilds::default() };
    let d = deployer(FakeParameters::with(&[(API, "1")]), builds);
    let err = d.handle(&ssm_change(API, "Update")).await.expect_err("no build runs: no end event will come");
    let DeployError::Reconcile { failed, .. } = &err else { panic!("{err}") };
    let [ReconcileError::Aws(failed)] = failed.as_slice() else { panic!("one AWS failure: {failed:?}") };
    assert_eq!(failed.code.as_deref(), Some("AccountLimitExceededException"));
    let message = err.to_string();
    for said in [
        "StartBuild tagrelay-dev",
        "Cannot have more than 0 builds in queue for the account",
        "Concurrently running builds",
        "Service Quotas",
    ] {
        assert!(message.contains(said), "{said:?} in {message}");
    }
    let diagnostic = tagrelay::handler::diagnostic(&err);
    assert_eq!(diagnostic.error_type, "AwsError");
}

#[tokio::test]
async fn every_start_build_parameter_is_the_same_for_every_trigger_of_the_same_state() {
    let deployed = format!("{API}=1@6b86b273");
    let setup = || {
        let d = deployer(
            FakeParameters::with(&[(API, "1")]),
            FakeBuilds::with(DEV, vec![record(&format!("{DEV}:1"), Succeeded, Some(&deployed))]),
        );
        d.ports().0.bump(API, "2");
        d
    };
    let mut requests = Vec::new();
    for event in [ssm_change(API, "Update"), scheduled(), build_change(DEV, &format!("{DEV}:1"), Succeeded)] {
        let d = setup();
        d.handle(&event).await.expect("started");
        requests.extend(d.ports().1.starts());
    }
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| *r == requests[0]), "{requests:#?}");
}

#[tokio::test]
async fn a_reconcile_that_does_not_see_the_build_a_racing_one_started_gets_that_build_not_an_error() {
    let deployed = format!("{API}=1@6b86b273");
    let builds = FakeBuilds::with(DEV, vec![record(&format!("{DEV}:1"), Succeeded, Some(&deployed))]);
    let d = deployer(FakeParameters::with(&[(API, "1")]), builds);
    d.ports().0.bump(API, "2");
    let first = d.handle(&ssm_change(API, "Update")).await.expect("started");
    // The racing sweep read the builds before that start landed: it does not see the new build.
    let started = d.ports().1.builds.lock().expect("lock").get_mut(DEV).expect("dev").remove(0);
    let second = d.handle(&scheduled()).await.expect("the same run, not a parameter mismatch");
    let dev = second.environments.iter().find(|e| e.environment == "dev").expect("dev");
    assert_eq!(dev.outcome, first.environments[0].outcome);
    assert_eq!(dev.outcome.build(), Some(started.id.as_str()));
    assert_eq!(d.ports().1.starts().len(), 1, "one build");
}

#[tokio::test]
async fn a_lost_change_is_recovered_behind_a_dozen_manual_builds() {
    let deployed = format!("{API}=1@6b86b273");
    let builds = FakeBuilds {
        page_size: 5,
        ..FakeBuilds::with(DEV, vec![record(&format!("{DEV}:1"), Succeeded, Some(&deployed))])
    };
    builds.manual_builds(DEV, 13);
    let d = deployer(FakeParameters::with(&[(API, "1")]), builds);
    d.ports().0.bump(API, "2");

    let summary = d.handle(&scheduled()).await.expect("reconciled");
    let dev = summary.environments.iter().find(|e| e.environment == "dev").expect("dev");
    assert!(matches!(dev.outcome, Outcome::Start { reason: StartReason::Changed, .. }), "{dev:?}");
    // Paged (5 ids a page here) down to the tagrelay build and no further.
    let reads = d.ports().1.reads();
    assert_eq!(reads.iter().filter(|r| *r == "list tagrelay-dev").count(), 3, "{reads:?}");
}

#[tokio::test]
async fn the_end_of_a_manual_build_starts_nothing_when_the_state_is_deployed() {
    let deployed = format!("{API}=1@6b86b273");
    let builds = FakeBuilds::with(DEV, vec![record(&format!("{DEV}:1"), Succeeded, Some(&deployed))]);
    builds.manual_builds(DEV, 12);
    let d = deployer(FakeParameters::with(&[(API, "1")]), builds);
    let summary = d.handle(&build_change(DEV, &format!("{DEV}:manual-13"), Succeeded)).await.expect("reconciled");
    // The deployed state had no release record yet: it gets one, and nothing starts.
    assert!(
        matches!(&summary.environments[0].outcome, Outcome::Verified { build, .. } if *build == format!("{DEV}:1"))
    );
    let summary = d.handle(&build_change(DEV, &format!("{DEV}:manual-13"), Succeeded)).await.expect("reconciled");
    assert_eq!(summary.environments[0].outcome, Outcome::UpToDate { build: format!("{DEV}:1") });
    assert!(d.ports().1.starts().is_empty(), "no needless first run");
}

#[tokio::test]
async fn a_parameter_deleted_and_created_again_with_another_tag_is_deployed() {
    let d = deployer(FakeParameters::with(&[(API, "1043")]), FakeBuilds::default());
    d.handle(&ssm_change(API, "Create")).await.expect("first run");
    let finished = d.ports().1.finish(DEV, Succeeded);
    d.handle(&build_change(DEV, &finished, Succeeded)).await.expect("reconciled");

    d.ports().0.values.lock().expect("lock").remove(API);
    let deleted = d.handle(&ssm_change(API, "Delete")).await.expect("ignored");
    assert_eq!(deleted.ignored, Some(IgnoreReason::ParameterDeleted));
    d.ports().0.bump(API, "1044"); // created again: version 1, another value
    let summary = d.handle(&ssm_change(API, "Create")).await.expect("reconciled");
    assert!(matches!(summary.environments[0].outcome, Outcome::Start { reason: StartReason::Changed, .. }));
    let starts = d.ports().1.starts();
    assert_eq!(starts.len(), 2);
    assert_eq!(env_var(&starts[1], "TAGRELAY_FINGERPRINT"), Some(of_state(&format!("{API}=1@a0a53112")).as_str()));
}

#[tokio::test]
async fn events_that_reconcile_nothing_say_why() {
    let d = deployer(FakeParameters::with(&[(API, "1")]), FakeBuilds::default());
    let cases = [
        (ssm_change(API, "Delete"), IgnoreReason::ParameterDeleted),
        (ssm_change(API, "LabelParameterVersion"), IgnoreReason::NotAValueChange),
        (ssm_change("/my-api/qa/docker-image-tag", "Update"), IgnoreReason::ParameterNotOurs),
        (ssm_change("/unrelated", "Create"), IgnoreReason::ParameterNotOurs),
        (build_change(DEV, "tagrelay-dev:9", InProgress), IgnoreReason::BuildNotFinished),
        (build_change("someone-elses", "x:1", Succeeded), IgnoreReason::ProjectNotOurs),
    ];
    for (event, reason) in cases {
        let summary = d.handle(&event).await.expect("not an error");
        assert_eq!(summary.ignored, Some(reason));
        assert!(summary.environments.is_empty());
    }
    assert!(d.ports().1.starts().is_empty());
}

#[tokio::test]
async fn an_unknown_event_is_an_error_naming_it() {
    let d = deployer(FakeParameters::default(), FakeBuilds::default());
    let mut event = scheduled();
    event["detail-type"] = json!("ECR Image Action");
    event["source"] = json!("aws.ecr");
    let err = d.handle(&event).await.expect_err("must fail");
    assert!(matches!(err, DeployError::InvalidEvent(_)));
    assert!(err.to_string().contains("detail-type"), "{err}");
}
