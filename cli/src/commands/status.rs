//! `tagrelay status`: what each environment runs, whether its deployed state is behind, and
//! whether the current state is verified on ECS (verified, verifying, held) next to the
//! environment's newest release record; with promotion configured, the chain, the release each
//! environment runs, and each one's promotion and rollback state. The reads and the decisions are
//! the core's `observe` (trigger-deploy's, and promote's), the same the functions act on; this
//! file maps them to what an operator reads.

use std::collections::BTreeMap;
use std::time::Duration;
use tagrelay::document::read_history;

use aws_smithy_types::DateTime;
use clap::Args;
use serde::Serialize;
use tagrelay::deploy::fingerprint::{same_state, FINGERPRINT_PREFIX};
use tagrelay::deploy::manifest::find;
use tagrelay::deploy::observe::Observation;
use tagrelay::deploy::reconcile::{Decision, Trigger};
use tagrelay::deploy::release::{releases, Release};
use tagrelay::deploy::verify::HoldReason;
use tagrelay::deploy::Deployer;
use tagrelay::ports::{Alarms, BuildRunner, EcsServices, ImageRegistry, ParameterHistory, ParameterStore};
use tagrelay::ports::{BuildRecord, BuildStatus};
use tagrelay::promote::decision::Promotion;
use tagrelay::promote::rollback::RollbackDecision;
use tagrelay::promote::Promoter;

use crate::context::Context;
use crate::error::CliError;
use crate::report::Render;
use crate::table::{or_nothing, Table};
use crate::time::{format, format_opt, parse_duration};

/// Per environment: each service's tag, the newest tagrelay build, the verification on ECS, the
/// newest release and, with promotion configured, the chain and each environment's promotion and
/// rollback state; exit 1 when an environment is held or behind for longer than --stale-after,
/// still verifying past its deadline, or a gate or rollback alarm is missing or has nothing to
/// roll back to.
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
        status(&context.deployer(), &context.promoter(), &request).await
    }
}

/// An environment's promotion state: promote's decision (its JSON fields, `decision` naming it:
/// `up_to_date`, `rolled_back`, `blocked_upstream`, `blocked`, `soaking`, `awaiting_approval`,
/// `promote`) and the same in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PromotionState {
    pub summary: String,
    #[serde(flatten)]
    pub decision: Promotion,
}

impl PromotionState {
    /// `upstream`: the environment it is promoted from (`release` numbers are of its records).
    pub fn of(decision: Promotion, upstream: &str) -> Self {
        let summary = match &decision {
            Promotion::UpToDate { release: None } => "up to date".to_owned(),
            Promotion::UpToDate { release: Some(release) } => {
                format!("up to date (release {release} of {upstream})")
            }
            Promotion::RolledBack { release, service, tag } => {
                format!("rolled back from {service}:{tag}: release {release} of {upstream} holds it, never promoted here again")
            }
            Promotion::BlockedUpstream { release } => {
                format!("blocked: {upstream} rolled back from its release {release}")
            }
            Promotion::Blocked { release, alarm, missing: true } => {
                format!("alarm {alarm} missing: release {release} of {upstream} waits")
            }
            Promotion::Blocked { release, alarm, .. } => {
                format!("blocked by alarm {alarm} (release {release} of {upstream})")
            }
            Promotion::Soaking { release, until } => format!("soaking until {until} (release {release} of {upstream})"),
            Promotion::AwaitingApproval { release, fingerprint } => {
                format!("awaiting approval of release {release} of {upstream} (fingerprint {fingerprint})")
            }
            Promotion::Promote { release, .. } => format!("promoting release {release} of {upstream}"),
            Promotion::UnreadableRecord { parameter, version } => {
                format!("held: {parameter} version {version} is no rollback record; repair or delete it")
            }
        };
        Self { summary, decision }
    }

    /// A gate alarm that does not exist, or an unreadable rollback history, holds promotion for
    /// good: a person must fix it.
    fn problem(&self) -> Option<String> {
        matches!(self.decision, Promotion::Blocked { missing: true, .. } | Promotion::UnreadableRecord { .. })
            .then(|| self.summary.clone())
    }
}

