//! The reconcile decision for one environment. Level-triggered: a parameter change, a finished
//! build and the schedule all ask the same question — is the deployed state behind the
//! parameters? — so duplicated, late or lost events are harmless. Pure, table-tested.

use std::collections::BTreeMap;

use aws_smithy_types::DateTime;

use super::fingerprint::{fingerprint, same_state};
use super::release::{verified_at, Release};
use super::verify::{HoldReason, Verification, VerifiedBy};
use crate::ports::StoredParameter;
use crate::ports::{BuildRecord, BuildStatus};

/// What an environment's parameters hold now, as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// The fingerprint of the parameters; empty when the environment has none.
    pub fingerprint: String,
    /// Some parameter holds a change that tagrelay, an operator or a person recorded: it was
    /// written since it was created (version 2 or more; infra/ creates each one with the
    /// placeholder at version 1), or it holds something else than the placeholder (with
    /// `manage_image_tag_parameters = false` a push creates it, at version 1). Worth a first run
    /// even from the schedule.
    pub change_recorded: bool,
}

impl Desired {
    /// `placeholder`: the configuration's `parameter_placeholder`.
    pub fn of(parameters: &BTreeMap<String, StoredParameter>, placeholder: &str) -> Self {
        Self {
            fingerprint: fingerprint(parameters),
            change_recorded: parameters.values().any(|stored| stored.version >= 2 || stored.value != placeholder),
        }
    }
}

/// What made us look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    ParameterChange {
        parameter: String,
    },
    BuildFinished {
        build_id: String,
        status: BuildStatus,
    },
    Schedule,
    /// An "ECS Deployment State Change" of `service` (`cluster/service`).
    EcsDeployment {
        service: String,
        deployment: String,
        event: String,
    },
    /// An operator asks to run a held state again (`tagrelay retry`), e.g. after fixing the
    /// Terraform that failed: the one trigger that starts a state whose run failed.
    Retry {
        by: String,
    },
}

impl Trigger {
    /// Said in the decision's log line. Not passed to the build: every StartBuild parameter is a
    /// function of the idempotency token, and two triggers may race to start the same run.
    pub fn describe(&self) -> String {
        match self {
            Self::ParameterChange { parameter } => format!("parameter {parameter} changed"),
            Self::BuildFinished { build_id, status } => format!("build {build_id} ended {status}"),
            Self::Schedule => "scheduled sweep".to_owned(),
            Self::EcsDeployment { service, deployment, event } => format!("ECS {event} of {service} ({deployment})"),
            Self::Retry { by } => format!("retry requested by {by}"),
        }
    }
}

crate::names::named_enum! {
    /// Why a run starts: the decision line's `reason` for `start`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum StartReason {
        /// No tagrelay build of this environment yet.
        FirstRun => "first_run",
        /// The parameters changed since the newest tagrelay build.
        Changed => "changed",
        /// The newest tagrelay build of this very state was stopped: it deployed nothing.
        PreviousStopped => "previous_stopped",
        /// The newest tagrelay build of this very state failed, and an operator asked to run it again.
        Retry => "retry",
    }
}

/// The verdict for one environment; the handler acts on it and reports an `Outcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start a run for `fingerprint`. `follows` is the newest tagrelay build seen (`None` for a
    /// first run): a new run of the same state follows another build, so it gets another
    /// idempotency token, while racing reconciles of the same state agree on one.
    Start { fingerprint: String, reason: StartReason, follows: Option<String> },
    /// A build is running; its completion event reconciles again.
    Wait { running_build: String },
    /// The newest tagrelay build deployed exactly this state.
    UpToDate { build: String },
    /// The newest tagrelay build of this state failed: do not loop on a broken change. The next
    /// parameter change starts a new run.
    Hold { failed_build: String, status: BuildStatus },
    /// The schedule does not start an environment's first run while every parameter still holds
    /// what Terraform created it with (version 1): installing tagrelay must not run Terraform
    /// everywhere. Once a change was recorded (a version 2 or later) the schedule starts it, so a
    /// first run whose event was lost, or whose start failed, still happens.
    NoBaseline,
    /// The environment has no parameter yet.
    NothingToDeploy,
    /// The newest tagrelay build deployed this state and it is verified now (ECS runs it, or
    /// there is nothing on ECS to verify): `release` is the record to write.
    Verified { build: String, release: Release, basis: VerifiedBy },
    /// The newest tagrelay build deployed this state; ECS is still rolling it out:
    /// (service, deployment) until `deadline`. An ECS event or the schedule looks again.
    Verifying { build: String, rolling: Vec<(String, String)>, deadline: DateTime },
    /// The build succeeded but the rollout did not: held like a failed build (no loop, an
    /// alarm, `tagrelay retry`), until the parameters change or ECS shows it completed.
    RolloutHeld { build: String, reason: HoldReason, detail: String },
}

