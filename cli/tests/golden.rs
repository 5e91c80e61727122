//! Golden tests of the table output: what an operator reads, byte for byte. After an intended
//! change, regenerate with `UPDATE_GOLDEN=1 cargo test -p tagrelay-cli --test golden` and review
//! the diff.

mod common;

use common::check;

use tagrelay::ports::BuildStatus;
use tagrelay::promote::decision::Promotion;
use tagrelay::promote::records::RollbackRecord;
use tagrelay::promote::rollback::RollbackDecision;
use tagrelay::record::{EnvironmentOutcome, Outcome, SkipReason, WriteReason};
use tagrelay_cli::commands::change::ChangeReport;
use tagrelay_cli::commands::history::{HistoryEntry, HistoryReport};
use tagrelay_cli::commands::redrive::{RedriveEntry, RedriveReport, Replayed};
use tagrelay_cli::commands::releases::{ReleaseEntry, ReleasesReport};
use tagrelay_cli::commands::status::{
    BuildSummary, ChainStep, EnvironmentStatus, HeldReason, PromotionState, ReleaseSummary, RollbackState, Rollout,
    ServiceTag, State, StatusReport, Verification,
};
use tagrelay_cli::report::Render;

fn s(text: &str) -> String {
    text.to_owned()
}

fn tag(service: &str, environment: &str, tag: Option<&str>, version: Option<i64>, changed: Option<&str>) -> ServiceTag {
    ServiceTag {
        service: s(service),
        parameter: format!("/{service}/{environment}/docker-image-tag"),
        tag: tag.map(s),
        version,
        changed: changed.map(s),
        deployed: tag.map(s),
    }
}

fn build(id: &str, status: BuildStatus, started: &str, deploys_current: bool) -> BuildSummary {
    BuildSummary { id: s(id), status, fingerprint: Some(s("…")), started: Some(s(started)), deploys_current }
}

fn release(fingerprint: &str, tags: &[(&str, &str)], build: &str, verified_at: &str, current: bool) -> ReleaseSummary {
    ReleaseSummary {
        fingerprint: s(fingerprint),
        build: s(build),
        verified_at: s(verified_at),
        tags: tags.iter().map(|(service, tag)| (s(service), s(tag))).collect(),
        current,
    }
}

