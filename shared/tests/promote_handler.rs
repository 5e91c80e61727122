//! The promote handler over in-memory ports: promotion through the record path, rollback
//! recorded before the tags and done once, approval, and events that change nothing.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use aws_smithy_types::DateTime;
use serde_json::json;
use support::{config, scheduled, Clock, FakeAlarms, FakeParameters, FakeRegistry};
use tagrelay::handler::Handler;
use tagrelay::ports::AlarmState;
use tagrelay::promote::decision::Promotion;
use tagrelay::promote::operator::{ByHand, OperatorError};
use tagrelay::promote::records::{Approval, RollbackRecord};
use tagrelay::promote::rollback::RollbackDecision;
use tagrelay::promote::Promoter;
use tagrelay::record::{Outcome, SkipReason};
use tagrelay::time_budget;
use tagrelay::timestamp;

const DEV: &str = "/web/dev/docker-image-tag";
const STAGING: &str = "/web/staging/docker-image-tag";
const PROD: &str = "/web/prod/docker-image-tag";

type Fake = Promoter<FakeParameters, FakeRegistry, FakeAlarms>;

fn now() -> i64 {
    DateTime::from(SystemTime::now()).secs()
}

fn promoter(values: &[(&str, &str)]) -> Fake {
    let config = config(json!({
        "environments": {
            "dev": {},
            "staging": { "promote_from": "dev", "gate_alarms": ["dev-5xx"] },
            "prod": { "promote_from": "staging", "approval": true, "rollback_alarms": ["prod-5xx"] }
        },
        "services": { "web": { "deploy_on_push": ["dev"] } }
    }));
    let images: Vec<(&str, &str, &str, i64)> =
        vec![("web", "40", "sha256:40", 1), ("web", "41", "sha256:41", 2), ("web", "42", "sha256:42", 3)];
    let alarms = FakeAlarms::default();
    alarms.set("dev-5xx", AlarmState::Ok, 10);
    alarms.set("prod-5xx", AlarmState::Ok, 10);
    let parameters = FakeParameters::default().on(Clock::Wall);
    for (name, value) in values {
        parameters.bump(name, value);
    }
    Promoter::new(config, parameters, FakeRegistry::with(&images), alarms)
}

/// `environment` verified `web` at `tag`, `ago` seconds ago.
fn verify(promoter: &Fake, environment: &str, tag: &str, ago: i64) -> String {
    promoter.ports().0.verify(environment, "web", tag, now() - ago)
}

fn event(source: &str, detail_type: &str, detail: serde_json::Value) -> serde_json::Value {
    json!({
        "version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602", "detail-type": detail_type, "source": source,
        "account": "123456789012", "time": "2026-11-30T12:00:00Z", "region": "us-east-1", "resources": [], "detail": detail
    })
}

fn verified_changed(environment: &str) -> serde_json::Value {
    event(
        "aws.ssm",
        "Parameter Store Change",
        json!({ "operation": "Update", "name": format!("/tagrelay/{environment}/verified"), "type": "String" }),
    )
}

fn alarm_changed(name: &str) -> serde_json::Value {
    event(
        "aws.cloudwatch",
        "CloudWatch Alarm State Change",
        json!({ "alarmName": name, "state": { "value": "ALARM" }, "previousState": { "value": "OK" } }),
    )
}

