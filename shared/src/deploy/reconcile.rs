//! The reconcile decision for one environment. Level-triggered: a parameter change, a finished
//! build and the schedule all ask the same question — is the deployed state behind the
//! parameters? — so duplicated, late or lost events are harmless. Pure, table-tested.

use serde::Serialize;

use super::build::{BuildRecord, BuildStatus};

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
            Self::Retry { by } => format!("retry requested by {by}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StartReason {
    /// No tagrelay build of this environment yet.
    FirstRun,
    /// The parameters changed since the newest tagrelay build.
    Changed,
    /// The newest tagrelay build of this very state was stopped: it deployed nothing.
    PreviousStopped,
    /// The newest tagrelay build of this very state failed, and an operator asked to run it again.
    Retry,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconcile {
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
    /// The schedule never starts an environment's first run: without a tagrelay build there is
    /// no baseline to be behind, and installing tagrelay must not run Terraform everywhere.
    NoBaseline,
    /// The environment has no parameter yet.
    NothingToDeploy,
}

/// `builds` are the environment's project's builds, newest first, at least down to the newest
/// tagrelay build (see `history`).
pub fn reconcile(fingerprint: &str, builds: &[BuildRecord], trigger: &Trigger) -> Reconcile {
    if fingerprint.is_empty() {
        return Reconcile::NothingToDeploy;
    }
    // Any running build holds the state lock, a manual one too: wait for its end event.
    if let Some(running) = builds.iter().find(|build| build.status == BuildStatus::InProgress) {
        return Reconcile::Wait { running_build: running.id.clone() };
    }
    // Builds started by hand carry no fingerprint and never count as deployed state.
    let newest = builds.iter().find(|build| build.fingerprint.is_some());
    let start = |reason| Reconcile::Start {
        fingerprint: fingerprint.to_owned(),
        reason,
        follows: newest.map(|build| build.id.clone()),
    };
    let Some(newest) = newest else {
        return match trigger {
            Trigger::Schedule => Reconcile::NoBaseline,
            _ => start(StartReason::FirstRun),
        };
    };
    if newest.fingerprint.as_deref() != Some(fingerprint) {
        return start(StartReason::Changed);
    }
    match newest.status {
        BuildStatus::Succeeded => Reconcile::UpToDate { build: newest.id.clone() },
        status if status.is_failure() && matches!(trigger, Trigger::Retry { .. }) => start(StartReason::Retry),
        status if status.is_failure() => Reconcile::Hold { failed_build: newest.id.clone(), status },
        // STOPPED (or a status we do not know): nothing was deployed by it.
        _ => start(StartReason::PreviousStopped),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BuildStatus::*;

    const NOW: &str = "/a/dev/tag=3,/b/dev/tag=7";
    const BEFORE: &str = "/a/dev/tag=2,/b/dev/tag=7";

    fn build(id: &str, status: BuildStatus, fingerprint: Option<&str>) -> BuildRecord {
        BuildRecord { id: id.into(), status, fingerprint: fingerprint.map(str::to_owned), started: None }
    }

    fn manual(n: usize) -> Vec<BuildRecord> {
        (0..n).map(|i| build(&format!("m{i}"), Succeeded, None)).collect()
    }

    fn change() -> Trigger {
        Trigger::ParameterChange { parameter: "/a/dev/tag".into() }
    }

    fn start(reason: StartReason, follows: Option<&str>) -> Reconcile {
        Reconcile::Start { fingerprint: NOW.into(), reason, follows: follows.map(str::to_owned) }
    }

    #[test]
    fn reconcile_table() {
        let finished = Trigger::BuildFinished { build_id: "b1".into(), status: Succeeded };
        let manual_end = Trigger::BuildFinished { build_id: "m0".into(), status: Succeeded };
        let cases: Vec<(&str, Vec<BuildRecord>, Trigger, Reconcile)> = vec![
            ("first run on a change", vec![], change(), start(StartReason::FirstRun, None)),
            ("first run never from the schedule", vec![], Trigger::Schedule, Reconcile::NoBaseline),
            (
                "manual builds are no baseline",
                vec![build("m1", Succeeded, None)],
                Trigger::Schedule,
                Reconcile::NoBaseline,
            ),
            (
                "manual builds are not deployed state",
                vec![build("m1", Succeeded, None), build("b1", Succeeded, Some(BEFORE))],
                change(),
                start(StartReason::Changed, Some("b1")),
            ),
            (
                "a lost event is caught behind a dozen manual builds",
                [manual(12), vec![build("b1", Succeeded, Some(BEFORE))]].concat(),
                Trigger::Schedule,
                start(StartReason::Changed, Some("b1")),
            ),
            (
                "a manual build's end behind which the state is deployed starts nothing",
                [manual(12), vec![build("b1", Succeeded, Some(NOW))]].concat(),
                manual_end,
                Reconcile::UpToDate { build: "b1".into() },
            ),
            (
                "a running build means wait",
                vec![build("b2", InProgress, Some(BEFORE)), build("b1", Succeeded, Some(BEFORE))],
                change(),
                Reconcile::Wait { running_build: "b2".into() },
            ),
            (
                "a running manual build means wait too",
                vec![build("m1", InProgress, None), build("b1", Succeeded, Some(NOW))],
                Trigger::Schedule,
                Reconcile::Wait { running_build: "m1".into() },
            ),
            (
                "deployed exactly this state",
                vec![build("b1", Succeeded, Some(NOW))],
                change(),
                Reconcile::UpToDate { build: "b1".into() },
            ),
            (
                "a change that landed during the run is picked up when it ends",
                vec![build("b1", Succeeded, Some(BEFORE))],
                finished.clone(),
                start(StartReason::Changed, Some("b1")),
            ),
            (
                "the schedule catches a lost event",
                vec![build("b1", Succeeded, Some(BEFORE))],
                Trigger::Schedule,
                start(StartReason::Changed, Some("b1")),
            ),
            (
                "failed with this state: hold",
                vec![build("b1", Failed, Some(NOW))],
                finished.clone(),
                Reconcile::Hold { failed_build: "b1".into(), status: Failed },
            ),
            (
                "fault with this state: hold",
                vec![build("b1", Fault, Some(NOW))],
                Trigger::Schedule,
                Reconcile::Hold { failed_build: "b1".into(), status: Fault },
            ),
            (
                "timed out with this state: hold",
                vec![build("b1", TimedOut, Some(NOW))],
                change(),
                Reconcile::Hold { failed_build: "b1".into(), status: TimedOut },
            ),
            (
                "failed with an older state: the new change starts a run",
                vec![build("b1", Failed, Some(BEFORE))],
                change(),
                start(StartReason::Changed, Some("b1")),
            ),
            (
                "stopped with this state: not deployed, start again after it",
                vec![build("b1", Stopped, Some(NOW))],
                finished,
                start(StartReason::PreviousStopped, Some("b1")),
            ),
            (
                "only the newest tagrelay build counts",
                vec![build("b2", Succeeded, Some(NOW)), build("b1", Failed, Some(NOW))],
                change(),
                Reconcile::UpToDate { build: "b2".into() },
            ),
        ];
        for (name, builds, trigger, expected) in cases {
            assert_eq!(reconcile(NOW, &builds, &trigger), expected, "{name}");
        }
    }

    #[test]
    fn a_retry_starts_a_held_state_again_and_otherwise_acts_like_a_change() {
        let retry = Trigger::Retry { by: "ana".into() };
        let cases: Vec<(&str, Vec<BuildRecord>, Reconcile)> = vec![
            ("held", vec![build("b1", Failed, Some(NOW))], start(StartReason::Retry, Some("b1"))),
            (
                "held twice: a new run after the newest, a new idempotency token",
                vec![build("b2", TimedOut, Some(NOW)), build("b1", Failed, Some(NOW))],
                start(StartReason::Retry, Some("b2")),
            ),
            (
                "in sync: nothing to do",
                vec![build("b1", Succeeded, Some(NOW))],
                Reconcile::UpToDate { build: "b1".into() },
            ),
            (
                "running: wait",
                vec![build("b2", InProgress, Some(NOW)), build("b1", Failed, Some(NOW))],
                Reconcile::Wait { running_build: "b2".into() },
            ),
            ("behind", vec![build("b1", Failed, Some(BEFORE))], start(StartReason::Changed, Some("b1"))),
            ("never deployed", vec![], start(StartReason::FirstRun, None)),
        ];
        for (name, builds, expected) in cases {
            assert_eq!(reconcile(NOW, &builds, &retry), expected, "{name}");
        }
        assert_eq!(reconcile("", &[], &retry), Reconcile::NothingToDeploy);
    }

    #[test]
    fn no_parameter_nothing_to_deploy() {
        assert_eq!(reconcile("", &[], &change()), Reconcile::NothingToDeploy);
        assert_eq!(reconcile("", &[], &Trigger::Schedule), Reconcile::NothingToDeploy);
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
