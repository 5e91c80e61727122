//! The local AWS's CodeBuild and events (testbed/local_aws/launcher.py): what tagrelay relies on and
//! moto alone does not do. Real HTTP, the real SDK.

mod support;

use std::time::{Duration, Instant};

use aws_sdk_codebuild::error::ProvideErrorMetadata;
use aws_sdk_codebuild::types::{
    ArtifactsType, Build, BuildPhaseType, ComputeType, EnvironmentType, EnvironmentVariableType, ProjectArtifacts,
    ProjectEnvironment, ProjectSource, SortOrderType, SourceType, StatusType,
};
use aws_sdk_codebuild::Client;
use serde_json::Value;
use support::{assert_envelope, is, variable, Sink, WAIT};
use tagrelay_testbed::local_aws::{create_codebuild_project, create_repository, push_image, LocalAws, LocalAwsOptions};

async fn codebuild(aws: &LocalAws) -> Client {
    Client::new(&aws.sdk_config().await)
}

async fn start(client: &Client, project: &str) -> Build {
    start_with(client, project, &[]).await
}

/// StartBuild with these environment variable overrides.
async fn start_with(client: &Client, project: &str, overrides: &[(&str, &str)]) -> Build {
    let mut request = client.start_build().project_name(project);
    for (name, value) in overrides {
        request = request.environment_variables_override(variable(name, value));
    }
    let out = request.send().await.expect("StartBuild");
    out.build_value().expect("a build").clone()
}

async fn get(client: &Client, id: &str) -> Build {
    let out = client.batch_get_builds().ids(id).send().await.expect("BatchGetBuilds");
    assert!(out.builds_not_found().is_empty(), "{id} not found");
    out.builds().first().expect("one build").clone()
}

