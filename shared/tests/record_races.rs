//! Concurrent writers, the record sweep and hand-edited state, over in-memory ports. A race is
//! made deterministic: the fake SSM slips another writer's value in between our read and our
//! write, exactly the interleaving that loses an update without a lock.

mod support;

use serde_json::json;
use support::{config, push_event, scheduled, FakeParameters, FakeRegistry};
use tagrelay::handler::Handler;
use tagrelay::ports::ParameterKind;
use tagrelay::record::Outcome;
use tagrelay::record::{Change, RecordError, Recorder, SkipReason, TagChange, WriteFailure, WriteReason};

const DEV: &str = "/my-api/dev/docker-image-tag";
const STAGING: &str = "/my-api/staging/docker-image-tag";
const WORKER: &str = "/worker/dev/docker-image-tag";

fn recorder(params: FakeParameters, images: &[(&str, &str, &str, i64)]) -> Recorder<FakeParameters, FakeRegistry> {
    let config = config(json!({
        "environments": { "dev": {}, "staging": {} },
        "services": {
            "my-api": { "deploy_on_push": ["dev"] },
            "worker": { "deploy_on_push": ["dev"], "order": "pushed-at", "tag_pattern": "^[a-z]+$" }
        }
    }));
    Recorder::new(config, params, FakeRegistry::with(images))
}

/// An operator's change of my-api.
fn change<'a>(
    recorder: &'a Recorder<FakeParameters, FakeRegistry>,
    environment: &'a str,
    tag: &'a str,
    change: Change<'a>,
) -> TagChange<'a> {
    let service = recorder.config().service("my-api").expect("configured");
    TagChange { service, environment, tag, change, dry_run: false }
}

#[tokio::test]
async fn an_older_push_that_lands_after_a_newer_one_it_did_not_see_puts_the_newer_one_back() {
    let params = FakeParameters::with(&[(DEV, "10")]);
    // Push 11 read "10"; before its write lands, a concurrent push writes 12.
    params.interleave(DEV, "12");
    let recorder = recorder(params, &[("my-api", "11", "sha256:11", 11), ("my-api", "12", "sha256:12", 12)]);

    let summary = recorder.handle(&push_event("my-api", "11", "sha256:11")).await.expect("recorded");
    let summary = summary.push().expect("a push summary");

    let params = recorder.ports().0;
    assert_eq!(params.values_of(DEV), ["10", "12", "11", "12"], "12 is written back after 11 overwrote it");
    assert_eq!(params.value(DEV).as_deref(), Some("12"));
    match &summary.decisions[0].outcome {
        Outcome::Write { to, race: Some(race), .. } => {
            assert_eq!(to, "11");
            assert_eq!(race.overwritten, ["2=12"]);
            assert_eq!(race.restored.as_ref().map(|r| (r.value.as_str(), r.version)), Some(("12", 4)));
        }
        other => panic!("expected a write with a race report, got {other:?}"),
    }
    let restore = params.writes().pop().expect("the restore");
    assert!(restore.description.contains("restored by tagrelay"), "{}", restore.description);
}

#[tokio::test]
async fn a_newer_push_that_lands_after_an_older_one_changes_nothing_more() {
    let params = FakeParameters::with(&[(DEV, "10")]);
    params.interleave(DEV, "11");
    let recorder = recorder(params, &[("my-api", "12", "sha256:12", 12)]);
    recorder.handle(&push_event("my-api", "12", "sha256:12")).await.expect("recorded");
    assert_eq!(recorder.ports().0.values_of(DEV), ["10", "11", "12"]);
}

#[tokio::test]
async fn pushed_at_races_compare_push_times() {
    let params = FakeParameters::with(&[(WORKER, "aaa")]);
    params.interleave(WORKER, "ccc");
    let images = [("worker", "aaa", "sha256:a", 1), ("worker", "bbb", "sha256:b", 2), ("worker", "ccc", "sha256:c", 3)];
    let recorder = recorder(params, &images);
    recorder.handle(&push_event("worker", "bbb", "sha256:b")).await.expect("recorded");
    assert_eq!(recorder.ports().0.value(WORKER).as_deref(), Some("ccc"), "ccc was pushed last");
}

#[tokio::test]
async fn two_creators_of_a_missing_parameter_both_succeed_and_the_newer_tag_stays() {
    let params = FakeParameters::default();
    params.interleave(DEV, "12");
    let recorder = recorder(params, &[("my-api", "11", "sha256:11", 11)]);
    let summary = recorder.handle(&push_event("my-api", "11", "sha256:11")).await.expect("not an error");
    assert!(matches!(summary.push().expect("push").decisions[0].outcome, Outcome::Write { .. }));
    assert_eq!(recorder.ports().0.values_of(DEV), ["12", "11", "12"]);
}

