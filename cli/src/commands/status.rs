//! `tagrelay status`: what each environment runs, and whether its deployed state is behind. The
//! reads and the decision are the core's `observe`, the same the trigger-deploy function acts on;
//! this file maps its decision to what an operator reads.

use std::time::Duration;

use aws_smithy_types::DateTime;
use clap::Args;
use serde::Serialize;
use tagrelay::deploy::fingerprint::same_state;
use tagrelay::deploy::observe::Observation;
use tagrelay::deploy::reconcile::{Decision, Trigger};
use tagrelay::deploy::Deployer;
use tagrelay::ports::{BuildRecord, BuildStatus};
use tagrelay::ports::{BuildRunner, EcsServices, ImageRegistry, ParameterStore};

use crate::context::Context;
use crate::error::CliError;
use crate::report::Render;
use crate::table::{or_nothing, Table};
use crate::time::{format, format_opt, parse_duration};

/// Per environment: each service's tag and the newest tagrelay build; exit 1 when an
/// environment is held or behind for longer than --stale-after.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this environment.
    #[arg(long = "env", value_name = "ENVIRONMENT")]
    pub environment: Option<String>,
    /// Only this service's tags.
    #[arg(long, value_name = "SERVICE")]
    pub service: Option<String>,
    /// How long an environment may be behind or held before it counts as a problem
    /// (e.g. 90s, 30m, 2h, 1d).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub stale_after: Duration,
}

impl StatusArgs {
    pub async fn run(&self, context: &Context) -> Result<StatusReport, CliError> {
        if let Some(environment) = &self.environment {
            context.environment("--env", environment)?;
        }
        if let Some(service) = &self.service {
            context.service(service)?;
        }
        let request = StatusRequest {
            environment: self.environment.as_deref(),
            service: self.service.as_deref(),
            stale_after: self.stale_after,
            now: crate::time::now(),
        };
        status(&context.deployer(), &request).await
    }
}

/// Where an environment stands, as the reconcile decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The newest tagrelay build deployed exactly the current parameters.
    InSync,
    /// A tagrelay build of the current parameters is running.
    Deploying,
    /// The build of the current parameters succeeded; ECS is still rolling it out.
    Verifying,
    /// The parameters changed since the newest tagrelay build (a run is due or queued).
    Behind,
    /// The newest tagrelay build of the current parameters failed, or it succeeded and its
    /// rollout failed or timed out; nothing retries it until the next parameter change.
    Held,
    /// No tagrelay build yet, and every parameter is as it was created: the next parameter
    /// change starts the first run. (Once one was written since, the sweep starts it: `behind`.)
    NeverDeployed,
    /// No parameter exists yet for this environment.
    NoParameters,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InSync => "in_sync",
            Self::Deploying => "deploying",
            Self::Verifying => "verifying",
            Self::Behind => "behind",
            Self::Held => "held",
            Self::NeverDeployed => "never_deployed",
            Self::NoParameters => "no_parameters",
        }
    }

    /// States that need a person when they last.
    fn can_go_stale(self) -> bool {
        matches!(self, Self::Behind | Self::Held | Self::NeverDeployed)
    }
}

/// The state of one environment. Pure: what `observe` saw and decided, plus the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub state: State,
    /// `true` when the state needs a person: behind, held or never deployed for longer than
    /// the allowed time since the parameters last changed.
    pub stale: bool,
}

