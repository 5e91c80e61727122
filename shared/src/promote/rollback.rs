//! The rollback decision (pure): did one of environment E's rollback alarms fire on the release
//! E's image-tag parameters hold now (the suspect), and if so, where does E go back to?
//!
//! The suspect is read from SSM alone: its tags are the parameters' values, it was written at
//! their last modification, and it is verified if a release record verified since then holds
//! those tags. An alarm counts when it entered ALARM between that write and
//! `verified_at + rollback_window` (while not verified: the write + `verify_timeout` +
//! `rollback_window`, so a release held for ever is not rolled back weeks later), whether it is
//! still in ALARM or its history shows it. An alarm that was already in ALARM before the suspect
//! was written is not the suspect's doing. The target is the newest release whose tags differ
//! from the suspect's, hold no tag E was rolled back from before (never back onto a release
//! known to be bad) and whose images are all still in ECR. Once per release: a rollback record
//! whose `from` the parameters still hold is completed, not chosen anew; and the release a
//! rollback went to (automatic or by hand) is never rolled back automatically: the same alarm
//! episode is `rollback_done`, a new one `rollback_exhausted` (a person decides; rollbacks do
//! not cascade through older releases).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_smithy_types::DateTime;

use super::records::{RollbackRecord, Stored, BY_PROMOTE};
use super::watched::WatchedAlarm;
use crate::config::Environment;
use crate::deploy::release::StoredRelease;
use crate::ports::AlarmState;
use crate::timestamp;

#[derive(Debug, Clone, Copy)]
pub struct RollbackFacts<'a> {
    pub environment: &'a Environment,
    /// E's image-tag parameters now, by service.
    pub current: &'a BTreeMap<String, String>,
    /// The newest last modification of those parameters: when the suspect was written.
    pub written_at: Option<DateTime>,
    /// E's releases, newest first.
    pub releases: &'a [StoredRelease],
    /// (service, tag) pairs whose image is no longer in ECR: no target may hold one.
    pub unavailable: &'a BTreeSet<(String, String)>,
    /// E's rollbacks, newest first.
    pub rollbacks: &'a [Stored<RollbackRecord>],
    /// The rollback alarms, with their changes since the suspect was written.
    pub alarms: &'a [WatchedAlarm],
    pub now: DateTime,
}

crate::names::named_enum! {
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[serde(tag = "decision")]
    pub enum RollbackDecision {
        /// No rollback alarm fired on the suspect; `missing` names alarms CloudWatch does not know.
        Healthy { missing: Vec<String> } => "healthy",
        /// An alarm is or was in ALARM, but it entered ALARM before the suspect was written or
        /// after its window closed.
        OutsideWindow { alarm: String, entered_at: String } => "outside_window",
        /// E runs what an earlier rollback (version `rollback`) went back to, and the alarm is
        /// still in the episode that caused it.
        Done { alarm: String, rollback: i64 } => "rollback_done",
        /// A rollback was recorded but not all its parameters were written: finish it.
        Resume { rollback: i64, record: RollbackRecord } => "rollback_resumed",
        /// An alarm fired again on the release a rollback (version `rollback`) went to: no
        /// second automatic rollback; a person decides.
        Exhausted { alarm: String, entered_at: String, rollback: i64 } => "rollback_exhausted",
        /// An alarm fired and there is no earlier good release (images still in ECR) to go back to.
        NoPreviousRelease { alarm: String, entered_at: String } => "no_previous_release",
        /// Go back to release `release` (of E's release records): record, then write.
        Rollback { release: i64, record: RollbackRecord } => "rollback",
    }
}

/// Where an alarm's entry into ALARM falls against the suspect's window.
enum Entry {
    Inside(DateTime),
    Outside(DateTime),
    None,
}

