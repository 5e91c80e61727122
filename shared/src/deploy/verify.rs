//! Verification: did the run of fingerprint F really roll out on ECS? "terraform apply
//! succeeded" is not "the new image runs": the deployment circuit breaker can roll a service
//! back after Terraform returned (and ECS's "services stable" waiter then reports success), or
//! Terraform may not have deployed the tag at all. Per service: the PRIMARY deployment's task
//! definition must give the container the expected image, and its `rolloutState` must be
//! COMPLETED. Pure, table-tested; the reads are the handler's.

use std::time::Duration;

use aws_smithy_types::DateTime;

use crate::ports::{Deployment, RolloutState};

/// What ECS's circuit breaker writes into the reason of the deployment it rolls back with.
const ROLLBACK_REASON: &str = "ECS deployment circuit breaker: rolling back";

/// What one service must run after the run of F.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The tagrelay service.
    pub service: String,
    pub ecs_service: String,
    pub container: String,
    /// The ECR repository name (`my-api`, `team/my-api`).
    pub repository: String,
    pub tag: String,
    /// ECR's digest of the tag, when ECR knows it: a task definition may name the image by it.
    pub digest: Option<String>,
}

/// What ECS shows for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// DescribeServices had no such (active) service in the cluster.
    Missing { reason: String },
    /// The service's deployments and the image the PRIMARY one gives the container (`None`:
    /// its task definition has no such container).
    Deployments { deployments: Vec<Deployment>, primary_image: Option<String> },
}

/// One service's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceCheck {
    /// The expected image runs and its rollout completed (at `at`, ECS's `updatedAt`).
    Completed { at: Option<DateTime> },
    /// The expected image is rolling out.
    Rolling { deployment: String },
    /// It will not get there by itself.
    Failed { reason: String },
    /// ECS does not report a rollout state for this service (CODE_DEPLOY or EXTERNAL
    /// controller, Classic Load Balancer).
    Unsupported,
}

/// One environment's verdict on the run of F.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Every verified service runs F's image, rolled out. `at` is deterministic (the newest
    /// COMPLETED `updatedAt`, not before the build's end), so racing writers agree on the record.
    Verified { at: DateTime, basis: VerifiedBy },
    /// Rollouts in progress: (service, deployment), within the time-out.
    Verifying { rolling: Vec<(String, String)>, deadline: DateTime },
    /// A service runs something else, or its rollout failed: (service, reason).
    RolloutFailed { failures: Vec<(String, String)> },
    /// Rollouts still in progress past the time-out: (service, deployment).
    TimedOut { rolling: Vec<(String, String)> },
}

crate::names::named_enum! {
    /// Why a release counts as verified: the decision line's `reason` for `verified`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum VerifiedBy {
        /// ECS shows every service's rollout of the expected image completed.
        RolloutCompleted => "rollout_completed",
        /// Nothing to verify on ECS (no cluster, or no ECS service with a tag): the build's
        /// success is the release.
        BuildSucceeded => "build_succeeded",
        /// ECS reports no rollout state for the services: treated like an environment without
        /// a cluster (said at WARN).
        RolloutStateUnsupported => "rollout_state_unsupported",
    }
}

crate::names::named_enum! {
    /// Why a release whose build succeeded is held: the `hold` line's `reason`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum HoldReason {
        /// A service runs another image, or its rollout failed.
        RolloutFailed => "rollout_failed",
        /// A rollout was still in progress `verify_timeout` after the build ended.
        VerifyTimedOut => "verify_timed_out",
    }
}

/// Checks one service.
pub fn check_service(expected: &Expected, seen: &Seen) -> ServiceCheck {
    let (deployments, primary_image) = match seen {
        Seen::Missing { reason } => {
            return ServiceCheck::Failed {
                reason: format!("service {} is not in the cluster ({reason})", expected.ecs_service),
            }
        }
        Seen::Deployments { deployments, primary_image } => (deployments, primary_image),
    };
    let Some(primary) = deployments.iter().find(|d| d.is_primary()) else {
        // No ECS-controlled deployments at all: a CODE_DEPLOY or EXTERNAL service.
        return ServiceCheck::Unsupported;
    };
    let Some(state) = primary.rollout_state else { return ServiceCheck::Unsupported };
    let Some(image) = primary_image else {
        return ServiceCheck::Failed {
            reason: format!("task definition {} has no container {}", primary.task_definition, expected.container),
        };
    };
    if !names_image(image, expected) {
        return ServiceCheck::Failed { reason: runs_other_image(expected, primary, image, deployments) };
    }
    match state {
        RolloutState::Completed => ServiceCheck::Completed { at: primary.updated_at },
        RolloutState::Failed => ServiceCheck::Failed {
            reason: format!(
                "deployment {} of {image} failed: {}",
                primary.id,
                primary.rollout_state_reason.as_deref().unwrap_or("no reason given")
            ),
        },
        // IN_PROGRESS, or a state this version does not know: the time-out decides.
        RolloutState::InProgress | RolloutState::Other => ServiceCheck::Rolling { deployment: primary.id.clone() },
    }
}

