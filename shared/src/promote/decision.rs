//! The promotion decision (pure): may a release verified upstream move into environment D now?
//! Level-triggered: every trigger asks it again from what SSM and CloudWatch hold.
//!
//! The candidate is the newest upstream release past its soak that D does not run yet (so
//! releases arriving faster than the soak never starve D), among those verified after D's last
//! rollback or pin (manual changes win). Then, in this order: D already runs it → `up_to_date`;
//! it holds a (service, tag) pair D rolled back from → `rolled_back`; the upstream environment
//! rolled back from it → `blocked_upstream`; a gate alarm is in ALARM or missing → `blocked`;
//! its soak (restarted when a gate alarm left ALARM) is not over → `soaking`; approval required
//! and not given for its fingerprint → `awaiting_approval`, unless an older release newer than
//! what D runs was approved and passes every gate (then that one); else `promote`.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_smithy_types::DateTime;

use super::records::{Approval, RollbackRecord, Stored};
use super::watched::WatchedAlarm;
use crate::config::{Config, Environment};
use crate::deploy::release::StoredRelease;
use crate::order::{OrderPolicy, TagFacts, Verdict};
use crate::ports::AlarmState;
use crate::timestamp;

/// What the decision reads, for one downstream environment.
#[derive(Debug, Clone, Copy)]
pub struct PromotionFacts<'a> {
    pub config: &'a Config,
    pub environment: &'a Environment,
    /// D's image-tag parameters now, by service (parameters that exist).
    pub current: &'a BTreeMap<String, String>,
    /// The upstream environment's releases, newest first.
    pub upstream: &'a [StoredRelease],
    /// The upstream environment's rollbacks, newest first.
    pub upstream_rollbacks: &'a [Stored<RollbackRecord>],
    /// D's rollbacks (automatic and by hand), newest first.
    pub rollbacks: &'a [Stored<RollbackRecord>],
    /// The gate alarms, with their changes during the last `soak` (all that can restart a soak
    /// still running).
    pub gates: &'a [WatchedAlarm],
    /// D's approvals, newest first (read only when D requires approval).
    pub approvals: &'a [Stored<Approval>],
    pub now: DateTime,
}

crate::names::named_enum! {
    /// The verdict for one downstream environment. `release` is the upstream release's version
    /// (of `/tagrelay/{upstream}/verified`).
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[serde(tag = "decision")]
    pub enum Promotion {
        /// Nothing to move: no upstream release since D's last change (`release: None`), or D
        /// runs the newest one's tags (or newer, by the order policy).
        UpToDate { release: Option<i64> } => "up_to_date",
        /// The candidate holds a tag D was rolled back from: it never enters D again.
        RolledBack { release: i64, service: String, tag: String } => "rolled_back",
        /// The upstream environment rolled back from the candidate.
        BlockedUpstream { release: i64 } => "blocked_upstream",
        /// A gate alarm is in ALARM, or does not exist (`missing`).
        Blocked { release: i64, alarm: String, missing: bool } => "blocked",
        /// `until`: RFC 3339 UTC; the soak restarts when a gate alarm leaves ALARM.
        Soaking { release: i64, until: String } => "soaking",
        AwaitingApproval { release: i64, fingerprint: String } => "awaiting_approval",
        /// Write `tags` (only the services D does not run yet) into D.
        Promote { release: i64, fingerprint: String, verified_at: String, tags: BTreeMap<String, String> } => "promote",
        /// D's rollback history holds a version that is no record (hand-edited, or made a
        /// SecureString): nothing is promoted until a person repairs it (fail closed).
        UnreadableRecord { parameter: String, version: i64 } => "unreadable_record",
    }
}

impl Promotion {
    /// The upstream release it is about, if any.
    pub fn release(&self) -> Option<i64> {
        match self {
            Self::UpToDate { release } => *release,
            Self::UnreadableRecord { .. } => None,
            Self::RolledBack { release, .. }
            | Self::BlockedUpstream { release }
            | Self::Blocked { release, .. }
            | Self::Soaking { release, .. }
            | Self::AwaitingApproval { release, .. }
            | Self::Promote { release, .. } => Some(*release),
        }
    }
}

/// An upstream release with its parsed verification time.
struct Upstream<'a> {
    stored: &'a StoredRelease,
    verified_at: DateTime,
}

