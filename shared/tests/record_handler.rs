//! The record-image-tag handler over in-memory ports: what it reads, what it writes, what it
//! returns.

mod support;

use serde_json::json;
use support::{config, push_event, FakeParameters, FakeRegistry};
use tagrelay::handler::Handler;
use tagrelay::record::Outcome;
use tagrelay::record::{RecordError, Recorder, SkipReason, WriteFailure, WriteReason};

const DIGEST: &str = "sha256:aaa";

fn two_env_config() -> tagrelay::config::Config {
    config(json!({
        "environments": {
            "dev": { "codebuild_project": "tagrelay-dev" },
            "staging": { "codebuild_project": "tagrelay-staging" },
            "prod": { "codebuild_project": "tagrelay-prod" }
        },
        "services": {
            "my-api": { "deploy_on_push": ["dev", "staging"] },
            "worker": { "repository": "team/worker", "deploy_on_push": ["dev"], "order": "pushed-at", "tag_pattern": "^[a-f0-9]{7}$" }
        }
    }))
}

#[tokio::test]
async fn a_push_writes_every_deploy_on_push_environment_and_nothing_else() {
    let params = FakeParameters::with(&[("/my-api/dev/docker-image-tag", "1042")]);
    let images = FakeRegistry::with(&[("my-api", "1043", DIGEST, 10)]);
    let recorder = Recorder::new(two_env_config(), params, images);

    let summary =
        recorder.handle(&push_event("my-api", "1043", DIGEST)).await.expect("recorded").push().expect("a push summary");

    let params = recorder.ports().0;
    assert_eq!(params.value("/my-api/dev/docker-image-tag").as_deref(), Some("1043"));
    assert_eq!(params.value("/my-api/staging/docker-image-tag").as_deref(), Some("1043"));
    assert_eq!(params.value("/my-api/prod/docker-image-tag"), None, "prod is not in deploy_on_push");
    assert_eq!(*params.get_calls.lock().expect("lock"), 1, "one GetParameters for all targets");

    let writes = params.writes();
    assert_eq!(writes.len(), 2);
    let dev = &writes[0];
    assert_eq!(dev.create_with_tags, None, "an existing parameter is overwritten, not created");
    let staging = &writes[1];
    let tags = staging.create_with_tags.clone().expect("a new parameter is created with tags");
    assert!(tags.contains(&("service".into(), "my-api".into())));
    assert!(tags.contains(&("environment".into(), "staging".into())));
    assert!(tags.contains(&("managed-by".into(), "tagrelay".into())));
    assert!(staging.description.contains(DIGEST), "{}", staging.description);

    assert_eq!(summary.service.as_deref(), Some("my-api"));
    let outcomes: Vec<_> = summary.decisions.iter().map(|d| (d.environment.as_str(), d.outcome.clone())).collect();
    assert_eq!(
        outcomes,
        vec![
            ("dev", Outcome::Write { to: "1043".into(), reason: WriteReason::Newer, version: 2, race: None }),
            (
                "staging",
                Outcome::Write { to: "1043".into(), reason: WriteReason::NewParameter, version: 1, race: None }
            ),
        ]
    );
    let body = serde_json::to_value(&summary).expect("serialisable");
    assert_eq!(body["decisions"][0]["decision"], "write");
    assert_eq!(body["decisions"][0]["previous"], "1042");
    assert_eq!(body["decisions"][1]["reason"], "new_parameter");
}

#[tokio::test]
async fn a_duplicate_or_older_push_writes_nothing() {
    let params =
        FakeParameters::with(&[("/my-api/dev/docker-image-tag", "1043"), ("/my-api/staging/docker-image-tag", "1050")]);
    let images = FakeRegistry::with(&[("my-api", "1043", DIGEST, 10)]);
    let recorder = Recorder::new(two_env_config(), params, images);

    let summary =
        recorder.handle(&push_event("my-api", "1043", DIGEST)).await.expect("ok").push().expect("a push summary");

    assert!(recorder.ports().0.writes().is_empty());
    let reasons: Vec<_> = summary.decisions.iter().map(|d| d.outcome.clone()).collect();
    assert_eq!(
        reasons,
        vec![Outcome::Skip { reason: SkipReason::Unchanged }, Outcome::Skip { reason: SkipReason::NotNewer }]
    );
}

#[tokio::test]
async fn ignored_events_return_ok_with_the_reason_and_touch_nothing() {
    let cases = [
        (push_event("unknown-repo", "7", DIGEST), SkipReason::RepositoryNotConfigured),
        (push_event("my-api", "latest", DIGEST), SkipReason::TagPatternMismatch),
        (push_event("my-api", "", DIGEST), SkipReason::EmptyTag),
        (
            {
                let mut e = push_event("my-api", "7", DIGEST);
                e["detail"]["action-type"] = json!("DELETE");
                e
            },
            SkipReason::NotAPush,
        ),
        (
            {
                let mut e = push_event("my-api", "7", DIGEST);
                e["detail"]["result"] = json!("FAILURE");
                e
            },
            SkipReason::NotSuccessful,
        ),
    ];
    for (event, reason) in cases {
        let recorder = Recorder::new(two_env_config(), FakeParameters::default(), FakeRegistry::default());
        let summary =
            recorder.handle(&event).await.expect("ignored events are not errors").push().expect("a push summary");
        assert_eq!(summary.skipped, Some(reason));
        assert!(summary.decisions.is_empty());
        let (params, images) = recorder.ports();
        assert_eq!(*params.get_calls.lock().expect("lock"), 0, "{reason:?}: no AWS reads");
        assert!(images.lookups().is_empty(), "{reason:?}: no AWS reads");
    }
}

