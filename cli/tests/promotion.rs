//! approve, rollback, pin, status and trace over the core's in-memory ports (the fakes of
//! `shared/tests/support`, shared with the core's handler tests): what each command reads,
//! decides and writes, in order, at a fixed time. No AWS, no processes: milliseconds.

#[path = "../../shared/tests/support/mod.rs"]
mod fakes;

mod common;

use common::check;

use std::collections::BTreeMap;

use aws_smithy_types::DateTime;
use fakes::{config, Clock, FakeAlarms, FakeBuilds, FakeEcs, FakeParameters, FakeRegistry};
use serde_json::json;
use tagrelay::config::Environment;
use tagrelay::deploy::Deployer;
use tagrelay::ports::{AlarmState, AwsError, ParameterStore, ParameterWrite, StoredParameter};
use tagrelay::promote::records::{Approval, RollbackRecord};
use tagrelay::promote::Promoter;
use tagrelay_cli::commands::approve::{approve, ApproveRequest};
use tagrelay_cli::commands::change::{pin, promote, PinRequest, PromoteRequest};
use tagrelay_cli::commands::rollback::{rollback, RollbackRequest};
use tagrelay_cli::commands::status::{status, StatusRequest};
use tagrelay_cli::commands::trace::{trace, Direction, TraceRequest};
use tagrelay_cli::error::{ErrorKind, EXIT_PROBLEM, EXIT_USAGE};
use tagrelay_cli::report::Render;

/// 2026-11-30T11:20:00Z
const NOW: i64 = 1_796_037_600;
const DEV: &str = "/web/dev/docker-image-tag";
const STAGING: &str = "/web/staging/docker-image-tag";
const PROD: &str = "/web/prod/docker-image-tag";

type Fake = Promoter<FakeParameters, FakeRegistry, FakeAlarms>;

fn now() -> DateTime {
    DateTime::from_secs(NOW)
}

fn promoter(values: &[(&str, &str)]) -> Fake {
    let config = config(json!({
        "environments": {
            "dev": {},
            "staging": { "promote_from": "dev", "soak": "15m", "gate_alarms": ["dev-5xx"] },
            "prod": { "promote_from": "staging", "approval": true, "rollback_alarms": ["prod-5xx"] }
        },
        "services": { "web": { "deploy_on_push": ["dev"], "order": "numeric" } }
    }));
    let images = [("web", "40", "sha256:40", 1), ("web", "41", "sha256:41", 2), ("web", "42", "sha256:42", 3)];
    let alarms = FakeAlarms::default();
    alarms.set("dev-5xx", AlarmState::Ok, 10);
    alarms.set("prod-5xx", AlarmState::Ok, 10);
    // SSM stamps writes with its clock: here, the test's "now" (plus the version, in order).
    let parameters = FakeParameters::default().on(Clock::From(NOW));
    for (name, value) in values {
        parameters.bump(name, value);
    }
    Promoter::new(config, parameters, FakeRegistry::with(&images), alarms)
}

fn environment(promoter: &Fake, name: &str) -> Environment {
    promoter.config().environment(name).cloned().unwrap_or_else(|| panic!("{name} configured"))
}

/// `environment` verified `web` at `tag`, `ago` seconds before NOW.
fn verify(promoter: &Fake, environment: &str, tag: &str, ago: i64) -> String {
    promoter.ports().0.verify(environment, "web", tag, NOW - ago)
}

fn written_order(promoter: &Fake) -> Vec<String> {
    promoter.ports().0.order.lock().expect("lock").clone()
}

#[tokio::test]
async fn approve_writes_the_approval_of_the_release_waiting_and_refuses_when_none_waits() {
    let promoter = promoter(&[(PROD, "40")]);
    let fingerprint = verify(&promoter, "staging", "41", 3600);
    let prod = environment(&promoter, "prod");
    let request = |comment| ApproveRequest { environment: &prod, by: "ana", comment, now: now() };

    let approved = approve(&promoter, request("CAB-42")).await.expect("approved");
    assert_eq!((approved.release, approved.fingerprint.as_str(), approved.version), (1, fingerprint.as_str(), 1));
    let stored: Vec<Approval> = promoter
        .ports()
        .0
        .values_of("/tagrelay/prod/approval")
        .iter()
        .filter_map(|v| serde_json::from_str(v).ok())
        .collect();
    let expected =
        Approval { fingerprint, by: "ana".into(), at: "2026-11-30T11:20:00Z".into(), comment: "CAB-42".into() };
    assert_eq!(stored, [expected]);
    check("approve.txt", &approved.render());

    // Approved: the release is being promoted now, nothing waits; the refusal says so.
    let err = approve(&promoter, request("")).await.expect_err("nothing waits");
    assert_eq!((err.exit_code(), err.kind()), (EXIT_PROBLEM, ErrorKind::Refused));
    assert_eq!(err.to_string(), "nothing waits for approval in prod: release 1 is being promoted");
    assert_eq!(promoter.ports().0.values_of("/tagrelay/prod/approval").len(), 1, "no second record");

    let staging = environment(&promoter, "staging");
    let request = ApproveRequest { environment: &staging, by: "ana", comment: "", now: now() };
    let err = approve(&promoter, request).await.expect_err("staging takes no approval");
    assert_eq!((err.exit_code(), err.field().as_deref()), (EXIT_USAGE, Some("--env")));
}