#[test]
fn status_table() {
    let report = StatusReport {
        checked_at: s("2026-11-28T10:00:00Z"),
        stale_after_seconds: 3600,
        environments: vec![
            EnvironmentStatus {
                environment: s("dev"),
                project: s("tagrelay-dev"),
                state: State::Verifying,
                since: Some(s("2026-11-28T09:58:12Z")),
                stale: false,
                fingerprint: s("/my-api/dev/docker-image-tag=12@9a0e51c2,/worker/dev/docker-image-tag=4@77d1c0aa"),
                services: vec![
                    // The newest run deployed 1042 (its run manifest); 1043 came since.
                    ServiceTag {
                        deployed: Some(s("1042")),
                        ..tag("my-api", "dev", Some("1043"), Some(12), Some("2026-11-28T09:58:12Z"))
                    },
                    tag("worker", "dev", Some("207"), Some(4), Some("2026-11-27T16:02:40Z")),
                ],
                newest_build: Some(build(
                    "tagrelay-dev:0b6d2f0e",
                    BuildStatus::Succeeded,
                    "2026-11-28T09:58:14Z",
                    true,
                )),
                running_build: None,
                verification: Some(Verification::Verifying {
                    build: s("tagrelay-dev:0b6d2f0e"),
                    deadline: s("2026-11-28T10:29:40Z"),
                    rollouts: vec![
                        Rollout { service: s("my-api"), deployment: s("ecs-svc/4402817362914003481") },
                        Rollout { service: s("worker"), deployment: s("ecs-svc/9120551843002716094") },
                    ],
                }),
                release: Some(release(
                    "/my-api/dev/docker-image-tag=11@5d2b90e4,/worker/dev/docker-image-tag=4@77d1c0aa",
                    &[("my-api", "1042"), ("worker", "207")],
                    "tagrelay-dev:5e21a9c4",
                    "2026-11-28T09:03:51Z",
                    false,
                )),
                promote_from: None,
                promotion: None,
                rollback: None,
            },
            EnvironmentStatus {
                environment: s("prod"),
                project: s("tagrelay-prod"),
                state: State::Held,
                since: Some(s("2026-11-28T07:12:03Z")),
                stale: true,
                fingerprint: s("/my-api/prod/docker-image-tag=3@4c1f08e3"),
                services: vec![
                    tag("my-api", "prod", Some("1040"), Some(3), Some("2026-11-28T07:12:03Z")),
                    tag("worker", "prod", None, None, None),
                ],
                newest_build: Some(build(
                    "tagrelay-prod:77c1e0a9",
                    BuildStatus::Succeeded,
                    "2026-11-28T07:12:05Z",
                    true,
                )),
                running_build: None,
                verification: Some(Verification::Held {
                    reason: HeldReason::RolloutFailed,
                    build: s("tagrelay-prod:77c1e0a9"),
                    detail: s("my-api: rolled back to my-api:1039 by the circuit breaker (tasks failed to start), not running my-api:1040"),
                }),
                release: Some(release("/my-api/prod/docker-image-tag=2@e01f6c5b", &[("my-api", "1039")], "tagrelay-prod:31f0b2d8", "2026-11-26T14:20:09Z", false)),
                promote_from: None,
                promotion: None,
                rollback: None,
            },
            EnvironmentStatus {
                environment: s("qa"),
                project: s("tagrelay-qa"),
                state: State::InSync,
                since: Some(s("2026-11-28T08:30:00Z")),
                stale: false,
                fingerprint: s("/my-api/qa/docker-image-tag=7@9a0e51c2,/worker/qa/docker-image-tag=2@77d1c0aa"),
                services: vec![
                    tag("my-api", "qa", Some("1042"), Some(7), Some("2026-11-28T08:30:00Z")),
                    tag("worker", "qa", Some("207"), Some(2), Some("2026-11-27T16:05:12Z")),
                ],
                newest_build: Some(build("tagrelay-qa:c3d9e7f1", BuildStatus::Succeeded, "2026-11-28T08:30:02Z", true)),
                running_build: None,
                verification: Some(Verification::Verified {
                    since: s("2026-11-28T08:34:47Z"),
                    build: s("tagrelay-qa:c3d9e7f1"),
                    recorded: true,
                }),
                release: Some(release(
                    "/my-api/qa/docker-image-tag=7@9a0e51c2,/worker/qa/docker-image-tag=2@77d1c0aa",
                    &[("my-api", "1042"), ("worker", "207")],
                    "tagrelay-qa:c3d9e7f1",
                    "2026-11-28T08:34:47Z",
                    true,
                )),
                promote_from: None,
                promotion: None,
                rollback: None,
            },
            EnvironmentStatus {
                environment: s("staging"),
                project: s("tagrelay-staging"),
                state: State::Deploying,
                since: Some(s("2026-11-28T09:58:40Z")),
                stale: false,
                fingerprint: s("/my-api/staging/docker-image-tag=5@9a0e51c2"),
                services: vec![
                    tag("my-api", "staging", Some("1043"), Some(5), Some("2026-11-28T09:58:40Z")),
                    tag("worker", "staging", None, None, None),
                ],
                newest_build: Some(build(
                    "tagrelay-staging:e8a41b07",
                    BuildStatus::InProgress,
                    "2026-11-28T09:58:42Z",
                    true,
                )),
                running_build: Some(build(
                    "tagrelay-staging:e8a41b07",
                    BuildStatus::InProgress,
                    "2026-11-28T09:58:42Z",
                    true,
                )),
                verification: None,
                release: None,
                promote_from: None,
                promotion: None,
                rollback: None,
            },
            EnvironmentStatus {
                environment: s("test"),
                project: s("tagrelay-test"),
                state: State::NoParameters,
                since: None,
                stale: false,
                fingerprint: s(""),
                services: vec![tag("my-api", "test", None, None, None), tag("worker", "test", None, None, None)],
                newest_build: None,
                running_build: None,
                verification: None,
                release: None,
                promote_from: None,
                promotion: None,
                rollback: None,
            },
        ],
        chain: vec![],
    };
    check("status.txt", &report.render());
    // `--output json`: the same report; its field names are the scripts' interface.
    check("status.json", &format!("{}\n", serde_json::to_string_pretty(&report).expect("JSON")));
    assert_eq!(
        report.problems(),
        vec![s("prod: held since 2026-11-28T07:12:03Z, longer than 3600s (rollout_failed: my-api: rolled back to \
             my-api:1039 by the circuit breaker (tasks failed to start), not running my-api:1040)")]
    );
}