/// `builds` are the environment's project's builds, newest first, at least down to the newest
/// tagrelay build (see `history`).
pub fn reconcile(desired: &Desired, builds: &[BuildRecord], trigger: &Trigger) -> Decision {
    let fingerprint = desired.fingerprint.as_str();
    if fingerprint.is_empty() {
        return Decision::NothingToDeploy;
    }
    // Any running build holds the state lock, a manual one too: wait for its end event.
    if let Some(running) = builds.iter().find(|build| build.status == BuildStatus::InProgress) {
        return Decision::Wait { running_build: running.id.clone() };
    }
    // Builds started by hand carry no fingerprint and never count as deployed state.
    let newest = builds.iter().find(|build| build.fingerprint.is_some());
    let start = |reason| Decision::Start {
        fingerprint: fingerprint.to_owned(),
        reason,
        follows: newest.map(|build| build.id.clone()),
    };
    let Some(newest) = newest else {
        return match trigger {
            // Neither the schedule nor an ECS deployment (the team's own, or a console
            // "force new deployment") says anything changed: no first run from them.
            Trigger::Schedule | Trigger::EcsDeployment { .. } if !desired.change_recorded => Decision::NoBaseline,
            _ => start(StartReason::FirstRun),
        };
    };
    if !newest.fingerprint.as_deref().is_some_and(|recorded| same_state(recorded, fingerprint)) {
        return start(StartReason::Changed);
    }
    match newest.status {
        BuildStatus::Succeeded => Decision::UpToDate { build: newest.id.clone() },
        status if status.is_failure() && matches!(trigger, Trigger::Retry { .. }) => start(StartReason::Retry),
        status if status.is_failure() => Decision::Hold { failed_build: newest.id.clone(), status },
        // STOPPED (or a status we do not know): nothing was deployed by it.
        _ => start(StartReason::PreviousStopped),
    }
}

