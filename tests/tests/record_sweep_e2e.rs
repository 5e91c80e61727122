//! End to end on the whole local system: ECR's best-effort events. A push whose event is lost
//! is recorded by the next scheduled sweep (and then deployed); a pin is never undone by it.

use std::time::Duration;

use serde_json::{json, Value};
use tagrelay::aws::ecr::EcrImageRegistry;
use tagrelay::aws::ssm::SsmParameterStore;
use tagrelay::record::{Change, Outcome, Recorder, TagChange, WriteReason};
use tagrelay_testbed::local_aws::push_image;
use tagrelay_testbed::system::LocalSystem;
use tagrelay_tests::events::scheduled;

const SETTLE: Duration = Duration::from_secs(60);
const DEV: &str = "/my-api/dev/docker-image-tag";

fn config() -> Value {
    json!({
        "environments": { "dev": {} },
        "services": { "my-api": { "deploy_on_push": ["dev"] } }
    })
}

async fn value(system: &LocalSystem, name: &str) -> Option<String> {
    let out = system.ssm.get_parameter().name(name).send().await.ok()?;
    out.parameter().and_then(|p| p.value()).map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_whose_event_was_lost_is_recorded_by_the_next_sweep_and_a_pin_survives_it() {
    let system = LocalSystem::start(&config(), Duration::from_millis(500)).await.expect("local system");
    push_image(&system.ecr, "my-api", "101").await.expect("push");
    system.wait_settled(SETTLE).await.expect("settles");
    assert_eq!(value(&system, DEV).await.as_deref(), Some("101"));

    // ECR's event for 102 never arrives.
    system.aws.drop_events("ECR Image Action", 1).await.expect("drop");
    push_image(&system.ecr, "my-api", "102").await.expect("push");
    system.wait_settled(SETTLE).await.expect("settles");
    assert_eq!(value(&system, DEV).await.as_deref(), Some("101"), "the event was lost");

    system.bridge.put_events(scheduled("sweep-1")).await.expect("accepted");
    system.wait_settled(SETTLE).await.expect("settles");
    assert_eq!(value(&system, DEV).await.as_deref(), Some("102"), "caught up by the sweep");
    let caught_up = system.record.wait_for_log_line("\"reason\":\"newer\"", Duration::from_secs(5)).await;
    assert!(caught_up.is_some_and(|l| l.contains("\"tag\":\"102\"")), "the sweep logged what it caught up");
    let fingerprint = system.fingerprint("dev").await.expect("fingerprint");
    let builds = system.builds("tagrelay-dev").await.expect("builds");
    assert_eq!(builds.first().and_then(|b| b.fingerprint.as_deref()), Some(fingerprint.as_str()), "and deployed");

    // An operator pins 101; the sweep must not move dev back to 102.
    let sdk = system.aws.sdk_config().await;
    let recorder = Recorder::new(
        system.config.clone(),
        SsmParameterStore::from_sdk_config(&sdk),
        EcrImageRegistry::from_sdk_config(&sdk),
    );
    let service = system.config.service("my-api").expect("configured");
    let pin = TagChange {
        service,
        environment: "dev",
        tag: "101",
        change: Change::Pin { reason: "102 is broken" },
        dry_run: false,
    };
    let pinned = recorder.change_tag(pin).await.expect("pinned");
    assert!(matches!(pinned.outcome, Outcome::Write { reason: WriteReason::Pinned, .. }));
    system.wait_settled(SETTLE).await.expect("settles");

    system.bridge.put_events(scheduled("sweep-2")).await.expect("accepted");
    system.wait_settled(SETTLE).await.expect("settles");
    assert_eq!(value(&system, DEV).await.as_deref(), Some("101"), "the pin stands");
    let skipped = system.record.wait_for_log_line("\"reason\":\"no_newer_image\"", Duration::from_secs(5)).await;
    assert!(skipped.is_some(), "the sweep said why it wrote nothing");
}