pub fn decide(facts: &RollbackFacts<'_>) -> RollbackDecision {
    if let Some(newest) = facts.rollbacks.first() {
        if let Some(decision) = resume(newest, facts.current) {
            return decision;
        }
    }
    let Some(start) = facts.written_at else { return RollbackDecision::Healthy { missing: missing(facts) } };
    let end = window_end(facts, start);

    // E runs what the last rollback went to: never rolled back again by an alarm.
    if let Some(newest) = facts.rollbacks.first() {
        let runs_target = newest.record.to.iter().all(|(service, tag)| facts.current.get(service) == Some(tag));
        if runs_target {
            let recorded = newest.recorded_at().map_or(i64::MIN, |at| at.secs());
            for alarm in facts.alarms {
                let status = alarm.status.as_ref();
                let entered = status.filter(|s| s.state == AlarmState::Alarm).and_then(|s| s.transitioned_at);
                if entered.is_some_and(|entered| entered.secs() <= recorded) {
                    return RollbackDecision::Done { alarm: alarm.name.clone(), rollback: newest.version };
                }
                if let Entry::Inside(entered_at) = entry(alarm, start, end) {
                    let entered_at = timestamp::format(entered_at);
                    return RollbackDecision::Exhausted {
                        alarm: alarm.name.clone(),
                        entered_at,
                        rollback: newest.version,
                    };
                }
            }
        }
    }

    let mut outside = None;
    for alarm in facts.alarms {
        match entry(alarm, start, end) {
            Entry::Inside(entered_at) => return roll_back(facts, &alarm.name, entered_at),
            Entry::Outside(entered_at) => {
                outside.get_or_insert((alarm.name.clone(), entered_at));
            }
            Entry::None => {}
        }
    }
    match outside {
        Some((alarm, entered_at)) => {
            RollbackDecision::OutsideWindow { alarm, entered_at: timestamp::format(entered_at) }
        }
        None => RollbackDecision::Healthy { missing: missing(facts) },
    }
}

/// The newest rollback still has parameters at its `from`, and the others at its `to`: it was
/// interrupted between the record and the last write.
fn resume(newest: &Stored<RollbackRecord>, current: &BTreeMap<String, String>) -> Option<RollbackDecision> {
    let record = &newest.record;
    let mut pending = false;
    for (service, from) in &record.from {
        match current.get(service) {
            Some(tag) if tag == from => pending = true,
            Some(tag) if record.to.get(service) == Some(tag) => {}
            _ => return None,
        }
    }
    pending.then(|| RollbackDecision::Resume { rollback: newest.version, record: record.clone() })
}

/// `verified_at + rollback_window` of the suspect, where a release record verified since the
/// suspect was written holds its tags; otherwise `written_at + verify_timeout + rollback_window`
/// (after `verify_timeout` trigger-deploy holds an unverified release anyway).
fn window_end(facts: &RollbackFacts<'_>, written_at: DateTime) -> DateTime {
    let verified = facts.releases.iter().find_map(|stored| {
        let at = timestamp::parse(&stored.release.verified_at)?;
        let holds = stored.release.tags.iter().all(|(service, tag)| facts.current.get(service) == Some(tag));
        (holds && at.secs() >= written_at.secs()).then_some(at)
    });
    let environment = facts.environment;
    match verified {
        Some(at) => after(at, environment.rollback_window),
        None => after(after(written_at, environment.verify_timeout), environment.rollback_window),
    }
}

fn after(at: DateTime, duration: Duration) -> DateTime {
    DateTime::from_secs(at.secs().saturating_add(i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 2)))
}

fn entry(alarm: &WatchedAlarm, start: DateTime, end: DateTime) -> Entry {
    let inside = |at: DateTime| at.secs() >= start.secs() && at.secs() <= end.secs();
    let Some(status) = &alarm.status else { return Entry::None };
    if status.state == AlarmState::Alarm {
        if let Some(entered) = status.transitioned_at {
            return if inside(entered) { Entry::Inside(entered) } else { Entry::Outside(entered) };
        }
    }
    // Fired and recovered between two looks (or its event was lost): the history shows it.
    let entries = alarm.changes.iter().filter(|c| c.to == AlarmState::Alarm && c.from != AlarmState::Alarm);
    let mut outside = None;
    for change in entries {
        if inside(change.at) {
            return Entry::Inside(change.at);
        }
        outside.get_or_insert(change.at);
    }
    outside.map_or(Entry::None, Entry::Outside)
}

fn roll_back(facts: &RollbackFacts<'_>, alarm: &str, entered_at: DateTime) -> RollbackDecision {
    let entered = timestamp::format(entered_at);
    let Some((release, from, to)) = target(facts.current, facts.releases, facts.rollbacks, facts.unavailable) else {
        return RollbackDecision::NoPreviousRelease { alarm: alarm.to_owned(), entered_at: entered };
    };
    let record = RollbackRecord {
        from,
        to,
        alarm: Some(alarm.to_owned()),
        at: timestamp::format(facts.now),
        by: BY_PROMOTE.to_owned(),
        reason: format!("alarm {alarm} in ALARM at {entered}"),
    };
    RollbackDecision::Rollback { release, record }
}

