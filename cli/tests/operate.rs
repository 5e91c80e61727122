//! Every command against the local AWS, with both release functions running the pipeline
//! behind it (`tagrelay_testbed::system`): what an operator sees, and what changes in AWS.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{tagrelay, Run};
use tagrelay::ports::BuildStatus;
use tagrelay_testbed::local_aws::{create_codebuild_project, push_image};
use tagrelay_testbed::system::LocalSystem;

const SETTLE: Duration = Duration::from_secs(60);
const BUILD: Duration = Duration::from_millis(600);

fn config() -> Value {
    json!({
        "environments": { "dev": {}, "prod": {} },
        "services": { "my-api": { "deploy_on_push": ["dev"], "order": "numeric", "tag_pattern": "^[0-9]+$" } }
    })
}

fn env(system: &LocalSystem) -> Vec<(String, String)> {
    let mut env = system.aws.env();
    env.push(("TAGRELAY_CONFIG".into(), config().to_string()));
    // Who `pin` records in the rollback record (`--by` defaults to it).
    env.push(("USER".into(), "ana".into()));
    env
}

fn run(system: &LocalSystem, args: &[&str]) -> Run {
    tagrelay(&env(system), args)
}

async fn parameter(system: &LocalSystem, name: &str) -> Option<(String, i64)> {
    let found = system.ssm.get_parameter().name(name).send().await.ok()?;
    found.parameter().map(|p| (p.value().unwrap_or_default().to_owned(), p.version()))
}