/// An environment's rollback state (with `rollback_alarms`): promote's rollback decision (its
/// JSON fields, `decision` naming it: `healthy`, `outside_window`, `rollback_done`,
/// `rollback_resumed`, `no_previous_release`, `rollback`) and the same in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollbackState {
    pub summary: String,
    #[serde(flatten)]
    pub decision: RollbackDecision,
}

impl RollbackState {
    pub fn of(decision: RollbackDecision) -> Self {
        let summary = match &decision {
            RollbackDecision::Healthy { missing } if missing.is_empty() => "healthy".to_owned(),
            RollbackDecision::Healthy { missing } => format!("alarm {} missing: no rollback on it", missing.join(", ")),
            RollbackDecision::OutsideWindow { alarm, entered_at } => {
                format!("healthy: alarm {alarm} entered ALARM at {entered_at}, outside the release's window")
            }
            RollbackDecision::Done { alarm, rollback } => {
                format!("rolled back on alarm {alarm} (rollback record version {rollback})")
            }
            RollbackDecision::Resume { rollback, .. } => {
                format!("rollback (record version {rollback}) interrupted: promote's next run completes it")
            }
            RollbackDecision::NoPreviousRelease { alarm, entered_at } => {
                format!("alarm {alarm} in ALARM since {entered_at}: no earlier release to roll back to")
            }
            RollbackDecision::Exhausted { alarm, entered_at, rollback } => {
                format!("alarm {alarm} fired again at {entered_at} on the release rollback {rollback} went to: no second automatic rollback, a person decides")
            }
            RollbackDecision::Rollback { release, record } => {
                let alarm = record.alarm.as_deref().unwrap_or("?");
                format!("rolling back to release {release} (alarm {alarm})")
            }
        };
        Self { summary, decision }
    }

    fn problem(&self) -> Option<String> {
        match &self.decision {
            RollbackDecision::NoPreviousRelease { .. } | RollbackDecision::Exhausted { .. } => {
                Some(self.summary.clone())
            }
            RollbackDecision::Healthy { missing } if !missing.is_empty() => Some(self.summary.clone()),
            _ => None,
        }
    }
}

/// One environment in promotion order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainStep {
    pub environment: String,
    pub promote_from: Option<String>,
    /// The version of the environment's release record (`/tagrelay/{environment}/verified`) that
    /// records what it runs now; `null` while what it runs is not verified.
    pub release: Option<i64>,
}

/// The chains as an operator says them: `dev → staging → prod`, one line per path from a source
/// to an environment nothing is promoted from.
pub fn chain_paths(steps: &[ChainStep]) -> Vec<String> {
    let downstream = |name: &str| steps.iter().filter(|s| s.promote_from.as_deref() == Some(name)).collect::<Vec<_>>();
    let mut paths = Vec::new();
    let mut stack: Vec<Vec<&str>> = steps
        .iter()
        .filter(|s| s.promote_from.as_deref().is_none_or(|up| !steps.iter().any(|o| o.environment == up)))
        .map(|s| vec![s.environment.as_str()])
        .rev()
        .collect();
    while let Some(path) = stack.pop() {
        let last = path.last().copied().unwrap_or_default();
        let next = downstream(last);
        if next.is_empty() {
            paths.push(path.join(" → "));
        }
        for step in next.into_iter().rev() {
            let mut longer = path.clone();
            longer.push(step.environment.as_str());
            stack.push(longer);
        }
    }
    paths
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

    /// States that need a person when they last (verifying: past its deadline, see `assess`).
    fn can_go_stale(self) -> bool {
        matches!(self, Self::Behind | Self::Held | Self::NeverDeployed)
    }
}

/// Why an environment is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeldReason {
    /// The newest tagrelay build of the current parameters failed (FAILED, FAULT, TIMED_OUT).
    BuildFailed,
    /// The build succeeded; a service runs another image, or its rollout failed.
    RolloutFailed,
    /// The build succeeded; a rollout was still in progress at the verification deadline.
    VerifyTimedOut,
}

impl HeldReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BuildFailed => "build_failed",
            Self::RolloutFailed => "rollout_failed",
            Self::VerifyTimedOut => "verify_timed_out",
        }
    }

    /// The core's reason for a rollout hold, under the same name.
    fn of(reason: HoldReason) -> Self {
        match reason {
            HoldReason::RolloutFailed => Self::RolloutFailed,
            HoldReason::VerifyTimedOut => Self::VerifyTimedOut,
        }
    }
}

