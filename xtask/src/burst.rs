//! `make bench` (part 2, `cargo run -p xtask -- burst`): a burst of pushes, simulated deterministically, deployed two ways.
//!
//! 100 pushes over 10 simulated minutes across 5 services, all deployed to one environment, a
//! Terraform run of 2 minutes. `tagrelay` drives the real reconcile decision with the events it
//! would get (a parameter change per push, a build-state change per finished run). `naive` starts
//! one run per change, as a bare "parameter changed → StartBuild" rule does; a run that starts
//! while another holds the Terraform state lock fails on the lock and someone must re-run it.
//! Prints a table and writes it to docs/burst-simulation.md.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Write as _;

use tagrelay::deploy::reconcile::{reconcile, Decision, Desired, Trigger};
use tagrelay::ports::StoredParameter;
use tagrelay::ports::{BuildRecord, BuildStatus};
use tagrelay_testbed::workspace_root;

use crate::error::TaskError;

const PUSHES: usize = 100;
const SERVICES: usize = 5;
const WINDOW_SECS: u64 = 600;
const RUN_SECS: u64 = 120;
/// Push → ECR event → record-image-tag → PutParameter → change event.
const RECORD_LATENCY_SECS: u64 = 2;
/// How long a run that finds the state locked takes to fail (init, then the lock attempt).
const LOCK_FAILURE_SECS: u64 = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Push {
    at: u64,
    service: usize,
}

/// Deterministic push times: a fixed linear congruential sequence, sorted.
fn pushes() -> Vec<Push> {
    let mut state: u64 = 0x5eed_7a61_2e1a_0001;
    let mut next = || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let mut pushes: Vec<Push> =
        (0..PUSHES).map(|_| Push { at: next() % WINDOW_SECS, service: (next() % SERVICES as u64) as usize }).collect();
    pushes.sort();
    pushes
}

fn parameter(service: usize) -> String {
    format!("/service-{service}/dev/docker-image-tag")
}

/// The parameters as GetParameters returns them; each push's tag is the parameter's version.
fn stored(versions: &BTreeMap<String, i64>) -> BTreeMap<String, StoredParameter> {
    versions
        .iter()
        .map(|(name, version)| (name.clone(), StoredParameter::string(version.to_string(), *version, None)))
        .collect()
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Report {
    builds_started: usize,
    max_concurrent: usize,
    lock_collisions: usize,
    /// Seconds from the last push until a finished run has deployed it; `None`: never, without
    /// a person.
    last_push_deployed_after: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A parameter's version bump becomes visible, with its change event.
    ParameterChanged { service: usize },
    /// A run ends.
    RunEnded { build: usize },
}

struct Run {
    started: u64,
    /// What the run's plan read: every parameter's version at its start.
    deployed: BTreeMap<String, i64>,
    status: BuildStatus,
    fingerprint: Option<String>,
}

struct World {
    versions: BTreeMap<String, i64>,
    runs: Vec<Run>,
    queue: BinaryHeap<Reverse<(u64, u64, Event)>>,
    seq: u64,
    max_concurrent: usize,
}

impl World {
    fn new() -> Self {
        let mut world =
            World { versions: BTreeMap::new(), runs: Vec::new(), queue: BinaryHeap::new(), seq: 0, max_concurrent: 0 };
        for push in pushes() {
            world.schedule(push.at + RECORD_LATENCY_SECS, Event::ParameterChanged { service: push.service });
        }
        world
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, event)));
    }

    fn running(&self) -> usize {
        self.runs.iter().filter(|run| run.status == BuildStatus::InProgress).count()
    }

    /// Starts a run at `now`. A second concurrent run fails on the state lock.
    fn start(&mut self, now: u64, fingerprint: Option<String>) {
        let locked = self.running() > 0;
        self.runs.push(Run {
            started: now,
            deployed: self.versions.clone(),
            status: BuildStatus::InProgress,
            fingerprint,
        });
        self.max_concurrent = self.max_concurrent.max(self.running());
        let build = self.runs.len() - 1;
        let ends = if locked { now + LOCK_FAILURE_SECS } else { now + RUN_SECS };
        if locked {
            // Remembered by its end time: the lock failure is decided now, reported at the end.
            self.runs[build].status = BuildStatus::Other;
        }
        self.schedule(ends, Event::RunEnded { build });
    }

    fn end(&mut self, build: usize) {
        let run = &mut self.runs[build];
        run.status = if run.status == BuildStatus::Other { BuildStatus::Failed } else { BuildStatus::Succeeded };
    }

    /// Builds as CodeBuild lists them: newest first.
    fn records(&self) -> Vec<BuildRecord> {
        self.runs
            .iter()
            .enumerate()
            .rev()
            .map(|(id, run)| BuildRecord {
                id: id.to_string(),
                status: if run.status == BuildStatus::Other { BuildStatus::InProgress } else { run.status },
                fingerprint: run.fingerprint.clone(),
                started: None,
                ended: None,
            })
            .collect()
    }

    fn report(&self, last_push: Push, final_versions: &BTreeMap<String, i64>) -> Report {
        let deployed_at = self
            .runs
            .iter()
            .filter(|run| run.status == BuildStatus::Succeeded && run.deployed == *final_versions)
            .map(|run| run.started + RUN_SECS)
            .min();
        Report {
            builds_started: self.runs.len(),
            max_concurrent: self.max_concurrent,
            lock_collisions: self.runs.iter().filter(|run| run.status == BuildStatus::Failed).count(),
            last_push_deployed_after: deployed_at.map(|at| at - last_push.at),
        }
    }
}