/// A person's rollback (`tagrelay rollback`): the same target an alarm would choose, recorded
/// with who and why. `None` when there is no earlier good release.
pub fn manual_rollback(
    current: &BTreeMap<String, String>,
    releases: &[StoredRelease],
    rollbacks: &[Stored<RollbackRecord>],
    unavailable: &BTreeSet<(String, String)>,
    by: &str,
    reason: &str,
    now: DateTime,
) -> Option<(i64, RollbackRecord)> {
    let (release, from, to) = target(current, releases, rollbacks, unavailable)?;
    let record = RollbackRecord {
        from,
        to,
        alarm: None,
        at: timestamp::format(now),
        by: by.to_owned(),
        reason: reason.to_owned(),
    };
    Some((release, record))
}

/// The newest release whose tags differ from `current`, hold no tag rolled back from before and
/// no image gone from ECR, with what changes: `from` (the current tags) and `to` (the release's), for the
/// services that differ.
/// service → tag.
type Tags = BTreeMap<String, String>;

fn target(
    current: &BTreeMap<String, String>,
    releases: &[StoredRelease],
    rollbacks: &[Stored<RollbackRecord>],
    unavailable: &BTreeSet<(String, String)>,
) -> Option<(i64, Tags, Tags)> {
    let differs = |tags: &Tags| tags.iter().any(|(service, tag)| current.get(service) != Some(tag));
    let known_bad = |tags: &Tags| rollbacks.iter().any(|r| r.record.rolled_back_from(tags).is_some());
    let gone = |tags: &Tags| tags.iter().any(|(s, t)| unavailable.contains(&(s.clone(), t.clone())));
    let target =
        releases.iter().find(|r| differs(&r.release.tags) && !known_bad(&r.release.tags) && !gone(&r.release.tags))?;
    let mut from = BTreeMap::new();
    let mut to = BTreeMap::new();
    for (service, tag) in &target.release.tags {
        match current.get(service) {
            Some(now) if now == tag => {}
            now => {
                if let Some(now) = now {
                    from.insert(service.clone(), now.clone());
                }
                to.insert(service.clone(), tag.clone());
            }
        }
    }
    Some((target.version, from, to))
}