fn environment<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["environments"]
        .as_array()
        .and_then(|all| all.iter().find(|e| e["environment"] == name))
        .unwrap_or_else(|| panic!("{name} in {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_promote_pin_and_history_on_a_running_pipeline() {
    let system = LocalSystem::start(&config(), BUILD).await.expect("local system");
    push_image(&system.ecr, "my-api", "1041").await.expect("push");
    system.wait_settled(SETTLE).await.expect("settles");
    push_image(&system.ecr, "my-api", "1042").await.expect("push");
    system.wait_settled(SETTLE).await.expect("settles");

    // dev runs 1042 (version 2), deployed; prod has nothing yet.
    let status = run(&system, &["status", "--output", "json"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let status = status.json();
    let dev = environment(&status, "dev");
    assert_eq!(dev["state"], "in_sync");
    assert_eq!(dev["services"][0]["tag"], "1042");
    assert_eq!(dev["services"][0]["version"], 2);
    assert_eq!(dev["newest_build"]["status"], "SUCCEEDED");
    assert_eq!(dev["newest_build"]["deploys_current"], true);
    assert_eq!(dev["services"][0]["deployed"], "1042", "read from the newest run's manifest: {dev}");
    assert_eq!(environment(&status, "prod")["state"], "no_parameters");
    // No ECS here: the build's success is the release, recorded by the reconcile after it.
    assert_eq!(dev["verification"]["state"], "verified", "{dev}");
    assert_eq!(dev["verification"]["recorded"], true, "{dev}");
    assert_eq!(dev["release"]["current"], true, "{dev}");
    assert_eq!(dev["release"]["tags"]["my-api"], "1042", "{dev}");
    assert_eq!(dev["release"]["verified_at"], dev["verification"]["since"], "{dev}");
    assert_eq!(environment(&status, "prod")["release"], Value::Null);

    // dev's releases: one per deployed state, newest first.
    let releases = run(&system, &["releases", "--env", "dev", "--output", "json"]);
    assert_eq!(releases.code, 0, "{}", releases.stderr);
    let listed = releases.json()["releases"].clone();
    let tags: Vec<&str> =
        listed.as_array().expect("releases").iter().filter_map(|r| r["tags"]["my-api"].as_str()).collect();
    assert_eq!(tags, ["1042", "1041"], "{listed}");
    assert_eq!(listed[0]["build"], dev["newest_build"]["id"], "{listed}");
    let table = run(&system, &["releases", "--env", "prod"]);
    assert_eq!(table.code, 0, "none yet is not a problem: {}", table.stderr);
    assert_eq!(table.stdout, "/tagrelay/prod/verified\nno release recorded yet\n");

    // The table says the same.
    let table = run(&system, &["status", "--env", "dev"]);
    assert_eq!(table.code, 0);
    assert!(table.stdout.starts_with("ENVIRONMENT  STATE"), "{}", table.stdout);
    assert!(table.stdout.lines().any(|l| l.starts_with("dev") && l.contains("in_sync")), "{}", table.stdout);
    assert!(!table.stdout.contains("prod"), "--env filters: {}", table.stdout);

    // A dry run changes nothing.
    let dry = run(&system, &["promote", "my-api", "--from", "dev", "--to", "prod", "--dry-run", "--output", "json"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(
        (dry.json()["decision"].clone(), dry.json()["reason"].clone()),
        (json!("would_write"), json!("new_parameter"))
    );
    assert_eq!(parameter(&system, "/my-api/prod/docker-image-tag").await, None);

    // Promote: prod gets 1042, and its first run deploys it.
    let promoted = run(&system, &["promote", "my-api", "--from", "dev", "--to", "prod"]);
    assert_eq!(promoted.code, 0, "{}", promoted.stderr);
    assert!(promoted.stdout.contains("write") && promoted.stdout.contains("new_parameter"), "{}", promoted.stdout);
    assert_eq!(parameter(&system, "/my-api/prod/docker-image-tag").await, Some(("1042".into(), 1)));
    system.wait_settled(SETTLE).await.expect("settles");
    let prod_builds = system.builds("tagrelay-prod").await.expect("builds");
    assert_eq!(prod_builds.len(), 1);
    assert_eq!(prod_builds[0].status, BuildStatus::Succeeded);

    // Promoting again is a no-op, not a problem.
    let again = run(&system, &["promote", "my-api", "--from", "dev", "--to", "prod", "--output", "json"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.json()["reason"], "unchanged");

    // Pin dev back to 1041: written although older, the reason recorded.
    let pinned = run(&system, &["pin", "my-api", "--env", "dev", "--tag", "1041", "--reason", "1042 leaks memory"]);
    assert_eq!(pinned.code, 0, "{}", pinned.stderr);
    assert_eq!(parameter(&system, "/my-api/dev/docker-image-tag").await, Some(("1041".into(), 3)));
    system.wait_settled(SETTLE).await.expect("settles");

    // Now prod (1042) is ahead of dev (1041): the order policy refuses the promotion.
    let refused = run(&system, &["promote", "my-api", "--from", "dev", "--to", "prod", "--output", "json"]);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert_eq!(refused.json()["reason"], "not_newer");
    assert!(refused.stderr.contains("order policy"), "{}", refused.stderr);
    assert_eq!(parameter(&system, "/my-api/prod/docker-image-tag").await, Some(("1042".into(), 1)));

    // A pin needs an image that exists.
    let gone = run(&system, &["pin", "my-api", "--env", "dev", "--tag", "999", "--reason", "typo"]);
    assert_eq!(gone.code, 1);
    assert!(gone.stderr.contains("ECR has no image"), "{}", gone.stderr);
    assert_eq!(parameter(&system, "/my-api/dev/docker-image-tag").await, Some(("1041".into(), 3)));

    // History: newest first, with the pin's reason.
    let history = run(&system, &["history", "my-api", "--env", "dev", "--output", "json"]);
    assert_eq!(history.code, 0, "{}", history.stderr);
    let versions = history.json()["versions"].clone();
    let tags: Vec<(i64, String)> = versions
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| (v["version"].as_i64().unwrap_or(0), v["tag"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert_eq!(tags, vec![(3, "1041".into()), (2, "1042".into()), (1, "1041".into())]);
    assert!(versions[0]["description"].as_str().is_some_and(|d| d.contains("1042 leaks memory")), "{versions}");
    assert!(versions[0]["changed"].as_str().is_some_and(|c| c.ends_with('Z')), "{versions}");
    let table = run(&system, &["history", "my-api", "--env", "dev"]);
    assert!(table.stdout.starts_with("/my-api/dev/docker-image-tag\nVERSION  TAG"), "{}", table.stdout);

    // A failed run holds prod; status reports it, and exits 1 once it is held for too long.
    system.aws.set_build_behaviour("tagrelay-prod", BUILD, "FAILED").await.expect("behaviour");
    push_image(&system.ecr, "my-api", "1043").await.expect("push");
    system.wait_settled(SETTLE).await.expect("settles");
    let promoted = run(&system, &["promote", "my-api", "--from", "dev", "--to", "prod"]);
    assert_eq!(promoted.code, 0, "{}", promoted.stderr);
    system.wait_settled(SETTLE).await.expect("settles");
    let patient = run(&system, &["status", "--output", "json"]);
    assert_eq!(patient.code, 0, "held for less than the default hour: {}", patient.stderr);
    let prod = environment(&patient.json(), "prod").clone();
    assert_eq!(prod["state"], "held");
    assert_eq!(
        (&prod["verification"]["state"], &prod["verification"]["reason"]),
        (&json!("held"), &json!("build_failed"))
    );
    assert_eq!(prod["verification"]["detail"], "the build ended FAILED", "{prod}");
    assert_eq!((&prod["release"]["current"], &prod["release"]["tags"]["my-api"]), (&json!(false), &json!("1042")));
    let strict = run(&system, &["status", "--stale-after", "0s"]);
    assert_eq!(strict.code, 1, "{}", strict.stdout);
    assert!(strict.stderr.contains("prod: held since"), "{}", strict.stderr);
    assert!(strict.stderr.contains("(build_failed: the build ended FAILED)"), "{}", strict.stderr);
    assert!(
        strict.stdout.lines().any(|l| l.starts_with("prod") && l.contains("held (build_failed)")),
        "{}",
        strict.stdout
    );
    assert!(!strict.stderr.contains("dev:"), "dev is in sync: {}", strict.stderr);

    // The Terraform is fixed: retry runs the held state again, once.
    system.aws.set_build_behaviour("tagrelay-prod", BUILD, "SUCCEEDED").await.expect("behaviour");
    let retried = run(&system, &["retry", "--env", "prod", "--output", "json"]);
    assert_eq!(retried.code, 0, "{}", retried.stderr);
    assert_eq!(
        (retried.json()["decision"].clone(), retried.json()["reason"].clone()),
        (json!("start"), json!("retry"))
    );
    system.wait_settled(SETTLE).await.expect("settles");
    let after = run(&system, &["status", "--stale-after", "0s", "--output", "json"]);
    assert_eq!(after.code, 0, "{}", after.stderr);
    let prod = environment(&after.json(), "prod").clone();
    assert_eq!(prod["state"], "in_sync");
    assert_eq!((&prod["verification"]["state"], &prod["release"]["current"]), (&json!("verified"), &json!(true)));
    let releases = run(&system, &["releases", "--env", "prod", "--limit", "1", "--output", "json"]);
    assert_eq!(releases.json()["releases"][0]["tags"]["my-api"], "1043", "{}", releases.stdout);
    let again = run(&system, &["retry", "--env", "prod", "--output", "json"]);
    assert_eq!(again.json()["decision"], "up_to_date", "nothing to retry once in sync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_replays_dead_lettered_events_and_keeps_those_that_fail_again() {
    let system = LocalSystem::start(&config(), BUILD).await.expect("local system");
    // dev's CodeBuild project is gone: trigger-deploy fails on the parameter change, Lambda
    // retries twice, and the event lands in its dead-letter queue.
    system.codebuild.delete_project().name("tagrelay-dev").send().await.expect("DeleteProject");
    push_image(&system.ecr, "my-api", "7").await.expect("push");
    // An event record-image-tag cannot parse: it will fail however often it is replayed.
    let broken = json!({
        "version": "0", "id": "broken-push", "detail-type": "ECR Image Action", "source": "aws.ecr",
        "account": "123456789012", "time": "2026-11-28T08:00:00Z", "region": "us-east-1", "resources": [],
        "detail": { "action-type": "PUSH", "result": "SUCCESS", "image-tag": "8" }
    });
    system.bridge.put_events(broken).await.expect("accepted");
    // Not wait_settled: that lists dev's builds, and dev has no project now.
    system.bridge.wait_idle(SETTLE).await.expect("retried and dead-lettered");
    assert_eq!(system.bridge.deliveries().iter().filter(|d| d.outcome.is_dead_lettered()).count(), 2);

    // The project is back: the replay starts dev's run and the message is deleted.
    create_codebuild_project(&system.codebuild, "tagrelay-dev", Some(1)).await.expect("CreateProject");
    system.aws.set_build_behaviour("tagrelay-dev", BUILD, "SUCCEEDED").await.expect("behaviour");
    let replayed = run(&system, &["redrive", "--function", "trigger-deploy", "--output", "json"]);
    assert_eq!(replayed.code, 0, "{}\n{}", replayed.stdout, replayed.stderr);
    let report = replayed.json();
    assert_eq!((report["replayed"].clone(), report["failed_again"].clone()), (json!(1), json!(0)));
    assert!(report["messages"][0]["detail"].as_str().is_some_and(|d| d.contains("dev start first_run")), "{report}");
    assert!(
        report["messages"][0]["original_error"].as_str().is_some_and(|e| e.contains("ListBuildsForProject")),
        "{report}"
    );
    assert!(replayed.stderr.contains("[1]"), "progress on stderr: {}", replayed.stderr);
    system.wait_settled(SETTLE).await.expect("settles");
    let builds = system.builds("tagrelay-dev").await.expect("builds");
    assert_eq!(builds.len(), 1);
    let started_for = tagrelay::deploy::fingerprint::of_state("/my-api/dev/docker-image-tag=1@7902699b");
    assert_eq!(builds[0].fingerprint.as_deref(), Some(started_for.as_str()));
    let empty = run(&system, &["redrive", "--function", "trigger-deploy"]);
    assert_eq!(empty.code, 0);
    assert!(empty.stdout.contains("0 replayed, 0 failed again"), "{}", empty.stdout);

    // The broken event fails again and stays in the queue, visible at once for the next look.
    let failed = run(&system, &["redrive", "--function", "record-image-tag"]);
    assert_eq!(failed.code, 1, "{}", failed.stdout);
    assert!(failed.stdout.contains("failed again") && failed.stdout.contains("repository-name"), "{}", failed.stdout);
    assert!(failed.stderr.contains("1 of 1 messages failed again"), "{}", failed.stderr);
    let still_there = run(&system, &["redrive", "--function", "record-image-tag", "--max", "1", "--output", "json"]);
    assert_eq!(still_there.json()["failed_again"], 1);
}

/// (environment, arguments, what stderr must say)
type UsageCase = (Vec<(String, String)>, Vec<&'static str>, &'static str);

#[test]
fn usage_and_configuration_errors_exit_2_and_name_what_is_wrong() {
    let config = ("TAGRELAY_CONFIG".to_owned(), config().to_string());
    // No AWS is reached for any of these.
    let env = vec![config.clone(), ("AWS_REGION".into(), "us-east-1".into())];
    let cases: Vec<UsageCase> = vec![
        (vec![], vec!["status"], "TAGRELAY_CONFIG"),
        (env.clone(), vec!["history", "nope", "--env", "dev"], "SERVICE: \"nope\" is not a configured service"),
        (env.clone(), vec!["status", "--env", "qa"], "--env: \"qa\" is not a configured environment"),
        (env.clone(), vec!["promote", "my-api", "--from", "dev", "--to", "dev"], "--to: must name another"),
        (env.clone(), vec!["pin", "my-api", "--env", "dev", "--tag", "1"], "--reason"),
        (env.clone(), vec!["pin", "my-api", "--env", "dev", "--tag", "1", "--reason", "  "], "--reason: must say why"),
        (env.clone(), vec!["status", "--stale-after", "soon"], "--stale-after"),
        (env.clone(), vec!["approve", "--env", "prod"], "--env: prod does not require approval"),
        (env.clone(), vec!["rollback", "--env", "dev", "--reason", " "], "--reason: must say why the environment"),
        (env.clone(), vec!["rollback", "--env", "dev", "--reason", "5xx"], "--by: say who you are: USER is not set"),
        (env.clone(), vec!["rollback", "--env", "dev"], "--reason"),
        (env.clone(), vec!["trace", "nope", "1"], "SERVICE: \"nope\" is not a configured service"),
        (env.clone(), vec!["trace", "my-api"], "<TAG>"),
        (env.clone(), vec!["redrive", "--function", "nope"], "record-image-tag"),
        (
            vec![("TAGRELAY_CONFIG".into(), r#"{"environments":{},"services":{"a":{"oder":"numeric"}}}"#.into())],
            vec!["status"],
            "services.a",
        ),
    ];
    for (env, args, expected) in cases {
        let run = tagrelay(&env, &args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{args:?}: expected {expected:?} in {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }

    let dir = std::env::temp_dir().join(format!("tagrelay-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("config.json");
    std::fs::write(&file, r#"{"environments": {"dev": {}}, "services": {"api": {"deploy_on_push": ["qa"]}}}"#)
        .expect("write");
    let run = tagrelay(&[], &["status", "--config", file.to_str().unwrap_or_default()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("config.json") && run.stderr.contains("services.api.deploy_on_push"), "{}", run.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failing_aws_call_exits_1_and_names_the_call_and_the_resource() {
    // Nothing listens on port 9.
    let env: Vec<(String, String)> = [
        ("TAGRELAY_CONFIG", config().to_string().as_str()),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let run = tagrelay(&env, &["history", "my-api", "--env", "dev"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("GetParameterHistory /my-api/dev/docker-image-tag failed"), "{}", run.stderr);
}