#[test]
fn history_table() {
    let entry = |version, tag: &str, changed: &str, by: &str, description: &str| HistoryEntry {
        version,
        tag: s(tag),
        changed: Some(s(changed)),
        by: Some(s(by)),
        description: Some(s(description)),
    };
    let report = HistoryReport {
        service: s("my-api"),
        environment: s("dev"),
        parameter: s("/my-api/dev/docker-image-tag"),
        versions: vec![
            entry(
                3,
                "1041",
                "2026-11-28T09:30:00Z",
                "arn:aws:iam::123456789012:user/ana",
                "Pinned with tagrelay (sha256:4c1f): 1042 leaks memory",
            ),
            entry(
                2,
                "1042",
                "2026-11-28T09:01:10Z",
                "arn:aws:sts::123456789012:assumed-role/tagrelay-record-image-tag/tagrelay-record-image-tag",
                "Image tag of my-api in dev, recorded by tagrelay from ECR push sha256:9a0e",
            ),
            entry(
                1,
                "1041",
                "2026-11-27T17:45:52Z",
                "arn:aws:sts::123456789012:assumed-role/tagrelay-record-image-tag/tagrelay-record-image-tag",
                "Image tag of my-api in dev, recorded by tagrelay from ECR push sha256:4c1f",
            ),
        ],
    };
    check("history.txt", &report.render());
}

#[test]
fn releases_table() {
    let entry = |version, verified_at: &str, build: &str, tags: &[(&str, &str)], fingerprint: &str| ReleaseEntry {
        version,
        verified_at: s(verified_at),
        build: s(build),
        tags: tags.iter().map(|(service, tag)| (s(service), s(tag))).collect(),
        digests: tags.iter().map(|(service, _)| (s(service), s("sha256:…"))).collect(),
        fingerprint: s(fingerprint),
    };
    let report = ReleasesReport {
        environment: s("prod"),
        parameter: s("/tagrelay/prod/verified"),
        releases: vec![
            entry(
                4,
                "2026-11-28T09:40:02Z",
                "tagrelay-prod:c3d9e7f1",
                &[("my-api", "1042"), ("worker", "207")],
                "/my-api/prod/docker-image-tag=5@9a0e51c2,/worker/prod/docker-image-tag=3@77d1c0aa",
            ),
            entry(
                2,
                "2026-11-26T14:20:09Z",
                "tagrelay-prod:31f0b2d8",
                &[("my-api", "1039"), ("worker", "207")],
                "/my-api/prod/docker-image-tag=4@e01f6c5b,/worker/prod/docker-image-tag=3@77d1c0aa",
            ),
            entry(
                1,
                "2026-11-24T11:02:51Z",
                "tagrelay-prod:0a7c44e2",
                &[("my-api", "1031")],
                "/my-api/prod/docker-image-tag=2@5d2b90e4",
            ),
        ],
    };
    check("releases.txt", &report.render());
    check("releases.json", &format!("{}\n", serde_json::to_string_pretty(&report).expect("JSON")));
    assert!(report.problems().is_empty());
}

fn change(command: &'static str, outcome: Outcome, dry_run: bool) -> ChangeReport {
    ChangeReport {
        command,
        service: s("my-api"),
        from: Some(s("dev")),
        tag: s("1043"),
        dry_run,
        decision: EnvironmentOutcome {
            environment: s("prod"),
            parameter: s("/my-api/prod/docker-image-tag"),
            previous: Some(s("1040")),
            outcome,
        },
        rollback_record: None,
    }
}

#[test]
fn promote_tables() {
    let written =
        change("promote", Outcome::Write { to: s("1043"), reason: WriteReason::Newer, version: 4, race: None }, false);
    let planned = change("promote", Outcome::Planned { to: s("1043"), reason: WriteReason::Newer }, true);
    let refused = change("promote", Outcome::Skip { reason: SkipReason::NotNewer }, false);
    let text = [written.render(), planned.render(), refused.render()].join("\n");
    check("promote.txt", &text);
    assert!(written.problems().is_empty() && planned.problems().is_empty());
    assert_eq!(
        refused.problems(),
        vec![s("promote 1043 refused for my-api in prod: the order policy does not allow it: the tag is not newer than the one there")]
    );
}

#[test]
fn redrive_table() {
    let entry = |id: &str, result, detail: &str| RedriveEntry {
        message_id: s(id),
        sent: Some(s("2026-11-28T09:12:44Z")),
        result,
        detail: s(detail),
        original_error: Some(s("ListBuildsForProject tagrelay-dev failed")),
    };
    let report = RedriveReport {
        function: s("trigger-deploy"),
        queue: s("https://sqs.eu-west-1.amazonaws.com/123456789012/tagrelay-trigger-deploy-dlq"),
        replayed: 1,
        failed_again: 1,
        messages: vec![
            entry(
                "5b7e1c2a",
                Replayed::Replayed,
                "parameter /my-api/dev/docker-image-tag changed: dev start changed tagrelay-dev:0b6d2f0e",
            ),
            entry("9d04aa71", Replayed::FailedAgain, "invalid event: detail.name: missing field `name`"),
        ],
    };
    check("redrive.txt", &report.render());
}