/// What a successful build of the current state comes to once verified (only asked when
/// `reconcile` said `UpToDate` and no release of this state is recorded yet). A failed or
/// timed-out rollout holds; `tagrelay retry` runs it again.
pub fn after_verification(
    verification: Verification,
    build: &str,
    fingerprint: &str,
    trigger: &Trigger,
    tags: BTreeMap<String, String>,
    digests: BTreeMap<String, String>,
) -> Decision {
    let held = |reason, detail| match trigger {
        Trigger::Retry { .. } => Decision::Start {
            fingerprint: fingerprint.to_owned(),
            reason: StartReason::Retry,
            follows: Some(build.to_owned()),
        },
        _ => Decision::RolloutHeld { build: build.to_owned(), reason, detail },
    };
    let listed = |pairs: &[(String, String)]| {
        pairs.iter().map(|(service, what)| format!("{service}: {what}")).collect::<Vec<_>>().join("; ")
    };
    match verification {
        Verification::Verified { at, basis } => Decision::Verified {
            build: build.to_owned(),
            release: Release {
                fingerprint: fingerprint.to_owned(),
                tags,
                digests,
                build: build.to_owned(),
                verified_at: verified_at(at),
            },
            basis,
        },
        Verification::Verifying { rolling, deadline } => {
            Decision::Verifying { build: build.to_owned(), rolling, deadline }
        }
        Verification::RolloutFailed { failures } => held(HoldReason::RolloutFailed, listed(&failures)),
        Verification::TimedOut { rolling } => {
            held(HoldReason::VerifyTimedOut, format!("still rolling out: {}", listed(&rolling)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BuildStatus::*;

    const NOW: &str = "/a/dev/tag=3@0000000a,/b/dev/tag=7@0000000b";
    const BEFORE: &str = "/a/dev/tag=2@0000000c,/b/dev/tag=7@0000000b";

    /// The current state; a change is recorded (some version >= 2) unless said otherwise.
    fn now() -> Desired {
        Desired { fingerprint: NOW.into(), change_recorded: true }
    }

    fn untouched() -> Desired {
        Desired { fingerprint: NOW.into(), change_recorded: false }
    }

    fn build(id: &str, status: BuildStatus, fingerprint: Option<&str>) -> BuildRecord {
        BuildRecord { id: id.into(), status, fingerprint: fingerprint.map(str::to_owned), started: None, ended: None }
    }

    fn manual(n: usize) -> Vec<BuildRecord> {
        (0..n).map(|i| build(&format!("m{i}"), Succeeded, None)).collect()
    }

    fn change() -> Trigger {
        Trigger::ParameterChange { parameter: "/a/dev/tag".into() }
    }

    fn start(reason: StartReason, follows: Option<&str>) -> Decision {
        Decision::Start { fingerprint: NOW.into(), reason, follows: follows.map(str::to_owned) }
    }

    fn ecs_event() -> Trigger {
        Trigger::EcsDeployment {
            service: "dev/my-api".into(),
            deployment: "ecs-svc/1".into(),
            event: "SERVICE_DEPLOYMENT_COMPLETED".into(),
        }
    }

    #[test]
    fn reconcile_table() {
        let finished = Trigger::BuildFinished { build_id: "b1".into(), status: Succeeded };
        let manual_end = Trigger::BuildFinished { build_id: "m0".into(), status: Succeeded };
        let cases: Vec<(&str, Desired, Vec<BuildRecord>, Trigger, Decision)> = vec![
            ("first run on a change", now(), vec![], change(), start(StartReason::FirstRun, None)),
            (
                "first run on a change to a new parameter",
                untouched(),
                vec![],
                change(),
                start(StartReason::FirstRun, None),
            ),
            (
                "the schedule starts no first run while every parameter is as Terraform created it",
                untouched(),
                vec![],
                Trigger::Schedule,
                Decision::NoBaseline,
            ),
            (
                "an ECS deployment someone else made starts no first run either",
                untouched(),
                vec![],
                ecs_event(),
                Decision::NoBaseline,
            ),
            (
                "an ECS event behind a recorded change catches the run up, like the schedule",
                now(),
                vec![build("b1", Succeeded, Some(BEFORE))],
                ecs_event(),
                start(StartReason::Changed, Some("b1")),
            ),
            (
                "the schedule starts a first run once a change was recorded",
                now(),
                vec![],
                Trigger::Schedule,
                start(StartReason::FirstRun, None),
            ),
            (
                "manual builds are no baseline",
                untouched(),
                vec![build("m1", Succeeded, None)],
                Trigger::Schedule,
                Decision::NoBaseline,
            ),
            (
                "manual builds are not deployed state",
                now(),
                vec![build("m1", Succeeded, None), build("b1", Succeeded, Some(BEFORE))],
                change(),
                start(StartReason::Changed, Some("b1")),
            ),
            (
                "a lost event is caught behind a dozen manual builds",
                untouched(),
                [manual(12), vec![build("b1", Succeeded, Some(BEFORE))]].concat(),
                Trigger::Schedule,
                start(StartReason::Changed, Some("b1")),
            ),
            (
                "a manual build's end behind which the state is deployed starts nothing",
                now(),
                [manual(12), vec![build("b1", Succeeded, Some(NOW))]].concat(),
                manual_end,
                Decision::UpToDate { build: "b1".into() },
            ),
            (
                "a running build means wait",
                now(),
                vec![build("b2", InProgress, Some(BEFORE)), build("b1", Succeeded, Some(BEFORE))],
                change(),
                Decision::Wait { running_build: "b2".into() },
            ),
            (
                "a running manual build means wait too",
                now(),
                vec![build("m1", InProgress, None), build("b1", Succeeded, Some(NOW))],
                Trigger::Schedule,
                Decision::Wait { running_build: "m1".into() },
            ),
            (
                "deployed exactly this state",
                now(),
                vec![build("b1", Succeeded, Some(NOW))],
                change(),
                Decision::UpToDate { build: "b1".into() },
            ),
            (
                // Two versions back, builds recorded name=version only: not comparable with a
                // digest, so one run of the same state (deploys what runs) after the upgrade.
                "deployed this state's versions by a tagrelay that recorded no digests",
                now(),
                vec![build("b1", Succeeded, Some("/a/dev/tag=3,/b/dev/tag=7"))],
                Trigger::Schedule,
                start(StartReason::Changed, Some("b1")),
            ),
            (
                "same versions, another value (a re-created parameter)",
                now(),
                vec![build("b1", Succeeded, Some("/a/dev/tag=3@0000000f,/b/dev/tag=7@0000000b"))],
                change(),
                start(StartReason::Changed, Some("b1")),
            ),
            (
                "a change that landed during the run is picked up when it ends",
                now(),
                vec![build("b1", Succeeded, Some(BEFORE))],
                finished.clone(),
                start(StartReason::Changed, Some("b1")),
            ),
            (
                "the schedule catches a lost event",
                untouched(),
                vec![build("b1", Succeeded, Some(BEFORE))],
                Trigger::Schedule,
                start(StartReason::Changed, Some("b1")),
            ),
            (
                "failed with this state: hold",
                now(),
                vec![build("b1", Failed, Some(NOW))],
                finished.clone(),
                Decision::Hold { failed_build: "b1".into(), status: Failed },
            ),
            (
                "fault with this state: hold",
                now(),
                vec![build("b1", Fault, Some(NOW))],
                Trigger::Schedule,
                Decision::Hold { failed_build: "b1".into(), status: Fault },
            ),
            (
                "timed out with this state: hold",
                now(),
                vec![build("b1", TimedOut, Some(NOW))],
                change(),
                Decision::Hold { failed_build: "b1".into(), status: TimedOut },
            ),
            (
                "failed with an older state: the new change starts a run",
                now(),
                vec![build("b1", Failed, Some(BEFORE))],
                change(),
                start(StartReason::Changed, Some("b1")),
            ),
            (
                "stopped with this state: not deployed, start again after it",
                now(),
                vec![build("b1", Stopped, Some(NOW))],
                finished,
                start(StartReason::PreviousStopped, Some("b1")),
            ),
            (
                "only the newest tagrelay build counts",
                now(),
                vec![build("b2", Succeeded, Some(NOW)), build("b1", Failed, Some(NOW))],
                change(),
                Decision::UpToDate { build: "b2".into() },
            ),
        ];
        for (name, desired, builds, trigger, expected) in cases {
            assert_eq!(reconcile(&desired, &builds, &trigger), expected, "{name}");
        }
    }

    #[test]
    fn a_retry_starts_a_held_state_again_and_otherwise_acts_like_a_change() {
        let retry = Trigger::Retry { by: "ana".into() };
        let cases: Vec<(&str, Vec<BuildRecord>, Decision)> = vec![
            ("held", vec![build("b1", Failed, Some(NOW))], start(StartReason::Retry, Some("b1"))),
            (
                "held twice: a new run after the newest, a new idempotency token",
                vec![build("b2", TimedOut, Some(NOW)), build("b1", Failed, Some(NOW))],
                start(StartReason::Retry, Some("b2")),
            ),
            (
                "in sync: nothing to do",
                vec![build("b1", Succeeded, Some(NOW))],
                Decision::UpToDate { build: "b1".into() },
            ),
            (
                "running: wait",
                vec![build("b2", InProgress, Some(NOW)), build("b1", Failed, Some(NOW))],
                Decision::Wait { running_build: "b2".into() },
            ),
            ("behind", vec![build("b1", Failed, Some(BEFORE))], start(StartReason::Changed, Some("b1"))),
            ("never deployed", vec![], start(StartReason::FirstRun, None)),
        ];
        for (name, builds, expected) in cases {
            assert_eq!(reconcile(&untouched(), &builds, &retry), expected, "{name}");
        }
        let nothing = Desired { fingerprint: String::new(), change_recorded: false };
        assert_eq!(reconcile(&nothing, &[], &retry), Decision::NothingToDeploy);
    }

    #[test]
    fn no_parameter_nothing_to_deploy() {
        let nothing = Desired { fingerprint: String::new(), change_recorded: false };
        assert_eq!(reconcile(&nothing, &[], &change()), Decision::NothingToDeploy);
        assert_eq!(reconcile(&nothing, &[], &Trigger::Schedule), Decision::NothingToDeploy);
    }

    #[test]
    fn a_change_is_recorded_once_some_parameter_is_past_version_1_or_holds_a_tag() {
        let cases = [
            ("no parameter", vec![], false),
            ("as infra/ created them", vec![("/a/dev/tag", 1, "initial"), ("/b/dev/tag", 1, "initial")], false),
            ("one written since", vec![("/a/dev/tag", 1, "initial"), ("/b/dev/tag", 2, "1043")], true),
            ("written many times", vec![("/a/dev/tag", 40, "1043")], true),
            // manage_image_tag_parameters = false: the first push creates it, at version 1.
            ("created by a push", vec![("/a/dev/tag", 1, "initial"), ("/b/dev/tag", 1, "1043")], true),
        ];
        for (name, versions, recorded) in cases {
            let parameters = versions
                .into_iter()
                .map(|(n, v, value)| (n.to_owned(), StoredParameter::string(value, v, None)))
                .collect();
            let desired = Desired::of(&parameters, "initial");
            assert_eq!(desired.change_recorded, recorded, "{name}");
            assert_eq!(desired.fingerprint, fingerprint(&parameters), "{name}");
        }
    }

    #[test]
    fn triggers_describe_themselves() {
        assert_eq!(change().describe(), "parameter /a/dev/tag changed");
        let finished = Trigger::BuildFinished { build_id: "p:1".into(), status: Failed };
        assert_eq!(finished.describe(), "build p:1 ended FAILED");
        assert_eq!(Trigger::Schedule.describe(), "scheduled sweep");
        assert_eq!(Trigger::Retry { by: "ana".into() }.describe(), "retry requested by ana");
    }
}