#[tokio::test]
async fn a_verified_release_moves_on_through_the_record_path_once() {
    let promoter = promoter(&[(DEV, "41"), (STAGING, "40"), (PROD, "40")]);
    verify(&promoter, "dev", "41", 60);
    let summary = promoter.handle(&verified_changed("dev")).await.expect("handled");
    let staging = &summary.environments[0];
    assert_eq!(staging.environment, "staging");
    assert!(matches!(staging.promotion, Some(Promotion::Promote { release: 1, .. })), "{staging:?}");
    assert!(matches!(staging.writes[0].outcome, Outcome::Write { ref to, .. } if to == "41"));
    let writes = promoter.ports().0.writes();
    assert_eq!((writes[0].name.as_str(), writes[0].value.as_str()), (STAGING, "41"));
    assert!(writes[0].description.contains("promoted from dev (release 1, verified "), "{}", writes[0].description);
    assert!(writes[0].description.contains("sha256:41"), "{}", writes[0].description);

    // The same event again, and the schedule: nothing more is written.
    promoter.handle(&verified_changed("dev")).await.expect("handled");
    let summary = promoter.handle(&scheduled()).await.expect("handled");
    assert_eq!(promoter.ports().0.writes().len(), 1);
    let names: Vec<&str> = summary.environments.iter().map(|e| e.environment.as_str()).collect();
    assert_eq!(names, ["staging", "prod"]);
    assert_eq!(summary.environments[0].promotion, Some(Promotion::UpToDate { release: Some(1) }));
}

#[tokio::test]
async fn nothing_moves_without_a_release_verified_upstream() {
    // dev runs 42, but it never verified (a crash-looping image, say): no release record.
    let promoter = promoter(&[(DEV, "42"), (STAGING, "40")]);
    let summary = promoter.handle(&scheduled()).await.expect("handled");
    assert_eq!(summary.environments[0].promotion, Some(Promotion::UpToDate { release: None }));
    assert!(promoter.ports().0.writes().is_empty());
}

#[tokio::test]
async fn a_gate_in_alarm_blocks_and_its_recovery_restarts_nothing_without_a_soak() {
    let promoter = promoter(&[(DEV, "41"), (STAGING, "40")]);
    verify(&promoter, "dev", "41", 60);
    promoter.ports().2.set("dev-5xx", AlarmState::Alarm, now() - 30);
    let summary = promoter.handle(&alarm_changed("dev-5xx")).await.expect("handled");
    assert_eq!(
        summary.environments.iter().find(|e| e.environment == "staging").and_then(|e| e.promotion.clone()),
        Some(Promotion::Blocked { release: 1, alarm: "dev-5xx".into(), missing: false })
    );
    assert!(promoter.ports().0.writes().is_empty());
    promoter.ports().2.set("dev-5xx", AlarmState::Ok, now() - 1);
    promoter.handle(&alarm_changed("dev-5xx")).await.expect("handled");
    assert_eq!(promoter.ports().0.value(STAGING).as_deref(), Some("41"), "soak 0: promoted once OK");
}

#[tokio::test]
async fn prod_waits_for_an_approval_of_exactly_that_release() {
    let promoter = promoter(&[(STAGING, "41"), (PROD, "40")]);
    let fingerprint = verify(&promoter, "staging", "41", 60);
    let summary = promoter.handle(&verified_changed("staging")).await.expect("handled");
    assert_eq!(
        summary.environments[0].promotion,
        Some(Promotion::AwaitingApproval { release: 1, fingerprint: fingerprint.clone() })
    );

    let prod = promoter.config().environment("prod").expect("prod").clone();
    let approved =
        promoter.approve(&prod, "alice", "CAB-42", DateTime::from(SystemTime::now())).await.expect("approved");
    assert_eq!((approved.release, approved.approval.fingerprint.as_str()), (1, fingerprint.as_str()));
    let stored = promoter.ports().0.value("/tagrelay/prod/approval").expect("written");
    let approval: Approval = serde_json::from_str(&stored).expect("a record");
    assert_eq!((approval.by.as_str(), approval.comment.as_str()), ("alice", "CAB-42"));

    let approval_event = event(
        "aws.ssm",
        "Parameter Store Change",
        json!({ "operation": "Update", "name": "/tagrelay/prod/approval", "type": "String" }),
    );
    promoter.handle(&approval_event).await.expect("handled");
    assert_eq!(promoter.ports().0.value(PROD).as_deref(), Some("41"));

    // Nothing waits any more: approve refuses and says what prod is doing.
    let err = promoter.approve(&prod, "alice", "", DateTime::from(SystemTime::now())).await.expect_err("nothing waits");
    assert!(matches!(err, OperatorError::NothingWaits { .. }), "{err}");
    assert!(err.to_string().contains("up to date"), "{err}");
}

