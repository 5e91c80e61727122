//! Documents larger than one SSM parameter ("tagrelay parts/1") over the in-memory SSM: the
//! release record, the run manifest and the configuration of 1,000 services, written in parts,
//! read back whole, through their histories, and refused when a hand edit breaks them.

mod support;

use std::collections::BTreeMap;

use serde_json::json;
use support::{FakeBuilds, FakeEcs, FakeParameters, FakeRegistry};
use tagrelay::config::source::ConfigSource;
use tagrelay::deploy::release::{releases, Release};
use tagrelay::deploy::{Deployer, Outcome};
use tagrelay::document::{self, DocumentError, PART_BYTES};
use tagrelay::handler::Handler;

const SERVICES: usize = 1_000;

fn release(tag: &str) -> Release {
    let services = (0..SERVICES).map(|n| format!("payments-api-{n:04}"));
    Release {
        fingerprint: format!("sha256:{}", "a".repeat(64)),
        tags: services.clone().map(|s| (s, tag.to_owned())).collect(),
        digests: services.map(|s| (s, format!("sha256:{}", "b".repeat(64)))).collect(),
        build: "tagrelay-prod:7".into(),
        verified_at: "2026-11-30T12:40:31Z".into(),
    }
}

#[tokio::test]
async fn a_release_of_1000_services_is_written_in_parts_and_read_back_whole_through_its_history() {
    let ssm = FakeParameters::default();
    let head = "/tagrelay/prod/verified";
    let first = release("1043").document();
    assert!(first.len() > 100_000, "{} bytes: far beyond one parameter", first.len());

    document::write(&ssm, head, &first, "releases").await.expect("written");
    let order = ssm.order.lock().expect("lock").clone();
    let parts = order.iter().filter(|name| name.starts_with("/tagrelay/prod/verified-part/")).count();
    assert!(parts > first.len() / PART_BYTES, "{parts} parts of at most {PART_BYTES} bytes");
    assert_eq!(order.len(), parts + 1, "the parts, then the head");
    assert_eq!(order.last().map(String::as_str), Some(head), "the head last");
    let second = release("1044").document();
    document::write(&ssm, head, &second, "releases").await.expect("written");

    *ssm.get_calls.lock().expect("lock") = 0;
    assert_eq!(document::read(&ssm, head, head).await.expect("readable"), Some(second.clone()));
    // The port takes any number of names; the SDK adapter sends them ten at a time.
    assert_eq!(*ssm.get_calls.lock().expect("lock"), 2, "the head, then every part in one request");

    // The first head still names the part versions it was written with.
    let history = document::read_history(&ssm, head).await.expect("readable");
    let listed = releases(&history);
    assert_eq!(listed.len(), 1, "one fingerprint");
    assert_eq!(history.iter().map(|v| v.value.clone()).collect::<Vec<_>>(), [first, second]);
}

#[tokio::test]
async fn a_release_of_one_more_service_writes_only_the_part_that_holds_it() {
    let ssm = FakeParameters::default();
    let head = "/tagrelay/prod/verified";
    document::write(&ssm, head, &release("1044").document(), "releases").await.expect("written");
    // One service released: the one part that holds its tag is written, then the head; the
    // other parts are named at the versions they have (PutParameter is SSM's scarcest rate).
    let mut one = release("1044");
    one.tags.insert("payments-api-0500".into(), "1045-hotfix".into());
    let next = one.document();
    let before = ssm.order.lock().expect("lock").len();
    document::write(&ssm, head, &next, "releases").await.expect("written");
    let written = ssm.order.lock().expect("lock")[before..].to_vec();
    assert_eq!(written.len(), 2, "one part and the head: {written:?}");
    assert_eq!(written[1], head);
    assert_eq!(document::read(&ssm, head, head).await.expect("readable"), Some(next));
    let history = document::read_history(&ssm, head).await.expect("readable");
    assert_eq!(history.len(), 2, "both versions still read whole");
}