/// Maps an observation (made with `Trigger::Schedule`: what the next sweep would do) to what
/// status shows.
pub fn assess(observed: &Observation, now: DateTime, stale_after: Duration) -> Assessment {
    let state = match &observed.decision {
        Decision::NothingToDeploy => State::NoParameters,
        // Verified: the next sweep records the release; nothing more to happen for it.
        Decision::UpToDate { .. } | Decision::Verified { .. } => State::InSync,
        Decision::Verifying { .. } => State::Verifying,
        Decision::Hold { .. } | Decision::RolloutHeld { .. } => State::Held,
        Decision::NoBaseline => State::NeverDeployed,
        Decision::Start { .. } => State::Behind,
        // A running build of an older state: a follow-up run comes after it.
        Decision::Wait { running_build } => {
            let running = observed.history.builds.iter().find(|build| &build.id == running_build);
            let current = &observed.desired.fingerprint;
            if running.and_then(|b| b.fingerprint.as_deref()).is_some_and(|f| same_state(f, current)) {
                State::Deploying
            } else {
                State::Behind
            }
        }
    };
    let waited = observed.last_change().map_or(0, |changed| now.secs().saturating_sub(changed.secs()));
    let stale = state.can_go_stale() && u64::try_from(waited).unwrap_or(0) >= stale_after.as_secs();
    Assessment { state, stale }
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub checked_at: String,
    pub stale_after_seconds: u64,
    pub environments: Vec<EnvironmentStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentStatus {
    pub environment: String,
    pub project: String,
    pub state: State,
    /// When the parameters last changed.
    pub since: Option<String>,
    pub stale: bool,
    pub fingerprint: String,
    pub services: Vec<ServiceTag>,
    pub newest_build: Option<BuildSummary>,
    pub running_build: Option<BuildSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceTag {
    pub service: String,
    pub parameter: String,
    pub tag: Option<String>,
    pub version: Option<i64>,
    pub changed: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildSummary {
    pub id: String,
    pub status: BuildStatus,
    pub fingerprint: Option<String>,
    pub started: Option<String>,
    /// The build was started for the current parameters.
    pub deploys_current: bool,
}

pub struct StatusRequest<'a> {
    pub environment: Option<&'a str>,
    pub service: Option<&'a str>,
    pub stale_after: Duration,
    pub now: DateTime,
}

pub async fn status<P, B, E, I>(
    deployer: &Deployer<P, B, E, I>,
    request: &StatusRequest<'_>,
) -> Result<StatusReport, CliError>
where
    P: ParameterStore + Sync,
    B: BuildRunner + Sync,
    E: EcsServices + Sync,
    I: ImageRegistry + Sync,
{
    let config = deployer.config();
    let mut environments = Vec::new();
    for environment in config.environments() {
        if request.environment.is_some_and(|wanted| wanted != environment.name) {
            continue;
        }
        // What the function's next sweep reads and decides.
        let observed = deployer.observe(environment, &Trigger::Schedule).await?;
        let assessment = assess(&observed, request.now, request.stale_after);
        let (stored, recent) = (&observed.parameters, &observed.history.builds);
        let current = observed.desired.fingerprint.clone();

        let services = config
            .services()
            .filter(|service| request.service.is_none_or(|wanted| wanted == service.name))
            .map(|service| {
                let parameter = config.parameter_name(&service.name, &environment.name);
                let found = stored.get(&parameter);
                ServiceTag {
                    service: service.name.clone(),
                    tag: found.map(|p| p.value.clone()),
                    version: found.map(|p| p.version),
                    changed: found.and_then(|p| format_opt(p.last_modified)),
                    parameter,
                }
            })
            .collect();
        let summary = |build: &BuildRecord| BuildSummary {
            id: build.id.clone(),
            status: build.status,
            fingerprint: build.fingerprint.clone(),
            started: format_opt(build.started),
            deploys_current: build.fingerprint.as_deref().is_some_and(|f| same_state(f, &current)),
        };
        environments.push(EnvironmentStatus {
            environment: environment.name.clone(),
            project: environment.codebuild_project.clone(),
            state: assessment.state,
            since: format_opt(observed.last_change()),
            stale: assessment.stale,
            newest_build: recent.iter().find(|b| b.fingerprint.is_some()).map(summary),
            running_build: recent.iter().find(|b| b.status == BuildStatus::InProgress).map(summary),
            fingerprint: current,
            services,
        });
    }
    Ok(StatusReport {
        checked_at: format(request.now),
        stale_after_seconds: request.stale_after.as_secs(),
        environments,
    })
}

impl Render for StatusReport {
    /// Environments that need a person, one line each.
    fn problems(&self) -> Vec<String> {
        self.environments
            .iter()
            .filter(|e| e.stale)
            .map(|e| {
                let since = e.since.as_deref().unwrap_or("an unknown time");
                format!(
                    "{}: {} since {since}, longer than {}s",
                    e.environment,
                    e.state.as_str(),
                    self.stale_after_seconds
                )
            })
            .collect()
    }

    fn render(&self) -> String {
        let mut environments = Table::new(&[
            "ENVIRONMENT",
            "STATE",
            "SINCE",
            "NEWEST BUILD",
            "STATUS",
            "STARTED",
            "DEPLOYS CURRENT",
            "RUNNING",
        ]);
        let mut tags = Table::new(&["ENVIRONMENT", "SERVICE", "TAG", "VERSION", "CHANGED"]);
        for e in &self.environments {
            let state = if e.stale { format!("{} (stale)", e.state.as_str()) } else { e.state.as_str().to_owned() };
            let newest = e.newest_build.as_ref();
            environments.row([
                e.environment.clone(),
                state,
                or_nothing(e.since.as_ref()),
                or_nothing(newest.map(|b| &b.id)),
                or_nothing(newest.map(|b| b.status)),
                or_nothing(newest.and_then(|b| b.started.as_ref())),
                or_nothing(newest.map(|b| if b.deploys_current { "yes" } else { "no" })),
                or_nothing(e.running_build.as_ref().map(|b| &b.id)),
            ]);
            for s in &e.services {
                tags.row([
                    e.environment.clone(),
                    s.service.clone(),
                    or_nothing(s.tag.as_ref()),
                    or_nothing(s.version),
                    or_nothing(s.changed.as_ref()),
                ]);
            }
        }
        format!("{}\n{}", environments.render(), tags.render())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tagrelay::deploy::history::BuildHistory;
    use tagrelay::deploy::reconcile::{reconcile, Desired};
    use tagrelay::ports::StoredParameter;

    use super::*;
    use BuildStatus::*;

    const CURRENT: &str = "/a/dev/tag=3@0000000a";
    const OLDER: &str = "/a/dev/tag=2@0000000b";
    const HOUR: Duration = Duration::from_secs(3600);

    fn build(id: &str, status: BuildStatus, fingerprint: Option<&str>) -> BuildRecord {
        BuildRecord { id: id.into(), status, fingerprint: fingerprint.map(str::to_owned), started: None, ended: None }
    }

    /// The current parameters, some written since they were created.
    fn desired(fingerprint: &str) -> Desired {
        Desired { fingerprint: fingerprint.into(), change_recorded: true }
    }

    fn at(secs: i64) -> Option<DateTime> {
        Some(DateTime::from_secs(secs))
    }

    /// What `observe` returns for these reads: the schedule's decision; a parameter last written
    /// at `last_change` (none without).
    fn observed(desired: Desired, builds: &[BuildRecord], last_change: Option<DateTime>) -> Observation {
        let decision = reconcile(&desired, builds, &Trigger::Schedule);
        let parameters = last_change
            .map(|at| ("/a/dev/tag".to_owned(), StoredParameter::string("3", 3, Some(at))))
            .into_iter()
            .collect::<BTreeMap<_, _>>();
        let history = BuildHistory { builds: builds.to_vec(), bound_reached: false };
        Observation { parameters, release: None, desired, history, decision }
    }

    #[test]
    fn states_follow_the_reconcile_decision() {
        let now = DateTime::from_secs(10_000);
        let cases = [
            ("in sync", CURRENT, vec![build("b2", Succeeded, Some(CURRENT))], State::InSync),
            ("deploying", CURRENT, vec![build("b2", InProgress, Some(CURRENT))], State::Deploying),
            (
                "older state running",
                CURRENT,
                vec![build("b2", InProgress, Some(OLDER)), build("b1", Succeeded, Some(OLDER))],
                State::Behind,
            ),
            ("manual build running", CURRENT, vec![build("m", InProgress, None)], State::Behind),
            ("changed since", CURRENT, vec![build("b1", Succeeded, Some(OLDER))], State::Behind),
            ("held", CURRENT, vec![build("b2", Failed, Some(CURRENT))], State::Held),
            ("stopped", CURRENT, vec![build("b2", Stopped, Some(CURRENT))], State::Behind),
            (
                "manual builds only, a change recorded: the sweep starts it",
                CURRENT,
                vec![build("m", Succeeded, None)],
                State::Behind,
            ),
            (
                "a run of this state's versions by a tagrelay without digests",
                CURRENT,
                vec![build("b2", Succeeded, Some("/a/dev/tag=3"))],
                State::InSync,
            ),
            ("no parameters", "", vec![], State::NoParameters),
        ];
        for (name, current, builds, state) in cases {
            assert_eq!(assess(&observed(desired(current), &builds, at(9_000)), now, HOUR).state, state, "{name}");
        }
        let created = Desired { fingerprint: CURRENT.into(), change_recorded: false };
        let manual = vec![build("m", Succeeded, None)];
        assert_eq!(assess(&observed(created, &manual, at(9_000)), now, HOUR).state, State::NeverDeployed);
    }

    #[test]
    fn only_waiting_states_go_stale_and_only_after_the_allowed_time() {
        let now = DateTime::from_secs(10_000);
        let behind = vec![build("b1", Succeeded, Some(OLDER))];
        assert!(!assess(&observed(desired(CURRENT), &behind, at(10_000 - 3599)), now, HOUR).stale);
        assert!(assess(&observed(desired(CURRENT), &behind, at(10_000 - 3600)), now, HOUR).stale);
        let held = vec![build("b2", Failed, Some(CURRENT))];
        assert!(assess(&observed(desired(CURRENT), &held, at(0)), now, HOUR).stale);
        let in_sync = vec![build("b2", Succeeded, Some(CURRENT))];
        assert!(!assess(&observed(desired(CURRENT), &in_sync, at(0)), now, HOUR).stale);
        let deploying = vec![build("b2", InProgress, Some(CURRENT))];
        assert!(!assess(&observed(desired(CURRENT), &deploying, at(0)), now, HOUR).stale);
        assert!(!assess(&observed(desired(""), &[], None), now, Duration::ZERO).stale);
    }
}