/// One service's rollout in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rollout {
    pub service: String,
    /// The ECS deployment (`ecs-svc/…`) rolling out the expected image.
    pub deployment: String,
}

/// Where the current parameters' rollout stands. `null` in JSON while they have no successful
/// tagrelay run yet (deploying, behind, never deployed, no parameters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Verification {
    /// Verified: ECS runs the current parameters' images, rolled out (or there is nothing on ECS
    /// to verify), since `since`. `recorded`: the release record says so already; `false` for a
    /// release verified just now, which the next reconcile records.
    Verified { since: String, build: String, recorded: bool },
    /// The build succeeded; ECS is still rolling these deployments out, until `deadline`.
    Verifying { build: String, deadline: String, rollouts: Vec<Rollout> },
    /// Nothing retries it until the parameters change or `tagrelay retry`.
    Held { reason: HeldReason, build: String, detail: String },
}

impl Verification {
    pub fn label(&self) -> String {
        match self {
            Self::Verified { recorded: true, .. } => "verified".to_owned(),
            Self::Verified { recorded: false, .. } => "verified (not recorded yet)".to_owned(),
            Self::Verifying { .. } => "verifying".to_owned(),
            Self::Held { reason, .. } => format!("held ({})", reason.as_str()),
        }
    }

    pub fn build(&self) -> &str {
        match self {
            Self::Verified { build, .. } | Self::Verifying { build, .. } | Self::Held { build, .. } => build,
        }
    }

    /// What the verification table's DETAIL column says.
    pub fn detail(&self) -> String {
        match self {
            Self::Verified { since, recorded: true, .. } => format!("verified at {since}"),
            Self::Verified { since, recorded: false, .. } => {
                format!("verified at {since}; the next reconcile writes the release record")
            }
            Self::Verifying { rollouts, .. } => {
                rollouts.iter().map(|r| format!("{}: {}", r.service, r.deployment)).collect::<Vec<_>>().join("; ")
            }
            Self::Held { detail, .. } => detail.clone(),
        }
    }
}

/// The environment's newest release record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseSummary {
    pub fingerprint: String,
    /// The CodeBuild build that deployed it.
    pub build: String,
    pub verified_at: String,
    /// service → tag.
    pub tags: BTreeMap<String, String>,
    /// It records the current parameters.
    pub current: bool,
}

