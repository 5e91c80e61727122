//! `tagrelay trace SERVICE TAG`: where is this image? Per environment in promotion order, from
//! the state tagrelay keeps in SSM (no log scraping): the image-tag parameter's history (when,
//! by whom, the description; "promoted from U (release N, verified T)" as promote writes it),
//! the release records that hold the tag, the rollback records that name it, the approvals of
//! upstream releases that hold it, and what promotion waits on now (promote's own decision).

use std::collections::BTreeMap;
use tagrelay::document::read_history;

use aws_smithy_types::DateTime;
use clap::Args;
use serde::Serialize;
use tagrelay::config::{Config, Environment};
use tagrelay::deploy::release::{releases, StoredRelease};
use tagrelay::ports::{Alarms, ImageRegistry, ParameterHistory, ParameterStore, ParameterVersion};
use tagrelay::promote::records::{stored, Approval, RollbackRecord, Stored};
use tagrelay::promote::Promoter;

use crate::commands::status::PromotionState;
use crate::context::Context;
use crate::error::CliError;
use crate::report::Render;
use crate::table::{or_nothing, Table};
use crate::time::format_opt;

/// Where is this image? Per environment: recorded when and by whom, promoted from where,
/// verified, approved, rolled back, and what promotion waits on now; exit 1 when no
/// environment ever held the tag.
#[derive(Debug, Args)]
pub struct TraceArgs {
    pub service: String,
    pub tag: String,
}

impl TraceArgs {
    pub async fn run(&self, context: &Context) -> Result<TraceReport, CliError> {
        let service = context.service(&self.service)?;
        let request = TraceRequest { service: &service.name, tag: &self.tag, now: crate::time::now() };
        trace(&context.promoter(), request).await
    }
}

pub struct TraceRequest<'a> {
    pub service: &'a str,
    pub tag: &'a str,
    pub now: DateTime,
}