fn missing(facts: &RollbackFacts<'_>) -> Vec<String> {
    facts.alarms.iter().filter(|alarm| alarm.status.is_none()).map(|alarm| alarm.name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::deploy::release::Release;
    use crate::ports::{AlarmStatus, AlarmTransition};

    const NOW: i64 = 1_796_040_000;

    fn at(offset: i64) -> DateTime {
        DateTime::from_secs(NOW + offset)
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(s, t)| ((*s).to_owned(), (*t).to_owned())).collect()
    }

    fn release(version: i64, web: &str, api: &str, offset: i64) -> StoredRelease {
        StoredRelease {
            version,
            release: Release {
                fingerprint: format!("f{version}"),
                tags: tags(&[("web", web), ("api", api)]),
                digests: BTreeMap::new(),
                build: format!("tagrelay-prod:{version}"),
                verified_at: timestamp::format(at(offset)),
            },
        }
    }

    fn alarm(state: AlarmState, entered: i64) -> WatchedAlarm {
        let status = AlarmStatus { name: "prod-5xx".into(), state, transitioned_at: Some(at(entered)) };
        WatchedAlarm { name: "prod-5xx".into(), status: Some(status), changes: vec![] }
    }

    struct Case {
        current: BTreeMap<String, String>,
        written_at: Option<DateTime>,
        releases: Vec<StoredRelease>,
        rollbacks: Vec<Stored<RollbackRecord>>,
        alarms: Vec<WatchedAlarm>,
        unavailable: BTreeSet<(String, String)>,
    }

    impl Case {
        /// prod runs web 43 / api 7, written 20 minutes ago and verified 10 minutes ago (window
        /// 30m); before it, web 42 / api 7. The alarm went into ALARM a minute ago.
        fn new() -> Self {
            Case {
                current: tags(&[("web", "43"), ("api", "7")]),
                written_at: Some(at(-1200)),
                releases: vec![release(5, "43", "7", -600), release(4, "42", "7", -7200)],
                rollbacks: vec![],
                alarms: vec![alarm(AlarmState::Alarm, -60)],
                unavailable: BTreeSet::new(),
            }
        }

        fn decide(&self) -> RollbackDecision {
            let doc = serde_json::json!({
                "environments": { "prod": { "rollback_alarms": ["prod-5xx"], "rollback_window": "30m" } },
                "services": { "web": { "deploy_on_push": ["prod"] }, "api": { "deploy_on_push": ["prod"] } }
            });
            let config = Config::from_json(&doc.to_string()).expect("valid");
            decide(&RollbackFacts {
                environment: config.environment("prod").expect("prod"),
                current: &self.current,
                written_at: self.written_at,
                releases: &self.releases,
                unavailable: &self.unavailable,
                rollbacks: &self.rollbacks,
                alarms: &self.alarms,
                now: at(0),
            })
        }
    }

    fn rolled_back_to_42() -> RollbackRecord {
        RollbackRecord {
            from: tags(&[("web", "43")]),
            to: tags(&[("web", "42")]),
            alarm: Some("prod-5xx".into()),
            at: timestamp::format(at(0)),
            by: "promote".into(),
            reason: format!("alarm prod-5xx in ALARM at {}", timestamp::format(at(-60))),
        }
    }

    #[test]
    fn an_alarm_in_the_window_rolls_back_only_what_changed_to_the_previous_release() {
        let decision = Case::new().decide();
        assert_eq!(decision, RollbackDecision::Rollback { release: 4, record: rolled_back_to_42() });
        assert_eq!(decision.as_str(), "rollback");
    }

    #[test]
    fn an_alarm_that_fired_and_recovered_between_looks_still_counts() {
        let mut case = Case::new();
        case.alarms[0].status.as_mut().expect("status").state = AlarmState::Ok;
        case.alarms[0].changes = vec![
            AlarmTransition { at: at(-300), from: AlarmState::Ok, to: AlarmState::Alarm },
            AlarmTransition { at: at(-60), from: AlarmState::Alarm, to: AlarmState::Ok },
        ];
        let RollbackDecision::Rollback { record, .. } = case.decide() else { panic!("{:?}", case.decide()) };
        assert!(record.reason.ends_with(&timestamp::format(at(-300))), "{}", record.reason);
        // INSUFFICIENT_DATA alone is no alarm.
        case.alarms[0].changes =
            vec![AlarmTransition { at: at(-300), from: AlarmState::Ok, to: AlarmState::InsufficientData }];
        assert_eq!(case.decide(), RollbackDecision::Healthy { missing: vec![] });
    }

    #[test]
    fn an_alarm_outside_the_window_does_not_roll_back() {
        let mut case = Case::new();
        // Already in ALARM before the release was written: not this release's doing.
        case.alarms = vec![alarm(AlarmState::Alarm, -1500)];
        assert_eq!(case.decide().as_str(), "outside_window");
        // Fired after verified_at + 30m.
        case.releases[0].release.verified_at = timestamp::format(at(-2000));
        case.written_at = Some(at(-2400));
        case.alarms = vec![alarm(AlarmState::Alarm, -60)];
        assert_eq!(
            case.decide(),
            RollbackDecision::OutsideWindow { alarm: "prod-5xx".into(), entered_at: timestamp::format(at(-60)) }
        );
        // Not verified yet: the window is open-ended.
        case.releases.remove(0);
        assert_eq!(case.decide().as_str(), "rollback");
    }

    #[test]
    fn with_no_previous_release_there_is_nothing_to_do() {
        let mut case = Case::new();
        case.releases.truncate(1);
        assert_eq!(
            case.decide(),
            RollbackDecision::NoPreviousRelease { alarm: "prod-5xx".into(), entered_at: timestamp::format(at(-60)) }
        );
    }

    #[test]
    fn a_rollback_happens_once_per_release() {
        let mut case = Case::new();
        // Recorded and written: prod runs 42 again, the alarm is still in the same episode.
        case.rollbacks = vec![Stored { version: 1, record: rolled_back_to_42(), modified_at: None }];
        case.current = tags(&[("web", "42"), ("api", "7")]);
        case.written_at = Some(at(1));
        assert_eq!(case.decide(), RollbackDecision::Done { alarm: "prod-5xx".into(), rollback: 1 });
    }

    #[test]
    fn a_recorded_rollback_whose_writes_did_not_all_land_is_resumed_not_chosen_anew() {
        let mut case = Case::new();
        let mut record = rolled_back_to_42();
        record.from.insert("api".into(), "7".into());
        record.to.insert("api".into(), "6".into());
        case.rollbacks = vec![Stored { version: 3, record: record.clone(), modified_at: None }];
        // web was written back, api not yet; a newer release appeared meanwhile: ignored.
        case.current = tags(&[("web", "42"), ("api", "7")]);
        case.releases.insert(0, release(6, "44", "8", -5));
        assert_eq!(case.decide(), RollbackDecision::Resume { rollback: 3, record });
    }

    #[test]
    fn the_target_is_never_a_release_rolled_back_from_before() {
        let mut case = Case::new();
        // 42 was itself rolled back from (to 41) earlier; 43 came later and fires now.
        let earlier = RollbackRecord {
            from: tags(&[("web", "42")]),
            to: tags(&[("web", "41")]),
            at: timestamp::format(at(-5000)),
            ..rolled_back_to_42()
        };
        case.rollbacks = vec![Stored { version: 1, record: earlier, modified_at: None }];
        case.releases.push(release(3, "41", "7", -9000));
        let RollbackDecision::Rollback { release, record } = case.decide() else { panic!("{:?}", case.decide()) };
        assert_eq!((release, record.to), (3, tags(&[("web", "41")])));
    }

    #[test]
    fn a_missing_alarm_is_named_and_nothing_is_written() {
        let mut case = Case::new();
        case.alarms[0].status = None;
        assert_eq!(case.decide(), RollbackDecision::Healthy { missing: vec!["prod-5xx".into()] });
    }

    #[test]
    fn the_release_rolled_back_to_is_never_rolled_back_again_by_an_alarm() {
        let mut case = Case::new();
        // Rolled back 43 → 42 ten minutes ago; 42 redeployed and verified again since. The alarm
        // recovered, then fired again: no cascade to 41, a person decides.
        let mut record = rolled_back_to_42();
        record.at = timestamp::format(at(-600));
        case.rollbacks = vec![Stored { version: 1, record, modified_at: Some(at(-600)) }];
        case.current = tags(&[("web", "42"), ("api", "7")]);
        case.written_at = Some(at(-590));
        case.releases.insert(0, release(6, "42", "7", -500));
        case.releases.push(release(3, "41", "7", -9000));
        case.alarms = vec![alarm(AlarmState::Alarm, -60)];
        assert_eq!(
            case.decide(),
            RollbackDecision::Exhausted {
                alarm: "prod-5xx".into(),
                entered_at: timestamp::format(at(-60)),
                rollback: 1
            }
        );
        assert_eq!(case.decide().as_str(), "rollback_exhausted");
    }

    #[test]
    fn a_target_whose_image_is_gone_from_ecr_is_passed_over() {
        let mut case = Case::new();
        case.releases.push(release(3, "41", "7", -9000));
        case.unavailable.insert(("web".into(), "42".into()));
        let RollbackDecision::Rollback { release, record } = case.decide() else { panic!("{:?}", case.decide()) };
        assert_eq!((release, record.to), (3, tags(&[("web", "41")])));
        case.unavailable.insert(("web".into(), "41".into()));
        assert_eq!(case.decide().as_str(), "no_previous_release");
    }

    #[test]
    fn an_old_release_record_of_the_same_tags_does_not_close_the_window() {
        let mut case = Case::new();
        // prod was pinned back onto 43, verified two hours ago: the pin (written 5 minutes ago)
        // is not verified yet, so its window runs from the write, not from the old record.
        case.releases[0].release.verified_at = timestamp::format(at(-7000));
        case.written_at = Some(at(-300));
        assert_eq!(case.decide().as_str(), "rollback");
        // Never verified: the window closes verify_timeout + rollback_window after the write.
        case.written_at = Some(at(-3700));
        case.alarms = vec![alarm(AlarmState::Alarm, -60)];
        assert_eq!(case.decide().as_str(), "outside_window");
    }
}