fn simulate(tagrelay: bool) -> Report {
    let mut world = World::new();
    while let Some(Reverse((now, _, event))) = world.queue.pop() {
        let trigger = match event {
            Event::ParameterChanged { service } => {
                *world.versions.entry(parameter(service)).or_insert(0) += 1;
                Trigger::ParameterChange { parameter: parameter(service) }
            }
            Event::RunEnded { build } => {
                world.end(build);
                Trigger::BuildFinished { build_id: build.to_string(), status: world.runs[build].status }
            }
        };
        if tagrelay {
            let desired = Desired::of(&stored(&world.versions), "initial");
            if let Decision::Start { fingerprint, .. } = reconcile(&desired, &world.records(), &trigger) {
                world.start(now, Some(fingerprint));
            }
        } else if matches!(trigger, Trigger::ParameterChange { .. }) {
            world.start(now, None);
        }
    }
    let pushes = pushes();
    let last = pushes[pushes.len() - 1];
    let versions = world.versions.clone();
    world.report(last, &versions)
}

fn table(tagrelay: &Report, naive: &Report) -> String {
    let deployed = |r: &Report| match r.last_push_deployed_after {
        Some(secs) => format!("{}m {:02}s", secs / 60, secs % 60),
        None => "never (manual re-run)".to_owned(),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{PUSHES} pushes over {} simulated minutes across {SERVICES} services, one environment, Terraform run {} minutes\n",
        WINDOW_SECS / 60,
        RUN_SECS / 60
    );
    let _ = writeln!(
        out,
        "| strategy | builds started | max concurrent builds | state-lock collisions | last push → deployed |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---|");
    for (name, r) in [("tagrelay (reconcile)", tagrelay), ("naive (one build per change)", naive)] {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} |",
            r.builds_started,
            r.max_concurrent,
            r.lock_collisions,
            deployed(r)
        );
    }
    out
}

pub fn run() -> Result<(), TaskError> {
    let tagrelay = simulate(true);
    let naive = simulate(false);
    let text = table(&tagrelay, &naive);
    println!("{text}");
    let path = workspace_root().join("docs/burst-simulation.md");
    let document = format!(
        "# Burst simulation (`make bench`)\n\nGenerated by `xtask/src/burst.rs` (`cargo run -p xtask -- burst`).\n\n{text}"
    );
    std::fs::write(&path, document).map_err(|source| TaskError::Write { path: path.clone(), source })?;
    println!("written to {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagrelay_never_overlaps_runs_and_deploys_the_final_state() {
        let report = simulate(true);
        assert_eq!(report.max_concurrent, 1);
        assert_eq!(report.lock_collisions, 0);
        let after = report.last_push_deployed_after.expect("the last push is deployed without a person");
        assert!(after <= 2 * RUN_SECS + RECORD_LATENCY_SECS, "at most the running run plus one: {after}s");
        assert!(report.builds_started < PUSHES / 4, "coalesced: {} builds", report.builds_started);
    }

    #[test]
    fn the_naive_strategy_collides_on_the_lock() {
        let report = simulate(false);
        assert_eq!(report.builds_started, PUSHES);
        assert!(report.max_concurrent > 1);
        assert!(report.lock_collisions > 0);
    }

    #[test]
    fn the_simulation_is_deterministic() {
        assert_eq!(simulate(true), simulate(true));
        assert_eq!(pushes().len(), PUSHES);
    }
}