/// Why the PRIMARY deployment running another image means the rollout failed, with what is
/// known: the circuit breaker's rollback and the failed deployment's reason, or plainly that
/// Terraform did not deploy the tag.
fn runs_other_image(expected: &Expected, primary: &Deployment, image: &str, deployments: &[Deployment]) -> String {
    let wanted = format!("{}:{}", expected.repository, expected.tag);
    let rolled_back = primary.rollout_state_reason.as_deref().is_some_and(|r| r.starts_with(ROLLBACK_REASON));
    let failed = deployments.iter().find(|d| !d.is_primary() && d.rollout_state == Some(RolloutState::Failed));
    match (rolled_back, failed.and_then(|d| d.rollout_state_reason.as_deref())) {
        (true, Some(why)) => format!("rolled back to {image} by the circuit breaker ({why}), not running {wanted}"),
        (true, None) => format!("rolled back to {image} by the circuit breaker, not running {wanted}"),
        (false, Some(why)) => format!("runs {image}, not {wanted}; a deployment failed: {why}"),
        // ECS words a completed rollback like any completed deployment once the failed one is
        // drained: from here a rollback and a run that never deployed the tag look the same.
        (false, None) => format!("runs {image}, not {wanted}: rolled back, or the run did not deploy the tag"),
    }
}

/// Whether a container image reference names the expected image: the repository (with or
/// without a registry host) and the tag, or the digest ECR has for the tag.
pub fn names_image(image: &str, expected: &Expected) -> bool {
    let (name_and_tag, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    // A tag follows the last `:` after the last `/` (a registry host may have a port).
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
        Some(i) => (&name_and_tag[..last_slash + i], Some(&name_and_tag[last_slash + i + 1..])),
        None => (name_and_tag, None),
    };
    // The repository is the whole path after an optional registry host (a first segment with a
    // `.` or a `:`, or `localhost`, as Docker reads references): `team/my-api` is not `my-api`.
    let path = match name.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => rest,
        _ => name,
    };
    let repository_matches = path == expected.repository;
    if !repository_matches {
        return false;
    }
    match digest {
        // Pinned by digest: the digest decides, whatever tag is written next to it.
        Some(digest) => expected.digest.as_deref() == Some(digest),
        None => tag == Some(expected.tag.as_str()),
    }
}

/// The environment's verdict from its services' checks. `build_ended` is when the run of F
/// ended; the time-out counts from there.
pub fn verify(
    checks: &[(String, ServiceCheck)],
    build_ended: DateTime,
    timeout: Duration,
    now: DateTime,
) -> Verification {
    let failures: Vec<(String, String)> = checks
        .iter()
        .filter_map(|(service, check)| match check {
            ServiceCheck::Failed { reason } => Some((service.clone(), reason.clone())),
            _ => None,
        })
        .collect();
    if !failures.is_empty() {
        return Verification::RolloutFailed { failures };
    }
    let rolling: Vec<(String, String)> = checks
        .iter()
        .filter_map(|(service, check)| match check {
            ServiceCheck::Rolling { deployment } => Some((service.clone(), deployment.clone())),
            _ => None,
        })
        .collect();
    if !rolling.is_empty() {
        let deadline = add(build_ended, timeout);
        return if now.as_nanos() >= deadline.as_nanos() {
            Verification::TimedOut { rolling }
        } else {
            Verification::Verifying { rolling, deadline }
        };
    }
    let completed: Vec<Option<DateTime>> = checks
        .iter()
        .filter_map(|(_, check)| match check {
            ServiceCheck::Completed { at } => Some(*at),
            _ => None,
        })
        .collect();
    let basis = match (completed.is_empty(), checks.is_empty()) {
        (false, _) => VerifiedBy::RolloutCompleted,
        (true, true) => VerifiedBy::BuildSucceeded,
        (true, false) => VerifiedBy::RolloutStateUnsupported,
    };
    let at = completed.into_iter().flatten().chain([build_ended]).max_by_key(DateTime::as_nanos).unwrap_or(build_ended);
    Verification::Verified { at: DateTime::from_secs(at.secs()), basis }
}