#[tokio::test]
async fn a_pin_stands_over_a_write_it_did_not_see_and_reports_it() {
    let params = FakeParameters::with(&[(DEV, "10")]);
    params.interleave(DEV, "12");
    let recorder = recorder(params, &[("my-api", "9", "sha256:9", 9)]);
    let decision = recorder
        .change_tag(change(&recorder, "dev", "9", Change::Pin { reason: "bad release" }))
        .await
        .expect("pinned");
    assert_eq!(recorder.ports().0.value(DEV).as_deref(), Some("9"));
    match decision.outcome {
        Outcome::Write { reason: WriteReason::Pinned, race: Some(race), .. } => {
            assert_eq!(race.overwritten, ["2=12"]);
            assert!(race.restored.is_none());
        }
        other => panic!("expected a pin with a race report, got {other:?}"),
    }
}

#[tokio::test]
async fn a_promotion_racing_a_push_never_ends_on_the_older_tag() {
    let params = FakeParameters::with(&[(DEV, "13"), (STAGING, "10")]);
    // The promotion of 12 read "10"; a push of 13 lands in staging first.
    params.interleave(STAGING, "13");
    let recorder = recorder(params, &[("my-api", "12", "sha256:12", 12), ("my-api", "13", "sha256:13", 13)]);
    recorder.change_tag(change(&recorder, "staging", "12", Change::Promote { from: "dev" })).await.expect("promoted");
    assert_eq!(recorder.ports().0.value(STAGING).as_deref(), Some("13"));
}

#[tokio::test]
async fn a_secure_string_is_refused_by_name_and_the_other_environments_are_still_written() {
    let config = config(json!({
        "environments": { "dev": {}, "staging": {} },
        "services": { "my-api": { "deploy_on_push": ["dev", "staging"] } }
    }));
    let params = FakeParameters::with(&[(DEV, "AQICAHh-ciphertext"), (STAGING, "10")])
        .with_kind(DEV, ParameterKind::SecureString);
    let recorder = Recorder::new(config, params, FakeRegistry::with(&[("my-api", "11", "sha256:11", 11)]));

    let err = recorder.handle(&push_event("my-api", "11", "sha256:11")).await.expect_err("refused");
    match &err {
        RecordError::Writes { failed, .. } => {
            assert!(matches!(failed.as_slice(), [WriteFailure::NotAString { kind: ParameterKind::SecureString, .. }]));
        }
        other => panic!("expected a refused write, got {other}"),
    }
    let message = err.to_string();
    assert!(message.contains(DEV) && message.contains("SecureString"), "{message}");
    let params = recorder.ports().0;
    assert_eq!(params.value(DEV).as_deref(), Some("AQICAHh-ciphertext"), "not overwritten");
    assert_eq!(params.value(STAGING).as_deref(), Some("11"));
}

#[tokio::test]
async fn pushed_at_never_sends_a_value_that_cannot_be_a_tag_to_ecr() {
    let hand_edited = "not a tag / ".repeat(30);
    let params = FakeParameters::with(&[(WORKER, &hand_edited)]);
    let recorder = recorder(params, &[("worker", "bbb", "sha256:b", 2)]);
    recorder.handle(&push_event("worker", "bbb", "sha256:b")).await.expect("recorded");
    let (params, images) = recorder.ports();
    assert_eq!(params.value(WORKER).as_deref(), Some("bbb"), "a value the policy cannot order never blocks");
    assert_eq!(images.lookups(), ["worker:bbb"], "only the pushed tag was looked up");
}