/// Polls until the build is no longer IN_PROGRESS; returns it and when that was first seen.
async fn wait_done(client: &Client, id: &str) -> (Build, Instant) {
    let deadline = Instant::now() + WAIT;
    loop {
        let build = get(client, id).await;
        if build.build_status() != Some(&StatusType::InProgress) {
            return (build, Instant::now());
        }
        assert!(Instant::now() < deadline, "{id} still IN_PROGRESS after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn variables(build: &Build) -> Vec<(String, String)> {
    let environment = build.environment().expect("an environment");
    environment.environment_variables().iter().map(|v| (v.name().to_string(), v.value().to_string())).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_are_stored_and_merged_over_the_project_variables() {
    let aws = LocalAws::start().await.expect("local AWS");
    let client = codebuild(&aws).await;

    create_codebuild_project(&client, "tagrelay-dev", Some(1)).await.expect("project");
    let projects = client.batch_get_projects().names("tagrelay-dev").send().await.expect("BatchGetProjects");
    assert_eq!(projects.projects().len(), 1);
    assert_eq!(projects.projects()[0].concurrent_build_limit(), Some(1), "the limit is stored");

    let fingerprint = "/my-api/dev/docker-image-tag=3,/worker/dev/docker-image-tag=7";
    let overrides = [("TAGRELAY_FINGERPRINT", fingerprint), ("TAGRELAY_REASON", "parameters changed")];
    let build = start_with(&client, "tagrelay-dev", &overrides).await;
    let expected = pairs(&overrides);
    assert_eq!(variables(&build), expected, "StartBuild answers with the overrides");
    assert_eq!(variables(&get(&client, build.id().expect("id")).await), expected, "BatchGetBuilds too");
    let types: Vec<_> = build.environment().expect("env").environment_variables().iter().map(|v| v.r#type()).collect();
    assert!(types.iter().all(|t| *t == Some(&EnvironmentVariableType::Plaintext)), "{types:?}");

    // A project with variables of its own: an override replaces the one of the same name, the
    // others stay, new ones are added.
    let source =
        ProjectSource::builder().r#type(SourceType::NoSource).buildspec("version: 0.2").build().expect("source");
    let artifacts = ProjectArtifacts::builder().r#type(ArtifactsType::NoArtifacts).build().expect("artifacts");
    let environment = ProjectEnvironment::builder()
        .r#type(EnvironmentType::LinuxContainer)
        .image("aws/codebuild/amazonlinux2-x86_64-standard:5.0")
        .compute_type(ComputeType::BuildGeneral1Small)
        .environment_variables(variable("TF_WORKSPACE", "prod"))
        .environment_variables(variable("TAGRELAY_FINGERPRINT", "none"))
        .build()
        .expect("environment");
    client
        .create_project()
        .name("tagrelay-prod")
        .source(source)
        .artifacts(artifacts)
        .environment(environment)
        .service_role("arn:aws:iam::123456789012:role/tagrelay-prod-codebuild")
        .send()
        .await
        .expect("CreateProject");
    let overrides = [("TAGRELAY_FINGERPRINT", fingerprint), ("TAGRELAY_REASON", "promote")];
    let build = start_with(&client, "tagrelay-prod", &overrides).await;
    assert_eq!(
        variables(&get(&client, build.id().expect("id")).await),
        pairs(&[("TF_WORKSPACE", "prod"), ("TAGRELAY_FINGERPRINT", fingerprint), ("TAGRELAY_REASON", "promote")])
    );
    let projects = client.batch_get_projects().names("tagrelay-prod").send().await.expect("BatchGetProjects");
    assert_eq!(projects.projects()[0].concurrent_build_limit(), None, "no limit unless set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_runs_for_its_duration_then_ends_as_set() {
    let aws = LocalAws::start().await.expect("local AWS");
    let client = codebuild(&aws).await;
    create_codebuild_project(&client, "tagrelay-dev", None).await.expect("project");

    let duration = Duration::from_secs(3);
    aws.set_build_behaviour("tagrelay-dev", duration, "FAILED").await.expect("behaviour");
    let before_start = Instant::now();
    let build = start(&client, "tagrelay-dev").await;
    let id = build.id().expect("id").to_string();
    assert_eq!(build.build_status(), Some(&StatusType::InProgress));

    // Reading does not end it (moto alone completes a build when it is first read).
    for _ in 0..3 {
        let read = get(&client, &id).await;
        if before_start.elapsed() >= duration {
            break;
        }
        assert_eq!(read.build_status(), Some(&StatusType::InProgress), "read after {:?}", before_start.elapsed());
        assert!(!read.build_complete());
        assert!(read.end_time().is_none());
        assert_eq!(read.current_phase(), Some("BUILD"));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let (done, seen) = wait_done(&client, &id).await;
    assert!(seen.duration_since(before_start) >= duration, "ended after {:?}", seen.duration_since(before_start));
    assert_eq!(done.build_status(), Some(&StatusType::Failed));
    assert!(done.build_complete());
    assert_eq!(done.current_phase(), Some("COMPLETED"));
    let (start_time, end_time) = (done.start_time().expect("start"), done.end_time().expect("end"));
    assert!(end_time.as_secs_f64() - start_time.as_secs_f64() >= duration.as_secs_f64() - 0.01);
    let phases: Vec<_> = done.phases().iter().map(|p| (p.phase_type().cloned(), p.phase_status().cloned())).collect();
    assert!(phases.contains(&(Some(BuildPhaseType::Build), Some(StatusType::Failed))), "{phases:?}");
    assert_eq!(phases.last(), Some(&(Some(BuildPhaseType::Completed), None)));
    assert_eq!(done.build_number(), Some(1));

    // A sequence of outcomes: one per build, then SUCCEEDED.
    let short = Duration::from_millis(300);
    aws.set_build_outcomes("tagrelay-dev", short, &["TIMED_OUT", "FAILED"]).await.expect("outcomes");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let build = start(&client, "tagrelay-dev").await;
        let (done, _) = wait_done(&client, build.id().expect("id")).await;
        statuses.push(done.build_status().cloned());
    }
    assert_eq!(statuses, [Some(StatusType::TimedOut), Some(StatusType::Failed), Some(StatusType::Succeeded)]);

    // An unknown outcome is refused by the control endpoint.
    let err = aws.set_build_behaviour("tagrelay-dev", short, "MAYBE").await.expect_err("unknown outcome");
    assert!(err.to_string().contains("HTTP 400") && err.to_string().contains("MAYBE"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_over_the_project_limit_is_refused_with_account_limit_exceeded() {
    let aws = LocalAws::start().await.expect("local AWS");
    let client = codebuild(&aws).await;
    create_codebuild_project(&client, "tagrelay-dev", Some(1)).await.expect("project");
    create_codebuild_project(&client, "tagrelay-staging", None).await.expect("project");
    aws.set_build_behaviour("tagrelay-dev", Duration::from_secs(60), "SUCCEEDED").await.expect("behaviour");
    aws.set_build_behaviour("tagrelay-staging", Duration::from_secs(60), "SUCCEEDED").await.expect("behaviour");

    let running = start(&client, "tagrelay-dev").await;
    let err = client.start_build().project_name("tagrelay-dev").send().await.expect_err("over the limit");
    let service = err.as_service_error().expect("a service error");
    assert!(service.is_account_limit_exceeded_exception(), "{err:?}");
    assert_eq!(service.code(), Some("AccountLimitExceededException"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    let listed = client.list_builds_for_project().project_name("tagrelay-dev").send().await.expect("list");
    assert_eq!(listed.ids(), [running.id().expect("id").to_string()], "the refused start made no build");

    // Without a limit, builds run side by side.
    start(&client, "tagrelay-staging").await;
    start(&client, "tagrelay-staging").await;

    // Once the running build has ended, a start is accepted again.
    client.stop_build().id(running.id().expect("id")).send().await.expect("StopBuild");
    let next = start(&client, "tagrelay-dev").await;
    assert_eq!(next.build_status(), Some(&StatusType::InProgress));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_build_quota_refuses_starts_across_projects_until_it_is_lifted() {
    let aws = LocalAws::start().await.expect("local AWS");
    let client = codebuild(&aws).await;
    create_codebuild_project(&client, "tagrelay-dev", Some(1)).await.expect("project");
    create_codebuild_project(&client, "other-team", None).await.expect("project");
    aws.set_build_behaviour("other-team", Duration::from_secs(60), "SUCCEEDED").await.expect("behaviour");

    // A new account's quota of 0: nothing starts, and nothing runs.
    aws.set_account_build_quota(Some(0)).await.expect("quota");
    let err = client.start_build().project_name("tagrelay-dev").send().await.expect_err("over the account's quota");
    let service = err.as_service_error().expect("a service error");
    assert!(service.is_account_limit_exceeded_exception(), "{err:?}");
    assert_eq!(service.message(), Some("Cannot have more than 0 builds in queue for the account"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    let listed = client.list_builds_for_project().project_name("tagrelay-dev").send().await.expect("list");
    assert!(listed.ids().is_empty(), "the refused start made no build");

    // A quota of 1 counts every project's running builds: another team's build uses it up.
    aws.set_account_build_quota(Some(1)).await.expect("quota");
    start(&client, "other-team").await;
    let err = client.start_build().project_name("tagrelay-dev").send().await.expect_err("the account's one build runs");
    assert_eq!(
        err.as_service_error().and_then(|e| e.message()),
        Some("Cannot have more than 1 builds in queue for the account")
    );

    aws.set_account_build_quota(None).await.expect("quota lifted");
    let started = start(&client, "tagrelay-dev").await;
    assert_eq!(started.build_status(), Some(&StatusType::InProgress));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_token_returns_the_same_build() {
    let aws = LocalAws::start().await.expect("local AWS");
    let client = codebuild(&aws).await;
    create_codebuild_project(&client, "tagrelay-dev", Some(1)).await.expect("project");
    aws.set_build_behaviour("tagrelay-dev", Duration::from_secs(60), "SUCCEEDED").await.expect("behaviour");

    let request = |token: &str| {
        client
            .start_build()
            .project_name("tagrelay-dev")
            .idempotency_token(token)
            .environment_variables_override(variable("TAGRELAY_FINGERPRINT", "/a=1"))
    };
    let first = request("dev-/a=1").send().await.expect("StartBuild").build_value().expect("build").clone();
    // The same request again (a duplicate delivery) is not refused by the limit: it is the same build.
    let again = request("dev-/a=1").send().await.expect("the same StartBuild").build_value().expect("build").clone();
    assert_eq!(again.id(), first.id());
    assert_eq!(again.build_number(), first.build_number());
    let listed = client.list_builds_for_project().project_name("tagrelay-dev").send().await.expect("list");
    assert_eq!(listed.ids().len(), 1, "one build, not two");

    // The same token with another parameter: CodeBuild's "parameter mismatch".
    let err = client
        .start_build()
        .project_name("tagrelay-dev")
        .idempotency_token("dev-/a=1")
        .environment_variables_override(variable("TAGRELAY_FINGERPRINT", "/a=2"))
        .send()
        .await
        .expect_err("another request under the same token");
    assert!(err.as_service_error().is_some_and(|e| e.is_invalid_input_exception()), "{err:?}");

    // Another token is another start (and here over the limit).
    let err = request("dev-/a=2").send().await.expect_err("a new start");
    assert!(err.as_service_error().is_some_and(|e| e.is_account_limit_exceeded_exception()), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_build_stays_stopped_and_builds_list_newest_first() {
    let aws = LocalAws::start().await.expect("local AWS");
    let client = codebuild(&aws).await;
    create_codebuild_project(&client, "tagrelay-dev", None).await.expect("project");
    let duration = Duration::from_secs(2);
    aws.set_build_behaviour("tagrelay-dev", duration, "SUCCEEDED").await.expect("behaviour");

    // The second build is stopped right after its start, long before its 2 s are up.
    let mut ids = vec![start(&client, "tagrelay-dev").await.id().expect("id").to_string()];
    let second_started = Instant::now();
    ids.push(start(&client, "tagrelay-dev").await.id().expect("id").to_string());
    let stopped = client.stop_build().id(&ids[1]).send().await.expect("StopBuild");
    assert_eq!(stopped.build_value().and_then(|b| b.build_status()), Some(&StatusType::Stopped));
    ids.push(start(&client, "tagrelay-dev").await.id().expect("id").to_string());

    // Past the time it would have ended, and read more than once: still STOPPED.
    tokio::time::sleep(
        (second_started + duration + Duration::from_millis(500)).saturating_duration_since(Instant::now()),
    )
    .await;
    for _ in 0..2 {
        let read = get(&client, &ids[1]).await;
        assert_eq!(read.build_status(), Some(&StatusType::Stopped), "read again, still STOPPED");
        assert!(read.build_complete());
        let build_phase = read.phases().iter().find(|p| p.phase_type() == Some(&BuildPhaseType::Build));
        assert_eq!(build_phase.and_then(|p| p.phase_status()), Some(&StatusType::Stopped));
    }
    for id in [&ids[0], &ids[2]] {
        assert_eq!(wait_done(&client, id).await.0.build_status(), Some(&StatusType::Succeeded));
    }
    // Stopping a finished build changes nothing.
    let again = client.stop_build().id(&ids[0]).send().await.expect("StopBuild");
    assert_eq!(again.build_value().and_then(|b| b.build_status()), Some(&StatusType::Succeeded));

    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    let listed = client.list_builds_for_project().project_name("tagrelay-dev").send().await.expect("list");
    assert_eq!(listed.ids(), newest_first.as_slice(), "DESCENDING is the default");
    assert!(listed.next_token().is_none());
    let listed = client
        .list_builds_for_project()
        .project_name("tagrelay-dev")
        .sort_order(SortOrderType::Ascending)
        .send()
        .await
        .expect("list");
    assert_eq!(listed.ids(), ids.as_slice());
    let numbers: Vec<_> = client
        .batch_get_builds()
        .set_ids(Some(ids.clone()))
        .send()
        .await
        .expect("BatchGetBuilds")
        .builds()
        .iter()
        .map(|b| b.build_number())
        .collect();
    assert_eq!(numbers, [Some(1), Some(2), Some(3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_sink_when_aws_would_send_them() {
    let sink = Sink::start().await;
    let options = LocalAwsOptions { event_sink: Some(sink.url.clone()), schedule_every: Some(Duration::from_secs(1)) };
    let aws = LocalAws::start_with(options).await.expect("local AWS");
    let sdk = aws.sdk_config().await;
    let (ecr, ssm, client) = (aws_sdk_ecr::Client::new(&sdk), aws_sdk_ssm::Client::new(&sdk), Client::new(&sdk));

    // ECR: a push.
    create_repository(&ecr, "team/my-api").await.expect("repository");
    let digest = push_image(&ecr, "team/my-api", "1043").await.expect("push");
    let (_, push) = sink.wait_for(0, "ECR push", |e| is(e, "ECR Image Action")).await;
    assert_envelope(&push, "aws.ecr");
    let detail = &push["detail"];
    assert_eq!(detail["result"], "SUCCESS");
    assert_eq!(detail["action-type"], "PUSH");
    assert_eq!(detail["repository-name"], "team/my-api");
    assert_eq!(detail["image-tag"], "1043");
    assert_eq!(detail["image-digest"], digest.as_str());
    assert_eq!(detail["manifest-media-type"], "application/vnd.docker.distribution.manifest.v2+json");
    assert_eq!(detail["artifact-media-type"], "application/vnd.docker.container.image.v1+json");

    // SSM: Create, then Update, then Delete, in that order.
    let name = "/my-api/dev/docker-image-tag";
    for (value, overwrite) in [("1042", false), ("1043", true)] {
        ssm.put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .description("pushed sha256:abc")
            .overwrite(overwrite)
            .send()
            .await
            .expect("PutParameter");
    }
    ssm.delete_parameter().name(name).send().await.expect("DeleteParameter");
    let ssm_change = |operation: &'static str| {
        move |e: &Value| is(e, "Parameter Store Change") && e["detail"]["operation"] == operation
    };
    let (created_at, created) = sink.wait_for(0, "SSM Create", ssm_change("Create")).await;
    let (updated_at, updated) = sink.wait_for(created_at + 1, "SSM Update after Create", ssm_change("Update")).await;
    let (_, deleted) = sink.wait_for(updated_at + 1, "SSM Delete after Update", ssm_change("Delete")).await;
    for event in [&created, &updated, &deleted] {
        assert_envelope(event, "aws.ssm");
        assert_eq!(event["detail"]["name"], name);
        assert_eq!(event["detail"]["type"], "String");
        assert_eq!(
            event["resources"],
            serde_json::json!(["arn:aws:ssm:us-east-1:123456789012:parameter/my-api/dev/docker-image-tag"])
        );
    }
    assert_eq!(created["detail"]["description"], "pushed sha256:abc");

    // CodeBuild: the start (no build number, no phases: AWS sends neither), then the end.
    create_codebuild_project(&client, "tagrelay-dev", Some(1)).await.expect("project");
    aws.set_build_behaviour("tagrelay-dev", Duration::from_millis(500), "FAILED").await.expect("behaviour");
    let build =
        start_with(&client, "tagrelay-dev", &[("TAGRELAY_FINGERPRINT", "/my-api/dev/docker-image-tag=2")]).await;
    let arn = build.arn().expect("arn").to_string();
    let state_change = |status: &'static str| {
        let arn = arn.clone();
        move |e: &Value| {
            is(e, "CodeBuild Build State Change")
                && e["detail"]["build-status"] == status
                && e["detail"]["build-id"] == *arn
        }
    };
    let (started_at, started) = sink.wait_for(0, "build IN_PROGRESS", state_change("IN_PROGRESS")).await;
    let (_, ended) = sink.wait_for(started_at + 1, "build FAILED after IN_PROGRESS", state_change("FAILED")).await;
    for event in [&started, &ended] {
        assert_envelope(event, "aws.codebuild");
        assert_eq!(event["resources"], serde_json::json!([arn]));
        assert_eq!(event["detail"]["project-name"], "tagrelay-dev");
        assert_eq!(event["detail"]["version"], "1");
        let info = &event["detail"]["additional-information"];
        assert_eq!(
            info["environment"]["environment-variables"],
            serde_json::json!([{"name": "TAGRELAY_FINGERPRINT", "type": "PLAINTEXT", "value": "/my-api/dev/docker-image-tag=2"}])
        );
        assert!(info["build-start-time"].as_str().is_some_and(|t| t.ends_with("AM") || t.ends_with("PM")), "{info}");
    }
    let info = &started["detail"]["additional-information"];
    assert_eq!(started["detail"]["current-phase"], "SUBMITTED");
    assert_eq!(info["build-complete"], false);
    assert!(info.get("build-number").is_none() && info.get("phases").is_none(), "{info}");
    let info = &ended["detail"]["additional-information"];
    assert_eq!(ended["detail"]["current-phase"], "COMPLETED");
    assert_eq!(info["build-complete"], true);
    assert_eq!(info["build-number"], 1);
    let phases = info["phases"].as_array().expect("phases");
    assert_eq!(phases.last().map(|p| &p["phase-type"]), Some(&Value::from("COMPLETED")));
    assert!(phases.iter().any(|p| p["phase-type"] == "BUILD" && p["phase-status"] == "FAILED"), "{phases:?}");

    // The schedule.
    let (_, scheduled) = sink.wait_for(0, "Scheduled Event", |e| is(e, "Scheduled Event")).await;
    assert_envelope(&scheduled, "aws.events");
    assert_eq!(scheduled["detail"], serde_json::json!({}));
    assert_eq!(
        scheduled["resources"],
        serde_json::json!(["arn:aws:events:us-east-1:123456789012:rule/tagrelay-sweep"])
    );
}