fn add(at: DateTime, duration: Duration) -> DateTime {
    DateTime::from_secs(at.secs().saturating_add(i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> Expected {
        Expected {
            service: "my-api".into(),
            ecs_service: "my-api".into(),
            container: "app".into(),
            repository: "my-api".into(),
            tag: "42".into(),
            digest: Some("sha256:aaa".into()),
        }
    }

    const REPO: &str = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/my-api";

    fn deployment(id: &str, status: &str, state: Option<RolloutState>, reason: Option<&str>, at: i64) -> Deployment {
        Deployment {
            id: id.into(),
            status: status.into(),
            task_definition: format!("arn:aws:ecs:eu-west-1:111122223333:task-definition/my-api:{id}"),
            rollout_state: state,
            rollout_state_reason: reason.map(str::to_owned),
            updated_at: Some(DateTime::from_secs(at)),
        }
    }

    fn seen(deployments: Vec<Deployment>, image: Option<&str>) -> Seen {
        Seen::Deployments { deployments, primary_image: image.map(str::to_owned) }
    }

    use RolloutState::*;

    #[test]
    fn one_service_table() {
        let ours = format!("{REPO}:42");
        let old = format!("{REPO}:41");
        let rollback = "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/1.";
        let breaker = "ECS deployment circuit breaker: tasks failed to start.";
        let cases: Vec<(&str, Seen, ServiceCheck)> = vec![
            (
                "rolling update in progress",
                seen(
                    vec![deployment("2", "PRIMARY", Some(InProgress), None, 10), deployment("1", "ACTIVE", Some(Completed), None, 5)],
                    Some(&ours),
                ),
                ServiceCheck::Rolling { deployment: "2".into() },
            ),
            (
                "completed",
                seen(vec![deployment("2", "PRIMARY", Some(Completed), None, 20)], Some(&ours)),
                ServiceCheck::Completed { at: Some(DateTime::from_secs(20)) },
            ),
            (
                "circuit breaker FAILED, rolling back to the old image",
                seen(
                    vec![
                        deployment("3", "PRIMARY", Some(InProgress), Some(rollback), 30),
                        deployment("2", "ACTIVE", Some(Failed), Some(breaker), 29),
                    ],
                    Some(&old),
                ),
                ServiceCheck::Failed {
                    reason: format!("rolled back to {old} by the circuit breaker ({breaker}), not running my-api:42"),
                },
            ),
            (
                "rolled back and COMPLETED on the old image",
                seen(vec![deployment("3", "PRIMARY", Some(Completed), Some(rollback), 40)], Some(&old)),
                ServiceCheck::Failed { reason: format!("rolled back to {old} by the circuit breaker, not running my-api:42") },
            ),
            (
                "FAILED without rollback: the failed deployment stays PRIMARY",
                seen(vec![deployment("2", "PRIMARY", Some(Failed), Some(breaker), 30)], Some(&ours)),
                ServiceCheck::Failed { reason: format!("deployment 2 of {ours} failed: {breaker}") },
            ),
            (
                "PRIMARY on another image: Terraform did not deploy the tag, or a rollback long completed",
                seen(vec![deployment("1", "PRIMARY", Some(Completed), None, 5)], Some(&old)),
                ServiceCheck::Failed {
                    reason: format!("runs {old}, not my-api:42: rolled back, or the run did not deploy the tag"),
                },
            ),
            (
                "image by the tag's digest",
                seen(vec![deployment("2", "PRIMARY", Some(Completed), None, 20)], Some(&format!("{REPO}@sha256:aaa"))),
                ServiceCheck::Completed { at: Some(DateTime::from_secs(20)) },
            ),
            (
                "service missing",
                Seen::Missing { reason: "MISSING".into() },
                ServiceCheck::Failed { reason: "service my-api is not in the cluster (MISSING)".into() },
            ),
            (
                "no rollout state (CODE_DEPLOY, Classic Load Balancer)",
                seen(vec![deployment("2", "PRIMARY", None, None, 20)], Some(&ours)),
                ServiceCheck::Unsupported,
            ),
            ("no ECS deployments at all (EXTERNAL controller)", seen(vec![], None), ServiceCheck::Unsupported),
            (
                "the container is not in the task definition",
                seen(vec![deployment("2", "PRIMARY", Some(Completed), None, 20)], None),
                ServiceCheck::Failed {
                    reason: "task definition arn:aws:ecs:eu-west-1:111122223333:task-definition/my-api:2 has no container app"
                        .into(),
                },
            ),
            (
                "a state this version does not know waits for the time-out",
                seen(vec![deployment("2", "PRIMARY", Some(Other), None, 20)], Some(&ours)),
                ServiceCheck::Rolling { deployment: "2".into() },
            ),
        ];
        for (name, seen, want) in cases {
            assert_eq!(check_service(&expected(), &seen), want, "{name}");
        }
    }

    #[test]
    fn image_references() {
        let digest_of_tag = expected();
        let cases = [
            ("my-api:42", true),
            (&format!("{REPO}:42") as &str, true),
            ("localhost:5000/my-api:42", true),
            (&format!("{REPO}@sha256:aaa"), true),
            (&format!("{REPO}:41@sha256:aaa"), true),
            (&format!("{REPO}:42@sha256:bbb"), false),
            (&format!("{REPO}:420"), false),
            (&format!("{REPO}:4"), false),
            ("other/my-api-2:42", false),
            ("team/my-api:42", false),
            ("111122223333.dkr.ecr.eu-west-1.amazonaws.com/team/my-api:42", false),
            ("docker.io/library/my-api:42", false),
            ("my-apix:42", false),
            ("not-my-api:42", false),
            (REPO, false),
        ];
        for (image, want) in cases {
            assert_eq!(names_image(image, &digest_of_tag), want, "{image}");
        }
        let no_digest = Expected { digest: None, ..expected() };
        assert!(!names_image(&format!("{REPO}@sha256:aaa"), &no_digest));
        let nested = Expected { repository: "team/my-api".into(), ..expected() };
        assert!(names_image("111122223333.dkr.ecr.eu-west-1.amazonaws.com/team/my-api:42", &nested));
        assert!(!names_image(&format!("{REPO}:42"), &nested));
    }

    #[test]
    fn an_environment_is_verified_when_every_service_is() {
        let ended = DateTime::from_secs(1_000);
        let timeout = Duration::from_secs(600);
        let completed = |at| ServiceCheck::Completed { at: Some(DateTime::from_secs(at)) };
        let rolling = ServiceCheck::Rolling { deployment: "d".into() };
        let failed = ServiceCheck::Failed { reason: "runs x".into() };
        let row = |checks: Vec<(&str, ServiceCheck)>| -> Vec<(String, ServiceCheck)> {
            checks.into_iter().map(|(s, c)| (s.to_owned(), c)).collect()
        };
        let at = |secs| DateTime::from_secs(secs);

        // Several services where one fails: the failure wins, named.
        let checks = row(vec![("a", completed(1_100)), ("b", failed.clone()), ("c", rolling.clone())]);
        assert_eq!(
            verify(&checks, ended, timeout, at(1_200)),
            Verification::RolloutFailed { failures: vec![("b".into(), "runs x".into())] }
        );
        // Rolling within the time-out, then past it.
        let checks = row(vec![("a", completed(1_100)), ("c", rolling.clone())]);
        assert_eq!(
            verify(&checks, ended, timeout, at(1_599)),
            Verification::Verifying { rolling: vec![("c".into(), "d".into())], deadline: at(1_600) }
        );
        assert_eq!(
            verify(&checks, ended, timeout, at(1_600)),
            Verification::TimedOut { rolling: vec![("c".into(), "d".into())] }
        );
        // A COMPLETED rollout seen after the time-out verifies: the time-out only bounds waiting.
        let checks = row(vec![("a", completed(1_100)), ("c", completed(1_900))]);
        assert_eq!(
            verify(&checks, ended, timeout, at(5_000)),
            Verification::Verified { at: at(1_900), basis: VerifiedBy::RolloutCompleted }
        );
        // verified_at is never before the build's end (a service Terraform did not change).
        let checks = row(vec![("a", completed(10))]);
        assert_eq!(
            verify(&checks, ended, timeout, at(5_000)),
            Verification::Verified { at: ended, basis: VerifiedBy::RolloutCompleted }
        );
        // Nothing to verify on ECS, and only unsupported services.
        assert_eq!(
            verify(&[], ended, timeout, at(5_000)),
            Verification::Verified { at: ended, basis: VerifiedBy::BuildSucceeded }
        );
        let checks = row(vec![("a", ServiceCheck::Unsupported)]);
        assert_eq!(
            verify(&checks, ended, timeout, at(5_000)),
            Verification::Verified { at: ended, basis: VerifiedBy::RolloutStateUnsupported }
        );
        // verified_at is whole seconds, so it prints the same everywhere.
        let checks = row(vec![("a", ServiceCheck::Completed { at: Some(DateTime::from_fractional_secs(2_000, 0.5)) })]);
        assert_eq!(
            verify(&checks, ended, timeout, at(5_000)),
            Verification::Verified { at: at(2_000), basis: VerifiedBy::RolloutCompleted }
        );
    }
}