#[tokio::test]
async fn the_sweep_records_an_image_whose_push_was_not_seen() {
    // The parameter was last written at 1001 (version 1); 12 was pushed after, its event lost.
    let params = FakeParameters::with(&[(DEV, "10"), (WORKER, "aaa")]);
    let images = [
        ("my-api", "9", "sha256:9", 900),
        ("my-api", "10", "sha256:10", 1000),
        ("my-api", "12", "sha256:12", 1500),
        ("my-api", "11", "sha256:11", 1600),
        ("my-api", "latest", "sha256:11", 1600),
        ("worker", "aaa", "sha256:a", 1000),
    ];
    let recorder = recorder(params, &images);

    let sweep = recorder.handle(&scheduled()).await.expect("swept").sweep().expect("a sweep summary");

    let params = recorder.ports().0;
    assert_eq!(params.value(DEV).as_deref(), Some("12"), "the newest by the policy, not the last pushed");
    assert_eq!(params.value(WORKER).as_deref(), Some("aaa"));
    let api = sweep.services.iter().find(|s| s.service == "my-api").expect("swept my-api");
    assert_eq!(api.images, 4, "every page was read");
    assert!(!api.truncated);
    assert!(matches!(api.decisions[0].outcome, Outcome::Write { reason: WriteReason::Newer, .. }));
    let worker = sweep.services.iter().find(|s| s.service == "worker").expect("swept worker");
    assert_eq!(worker.decisions[0].outcome, Outcome::Skip { reason: SkipReason::NoNewerImage });
    let write = params.writes().pop().expect("the sweep's write");
    assert!(write.description.contains("sweep") && write.description.contains("sha256:12"), "{}", write.description);
}

#[tokio::test]
async fn the_sweep_creates_no_parameter() {
    let recorder = recorder(FakeParameters::default(), &[("my-api", "12", "sha256:12", 1500)]);
    let sweep = recorder.handle(&scheduled()).await.expect("swept").sweep().expect("a sweep summary");
    assert!(recorder.ports().0.writes().is_empty());
    let api = sweep.services.iter().find(|s| s.service == "my-api").expect("swept my-api");
    assert_eq!(api.decisions[0].outcome, Outcome::Skip { reason: SkipReason::NoParameter });
}

#[tokio::test]
async fn the_sweep_never_undoes_a_pin() {
    let params = FakeParameters::with(&[(DEV, "12")]);
    params.bump(DEV, "9"); // a pin to 9, written at 1002, after 12 was pushed
    let recorder = recorder(params, &[("my-api", "9", "sha256:9", 900), ("my-api", "12", "sha256:12", 1001)]);
    recorder.handle(&scheduled()).await.expect("swept");
    assert_eq!(recorder.ports().0.value(DEV).as_deref(), Some("9"));
    assert_eq!(recorder.ports().0.writes().len(), 0);
}

#[tokio::test]
async fn the_sweep_goes_on_past_a_failing_repository_and_then_reports_the_failure() {
    let params = FakeParameters::with(&[(DEV, "10")]);
    let mut images = FakeRegistry::with(&[("my-api", "12", "sha256:12", 1500)]);
    images.fail = true;
    let config = config(json!({
        "environments": { "dev": {} },
        "services": { "my-api": { "deploy_on_push": ["dev"] } }
    }));
    let recorder = Recorder::new(config, params, images);
    let err = recorder.handle(&scheduled()).await.expect_err("must fail");
    assert!(matches!(err, RecordError::Sweep { services: 1, .. }), "{err}");
    assert!(err.to_string().contains("DescribeImages"), "{err}");
}

#[tokio::test]
async fn the_sweep_reads_every_parameter_in_one_request_and_a_refused_one_fails_only_its_service() {
    // my-api has an image pushed after its parameter's write, worker none.
    let images = [("my-api", "12", "sha256:12", 1500), ("worker", "aaa", "sha256:a", 1000)];
    let params = FakeParameters::with(&[(DEV, "10"), (WORKER, "aaa")]);
    let joined = recorder(params, &images);
    joined.handle(&scheduled()).await.expect("swept");
    let params = joined.ports().0;
    // One read of both; my-api's read again before its write (the joined read is as old as the
    // sweep); worker's never on its own.
    assert_eq!(*params.get_calls.lock().expect("lock"), 2);
    assert_eq!((params.value(DEV).as_deref(), params.value(WORKER).as_deref()), (Some("12"), Some("aaa")));

    // The role may not read worker's parameter: the joined read is refused, each service reads
    // its own, my-api is swept and the sweep reports worker's failure.
    let params = FakeParameters::with(&[(DEV, "10"), (WORKER, "aaa")]).unreadable(WORKER);
    let each = recorder(params, &[("my-api", "12", "sha256:12", 1500), ("worker", "bbb", "sha256:b", 1500)]);
    let err = each.handle(&scheduled()).await.expect_err("worker's read fails");
    assert!(matches!(err, RecordError::Sweep { services: 2, .. }) && err.to_string().contains(WORKER), "{err}");
    let params = each.ports().0;
    assert_eq!(params.value(DEV).as_deref(), Some("12"), "my-api swept all the same");
    assert_eq!(params.value(WORKER).as_deref(), Some("aaa"));
}