#[tokio::test]
async fn an_alarm_rolls_prod_back_once_recording_before_writing() {
    let promoter = promoter(&[(PROD, "40")]);
    verify(&promoter, "prod", "40", 7200);
    promoter.ports().0.bump(PROD, "41");
    // Written, verified, then the alarm fires (SSM and the alarm share the wall clock here).
    verify(&promoter, "prod", "41", 0);
    promoter.ports().2.set("prod-5xx", AlarmState::Alarm, now());

    let summary = promoter.handle(&alarm_changed("prod-5xx")).await.expect("handled");
    let prod = &summary.environments[0];
    assert!(matches!(prod.rollback, Some(RollbackDecision::Rollback { release: 1, .. })), "{prod:?}");
    assert_eq!(promoter.ports().0.value(PROD).as_deref(), Some("40"));
    let order = promoter.ports().0.order.lock().expect("lock").clone();
    let record_at = order.iter().rposition(|n| n == "/tagrelay/prod/rollback").expect("recorded");
    let tag_at = order.iter().rposition(|n| n == PROD).expect("written");
    assert!(record_at < tag_at, "the record comes first: {order:?}");
    let record: RollbackRecord =
        serde_json::from_str(&promoter.ports().0.value("/tagrelay/prod/rollback").expect("record")).expect("json");
    assert_eq!((record.from["web"].as_str(), record.to["web"].as_str(), record.by.as_str()), ("41", "40", "promote"));
    assert_eq!(record.alarm.as_deref(), Some("prod-5xx"));
    let description = promoter.ports().0.writes().last().map(|w| w.description.clone()).unwrap_or_default();
    assert!(description.starts_with("rollback: alarm prod-5xx in ALARM at "), "{description}");

    // The alarm is still in ALARM; duplicates and the schedule write nothing more.
    let writes = promoter.ports().0.writes().len();
    promoter.handle(&alarm_changed("prod-5xx")).await.expect("handled");
    let summary = promoter.handle(&scheduled()).await.expect("handled");
    assert_eq!(promoter.ports().0.writes().len(), writes);
    assert_eq!(promoter.ports().0.values_of("/tagrelay/prod/rollback").len(), 1);
    let prod = summary.environments.iter().find(|e| e.environment == "prod").expect("prod");
    assert!(matches!(prod.rollback, Some(RollbackDecision::Done { .. })), "{prod:?}");
}

#[tokio::test]
async fn an_interrupted_rollback_is_completed_without_choosing_again() {
    let promoter = promoter(&[(PROD, "40")]);
    verify(&promoter, "prod", "40", 7200);
    promoter.ports().0.bump(PROD, "42");
    // Recorded (42 → 40), then the function died before writing the tag.
    let record = RollbackRecord {
        from: BTreeMap::from([("web".into(), "42".into())]),
        to: BTreeMap::from([("web".into(), "40".into())]),
        alarm: Some("prod-5xx".into()),
        at: timestamp::format(DateTime::from_secs(now() - 5)),
        by: "promote".into(),
        reason: "alarm prod-5xx in ALARM".into(),
    };
    promoter.ports().0.bump("/tagrelay/prod/rollback", &record.document());
    let summary = promoter.handle(&scheduled()).await.expect("handled");
    let prod = summary.environments.iter().find(|e| e.environment == "prod").expect("prod");
    assert!(matches!(prod.rollback, Some(RollbackDecision::Resume { rollback: 1, .. })), "{prod:?}");
    assert_eq!(promoter.ports().0.value(PROD).as_deref(), Some("40"));
    assert_eq!(promoter.ports().0.values_of("/tagrelay/prod/rollback").len(), 1, "no second record");
}