pub fn decide(facts: &PromotionFacts<'_>) -> Promotion {
    let soak = facts.environment.soak;
    // D's last rollback or pin, by SSM's clock. A rollback record whose time cannot be known
    // holds every release (fail closed: a person's change must not be undone).
    let last_change = match facts.rollbacks.first() {
        None => i64::MIN,
        Some(rollback) => rollback.recorded_at().map_or(i64::MAX, |at| at.secs()),
    };
    // Newest first; a release record with a hand-edited time cannot be placed and is passed over.
    let eligible: Vec<Upstream<'_>> = facts
        .upstream
        .iter()
        .filter_map(|stored| {
            timestamp::parse(&stored.release.verified_at).map(|at| Upstream { stored, verified_at: at })
        })
        .filter(|u| u.verified_at.secs() > last_change)
        .collect();
    let Some(newest) = eligible.first() else { return Promotion::UpToDate { release: None } };
    let runs = |u: &Upstream<'_>| missing_tags(facts, &u.stored.release.tags).is_empty();
    if runs(newest) {
        return Promotion::UpToDate { release: Some(newest.stored.version) };
    }
    let soaked = |u: &Upstream<'_>| u.verified_at.secs() + secs(soak) <= facts.now.secs();
    // The newest past its soak, unless D runs it already: then the next newer one (which is
    // still soaking). With none past its soak, the oldest D does not run finishes first.
    let candidate = match eligible.iter().position(soaked) {
        Some(index) if !runs(&eligible[index]) => &eligible[index],
        Some(index) => eligible[..index].iter().rev().find(|u| !runs(u)).unwrap_or(newest),
        None => eligible.iter().rev().find(|u| !runs(u)).unwrap_or(newest),
    };
    let decision = gates(facts, candidate);
    if !matches!(decision, Promotion::AwaitingApproval { .. }) {
        return decision;
    }
    // A person approved an older release while newer ones kept arriving: it goes in rather
    // than wait for approvals to catch up (approval must not starve D either). Only releases
    // newer than the newest one D runs, past their soak.
    let newest_run = eligible.iter().position(&runs).unwrap_or(eligible.len());
    let approved = eligible[..newest_run].iter().find(|u| {
        soaked(u) && !runs(u) && facts.approvals.iter().any(|a| a.record.fingerprint == u.stored.release.fingerprint)
    });
    match approved.map(|u| gates(facts, u)) {
        Some(promote @ Promotion::Promote { .. }) => promote,
        _ => decision,
    }
}

/// DESIGN's rows after `up_to_date`, in order, for one candidate.
fn gates(facts: &PromotionFacts<'_>, candidate: &Upstream<'_>) -> Promotion {
    let soak = facts.environment.soak;
    let release = candidate.stored.version;
    let tags = &candidate.stored.release.tags;

    if let Some((service, tag)) = facts.rollbacks.iter().find_map(|r| r.record.rolled_back_from(tags)) {
        return Promotion::RolledBack { release, service: service.to_owned(), tag: tag.to_owned() };
    }
    if facts.upstream_rollbacks.iter().any(|r| r.record.rolled_back_from(tags).is_some()) {
        return Promotion::BlockedUpstream { release };
    }
    for gate in facts.gates {
        match &gate.status {
            None => return Promotion::Blocked { release, alarm: gate.name.clone(), missing: true },
            Some(status) if status.state == AlarmState::Alarm => {
                return Promotion::Blocked { release, alarm: gate.name.clone(), missing: false }
            }
            Some(_) => {}
        }
    }
    let since = facts.gates.iter().filter_map(|gate| left_alarm_at(gate, soak, facts.now)).map(|at| at.secs()).max();
    let until = since.unwrap_or(i64::MIN).max(candidate.verified_at.secs()) + secs(soak);
    if facts.now.secs() < until {
        return Promotion::Soaking { release, until: timestamp::format(DateTime::from_secs(until)) };
    }
    let fingerprint = &candidate.stored.release.fingerprint;
    if facts.environment.approval && !facts.approvals.iter().any(|a| &a.record.fingerprint == fingerprint) {
        return Promotion::AwaitingApproval { release, fingerprint: fingerprint.clone() };
    }
    Promotion::Promote {
        release,
        fingerprint: fingerprint.clone(),
        verified_at: candidate.stored.release.verified_at.clone(),
        tags: missing_tags(facts, tags),
    }
}