#[derive(Debug, Clone, Serialize)]
pub struct TraceReport {
    pub service: String,
    pub tag: String,
    /// Some environment's state names the tag.
    pub found: bool,
    /// In promotion order (`dev`, `staging`, `prod`).
    pub environments: Vec<EnvironmentTrace>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentTrace {
    pub environment: String,
    pub promote_from: Option<String>,
    /// The image-tag parameter.
    pub parameter: String,
    /// The parameter holds the tag now.
    pub holds: bool,
    /// Each time the parameter was set to the tag (oldest first), and what replaced it.
    pub recorded: Vec<Recorded>,
    /// This environment's release records that hold the tag, oldest first.
    pub releases: Vec<VerifiedRelease>,
    /// This environment's rollbacks from or to the tag, oldest first.
    pub rollbacks: Vec<RollbackMention>,
    /// Approvals, in this environment, of upstream releases that hold the tag.
    pub approvals: Vec<ApprovalOf>,
    /// Never held it: the newest upstream release that holds it, if one does.
    pub upstream_release: Option<i64>,
    /// With `promote_from`: what promotion into this environment waits on now.
    pub promotion: Option<PromotionState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// The parameter version that set the tag.
    pub version: i64,
    pub at: Option<String>,
    /// The IAM identity SSM recorded as the writer.
    pub by: Option<String>,
    pub description: Option<String>,
    /// From the description promote (or `tagrelay promote`) wrote.
    pub promoted_from: Option<PromotedFrom>,
    /// The version that set another tag after it; `null` while it holds it.
    pub replaced: Option<Replaced>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PromotedFrom {
    pub environment: String,
    /// The upstream release (its release record version) and when it was verified; `null`
    /// for a `tagrelay promote` by hand.
    pub release: Option<i64>,
    pub verified_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replaced {
    pub version: i64,
    pub tag: String,
    pub at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedRelease {
    pub version: i64,
    pub verified_at: String,
    pub build: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The environment was rolled back from the tag.
    From,
    /// The environment was rolled back to the tag.
    To,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollbackMention {
    /// The rollback record's version.
    pub version: i64,
    pub direction: Direction,
    /// The service's tag on the other side of the rollback.
    pub other: Option<String>,
    pub at: String,
    pub by: String,
    pub alarm: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalOf {
    /// The approval record's version.
    pub version: i64,
    /// The upstream release approved (its release record version).
    pub release: i64,
    pub fingerprint: String,
    pub by: String,
    pub at: String,
    pub comment: String,
}

/// What one environment's records say, read before the trace is assembled (an environment's
/// approvals name its upstream's releases).
struct Reads {
    history: Vec<ParameterVersion>,
    releases: Vec<StoredRelease>,
    rollbacks: Vec<Stored<RollbackRecord>>,
    approvals: Vec<Stored<Approval>>,
    promotion: Option<PromotionState>,
}

pub async fn trace<P, R, A>(promoter: &Promoter<P, R, A>, request: TraceRequest<'_>) -> Result<TraceReport, CliError>
where
    P: ParameterStore + ParameterHistory + Sync,
    R: ImageRegistry + Sync,
    A: Alarms + Sync,
{
    let config = promoter.config();
    let (parameters, _, _) = promoter.ports();
    let mut reads: BTreeMap<String, Reads> = BTreeMap::new();
    for environment in config.chain() {
        let history = parameters.parameter_history(&config.parameter_name(request.service, &environment.name)).await?;
        let releases = releases(&read_history(parameters, &environment.release_parameter()).await?);
        let rollbacks = stored(&read_history(parameters, &environment.rollback_parameter()).await?);
        let approvals = if environment.approval {
            stored(&read_history(parameters, &environment.approval_parameter()).await?)
        } else {
            Vec::new()
        };
        let promotion = match environment.promote_from.as_deref() {
            Some(upstream) => {
                promoter.observe(environment, request.now).await?.promotion.map(|p| PromotionState::of(p, upstream))
            }
            None => None,
        };
        reads.insert(environment.name.clone(), Reads { history, releases, rollbacks, approvals, promotion });
    }
    let environments: Vec<EnvironmentTrace> = config
        .chain()
        .into_iter()
        .filter_map(|environment| {
            let own = reads.get(&environment.name)?;
            let upstream = environment.promote_from.as_deref().and_then(|u| reads.get(u));
            Some(assemble(config, environment, own, upstream, &request))
        })
        .collect();
    let found = environments
        .iter()
        .any(|e| e.holds || !e.recorded.is_empty() || !e.releases.is_empty() || !e.rollbacks.is_empty());
    Ok(TraceReport { service: request.service.to_owned(), tag: request.tag.to_owned(), found, environments })
}

fn assemble(
    config: &Config,
    environment: &Environment,
    own: &Reads,
    upstream: Option<&Reads>,
    request: &TraceRequest<'_>,
) -> EnvironmentTrace {
    let (service, tag) = (request.service, request.tag);
    let holds_tag = |tags: &BTreeMap<String, String>| tags.get(service).is_some_and(|t| t == tag);
    let recorded = recorded(&own.history, tag);
    let mut history: Vec<&ParameterVersion> = own.history.iter().collect();
    history.sort_by_key(|v| v.version);
    let holds = history.last().is_some_and(|v| v.value == tag);

    let mut releases: Vec<VerifiedRelease> = own
        .releases
        .iter()
        .filter(|r| holds_tag(&r.release.tags))
        .map(|r| VerifiedRelease {
            version: r.version,
            verified_at: r.release.verified_at.clone(),
            build: r.release.build.clone(),
            fingerprint: r.release.fingerprint.clone(),
        })
        .collect();
    releases.sort_by_key(|r| r.version);

    let mut rollbacks: Vec<RollbackMention> = own
        .rollbacks
        .iter()
        .filter_map(|Stored { version, record, .. }| {
            let (direction, other) = if holds_tag(&record.from) {
                (Direction::From, record.to.get(service).cloned())
            } else if holds_tag(&record.to) {
                (Direction::To, record.from.get(service).cloned())
            } else {
                return None;
            };
            Some(RollbackMention {
                version: *version,
                direction,
                other,
                at: record.at.clone(),
                by: record.by.clone(),
                alarm: record.alarm.clone(),
                reason: record.reason.clone(),
            })
        })
        .collect();
    rollbacks.sort_by_key(|r| r.version);

    // Upstream releases holding the tag, by fingerprint: what an approval here names.
    let upstream_holding: Vec<&StoredRelease> =
        upstream.map(|u| u.releases.iter().filter(|r| holds_tag(&r.release.tags)).collect()).unwrap_or_default();
    let mut approvals: Vec<ApprovalOf> = own
        .approvals
        .iter()
        .filter_map(|Stored { version, record, .. }| {
            let release = upstream_holding.iter().find(|r| r.release.fingerprint == record.fingerprint)?;
            Some(ApprovalOf {
                version: *version,
                release: release.version,
                fingerprint: record.fingerprint.clone(),
                by: record.by.clone(),
                at: record.at.clone(),
                comment: record.comment.clone(),
            })
        })
        .collect();
    approvals.sort_by_key(|a| a.version);

    let upstream_release = if recorded.is_empty() { upstream_holding.iter().map(|r| r.version).max() } else { None };
    EnvironmentTrace {
        environment: environment.name.clone(),
        promote_from: environment.promote_from.clone(),
        parameter: config.parameter_name(service, &environment.name),
        holds,
        recorded,
        releases,
        rollbacks,
        approvals,
        upstream_release,
        promotion: own.promotion.clone(),
    }
}

/// Each run of versions holding `tag`, oldest first: the version that set it and the one that
/// replaced it.
fn recorded(history: &[ParameterVersion], tag: &str) -> Vec<Recorded> {
    let mut versions: Vec<&ParameterVersion> = history.iter().collect();
    versions.sort_by_key(|v| v.version);
    let mut found: Vec<Recorded> = Vec::new();
    let mut holding = false;
    for version in versions {
        match (holding, version.value == tag) {
            (false, true) => {
                found.push(Recorded {
                    version: version.version,
                    at: format_opt(version.modified_at),
                    by: version.modified_by.clone(),
                    description: version.description.clone(),
                    promoted_from: version.description.as_deref().and_then(promoted_from),
                    replaced: None,
                });
                holding = true;
            }
            (true, false) => {
                if let Some(last) = found.last_mut() {
                    last.replaced = Some(Replaced {
                        version: version.version,
                        tag: version.value.clone(),
                        at: format_opt(version.modified_at),
                    });
                }
                holding = false;
            }
            _ => {}
        }
    }
    found
}

/// "…, promoted from U (release N, verified T) by tagrelay (…)" as promote writes it, or
/// "…, promoted from U with tagrelay (…)" as `tagrelay promote` does.
pub fn promoted_from(description: &str) -> Option<PromotedFrom> {
    let (_, rest) = description.split_once(", promoted from ")?;
    let (environment, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let inside = rest.strip_prefix("(release ").and_then(|r| r.split_once(')')).map(|(inside, _)| inside);
    let (release, verified_at) = match inside.and_then(|i| i.split_once(", verified ")) {
        Some((release, verified_at)) => (release.parse().ok(), Some(verified_at.to_owned())),
        None => (None, None),
    };
    Some(PromotedFrom { environment: environment.to_owned(), release, verified_at })
}

impl Render for TraceReport {
    fn problems(&self) -> Vec<String> {
        if self.found {
            return Vec::new();
        }
        vec![format!(
            "{}:{} is in no environment: no parameter version (of the newest 100 SSM keeps), release record or \
             rollback record names it",
            self.service, self.tag
        )]
    }

    fn render(&self) -> String {
        let mut events = Table::new(&["ENVIRONMENT", "WHEN", "WHAT", "DETAIL"]);
        let mut now = Table::new(&["ENVIRONMENT", "HOLDS IT", "PROMOTION NOW"]);
        for e in &self.environments {
            for (when, what, detail) in events_of(e) {
                events.row([e.environment.clone(), when, what.to_owned(), detail]);
            }
            now.row([
                e.environment.clone(),
                (if e.holds { "yes" } else { "no" }).to_owned(),
                or_nothing(e.promotion.as_ref().map(|p| &p.summary)),
            ]);
        }
        let heading = format!("{}:{}", self.service, self.tag);
        if !self.found {
            return format!("{heading}: in no environment\n{}", now.render());
        }
        format!("{heading}\n{}\n{}", events.render(), now.render())
    }
}

/// One environment's events, by time (RFC 3339 UTC sorts as text); a version without a time
/// keeps its place first.
fn events_of(e: &EnvironmentTrace) -> Vec<(String, &'static str, String)> {
    let mut events: Vec<(String, &'static str, String)> = Vec::new();
    let when = |at: Option<&String>| at.cloned().unwrap_or_default();
    for r in &e.recorded {
        let by = r.by.as_deref().map(|by| format!(" by {by}")).unwrap_or_default();
        let how = match (&r.promoted_from, &r.description) {
            (Some(PromotedFrom { environment, release: Some(release), .. }), _) => {
                format!(", promoted from {environment} (release {release})")
            }
            (Some(PromotedFrom { environment, .. }), _) => format!(", promoted from {environment} by hand"),
            (None, Some(description)) => format!(": {description}"),
            (None, None) => String::new(),
        };
        events.push((when(r.at.as_ref()), "recorded", format!("version {}{by}{how}", r.version)));
        if let Some(replaced) = &r.replaced {
            events.push((
                when(replaced.at.as_ref()),
                "replaced",
                format!("by {} (version {})", replaced.tag, replaced.version),
            ));
        }
    }
    for r in &e.releases {
        events.push((r.verified_at.clone(), "verified", format!("release {}, build {}", r.version, r.build)));
    }
    for a in &e.approvals {
        let upstream = e.promote_from.as_deref().unwrap_or("upstream");
        let comment = if a.comment.is_empty() { String::new() } else { format!(": {}", a.comment) };
        events.push((a.at.clone(), "approved", format!("release {} of {upstream} by {}{comment}", a.release, a.by)));
    }
    for r in &e.rollbacks {
        let (what, other) = match r.direction {
            Direction::From => ("rolled back", format!("to {}", r.other.as_deref().unwrap_or("?"))),
            Direction::To => ("rolled back to it", format!("from {}", r.other.as_deref().unwrap_or("?"))),
        };
        events.push((r.at.clone(), what, format!("{other} by {}: {} (record version {})", r.by, r.reason, r.version)));
    }
    events.sort_by(|a, b| a.0.cmp(&b.0));
    if e.recorded.is_empty() {
        let detail = match (e.upstream_release, e.promote_from.as_deref()) {
            (Some(release), Some(upstream)) => format!("release {release} of {upstream} holds it"),
            _ => String::new(),
        };
        events.push((String::new(), "never held it", detail));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promoted_from_reads_what_promote_and_the_cli_write() {
        let by_promote = "Image tag of my-api in prod, promoted from staging (release 7, verified 2026-11-30T10:04:00Z) by tagrelay (sha256:9a0e)";
        assert_eq!(
            promoted_from(by_promote),
            Some(PromotedFrom {
                environment: "staging".into(),
                release: Some(7),
                verified_at: Some("2026-11-30T10:04:00Z".into())
            })
        );
        let by_hand = "Image tag of my-api in prod, promoted from staging with tagrelay (sha256:9a0e)";
        assert_eq!(
            promoted_from(by_hand),
            Some(PromotedFrom { environment: "staging".into(), release: None, verified_at: None })
        );
        assert_eq!(promoted_from("Pinned with tagrelay (sha256:9a0e): leaks"), None);
        assert_eq!(promoted_from("Image tag of my-api in dev, recorded by tagrelay from ECR push sha256:9a0e"), None);
    }

    fn version(version: i64, value: &str) -> ParameterVersion {
        ParameterVersion {
            version,
            value: value.into(),
            modified_at: Some(DateTime::from_secs(1_000 * version)),
            modified_by: None,
            description: None,
        }
    }

    #[test]
    fn each_stay_of_the_tag_is_one_entry_with_what_replaced_it() {
        let history = [version(3, "42"), version(1, "41"), version(2, "42"), version(4, "41"), version(5, "42")];
        let found = recorded(&history, "42");
        assert_eq!(found.iter().map(|r| r.version).collect::<Vec<_>>(), [2, 5]);
        assert_eq!(found[0].replaced.as_ref().map(|r| (r.version, r.tag.as_str())), Some((4, "41")));
        assert_eq!(found[1].replaced, None);
        assert!(recorded(&history, "40").is_empty());
    }
}