#[tokio::test]
async fn rollback_dry_run_writes_nothing_and_a_real_one_records_then_writes() {
    let promoter = promoter(&[(PROD, "41")]);
    verify(&promoter, "prod", "40", 86_400);
    verify(&promoter, "prod", "41", 600);
    let prod = environment(&promoter, "prod");
    let request =
        |dry_run| RollbackRequest { environment: &prod, by: "ana", reason: "5xx after 41", dry_run, now: now() };
    let before = written_order(&promoter);

    let planned = rollback(&promoter, request(true)).await.expect("dry run");
    assert_eq!(written_order(&promoter), before, "a dry run writes nothing");
    assert_eq!((planned.release, planned.version, planned.writes.len()), (1, None, 1));
    assert!(planned.problems().is_empty());

    let done = rollback(&promoter, request(false)).await.expect("rolled back");
    assert_eq!(promoter.ports().0.value(PROD).as_deref(), Some("40"));
    let order = written_order(&promoter);
    assert_eq!(order[before.len()..], ["/tagrelay/prod/rollback".to_owned(), PROD.to_owned()], "record, then tag");
    let record: RollbackRecord =
        serde_json::from_str(&promoter.ports().0.value("/tagrelay/prod/rollback").expect("recorded")).expect("JSON");
    assert_eq!((record.from["web"].as_str(), record.to["web"].as_str(), record.alarm), ("41", "40", None));
    check("rollback.txt", &[planned.render(), done.render()].join("\n"));

    // dev has one release only: nothing to roll back to.
    let lonely = crate::promoter(&[(DEV, "42")]);
    verify(&lonely, "dev", "42", 60);
    let dev = environment(&lonely, "dev");
    let request = RollbackRequest { environment: &dev, by: "ana", reason: "bad", dry_run: false, now: now() };
    let err = rollback(&lonely, request).await.expect_err("no previous release");
    assert_eq!((err.exit_code(), err.kind()), (EXIT_PROBLEM, ErrorKind::Refused));
    assert!(err.to_string().starts_with("dev has no earlier release to roll back to"), "{err}");
    let request = RollbackRequest { environment: &dev, by: "ana", reason: "  ", dry_run: true, now: now() };
    assert_eq!(rollback(&lonely, request).await.expect_err("no reason").field().as_deref(), Some("--reason"));
}

#[tokio::test]
async fn pin_records_a_rollback_before_its_write_and_not_in_a_dry_run() {
    let promoter = promoter(&[(STAGING, "42")]);
    let (staging, web) = (environment(&promoter, "staging"), promoter.config().service("web").cloned().expect("web"));
    let request = |dry_run| PinRequest {
        service: &web,
        environment: &staging,
        tag: "41",
        reason: "42 leaks memory",
        by: "ana",
        dry_run,
        now: now(),
    };
    let planned = pin(&promoter, request(true)).await.expect("dry run");
    assert_eq!(planned.rollback_record, None);
    assert!(promoter.ports().0.values_of("/tagrelay/staging/rollback").is_empty());

    let pinned = pin(&promoter, request(false)).await.expect("pinned");
    let recorded = pinned.rollback_record.clone().expect("recorded");
    assert_eq!((recorded.parameter.as_str(), recorded.version), ("/tagrelay/staging/rollback", 1));
    let order = written_order(&promoter);
    assert_eq!(order[order.len() - 2..], ["/tagrelay/staging/rollback".to_owned(), STAGING.to_owned()]);
    let record: RollbackRecord =
        serde_json::from_str(&promoter.ports().0.value("/tagrelay/staging/rollback").expect("recorded")).expect("JSON");
    assert_eq!(
        record,
        RollbackRecord {
            from: BTreeMap::from([("web".into(), "42".into())]),
            to: BTreeMap::from([("web".into(), "41".into())]),
            alarm: None,
            at: "2026-11-30T11:20:00Z".into(),
            by: "ana".into(),
            reason: "42 leaks memory".into(),
        }
    );
    assert!(pinned.render().contains("recorded as a person's change: /tagrelay/staging/rollback version 1"));
    let json = serde_json::to_value(&pinned).expect("JSON");
    assert_eq!(json["rollback_record"]["version"], 1);

    // Pinning what is there writes nothing, so records nothing.
    let again = pin(&promoter, request(false)).await.expect("unchanged");
    assert_eq!(again.rollback_record, None);
    assert_eq!(promoter.ports().0.values_of("/tagrelay/staging/rollback").len(), 1);
}