/// The services of `tags` that D does not run yet: neither the same tag nor, where the policy
/// can tell from the tags alone (numeric, semver), a newer one. Services no longer configured
/// are left out.
fn missing_tags(facts: &PromotionFacts<'_>, tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags.iter()
        .filter(|(service, tag)| {
            let Some(config) = facts.config.service(service) else { return false };
            match facts.current.get(*service) {
                None => true,
                Some(current) if current == *tag => false,
                Some(current) => !newer_or_same(config.order, tag, current),
            }
        })
        .map(|(service, tag)| (service.clone(), tag.clone()))
        .collect()
}

fn newer_or_same(policy: OrderPolicy, candidate: &str, current: &str) -> bool {
    let facts = |tag| TagFacts { tag, pushed_at: None };
    matches!(policy, OrderPolicy::Numeric | OrderPolicy::Semver)
        && policy.compare(facts(candidate), facts(current)) == Verdict::NotNewer
}

/// When the gate alarm last left ALARM within the soak, if it did. Only a change out of ALARM
/// counts (OK ↔ INSUFFICIENT_DATA does not). A change CloudWatch reports while its history shows
/// none in the soak (not yet written, or lost) counts too: not knowing, the soak restarts.
fn left_alarm_at(gate: &WatchedAlarm, soak: Duration, now: DateTime) -> Option<DateTime> {
    if !gate.changes.is_empty() {
        let left = gate.changes.iter().filter(|c| c.from == AlarmState::Alarm && c.to != AlarmState::Alarm);
        return left.map(|c| c.at).max_by_key(DateTime::secs);
    }
    let status = gate.status.as_ref()?;
    status.transitioned_at.filter(|at| at.secs() > now.secs() - secs(soak) && status.state != AlarmState::Alarm)
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::release::Release;
    use crate::ports::{AlarmStatus, AlarmTransition};

    const NOW: i64 = 1_796_040_000;

    fn config() -> Config {
        let doc = serde_json::json!({
            "environments": {
                "dev": {},
                "prod": { "promote_from": "dev", "soak": "10m", "gate_alarms": ["dev-5xx"], "approval": true }
            },
            "services": {
                "web": { "deploy_on_push": ["dev"] },
                "api": { "deploy_on_push": ["dev"], "order": "pushed-at" }
            }
        });
        Config::from_json(&doc.to_string()).expect("valid")
    }

    fn at(offset: i64) -> DateTime {
        DateTime::from_secs(NOW + offset)
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(s, t)| ((*s).to_owned(), (*t).to_owned())).collect()
    }

    /// A dev release of `web` at `tag`, verified `offset` seconds from now.
    fn release(version: i64, tag: &str, offset: i64) -> StoredRelease {
        StoredRelease {
            version,
            release: Release {
                fingerprint: format!("/web/dev/docker-image-tag={version}@{tag}"),
                tags: tags(&[("web", tag)]),
                digests: BTreeMap::new(),
                build: format!("tagrelay-dev:{version}"),
                verified_at: timestamp::format(at(offset)),
            },
        }
    }

    fn ok_gate() -> WatchedAlarm {
        let status = AlarmStatus { name: "dev-5xx".into(), state: AlarmState::Ok, transitioned_at: Some(at(-86_400)) };
        WatchedAlarm { name: "dev-5xx".into(), status: Some(status), changes: vec![] }
    }

    fn approval(fingerprint: &str) -> Stored<Approval> {
        let record = Approval {
            fingerprint: fingerprint.into(),
            by: "alice".into(),
            at: timestamp::format(at(0)),
            comment: String::new(),
        };
        Stored { version: 1, record, modified_at: None }
    }

    fn rollback(from: &str, to: &str, offset: i64) -> Stored<RollbackRecord> {
        let record = RollbackRecord {
            from: tags(&[("web", from)]),
            to: tags(&[("web", to)]),
            alarm: Some("prod-5xx".into()),
            at: timestamp::format(at(offset)),
            by: "promote".into(),
            reason: "alarm".into(),
        };
        Stored { version: 1, record, modified_at: None }
    }

    struct Case {
        current: BTreeMap<String, String>,
        upstream: Vec<StoredRelease>,
        upstream_rollbacks: Vec<Stored<RollbackRecord>>,
        rollbacks: Vec<Stored<RollbackRecord>>,
        gates: Vec<WatchedAlarm>,
        approvals: Vec<Stored<Approval>>,
    }

    impl Case {
        /// prod runs web 40; dev verified web 41 an hour ago; the gate is OK; 41 is approved.
        fn new() -> Self {
            let upstream = vec![release(2, "41", -3600), release(1, "40", -7200)];
            let approvals = vec![approval(&upstream[0].release.fingerprint)];
            Case {
                current: tags(&[("web", "40")]),
                upstream,
                upstream_rollbacks: vec![],
                rollbacks: vec![],
                gates: vec![ok_gate()],
                approvals,
            }
        }

        fn decide(&self) -> Promotion {
            let config = config();
            let environment = config.environment("prod").expect("prod");
            decide(&PromotionFacts {
                config: &config,
                environment,
                current: &self.current,
                upstream: &self.upstream,
                upstream_rollbacks: &self.upstream_rollbacks,
                rollbacks: &self.rollbacks,
                gates: &self.gates,
                approvals: &self.approvals,
                now: at(0),
            })
        }
    }

    fn promote(release: i64, tag: &str) -> Promotion {
        let stored = Case::new().upstream.into_iter().find(|r| r.version == release);
        let (fingerprint, verified_at) =
            stored.map(|r| (r.release.fingerprint, r.release.verified_at)).unwrap_or_default();
        Promotion::Promote { release, fingerprint, verified_at, tags: tags(&[("web", tag)]) }
    }

    #[test]
    fn a_release_past_its_soak_with_gates_ok_and_approved_is_promoted() {
        let decision = Case::new().decide();
        assert_eq!(decision, promote(2, "41"));
        assert_eq!(decision.as_str(), "promote");
        assert_eq!(decision.release(), Some(2));
    }

    #[test]
    fn nothing_to_move_is_up_to_date() {
        let mut case = Case::new();
        case.current = tags(&[("web", "41")]);
        assert_eq!(case.decide(), Promotion::UpToDate { release: Some(2) });
        // prod runs a newer build number than upstream's newest: the order policy wins.
        case.current = tags(&[("web", "45")]);
        assert_eq!(case.decide(), Promotion::UpToDate { release: Some(2) });
        case.upstream.clear();
        assert_eq!(case.decide(), Promotion::UpToDate { release: None });
    }

    #[test]
    fn a_fresh_release_soaks_until_verified_at_plus_soak() {
        let mut case = Case::new();
        case.upstream = vec![release(2, "41", -120)];
        assert_eq!(case.decide(), Promotion::Soaking { release: 2, until: timestamp::format(at(480)) });
    }

    #[test]
    fn the_newest_release_past_its_soak_is_promoted_while_newer_ones_soak() {
        let mut case = Case::new();
        // 43 and 42 arrived during 41's soak; 42 is past its soak too, 43 is not.
        case.upstream = vec![release(4, "43", -60), release(3, "42", -700), release(2, "41", -900)];
        case.approvals = vec![approval(&case.upstream[1].release.fingerprint)];
        let Promotion::Promote { release, tags: written, .. } = case.decide() else { panic!("{:?}", case.decide()) };
        assert_eq!((release, written), (3, tags(&[("web", "42")])));

        // Once prod runs 42, 43 is reported soaking, not up to date.
        case.current = tags(&[("web", "42")]);
        assert_eq!(case.decide(), Promotion::Soaking { release: 4, until: timestamp::format(at(540)) });
    }

    #[test]
    fn releases_faster_than_the_soak_never_starve_the_environment() {
        let mut case = Case::new();
        // A new release every 5 minutes, soak 10 minutes: one is always soaking, and the newest
        // past its soak moves on anyway.
        case.upstream = (0..12).rev().map(|n| release(n + 1, &format!("{}", 100 + n), -300 * (12 - n) + 60)).collect();
        let past = case
            .upstream
            .iter()
            .find(|r| timestamp::parse(&r.release.verified_at).is_some_and(|t| t.secs() + 600 <= NOW));
        let past = past.expect("one is past its soak").clone();
        case.approvals = vec![approval(&past.release.fingerprint)];
        assert!(
            matches!(case.decide(), Promotion::Promote { release, .. } if release == past.version),
            "{:?}",
            case.decide()
        );
    }

    #[test]
    fn a_gate_in_alarm_or_missing_blocks_and_insufficient_data_does_not() {
        let mut case = Case::new();
        case.gates[0].status.as_mut().expect("status").state = AlarmState::Alarm;
        assert_eq!(case.decide(), Promotion::Blocked { release: 2, alarm: "dev-5xx".into(), missing: false });
        case.gates[0].status = None;
        assert_eq!(case.decide(), Promotion::Blocked { release: 2, alarm: "dev-5xx".into(), missing: true });
        case.gates[0] = ok_gate();
        case.gates[0].status.as_mut().expect("status").state = AlarmState::InsufficientData;
        assert_eq!(case.decide(), promote(2, "41"));
    }

    #[test]
    fn an_alarm_that_flapped_restarts_the_soak_from_when_it_left_alarm() {
        let mut case = Case::new();
        // Verified an hour ago; the gate went ALARM at -5m and back to OK at -4m.
        case.gates[0].status =
            Some(AlarmStatus { name: "dev-5xx".into(), state: AlarmState::Ok, transitioned_at: Some(at(-240)) });
        case.gates[0].changes = vec![
            AlarmTransition { at: at(-300), from: AlarmState::Ok, to: AlarmState::Alarm },
            AlarmTransition { at: at(-240), from: AlarmState::Alarm, to: AlarmState::Ok },
        ];
        assert_eq!(case.decide(), Promotion::Soaking { release: 2, until: timestamp::format(at(360)) });

        // OK ↔ INSUFFICIENT_DATA is no recovery from ALARM: the soak does not restart.
        case.gates[0].changes =
            vec![AlarmTransition { at: at(-240), from: AlarmState::InsufficientData, to: AlarmState::Ok }];
        assert_eq!(case.decide(), promote(2, "41"));

        // A change CloudWatch reports without its history item: not knowing, the soak restarts.
        case.gates[0].changes.clear();
        assert_eq!(case.decide(), Promotion::Soaking { release: 2, until: timestamp::format(at(360)) });
    }

    #[test]
    fn approval_must_name_the_candidates_fingerprint() {
        let mut case = Case::new();
        case.approvals = vec![approval(&case.upstream[1].release.fingerprint)];
        let fingerprint = case.upstream[0].release.fingerprint.clone();
        assert_eq!(case.decide(), Promotion::AwaitingApproval { release: 2, fingerprint });
        case.approvals.push(approval(&case.upstream[0].release.fingerprint));
        assert_eq!(case.decide(), promote(2, "41"));
    }

    #[test]
    fn tags_rolled_back_from_never_come_back_but_a_later_release_without_them_does() {
        let mut case = Case::new();
        // prod was rolled back from 41 to 40 half an hour ago; dev re-verified 41 since (another
        // service's change, say).
        case.rollbacks = vec![rollback("41", "40", -1800)];
        case.upstream = vec![release(3, "41", -900), release(2, "41", -3600)];
        assert_eq!(case.decide(), Promotion::RolledBack { release: 3, service: "web".into(), tag: "41".into() });

        case.upstream.insert(0, release(4, "42", -700));
        case.approvals = vec![approval(&case.upstream[0].release.fingerprint)];
        assert_eq!(case.decide().as_str(), "promote");
    }

    #[test]
    fn manual_changes_win_over_releases_verified_before_them() {
        let mut case = Case::new();
        // Someone pinned prod to 39 ten minutes ago; 41 was verified before that.
        case.rollbacks = vec![rollback("40", "39", -600)];
        case.current = tags(&[("web", "39")]);
        assert_eq!(case.decide(), Promotion::UpToDate { release: None });
    }

    #[test]
    fn a_release_the_upstream_environment_rolled_back_from_is_held() {
        let mut case = Case::new();
        case.upstream_rollbacks = vec![rollback("41", "40", -60)];
        assert_eq!(case.decide(), Promotion::BlockedUpstream { release: 2 });
    }

    #[test]
    fn a_release_record_with_a_hand_edited_time_is_passed_over() {
        let mut case = Case::new();
        case.upstream[0].release.verified_at = "yesterday".into();
        let decision = case.decide();
        // 40 (release 1) is what prod runs: nothing else can be placed.
        assert_eq!(decision, Promotion::UpToDate { release: Some(1) });
    }

    #[test]
    fn an_approved_release_goes_in_while_a_newer_one_waits_for_its_approval() {
        let mut case = Case::new();
        // 41 was approved; 42 passed its soak before the approval was seen.
        case.upstream.insert(0, release(3, "42", -900));
        let newest = case.upstream[0].release.fingerprint.clone();
        assert_eq!(case.decide(), promote(2, "41"));
        // Once prod runs 41, 42 waits for its own approval.
        case.current = tags(&[("web", "41")]);
        assert_eq!(case.decide(), Promotion::AwaitingApproval { release: 3, fingerprint: newest });
        // An approval of a release older than what prod runs never moves it back.
        case.current = tags(&[("web", "43")]);
        case.upstream.insert(0, release(4, "44", -800));
        assert!(matches!(case.decide(), Promotion::AwaitingApproval { release: 4, .. }), "{:?}", case.decide());
    }
}