impl ReleaseSummary {
    fn of(release: &Release, current_fingerprint: &str) -> Self {
        Self {
            fingerprint: release.fingerprint.clone(),
            build: release.build.clone(),
            verified_at: release.verified_at.clone(),
            tags: release.tags.clone(),
            current: !current_fingerprint.is_empty() && release.records(current_fingerprint),
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for HeldReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of one environment. Pure: what `observe` saw and decided, plus the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub state: State,
    /// `true` when the state needs a person: behind, held or never deployed for longer than
    /// the allowed time since the parameters last changed, or verifying past its deadline.
    pub stale: bool,
    pub verification: Option<Verification>,
    pub release: Option<ReleaseSummary>,
}

/// Maps an observation (made with `Trigger::Schedule`: what the next sweep would do) to what
/// status shows.
pub fn assess(observed: &Observation, now: DateTime, stale_after: Duration) -> Assessment {
    let current = &observed.desired.fingerprint;
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
            if running.and_then(|b| b.fingerprint.as_deref()).is_some_and(|f| same_state(f, current)) {
                State::Deploying
            } else {
                State::Behind
            }
        }
    };
    let release = observed.release.as_ref().map(|release| ReleaseSummary::of(release, current));
    let verification = match &observed.decision {
        Decision::Verified { build, release, .. } => {
            Some(Verification::Verified { since: release.verified_at.clone(), build: build.clone(), recorded: false })
        }
        Decision::Verifying { build, rolling, deadline } => Some(Verification::Verifying {
            build: build.clone(),
            deadline: format(*deadline),
            rollouts: rolling
                .iter()
                .map(|(service, deployment)| Rollout { service: service.clone(), deployment: deployment.clone() })
                .collect(),
        }),
        Decision::RolloutHeld { build, reason, detail } => {
            Some(Verification::Held { reason: HeldReason::of(*reason), build: build.clone(), detail: detail.clone() })
        }
        Decision::Hold { failed_build, status } => Some(Verification::Held {
            reason: HeldReason::BuildFailed,
            build: failed_build.clone(),
            detail: format!("the build ended {status}"),
        }),
        // Otherwise the release record tells, when it records the current parameters.
        _ => release.as_ref().filter(|r| r.current).map(|r| Verification::Verified {
            since: r.verified_at.clone(),
            build: r.build.clone(),
            recorded: true,
        }),
    };
    let waited = observed.last_change().map_or(0, |changed| now.secs().saturating_sub(changed.secs()));
    let overdue =
        matches!(&observed.decision, Decision::Verifying { deadline, .. } if now.as_nanos() >= deadline.as_nanos());
    let stale = overdue || (state.can_go_stale() && u64::try_from(waited).unwrap_or(0) >= stale_after.as_secs());
    Assessment { state, stale, verification, release }
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub checked_at: String,
    pub stale_after_seconds: u64,
    pub environments: Vec<EnvironmentStatus>,
    /// With an environment that has `promote_from`: every environment in promotion order, with
    /// the release it runs. Absent without promotion.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<ChainStep>,
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
    /// The current parameters' verification on ECS; `null` before their first successful run.
    pub verification: Option<Verification>,
    /// The newest release record (`/tagrelay/{environment}/verified`); `null` when none.
    pub release: Option<ReleaseSummary>,
    /// Where its releases come from; absent when nothing is promoted into it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promote_from: Option<String>,
    /// With `promote_from`: may an upstream release move in now, and if not, why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotion: Option<PromotionState>,
    /// With `rollback_alarms`: did one fire on what it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackState>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceTag {
    pub service: String,
    pub parameter: String,
    pub tag: Option<String>,
    pub version: Option<i64>,
    pub changed: Option<String>,
    /// The tag the newest tagrelay run deployed (its run manifest); `null` when unknown (no run,
    /// a run of an older tagrelay, or its manifest is gone) or the service was not in it.
    pub deployed: Option<String>,
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

pub async fn status<P, B, E, I, Q, R, A>(
    deployer: &Deployer<P, B, E, I>,
    promoter: &Promoter<Q, R, A>,
    request: &StatusRequest<'_>,
) -> Result<StatusReport, CliError>
where
    P: ParameterStore + Sync,
    B: BuildRunner + Sync,
    E: EcsServices + Sync,
    I: ImageRegistry + Sync,
    Q: ParameterStore + ParameterHistory + Sync,
    R: ImageRegistry + Sync,
    A: Alarms + Sync,
{
    let config = deployer.config();
    let chained = config.environments().any(|e| e.promote_from.is_some());
    let mut environments = Vec::new();
    let mut chain = Vec::new();
    for environment in config.chain() {
        if request.environment.is_some_and(|wanted| wanted != environment.name) {
            continue;
        }
        // What the function's next sweep reads and decides.
        let observed = deployer.observe(environment, &Trigger::Schedule).await?;
        let assessment = assess(&observed, request.now, request.stale_after);
        let (stored, recent) = (&observed.parameters, &observed.history.builds);
        let current = observed.desired.fingerprint.clone();
        // What promote's next run reads and decides.
        let (promotion, rollback) = if environment.promote_from.is_some() || !environment.rollback_alarms.is_empty() {
            let view = promoter.observe(environment, request.now).await?;
            let upstream = environment.promote_from.as_deref().unwrap_or_default();
            (view.promotion.map(|p| PromotionState::of(p, upstream)), view.rollback.map(RollbackState::of))
        } else {
            (None, None)
        };
        if chained {
            let (parameters, _, _) = promoter.ports();
            let history = read_history(parameters, &environment.release_parameter()).await?;
            let runs = releases(&history).into_iter().find(|r| !current.is_empty() && r.release.records(&current));
            chain.push(ChainStep {
                environment: environment.name.clone(),
                promote_from: environment.promote_from.clone(),
                release: runs.map(|r| r.version),
            });
        }

        // What the newest tagrelay run deployed, from its run manifest: the fingerprint on the
        // build is a digest, the manifest says what it stands for.
        let newest = recent.iter().find_map(|b| b.fingerprint.as_deref());
        let deployed = match newest {
            Some(fingerprint) if fingerprint.starts_with(FINGERPRINT_PREFIX) => {
                let (parameters, _, _) = promoter.ports();
                find(&read_history(parameters, &environment.manifest_parameter()).await?, fingerprint)
            }
            _ => None,
        };
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
                    deployed: deployed.as_ref().and_then(|m| m.parameters.get(&parameter)).map(|e| e.value.clone()),
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
            verification: assessment.verification,
            release: assessment.release,
            promote_from: environment.promote_from.clone(),
            promotion,
            rollback,
        });
    }
    Ok(StatusReport {
        checked_at: format(request.now),
        stale_after_seconds: request.stale_after.as_secs(),
        environments,
        chain,
    })
}