/// An environment in the chain, in sync, with its promotion and rollback state.
fn chained(
    environment: &str,
    from: Option<&str>,
    promotion: Option<Promotion>,
    rollback: Option<RollbackDecision>,
) -> EnvironmentStatus {
    EnvironmentStatus {
        environment: s(environment),
        project: format!("tagrelay-{environment}"),
        state: State::InSync,
        since: Some(s("2026-11-30T10:02:11Z")),
        stale: false,
        fingerprint: format!("/my-api/{environment}/docker-image-tag=4@9a0e51c2"),
        services: vec![tag("my-api", environment, Some("1043"), Some(4), Some("2026-11-30T10:02:11Z"))],
        newest_build: Some(build(
            &format!("tagrelay-{environment}:0b6d2f0e"),
            BuildStatus::Succeeded,
            "2026-11-30T10:02:13Z",
            true,
        )),
        running_build: None,
        verification: None,
        release: None,
        promote_from: from.map(s),
        promotion: promotion.map(|p| PromotionState::of(p, from.unwrap_or_default())),
        rollback: rollback.map(RollbackState::of),
    }
}

#[test]
fn status_promotion_table() {
    let fingerprint = s("/my-api/staging/docker-image-tag=7@9a0e51c2");
    let record = RollbackRecord {
        from: [(s("my-api"), s("1043"))].into(),
        to: [(s("my-api"), s("1042"))].into(),
        alarm: Some(s("prod-api-5xx")),
        at: s("2026-11-30T10:40:31Z"),
        by: s("promote"),
        reason: s("alarm prod-api-5xx in ALARM at 2026-11-30T10:40:00Z"),
    };
    let environments = vec![
        chained("dev", None, None, None),
        chained(
            "staging",
            Some("dev"),
            Some(Promotion::Soaking { release: 12, until: s("2026-11-30T10:17:51Z") }),
            None,
        ),
        chained(
            "prod",
            Some("staging"),
            Some(Promotion::AwaitingApproval { release: 7, fingerprint: fingerprint.clone() }),
            Some(RollbackDecision::Healthy { missing: vec![] }),
        ),
        chained("perf", Some("staging"), Some(Promotion::UpToDate { release: Some(7) }), None),
        chained(
            "qa",
            Some("staging"),
            Some(Promotion::Blocked { release: 7, alarm: s("staging-api-5xx"), missing: false }),
            None,
        ),
        chained(
            "eu-prod",
            Some("prod"),
            Some(Promotion::Blocked { release: 4, alarm: s("prod-api-latency"), missing: true }),
            Some(RollbackDecision::Done { alarm: s("eu-api-5xx"), rollback: 2 }),
        ),
        chained(
            "us-prod",
            Some("prod"),
            Some(Promotion::RolledBack { release: 4, service: s("my-api"), tag: s("1043") }),
            Some(RollbackDecision::Rollback { release: 3, record }),
        ),
        chained("ap-prod", Some("prod"), Some(Promotion::BlockedUpstream { release: 4 }), None),
        chained(
            "sa-prod",
            Some("prod"),
            Some(Promotion::Promote {
                release: 4,
                fingerprint: fingerprint.clone(),
                verified_at: s("2026-11-30T09:12:00Z"),
                tags: [(s("my-api"), s("1043"))].into(),
            }),
            Some(RollbackDecision::NoPreviousRelease { alarm: s("sa-api-5xx"), entered_at: s("2026-11-30T10:41:00Z") }),
        ),
        chained("za-prod", Some("prod"), Some(Promotion::UpToDate { release: None }), None),
    ];
    let chain = environments
        .iter()
        .enumerate()
        .map(|(index, e)| ChainStep {
            environment: e.environment.clone(),
            promote_from: e.promote_from.clone(),
            release: (index < 4).then_some(12 - i64::try_from(index).unwrap_or(0) * 2),
        })
        .collect();
    let report = StatusReport { checked_at: s("2026-11-30T10:05:00Z"), stale_after_seconds: 3600, environments, chain };
    check("status-promotion.txt", &report.render());
    check("status-promotion.json", &format!("{}\n", serde_json::to_string_pretty(&report).expect("JSON")));
    assert_eq!(
        report.problems(),
        vec![
            s("eu-prod: alarm prod-api-latency missing: release 4 of prod waits"),
            s("sa-prod: alarm sa-api-5xx in ALARM since 2026-11-30T10:41:00Z: no earlier release to roll back to"),
        ]
    );
}