#[tokio::test]
async fn a_manual_rollback_is_recorded_so_promotion_does_not_undo_it() {
    let promoter = promoter(&[(STAGING, "40")]);
    verify(&promoter, "staging", "40", 7200);
    verify(&promoter, "dev", "41", 600);
    promoter.handle(&scheduled()).await.expect("handled");
    assert_eq!(promoter.ports().0.value(STAGING).as_deref(), Some("41"));
    verify(&promoter, "staging", "41", 30);

    let staging = promoter.config().environment("staging").expect("staging").clone();
    let now = DateTime::from(SystemTime::now());
    let planned = promoter.rollback(&staging, "bob", "41 leaks memory", true, now).await.expect("dry run");
    assert_eq!((planned.version, promoter.ports().0.value(STAGING).as_deref()), (None, Some("41")));
    // The dry run shows the record path's decision for each write, as pin's does.
    assert!(matches!(planned.writes[0].outcome, Outcome::Planned { ref to, .. } if to == "40"), "{planned:?}");
    assert!(promoter.ports().0.values_of("/tagrelay/staging/rollback").is_empty());
    let done = promoter.rollback(&staging, "bob", "41 leaks memory", false, now).await.expect("rolled back");
    assert_eq!((done.release, done.record.alarm.clone()), (1, None));
    assert_eq!(promoter.ports().0.value(STAGING).as_deref(), Some("40"));

    // dev's 41 is still its newest release: the schedule does not bring it back.
    let summary = promoter.handle(&scheduled()).await.expect("handled");
    let staging = summary.environments.iter().find(|e| e.environment == "staging").expect("staging");
    assert_eq!(staging.promotion, Some(Promotion::UpToDate { release: None }));
    assert_eq!(promoter.ports().0.value(STAGING).as_deref(), Some("40"));
}

#[tokio::test]
async fn a_pin_is_recorded_before_its_write_so_promotion_does_not_undo_it() {
    let promoter = promoter(&[(STAGING, "41")]);
    verify(&promoter, "dev", "42", 600);
    let staging = promoter.config().environment("staging").expect("staging").clone();
    let web = promoter.config().service("web").expect("web").clone();
    let now = DateTime::from(SystemTime::now());
    let rollback = "/tagrelay/staging/rollback";

    // A dry run, a tag that is there already, and a refused tag record nothing.
    let planned = promoter
        .pin(ByHand { environment: &staging, service: &web, tag: "40", by: "bob", dry_run: true, now }, "41 leaks")
        .await
        .expect("dry run");
    assert!(matches!(planned.outcome.outcome, Outcome::Planned { .. }) && planned.record.is_none());
    let unchanged = promoter
        .pin(ByHand { environment: &staging, service: &web, tag: "41", by: "bob", dry_run: false, now }, "again")
        .await
        .expect("unchanged");
    assert!(matches!(unchanged.outcome.outcome, Outcome::Skip { .. }) && unchanged.record.is_none());
    let gone = promoter
        .pin(ByHand { environment: &staging, service: &web, tag: "39", by: "bob", dry_run: false, now }, "no image")
        .await
        .expect("refused");
    assert!(matches!(gone.outcome.outcome, Outcome::Skip { .. }) && gone.record.is_none());
    assert!(promoter.ports().0.values_of(rollback).is_empty());

    let pinned = promoter
        .pin(ByHand { environment: &staging, service: &web, tag: "40", by: "bob", dry_run: false, now }, "41 leaks")
        .await
        .expect("pinned");
    let (record, version) = pinned.record.expect("recorded");
    assert_eq!(
        (record.from["web"].as_str(), record.to["web"].as_str(), record.alarm.as_deref(), version),
        ("41", "40", None, 1)
    );
    assert_eq!((record.by.as_str(), record.reason.as_str()), ("bob", "41 leaks"));
    let order = promoter.ports().0.order.lock().expect("lock").clone();
    assert_eq!(order[order.len() - 2..], [rollback.to_owned(), STAGING.to_owned()], "record first, then the tag");
    let written: Vec<RollbackRecord> =
        promoter.ports().0.values_of(rollback).iter().filter_map(|v| serde_json::from_str(v).ok()).collect();
    assert_eq!(written, [record]);

    // dev's 42 was verified before the pin: promotion leaves staging at 40.
    let summary = promoter.handle(&scheduled()).await.expect("handled");
    let staging = summary.environments.iter().find(|e| e.environment == "staging").expect("staging");
    assert_eq!(staging.promotion, Some(Promotion::UpToDate { release: None }));
    assert_eq!(promoter.ports().0.value(STAGING).as_deref(), Some("40"));
}