#[tokio::test]
async fn a_small_document_stays_in_one_parameter() {
    let ssm = FakeParameters::default();
    document::write(&ssm, "/tagrelay/dev/approval", r#"{"fingerprint":"f"}"#, "approvals").await.expect("written");
    assert_eq!(*ssm.order.lock().expect("lock"), ["/tagrelay/dev/approval"]);
    assert_eq!(ssm.value("/tagrelay/dev/approval").as_deref(), Some(r#"{"fingerprint":"f"}"#));
}

#[tokio::test]
async fn a_broken_document_is_an_error_naming_the_head_and_a_history_skips_it() {
    let ssm = FakeParameters::default();
    let head = "/tagrelay/prod/verified";
    document::write(&ssm, head, &release("1043").document(), "releases").await.expect("written");
    let good_head = ssm.value(head).expect("head");

    // A part written again by hand, and the head edited to name it: the hash no longer holds.
    ssm.bump("/tagrelay/prod/verified-part/3", "edited");
    ssm.bump(head, &good_head.replace("verified-part/3:1", "verified-part/3:2"));
    let err = document::read(&ssm, head, head).await.expect_err("corrupt");
    assert!(matches!(err, DocumentError::Corrupt { .. }), "{err}");
    assert!(err.to_string().starts_with("/tagrelay/prod/verified: the parts do not add up"), "{err}");

    // A part version SSM no longer keeps (each parameter keeps its newest 100).
    ssm.bump(head, &good_head.replace("verified-part/3:1", "verified-part/3:9"));
    let err = document::read(&ssm, head, head).await.expect_err("gone");
    assert_eq!(err.to_string(), "/tagrelay/prod/verified: part /tagrelay/prod/verified-part/3:9 is missing (deleted by hand, or older than the newest 100 versions SSM keeps)");

    // In a history, only the readable versions are records.
    let history = document::read_history(&ssm, head).await.expect("the history reads");
    let readable: Vec<i64> = releases(&history).iter().map(|r| r.version).collect();
    assert_eq!(readable, [1]);
}

#[tokio::test]
async fn trigger_deploy_records_and_reads_back_the_release_of_an_environment_of_1000_services() {
    let services: BTreeMap<String, serde_json::Value> =
        (0..SERVICES).map(|n| (format!("svc-{n:04}"), json!({ "deploy_on_push": ["dev"] }))).collect();
    let config = support::config(json!({ "environments": { "dev": {} }, "services": services }));
    let values: Vec<(String, String)> =
        (0..SERVICES).map(|n| (format!("/svc-{n:04}/dev/docker-image-tag"), format!("{}", 1_000 + n))).collect();
    let pairs: Vec<(&str, &str)> = values.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let d = Deployer::new(
        config,
        FakeParameters::with(&pairs),
        FakeBuilds::default(),
        FakeEcs::default(),
        FakeRegistry::default(),
    );
    let event = support::scheduled();
    // Versions 1 only: the schedule needs a change to start a first run; write one more.
    d.ports().0.bump("/svc-0000/dev/docker-image-tag", "2000");
    let summary = d.handle(&event).await.expect("started");
    assert!(matches!(summary.environments[0].outcome, Outcome::Start { .. }), "{:?}", summary.environments[0]);
    let start = &d.ports().1.starts()[0];
    let fingerprint = &start.environment[0].1;
    assert_eq!(fingerprint.len(), 71, "a CodeBuild variable holds 4,096 characters; the state is ~45,000");
    let manifest_head = d.ports().0.value("/tagrelay/dev/manifest").expect("manifest");
    assert!(manifest_head.starts_with(r#"{"tagrelay_parts":"#), "in parts");

    let finished = d.ports().1.finish("tagrelay-dev", tagrelay::ports::BuildStatus::Succeeded);
    let summary = d.handle(&event).await.expect("verified");
    assert!(matches!(summary.environments[0].outcome, Outcome::Verified { .. }), "{:?}", summary.environments[0]);
    let summary = d.handle(&event).await.expect("up to date");
    assert_eq!(summary.environments[0].outcome, Outcome::UpToDate { build: finished }, "the record in parts read back");
    let head = d.ports().0.value("/tagrelay/dev/verified").expect("record");
    assert!(head.starts_with(r#"{"tagrelay_parts":"#), "in parts");
}

#[tokio::test]
async fn the_configuration_of_1000_services_is_read_from_the_parameter_it_references() {
    let services: BTreeMap<String, serde_json::Value> = (0..SERVICES)
        .map(|n| (format!("payments-api-{n:04}"), json!({ "deploy_on_push": ["dev"], "order": "numeric" })))
        .collect();
    let environments: BTreeMap<String, serde_json::Value> =
        ["dev", "qa", "staging", "prod"].iter().map(|e| ((*e).to_owned(), json!({}))).collect();
    let document = json!({ "environments": environments, "services": services }).to_string();
    let ssm = FakeParameters::default();
    document::write(&ssm, "/tagrelay/_config", &document, "tagrelay configuration").await.expect("written");

    let source = ConfigSource::parse("ssm:/tagrelay/_config:1").expect("a reference");
    let (config, loaded) = source.load(&ssm).await.expect("loaded");
    assert_eq!(config.services().count(), SERVICES);
    assert_eq!(
        (loaded.source.as_str(), loaded.bytes, loaded.services),
        ("ssm:/tagrelay/_config:1", document.len(), SERVICES)
    );

    let missing = ConfigSource::parse("ssm:/tagrelay/_config:2").expect("a reference");
    let err = missing.load(&ssm).await.expect_err("no version 2");
    assert_eq!(err.field(), "TAGRELAY_CONFIG");
    assert_eq!(err.to_string(), "TAGRELAY_CONFIG = ssm:/tagrelay/_config:2: no such parameter (or version)");
    ssm.bump("/tagrelay/bad", r#"{"environments":{}}"#);
    let err = ConfigSource::parse("ssm:/tagrelay/bad").expect("a reference").load(&ssm).await.expect_err("invalid");
    assert!(err.to_string().starts_with("TAGRELAY_CONFIG is not valid"), "validated exactly as inline: {err}");
}