impl Render for StatusReport {
    /// Environments that need a person, one line each.
    fn problems(&self) -> Vec<String> {
        self.environments
            .iter()
            .filter(|e| e.stale)
            .map(|e| match &e.verification {
                Some(verifying @ Verification::Verifying { deadline, .. }) => {
                    format!("{}: verifying past its deadline {deadline}: {}", e.environment, verifying.detail())
                }
                verification => {
                    let since = e.since.as_deref().unwrap_or("an unknown time");
                    let why = match verification {
                        Some(held @ Verification::Held { reason, .. }) => format!(" ({}: {})", reason, held.detail()),
                        _ => String::new(),
                    };
                    let (environment, state, limit) = (&e.environment, e.state, self.stale_after_seconds);
                    format!("{environment}: {state} since {since}, longer than {limit}s{why}")
                }
            })
            .chain(self.environments.iter().flat_map(|e| {
                let promotion = e.promotion.as_ref().and_then(PromotionState::problem);
                let rollback = e.rollback.as_ref().and_then(RollbackState::problem);
                promotion.into_iter().chain(rollback).map(move |problem| format!("{}: {problem}", e.environment))
            }))
            .collect()
    }

    fn render(&self) -> String {
        let mut environments = Table::new(&[
            "ENVIRONMENT",
            "STATE",
            "SINCE",
            "RELEASE",
            "NEWEST BUILD",
            "STATUS",
            "STARTED",
            "DEPLOYS CURRENT",
            "RUNNING",
        ]);
        let mut verifications = Table::new(&["ENVIRONMENT", "VERIFICATION", "BUILD", "DEADLINE", "DETAIL"]);
        let mut tags = Table::new(&["ENVIRONMENT", "SERVICE", "TAG", "VERSION", "CHANGED"]);
        for e in &self.environments {
            let state = if e.stale { format!("{} (stale)", e.state.as_str()) } else { e.state.as_str().to_owned() };
            let newest = e.newest_build.as_ref();
            environments.row([
                e.environment.clone(),
                state,
                or_nothing(e.since.as_ref()),
                or_nothing(e.release.as_ref().map(|r| {
                    if r.current {
                        r.verified_at.clone()
                    } else {
                        format!("{} (not current)", r.verified_at)
                    }
                })),
                or_nothing(newest.map(|b| &b.id)),
                or_nothing(newest.map(|b| b.status)),
                or_nothing(newest.and_then(|b| b.started.as_ref())),
                or_nothing(newest.map(|b| if b.deploys_current { "yes" } else { "no" })),
                or_nothing(e.running_build.as_ref().map(|b| &b.id)),
            ]);
            // A line for what is under way or needs a person; a recorded release is the RELEASE
            // column.
            match &e.verification {
                None | Some(Verification::Verified { recorded: true, .. }) => {}
                Some(verification) => {
                    let deadline = match verification {
                        Verification::Verifying { deadline, .. } => Some(deadline),
                        _ => None,
                    };
                    verifications.row([
                        e.environment.clone(),
                        verification.label(),
                        verification.build().to_owned(),
                        or_nothing(deadline),
                        verification.detail(),
                    ]);
                }
            }
            for s in &e.services {
                tags.row([
                    e.environment.clone(),
                    s.service.clone(),
                    match (&s.tag, &s.deployed) {
                        (Some(tag), Some(deployed)) if tag != deployed => format!("{tag} (last run: {deployed})"),
                        (tag, _) => or_nothing(tag.as_ref()),
                    },
                    or_nothing(s.version),
                    or_nothing(s.changed.as_ref()),
                ]);
            }
        }
        let mut out = format!("{}\n", environments.render());
        if let Some(promotion) = self.render_promotion() {
            out.push_str(&promotion);
            out.push('\n');
        }
        if !verifications.is_empty() {
            out.push_str(&verifications.render());
            out.push('\n');
        }
        out.push_str(&tags.render());
        out
    }
}