#[tokio::test]
async fn a_tag_that_is_gone_or_moved_is_skipped_before_reading_parameters() {
    let cases = [
        (FakeRegistry::default(), SkipReason::ImageGone),
        (FakeRegistry::with(&[("my-api", "1043", "sha256:later", 10)]), SkipReason::TagMoved),
    ];
    for (images, reason) in cases {
        let recorder = Recorder::new(two_env_config(), FakeParameters::default(), images);
        let summary =
            recorder.handle(&push_event("my-api", "1043", DIGEST)).await.expect("ok").push().expect("a push summary");
        assert_eq!(summary.skipped, Some(reason));
        assert!(summary.decisions.is_empty());
        let (params, images) = recorder.ports();
        assert_eq!(*params.get_calls.lock().expect("lock"), 0, "{reason:?}: no parameter read");
        assert!(params.writes().is_empty());
        assert_eq!(images.lookups(), vec!["my-api:1043"]);
    }
}

#[tokio::test]
async fn pushed_at_compares_with_the_image_the_parameter_names() {
    let params = FakeParameters::with(&[("/worker/dev/docker-image-tag", "bbbbbbb")]);
    let images = FakeRegistry::with(&[
        ("team/worker", "aaaaaaa", "sha256:a", 100),
        ("team/worker", "bbbbbbb", "sha256:b", 200),
        ("team/worker", "ccccccc", "sha256:c", 300),
    ]);
    let recorder = Recorder::new(two_env_config(), params, images);

    // Pushed before the current image: late event, not written.
    let late = recorder
        .handle(&push_event("team/worker", "aaaaaaa", "sha256:a"))
        .await
        .expect("ok")
        .push()
        .expect("a push summary");
    assert_eq!(late.decisions[0].outcome, Outcome::Skip { reason: SkipReason::NotNewer });
    assert_eq!(recorder.ports().1.lookups(), vec!["team/worker:aaaaaaa", "team/worker:bbbbbbb"]);

    let newer = recorder
        .handle(&push_event("team/worker", "ccccccc", "sha256:c"))
        .await
        .expect("ok")
        .push()
        .expect("a push summary");
    assert!(matches!(newer.decisions[0].outcome, Outcome::Write { .. }));
    assert_eq!(recorder.ports().0.value("/worker/dev/docker-image-tag").as_deref(), Some("ccccccc"));
}

#[tokio::test]
async fn a_failed_write_fails_the_event_but_keeps_the_others() {
    let params = FakeParameters::default().failing_on("/my-api/staging/docker-image-tag");
    let images = FakeRegistry::with(&[("my-api", "1043", DIGEST, 10)]);
    let recorder = Recorder::new(two_env_config(), params, images);

    let err = recorder.handle(&push_event("my-api", "1043", DIGEST)).await.expect_err("must fail");
    match &err {
        RecordError::Writes { attempted, failed } => {
            assert_eq!(*attempted, 2);
            assert_eq!(failed.len(), 1);
            assert!(
                matches!(&failed[0], WriteFailure::Aws(e) if e.resource == "/my-api/staging/docker-image-tag"),
                "{failed:?}"
            );
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("PutParameter /my-api/staging/docker-image-tag"), "{err}");
    assert_eq!(recorder.ports().0.value("/my-api/dev/docker-image-tag").as_deref(), Some("1043"));
}

#[tokio::test]
async fn an_ecr_failure_fails_the_event_and_writes_nothing() {
    let images = FakeRegistry { fail: true, ..FakeRegistry::default() };
    let recorder = Recorder::new(two_env_config(), FakeParameters::default(), images);
    let err = recorder.handle(&push_event("my-api", "1043", DIGEST)).await.expect_err("must fail");
    assert!(matches!(err, RecordError::Aws(ref e) if e.operation == "DescribeImages"), "{err}");
    assert!(recorder.ports().0.writes().is_empty());
}

#[tokio::test]
async fn malformed_events_name_the_missing_field() {
    let recorder = Recorder::new(two_env_config(), FakeParameters::default(), FakeRegistry::default());
    for field in ["repository-name", "action-type", "result"] {
        let mut event = push_event("my-api", "1043", DIGEST);
        event["detail"].as_object_mut().expect("object").remove(field);
        let err = recorder.handle(&event).await.expect_err("must fail");
        assert!(matches!(err, RecordError::InvalidEvent(_)));
        assert!(err.to_string().contains(field), "{field}: {err}");
        assert!(err.to_string().contains("detail"), "{field}: {err}");
    }
    let mut event = push_event("my-api", "1043", DIGEST);
    event["detail-type"] = json!("ECR Pull Through Cache Action");
    let err = recorder.handle(&event).await.expect_err("must fail");
    assert!(err.to_string().contains("detail-type"), "{err}");

    let err = recorder.handle(&json!("not an event")).await.expect_err("must fail");
    assert!(matches!(err, RecordError::InvalidEvent(_)), "{err}");
    assert!(recorder.ports().0.writes().is_empty());
}
