//! Operator changes (`tagrelay promote` / `tagrelay pin`) over in-memory ports: the same checks
//! and write as a push, the pin's single exception, and dry runs that write nothing.

mod support;

use serde_json::json;
use support::{config, FakeParameters, FakeRegistry};
use tagrelay::record::{Change, Outcome, Recorder, SkipReason, TagChange, WriteReason};

const DEV: &str = "/my-api/dev/docker-image-tag";
const PROD: &str = "/my-api/prod/docker-image-tag";

fn recorder(values: &[(&str, &str)], images: &[(&str, &str, &str, i64)]) -> Recorder<FakeParameters, FakeRegistry> {
    let config = config(json!({
        "environments": { "dev": {}, "prod": {} },
        "services": { "my-api": { "deploy_on_push": ["dev"], "tag_pattern": "^[0-9]+$" } }
    }));
    Recorder::new(config, FakeParameters::with(values), FakeRegistry::with(images))
}

fn change<'a>(recorder: &'a Recorder<FakeParameters, FakeRegistry>, tag: &'a str, change: Change<'a>) -> TagChange<'a> {
    let service = recorder.config().service("my-api").expect("configured");
    TagChange { service, environment: "prod", tag, change, dry_run: false }
}

const PROMOTE: Change<'static> = Change::Promote { from: "dev" };

#[tokio::test]
async fn a_promotion_writes_a_newer_tag_and_says_where_it_came_from() {
    let recorder = recorder(&[(DEV, "1043"), (PROD, "1040")], &[("my-api", "1043", "sha256:43", 5)]);
    let decision = recorder.change_tag(change(&recorder, "1043", PROMOTE)).await.expect("promoted");
    assert_eq!(
        decision.outcome,
        Outcome::Write { to: "1043".into(), reason: WriteReason::Newer, version: 2, race: None }
    );
    assert_eq!(decision.previous.as_deref(), Some("1040"));
    let writes = recorder.ports().0.writes();
    assert_eq!(writes.len(), 1);
    assert_eq!((writes[0].name.as_str(), writes[0].value.as_str()), (PROD, "1043"));
    assert!(writes[0].description.contains("promoted from dev"), "{}", writes[0].description);
    assert!(writes[0].description.contains("sha256:43"), "{}", writes[0].description);
}

#[tokio::test]
async fn a_promotion_the_order_policy_refuses_writes_nothing() {
    let recorder = recorder(&[(PROD, "1043")], &[("my-api", "1041", "sha256:41", 5)]);
    let decision = recorder.change_tag(change(&recorder, "1041", PROMOTE)).await.expect("decided");
    assert_eq!(decision.outcome, Outcome::Skip { reason: SkipReason::NotNewer });
    assert!(recorder.ports().0.writes().is_empty());
}

#[tokio::test]
async fn nothing_is_written_for_a_missing_image_a_foreign_tag_or_the_value_already_there() {
    let cases =
        [("1044", SkipReason::ImageGone), ("latest", SkipReason::TagPatternMismatch), ("1043", SkipReason::Unchanged)];
    for (tag, reason) in cases {
        let recorder = recorder(&[(PROD, "1043")], &[("my-api", "1043", "sha256:43", 5)]);
        for kind in [PROMOTE, Change::Pin { reason: "rollback" }] {
            let decision = recorder.change_tag(change(&recorder, tag, kind)).await.expect("decided");
            assert_eq!(decision.outcome, Outcome::Skip { reason }, "{tag} {kind:?}");
        }
        assert!(recorder.ports().0.writes().is_empty(), "{tag}");
    }
}

#[tokio::test]
async fn a_pin_sets_an_older_tag_and_records_why() {
    let recorder = recorder(&[(PROD, "1043")], &[("my-api", "1040", "sha256:40", 5)]);
    let pin = Change::Pin { reason: "1043 drops connections" };
    let decision = recorder.change_tag(change(&recorder, "1040", pin)).await.expect("pinned");
    assert_eq!(
        decision.outcome,
        Outcome::Write { to: "1040".into(), reason: WriteReason::Pinned, version: 2, race: None }
    );
    let writes = recorder.ports().0.writes();
    assert!(writes[0].description.ends_with("1043 drops connections"), "{}", writes[0].description);
    assert_eq!(writes[0].create_with_tags, None, "an existing parameter is overwritten");
}

#[tokio::test]
async fn a_dry_run_decides_the_same_and_writes_nothing() {
    let recorder = recorder(&[], &[("my-api", "1043", "sha256:43", 5)]);
    let mut request = change(&recorder, "1043", PROMOTE);
    request.dry_run = true;
    let decision = recorder.change_tag(request).await.expect("decided");
    assert_eq!(decision.outcome, Outcome::Planned { to: "1043".into(), reason: WriteReason::NewParameter });
    assert!(recorder.ports().0.writes().is_empty());
    assert_eq!(recorder.ports().0.value(PROD), None);
}