/// The deployer and the promoter read the same parameters, as both read SSM.
struct Shared<'a>(&'a FakeParameters);

impl ParameterStore for Shared<'_> {
    async fn get_parameters(&self, names: &[String]) -> Result<BTreeMap<String, StoredParameter>, AwsError> {
        self.0.get_parameters(names).await
    }

    async fn put_parameter(&self, write: &ParameterWrite) -> Result<i64, AwsError> {
        self.0.put_parameter(write).await
    }
}

#[tokio::test]
async fn status_shows_the_chain_and_the_promotion_state_promote_would_act_on() {
    let promoter = promoter(&[(DEV, "42"), (STAGING, "41"), (PROD, "40")]);
    verify(&promoter, "dev", "41", 7200);
    verify(&promoter, "dev", "42", 60);
    verify(&promoter, "staging", "41", 3600);
    verify(&promoter, "prod", "40", 86_400);
    let (parameters, _, _) = promoter.ports();
    let deployer = Deployer::new(
        promoter.config().clone(),
        Shared(parameters),
        FakeBuilds::default(),
        FakeEcs::default(),
        FakeRegistry::default(),
    );
    let request = StatusRequest {
        environment: None,
        service: None,
        // The fake writes at 1970 times: no environment counts as stale here.
        stale_after: std::time::Duration::from_secs(u64::MAX),
        now: now(),
    };
    let report = status(&deployer, &promoter, &request).await.expect("status");
    let chain: Vec<(&str, Option<&str>)> =
        report.chain.iter().map(|s| (s.environment.as_str(), s.promote_from.as_deref())).collect();
    assert_eq!(chain, [("dev", None), ("staging", Some("dev")), ("prod", Some("staging"))]);
    let summaries: Vec<(&str, Option<&str>, Option<&str>)> = report
        .environments
        .iter()
        .map(|e| {
            let promotion = e.promotion.as_ref().map(|p| p.summary.as_str());
            (e.environment.as_str(), promotion, e.rollback.as_ref().map(|r| r.summary.as_str()))
        })
        .collect();
    assert_eq!(
        summaries,
        [
            ("dev", None, None),
            ("staging", Some("soaking until 2026-11-30T11:34:00Z (release 2 of dev)"), None),
            (
                "prod",
                Some(&*format!(
                    "awaiting approval of release 1 of staging (fingerprint {})",
                    "/web/staging/docker-image-tag=1@41"
                )),
                Some("healthy")
            ),
        ]
    );
    let rendered = report.render();
    assert!(rendered.contains("chain: dev → staging → prod\n"), "{rendered}");
    let json = serde_json::to_value(&report).expect("JSON");
    assert_eq!(json["environments"][2]["promotion"]["decision"], "awaiting_approval", "{json}");
    assert_eq!(json["environments"][1]["promotion"]["until"], "2026-11-30T11:34:00Z", "{json}");
    assert!(report.problems().is_empty(), "{:?}", report.problems());

    // A gate alarm that does not exist holds promotion for good: a problem, exit 1.
    promoter.ports().2.alarms.lock().expect("lock").remove("dev-5xx");
    let report = status(&deployer, &promoter, &request).await.expect("status");
    assert_eq!(report.problems(), ["staging: alarm dev-5xx missing: release 2 of dev waits"]);
}

