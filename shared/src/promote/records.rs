//! The records promotion keeps next to the release records, each one SSM parameter whose
//! versions are the list: rollbacks (`/tagrelay/{environment}/rollback`, written by promote,
//! `tagrelay rollback` and `tagrelay pin`) and approvals (`/tagrelay/{environment}/approval`,
//! written by `tagrelay approve`).

use std::collections::BTreeMap;

use aws_smithy_types::DateTime;
use serde::{Deserialize, Serialize};

use crate::ports::ParameterVersion;
use crate::timestamp;

pub const ROLLBACK_DESCRIPTION: &str = "tagrelay: the environment's rollbacks, automatic and by hand (one per version)";
pub const APPROVAL_DESCRIPTION: &str =
    "tagrelay: approvals of releases waiting to enter the environment (one per version)";
/// Who an automatic rollback is by.
pub const BY_PROMOTE: &str = "promote";

/// An environment was set back: `from` the tags it held `to` those of an earlier release (only
/// the services that changed). Written before the image-tag parameters, so a retry completes
/// the writes instead of choosing anew; promotion never brings a `from` pair back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackRecord {
    pub from: BTreeMap<String, String>,
    pub to: BTreeMap<String, String>,
    /// The alarm that fired; `None` for a rollback or pin by a person.
    pub alarm: Option<String>,
    /// RFC 3339 UTC, whole seconds.
    pub at: String,
    /// `promote`, or the person (the caller's identity as the CLI knows it).
    pub by: String,
    pub reason: String,
}

/// A person let a release (by its fingerprint) enter an environment that requires approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub fingerprint: String,
    pub by: String,
    pub at: String,
    #[serde(default)]
    pub comment: String,
}

/// A record that could not be stored: larger than tagrelay stores (800 KB), or a write failed.
pub type RecordError = crate::document::DocumentError;

/// The record as stored (in parts when it outgrows one parameter: `crate::document`).
fn document<T: Serialize>(record: &T) -> String {
    // Plain strings and maps only: serialising cannot fail.
    serde_json::to_string(record).unwrap_or_default()
}

impl RollbackRecord {
    pub fn document(&self) -> String {
        document(self)
    }

    /// When it was recorded; `None` for a hand-edited time.
    pub fn at(&self) -> Option<DateTime> {
        timestamp::parse(&self.at)
    }

    /// Whether `tags` hold one of the (service, tag) pairs this rollback moved away from.
    pub fn rolled_back_from(&self, tags: &BTreeMap<String, String>) -> Option<(&str, &str)> {
        self.from.iter().find(|(service, tag)| tags.get(*service) == Some(tag)).map(|(s, t)| (s.as_str(), t.as_str()))
    }
}

impl Approval {
    pub fn document(&self) -> String {
        document(self)
    }
}

/// One record as its parameter version holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<T> {
    pub version: i64,
    pub record: T,
    /// When SSM wrote the version (its clock, not the writer's).
    pub modified_at: Option<DateTime>,
}

impl Stored<RollbackRecord> {
    /// When the rollback happened: SSM's time of the write (a laptop's clock may be off), else
    /// the record's own `at`.
    pub fn recorded_at(&self) -> Option<DateTime> {
        self.modified_at.or_else(|| self.record.at())
    }
}

/// The records in a parameter's history, newest first. Versions that are no record of this
/// kind (hand-edited) are skipped; [`unreadable`] names them.
pub fn stored<T: for<'de> Deserialize<'de>>(history: &[ParameterVersion]) -> Vec<Stored<T>> {
    let mut found: Vec<Stored<T>> = history
        .iter()
        .filter_map(|version| {
            serde_json::from_str(&version.value).ok().map(|record| Stored {
                version: version.version,
                record,
                modified_at: version.modified_at,
            })
        })
        .collect();
    found.sort_by_key(|stored| std::cmp::Reverse(stored.version));
    found
}

/// The newest version of a history that is no record of this kind (hand-edited, or a parameter
/// someone made a SecureString: its history holds ciphertext), if any.
pub fn unreadable<T: for<'de> Deserialize<'de>>(history: &[ParameterVersion]) -> Option<i64> {
    history.iter().filter(|version| serde_json::from_str::<T>(&version.value).is_err()).map(|v| v.version).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(version: i64, value: &str) -> ParameterVersion {
        ParameterVersion { version, value: value.into(), modified_at: None, modified_by: None, description: None }
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(s, t)| ((*s).to_owned(), (*t).to_owned())).collect()
    }

    #[test]
    fn rollback_records_read_back_newest_first_and_skip_hand_edits() {
        let record = RollbackRecord {
            from: tags(&[("web", "43")]),
            to: tags(&[("web", "42")]),
            alarm: Some("prod-5xx".into()),
            at: "2026-11-30T12:40:31Z".into(),
            by: BY_PROMOTE.into(),
            reason: "alarm prod-5xx in ALARM at 2026-11-30T12:40:00Z".into(),
        };
        let document = record.document();
        let mut older = record.clone();
        older.from = tags(&[("web", "41")]);
        let history = [version(1, &older.document()), version(2, "{oops"), version(3, &document)];
        let listed: Vec<Stored<RollbackRecord>> = stored(&history);
        assert_eq!(listed.iter().map(|s| s.version).collect::<Vec<_>>(), [3, 1]);
        assert_eq!(listed[0].record, record);
        assert_eq!(record.at(), Some(DateTime::from_secs(1_796_042_431)));
        assert_eq!(record.rolled_back_from(&tags(&[("web", "43"), ("api", "7")])), Some(("web", "43")));
        assert_eq!(record.rolled_back_from(&tags(&[("web", "44")])), None);
        // A manual rollback has no alarm, and says so as null.
        let manual = RollbackRecord { alarm: None, by: "alice".into(), ..record };
        assert!(manual.document().contains(r#""alarm":null"#));
    }

    #[test]
    fn an_approval_without_a_comment_reads_back() {
        let history = [version(1, r#"{"fingerprint":"f","by":"bob","at":"2026-11-30T12:40:31Z"}"#)];
        let approvals: Vec<Stored<Approval>> = stored(&history);
        assert_eq!(approvals[0].record.comment, "");
    }
}