#[tokio::test]
async fn events_that_concern_nothing_are_ignored_and_bad_ones_name_the_field() {
    let promoter = promoter(&[]);
    let summary = promoter.handle(&alarm_changed("someone-elses")).await.expect("handled");
    assert_eq!(summary.ignored.map(|r| r.as_str()), Some("unknown_alarm"));
    let bad = event("aws.cloudwatch", "CloudWatch Alarm State Change", json!({ "alarm": "x" }));
    let err = promoter.handle(&bad).await.expect_err("invalid");
    assert!(err.to_string().contains("detail"), "{err}");
}

#[tokio::test]
async fn a_promotion_stops_before_the_time_out_and_the_next_look_writes_the_rest() {
    let config = config(json!({
        "environments": { "dev": {}, "staging": { "promote_from": "dev" } },
        "services": { "api": { "deploy_on_push": ["dev"] }, "web": { "deploy_on_push": ["dev"] }, "worker": { "deploy_on_push": ["dev"] } }
    }));
    let images = [("api", "7", "sha256:7", 1), ("web", "41", "sha256:41", 2), ("worker", "3", "sha256:3", 3)];
    let parameters = FakeParameters::default().on(Clock::Wall);
    for (service, tag) in [("api", "7"), ("web", "41"), ("worker", "3")] {
        parameters.bump(&format!("/{service}/dev/docker-image-tag"), tag);
        parameters.bump(&format!("/{service}/staging/docker-image-tag"), "1");
    }
    let promoter: Fake = Promoter::new(config, parameters, FakeRegistry::with(&images), FakeAlarms::default());
    promoter.ports().0.verify_release("dev", &[("api", "7"), ("web", "41"), ("worker", "3")], now() - 60);

    // An invocation whose time-out is already near: one write, the rest deferred, and no error
    // (a time-out would be retried and dead-lettered for nothing but the size of the work).
    let near = Some(Instant::now());
    let summary = time_budget::within(near, promoter.handle(&verified_changed("dev"))).await.expect("handled");
    let outcomes: Vec<_> = summary.environments[0].writes.iter().map(|w| (w.parameter.as_str(), &w.outcome)).collect();
    assert!(
        matches!(outcomes[0], ("/api/staging/docker-image-tag", Outcome::Write { to, .. }) if to == "7"),
        "{outcomes:?}"
    );
    let deferred = Outcome::Skip { reason: SkipReason::Deferred };
    assert_eq!(
        outcomes[1..],
        [("/web/staging/docker-image-tag", &deferred), ("/worker/staging/docker-image-tag", &deferred)]
    );
    assert_eq!(promoter.ports().0.writes().len(), 1);

    // The schedule's next look, with time: the other two, and nothing twice.
    let summary = time_budget::within(Some(Instant::now() + Duration::from_secs(60)), promoter.handle(&scheduled()))
        .await
        .expect("handled");
    let writes: Vec<(String, String)> = promoter.ports().0.writes().into_iter().map(|w| (w.name, w.value)).collect();
    let expected = [
        ("/api/staging/docker-image-tag", "7"),
        ("/web/staging/docker-image-tag", "41"),
        ("/worker/staging/docker-image-tag", "3"),
    ];
    assert_eq!(writes, expected.map(|(n, v)| (n.to_owned(), v.to_owned())));
    assert!(summary.environments[0].writes.iter().all(|w| !matches!(w.outcome, Outcome::Skip { .. })));
}