impl StatusReport {
    /// The chain and each environment's promotion and rollback state; `None` when no
    /// environment is promoted into or watched for rollback.
    fn render_promotion(&self) -> Option<String> {
        if self.chain.is_empty() && self.environments.iter().all(|e| e.rollback.is_none()) {
            return None;
        }
        let mut out = String::new();
        for path in chain_paths(&self.chain) {
            out.push_str(&format!("chain: {path}\n"));
        }
        let mut table = Table::new(&["ENVIRONMENT", "FROM", "RUNS", "PROMOTION", "ROLLBACK"]);
        for e in &self.environments {
            let step = self.chain.iter().find(|s| s.environment == e.environment);
            table.row([
                e.environment.clone(),
                or_nothing(e.promote_from.as_ref()),
                or_nothing(step.and_then(|s| s.release).map(|r| format!("release {r}"))),
                or_nothing(e.promotion.as_ref().map(|p| &p.summary)),
                or_nothing(e.rollback.as_ref().map(|r| &r.summary)),
            ]);
        }
        out.push_str(&table.render());
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tagrelay::deploy::history::BuildHistory;
    use tagrelay::deploy::reconcile::{reconcile, Desired, StartReason};
    use tagrelay::deploy::verify::VerifiedBy;
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
                // Two versions back (name=version): not comparable with a fingerprint; one run
                // of the same state follows the upgrade.
                "a run of this state's versions by a tagrelay without digests",
                CURRENT,
                vec![build("b2", Succeeded, Some("/a/dev/tag=3"))],
                State::Behind,
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

    fn release(fingerprint: &str, build: &str, verified_at: &str) -> Release {
        Release {
            fingerprint: fingerprint.into(),
            tags: BTreeMap::from([("a".into(), "3".into())]),
            digests: BTreeMap::new(),
            build: build.into(),
            verified_at: verified_at.into(),
        }
    }

    /// What `observe` returns after verifying: `decision` as it decided, `record` as read.
    fn verified(decision: Decision, record: Option<Release>, last_change: Option<DateTime>) -> Observation {
        let mut observation = observed(desired(CURRENT), &[build("b2", Succeeded, Some(CURRENT))], last_change);
        observation.decision = decision;
        observation.release = record;
        observation
    }

    fn rollouts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(service, deployment)| ((*service).to_owned(), (*deployment).to_owned())).collect()
    }

    /// (name, decision, release record read, state, verification, whether the record is current)
    type Case = (&'static str, Decision, Option<Release>, State, Option<Verification>, Option<bool>);

    #[test]
    fn verification_follows_the_decision_and_the_release_record() {
        let now = DateTime::from_secs(10_000);
        let t1 = "2026-11-28T09:40:02Z";
        let t0 = "2026-11-27T16:10:00Z";
        let record = |fingerprint: &str, build: &str, at: &str| Some(release(fingerprint, build, at));
        let held = |reason, build: &str, detail: &str| {
            Some(Verification::Held { reason, build: build.into(), detail: detail.into() })
        };
        let cases: Vec<Case> = vec![
            (
                "verified just now: the next reconcile records it",
                Decision::Verified {
                    build: "b2".into(),
                    release: release(CURRENT, "b2", t1),
                    basis: VerifiedBy::RolloutCompleted,
                },
                record(OLDER, "b1", t0),
                State::InSync,
                Some(Verification::Verified { since: t1.into(), build: "b2".into(), recorded: false }),
                Some(false),
            ),
            (
                "recorded: verified since the record's time",
                Decision::UpToDate { build: "b2".into() },
                record(CURRENT, "b2", t1),
                State::InSync,
                Some(Verification::Verified { since: t1.into(), build: "b2".into(), recorded: true }),
                Some(true),
            ),
            (
                "verifying: each service's deployment and the deadline",
                Decision::Verifying {
                    build: "b2".into(),
                    rolling: rollouts(&[("a", "ecs-svc/1"), ("b", "ecs-svc/2")]),
                    deadline: DateTime::from_secs(10_600),
                },
                record(OLDER, "b1", t0),
                State::Verifying,
                Some(Verification::Verifying {
                    build: "b2".into(),
                    deadline: "1970-01-01T02:56:40Z".into(),
                    rollouts: vec![
                        Rollout { service: "a".into(), deployment: "ecs-svc/1".into() },
                        Rollout { service: "b".into(), deployment: "ecs-svc/2".into() },
                    ],
                }),
                Some(false),
            ),
            (
                "rollout failed",
                Decision::RolloutHeld {
                    build: "b2".into(),
                    reason: HoldReason::RolloutFailed,
                    detail: "a: runs a:2, not a:3".into(),
                },
                record(OLDER, "b1", t0),
                State::Held,
                held(HeldReason::RolloutFailed, "b2", "a: runs a:2, not a:3"),
                Some(false),
            ),
            (
                "verification timed out",
                Decision::RolloutHeld {
                    build: "b2".into(),
                    reason: HoldReason::VerifyTimedOut,
                    detail: "still rolling out: a: ecs-svc/1".into(),
                },
                None,
                State::Held,
                held(HeldReason::VerifyTimedOut, "b2", "still rolling out: a: ecs-svc/1"),
                None,
            ),
            (
                "the build failed",
                Decision::Hold { failed_build: "b2".into(), status: TimedOut },
                record(OLDER, "b1", t0),
                State::Held,
                held(HeldReason::BuildFailed, "b2", "the build ended TIMED_OUT"),
                Some(false),
            ),
            (
                "behind: the release is of the state before",
                Decision::Start {
                    fingerprint: CURRENT.into(),
                    reason: StartReason::Changed,
                    follows: Some("b1".into()),
                },
                record(OLDER, "b1", t0),
                State::Behind,
                None,
                Some(false),
            ),
            ("no parameters", Decision::NothingToDeploy, None, State::NoParameters, None, None),
        ];
        for (name, decision, record, state, verification, current) in cases {
            let assessed = assess(&verified(decision, record, at(9_000)), now, HOUR);
            assert_eq!(assessed.state, state, "{name}");
            assert_eq!(assessed.verification, verification, "{name}");
            assert_eq!(assessed.release.map(|r| r.current), current, "{name}");
            assert!(!assessed.stale, "{name}: within the hour and the deadline");
        }
    }

    #[test]
    fn verifying_is_a_problem_only_past_its_deadline_and_a_rollout_hold_like_any_hold() {
        let verifying = |deadline| Decision::Verifying {
            build: "b2".into(),
            rolling: rollouts(&[("a", "ecs-svc/1")]),
            deadline: DateTime::from_secs(deadline),
        };
        let long_ago = at(0);
        // Not by --stale-after: verification has its own time-out.
        let within = verified(verifying(10_001), None, long_ago);
        assert!(!assess(&within, DateTime::from_secs(10_000), Duration::ZERO).stale);
        let due = verified(verifying(10_000), None, long_ago);
        assert!(assess(&due, DateTime::from_secs(10_000), HOUR).stale, "the core times out at the deadline");
        let rollout_held = |last_change| {
            verified(
                Decision::RolloutHeld { build: "b2".into(), reason: HoldReason::RolloutFailed, detail: "x".into() },
                None,
                last_change,
            )
        };
        let now = DateTime::from_secs(10_000);
        assert!(!assess(&rollout_held(at(10_000 - 3599)), now, HOUR).stale);
        assert!(assess(&rollout_held(at(10_000 - 3600)), now, HOUR).stale);
    }

    #[test]
    fn held_reasons_are_named_as_the_core_names_them() {
        for reason in [HoldReason::RolloutFailed, HoldReason::VerifyTimedOut] {
            assert_eq!(HeldReason::of(reason).as_str(), reason.as_str());
            assert_eq!(serde_json::to_value(HeldReason::of(reason)).ok(), serde_json::to_value(reason).ok());
        }
    }
}