#[tokio::test]
async fn trace_follows_a_tag_from_dev_through_staging_to_its_rollback_in_prod() {
    let promoter = promoter(&[(DEV, "41"), (STAGING, "41"), (PROD, "41")]);
    verify(&promoter, "prod", "41", 86_400);
    promoter.ports().0.bump(DEV, "42");
    verify(&promoter, "dev", "42", 7200);
    let (staging, prod) = (environment(&promoter, "staging"), environment(&promoter, "prod"));
    promoter.decide_and_act(&staging, now()).await.expect("promoted into staging");
    assert_eq!(promoter.ports().0.value(STAGING).as_deref(), Some("42"));
    verify(&promoter, "staging", "42", 3600);
    approve(&promoter, ApproveRequest { environment: &prod, by: "ana", comment: "CAB-7", now: now() })
        .await
        .expect("approved");
    promoter.decide_and_act(&prod, now()).await.expect("promoted into prod");
    assert_eq!(promoter.ports().0.value(PROD).as_deref(), Some("42"));
    verify(&promoter, "prod", "42", 0);
    let request = RollbackRequest { environment: &prod, by: "bo", reason: "5xx", dry_run: false, now: now() };
    rollback(&promoter, request).await.expect("rolled back");

    let report = trace(&promoter, TraceRequest { service: "web", tag: "42", now: now() }).await.expect("trace");
    assert!(report.found && report.problems().is_empty());
    let by_name = |name: &str| report.environments.iter().find(|e| e.environment == name).expect("traced");
    let names: Vec<&str> = report.environments.iter().map(|e| e.environment.as_str()).collect();
    assert_eq!(names, ["dev", "staging", "prod"]);
    let (dev, staging, prod) = (by_name("dev"), by_name("staging"), by_name("prod"));
    assert!(dev.holds && staging.holds && !prod.holds);
    assert_eq!(dev.releases.iter().map(|r| r.version).collect::<Vec<_>>(), [1]);
    let promoted = staging.recorded[0].promoted_from.as_ref().expect("promoted");
    assert_eq!((promoted.environment.as_str(), promoted.release), ("dev", Some(1)));
    let into_prod = &prod.recorded[0];
    assert_eq!(
        into_prod.promoted_from.as_ref().map(|p| (p.environment.as_str(), p.release)),
        Some(("staging", Some(1)))
    );
    assert_eq!(into_prod.replaced.as_ref().map(|r| r.tag.as_str()), Some("41"));
    assert_eq!(prod.approvals.iter().map(|a| (a.release, a.by.as_str())).collect::<Vec<_>>(), [(1, "ana")]);
    let rolled: Vec<_> = prod.rollbacks.iter().map(|r| (&r.direction, r.other.as_deref(), r.by.as_str())).collect();
    assert_eq!(rolled, [(&Direction::From, Some("41"), "bo")]);
    assert_eq!(prod.promotion.as_ref().map(|p| p.summary.as_str()), Some("up to date"));
    check("trace.txt", &report.render());

    let unknown = trace(&promoter, TraceRequest { service: "web", tag: "99", now: now() }).await.expect("trace");
    assert!(!unknown.found);
    assert_eq!(unknown.problems().len(), 1);
    assert!(unknown.render().starts_with("web:99: in no environment\n"), "{}", unknown.render());
}

#[tokio::test]
async fn a_promotion_by_hand_is_recorded_so_automatic_promotion_does_not_undo_it() {
    // prod runs 41; staging's 42 is promoted by hand: recorded, so a release verified before
    // it is not promoted over it (whatever the order policy could tell).
    let promoter = promoter(&[(STAGING, "42"), (PROD, "41")]);
    let (prod, web) = (environment(&promoter, "prod"), promoter.config().service("web").cloned().expect("web"));
    let request =
        |dry_run| PromoteRequest { service: &web, from: "staging", to: &prod, by: "ana", dry_run, now: now() };
    let planned = promote(&promoter, request(true)).await.expect("dry run");
    assert_eq!(planned.rollback_record, None);
    assert!(promoter.ports().0.values_of("/tagrelay/prod/rollback").is_empty());

    let promoted = promote(&promoter, request(false)).await.expect("promoted");
    assert_eq!(promoter.ports().0.value(PROD).as_deref(), Some("42"));
    let order = written_order(&promoter);
    assert_eq!(order[order.len() - 2..], ["/tagrelay/prod/rollback".to_owned(), PROD.to_owned()]);
    let record: RollbackRecord =
        serde_json::from_str(&promoter.ports().0.value("/tagrelay/prod/rollback").expect("recorded")).expect("JSON");
    assert_eq!((record.from["web"].as_str(), record.to["web"].as_str()), ("41", "42"));
    assert_eq!((record.by.as_str(), record.reason.as_str()), ("ana", "promoted by hand from staging"));
    assert!(promoted.render().contains("recorded as a person's change"), "{}", promoted.render());

    // A promotion the order policy refuses writes nothing and records nothing.
    let back = PromoteRequest { service: &web, from: "staging", to: &prod, by: "ana", dry_run: false, now: now() };
    promoter.ports().0.bump(STAGING, "40");
    let refused = promote(&promoter, back).await.expect("decided");
    assert_eq!(refused.rollback_record, None);
    assert_eq!(promoter.ports().0.values_of("/tagrelay/prod/rollback").len(), 1);
}
