//! The release record: what an environment verifiably ran, written once per fingerprint to
//! `/tagrelay/{environment}/verified`, whose SSM history is the environment's list of releases.
//! Promotion and rollback read it; `tagrelay status` and `history` show it.

use std::collections::BTreeMap;

use aws_smithy_types::DateTime;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::fingerprint::same_state;
use crate::document::DocumentError;
use crate::ports::{ParameterKind, ParameterVersion, StoredParameter};

/// The release parameter's description.
pub const RELEASE_DESCRIPTION: &str = "tagrelay: the environment's verified releases (one per version)";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub fingerprint: String,
    /// service → tag.
    pub tags: BTreeMap<String, String>,
    /// service → the image digest (ECR's, for the tag), where known.
    pub digests: BTreeMap<String, String>,
    /// The CodeBuild build that deployed it.
    pub build: String,
    /// RFC 3339 UTC, whole seconds (`2026-11-30T12:40:31Z`).
    pub verified_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReleaseError {
    /// Someone made the record parameter another type by hand: writing a String over it would
    /// silently change its type, so tagrelay leaves it and says so.
    #[error("{parameter} has type {}, not String: tagrelay keeps its release records there as String parameters; delete it (it is written again at the next verified release)", kind.as_str())]
    NotAString { parameter: String, kind: ParameterKind },
    /// Writing it failed, or it is larger than tagrelay stores (800 KB, some 7,000 services).
    #[error(transparent)]
    Store(#[from] DocumentError),
}

impl Release {
    /// The record as stored (in parts when it outgrows one parameter: `crate::document`).
    pub fn document(&self) -> String {
        // Plain strings and maps only: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a stored record; `None` for a value that is not one (hand-edited, say).
    pub fn parse(value: &str) -> Option<Self> {
        serde_json::from_str(value).ok()
    }

    /// Whether it records the state whose fingerprint is `fingerprint`.
    pub fn records(&self, fingerprint: &str) -> bool {
        same_state(&self.fingerprint, fingerprint)
    }
}

/// The record a release parameter holds: `None` when there is none, or when its value is no
/// record (hand-edited: the next verified release writes over it); an error when it is not a
/// String parameter.
pub fn stored_release(parameter: &str, stored: Option<StoredParameter>) -> Result<Option<Release>, ReleaseError> {
    match stored {
        None => Ok(None),
        Some(stored) if stored.kind != ParameterKind::String => {
            Err(ReleaseError::NotAString { parameter: parameter.to_owned(), kind: stored.kind })
        }
        Some(stored) => Ok(Release::parse(&stored.value)),
    }
}

/// `at` as the record writes it.
pub fn verified_at(at: DateTime) -> String {
    crate::timestamp::format(at)
}

/// A release as its parameter version holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRelease {
    pub version: i64,
    pub release: Release,
}

/// The releases in a parameter's history, newest first, one per fingerprint (racing writers
/// may record one twice; the newest copy stands). Versions that are not records are skipped.
pub fn releases(history: &[ParameterVersion]) -> Vec<StoredRelease> {
    let mut newest_first: Vec<&ParameterVersion> = history.iter().collect();
    newest_first.sort_by_key(|version| std::cmp::Reverse(version.version));
    let mut found: Vec<StoredRelease> = Vec::new();
    for version in newest_first {
        let Some(release) = Release::parse(&version.value) else { continue };
        if !found.iter().any(|kept| kept.release.fingerprint == release.fingerprint) {
            found.push(StoredRelease { version: version.version, release });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(fingerprint: &str, tag: &str) -> Release {
        Release {
            fingerprint: fingerprint.into(),
            tags: BTreeMap::from([("my-api".into(), tag.into())]),
            digests: BTreeMap::from([("my-api".into(), format!("sha256:{tag}"))]),
            build: format!("tagrelay-dev:{tag}"),
            verified_at: "2026-11-30T12:40:31Z".into(),
        }
    }

    fn version(version: i64, value: String) -> ParameterVersion {
        ParameterVersion { version, value, modified_at: None, modified_by: None, description: None }
    }

    #[test]
    fn the_record_reads_back_and_its_time_is_whole_seconds_utc() {
        let r = release("/my-api/dev/docker-image-tag=3@c0aa4a0b", "42");
        let document = r.document();
        assert_eq!(Release::parse(&document), Some(r.clone()));
        assert!(
            document.starts_with(r#"{"fingerprint":"/my-api/dev/docker-image-tag=3@c0aa4a0b","tags":{"my-api":"42"}"#)
        );
        assert_eq!(verified_at(DateTime::from_fractional_secs(1_796_042_431, 0.7)), "2026-11-30T12:40:31Z");
        assert!(r.records("/my-api/dev/docker-image-tag=3@c0aa4a0b"));
        assert!(!r.records("/my-api/dev/docker-image-tag=4@c0aa4a0b"));
    }

    #[test]
    fn a_release_parameter_someone_retyped_is_refused_naming_it() {
        let parameter = "/tagrelay/dev/verified";
        let record = release("f", "1").document();
        let stored = |value: &str, kind| Some(StoredParameter { kind, ..StoredParameter::string(value, 3, None) });
        assert_eq!(stored_release(parameter, None), Ok(None));
        assert_eq!(stored_release(parameter, stored(&record, ParameterKind::String)), Ok(Some(release("f", "1"))));
        assert_eq!(stored_release(parameter, stored("hand edited", ParameterKind::String)), Ok(None));
        let err = stored_release(parameter, stored("AQICAH…", ParameterKind::SecureString)).expect_err("retyped");
        assert!(err.to_string().starts_with("/tagrelay/dev/verified has type SecureString, not String"), "{err}");
    }

    #[test]
    fn history_lists_each_release_once_newest_first() {
        let doc = |f: &str, tag: &str| release(f, tag).document();
        let history = vec![
            version(1, doc("a", "1")),
            version(2, doc("b", "2")),
            version(3, doc("b", "2")),
            version(4, "hand edited".into()),
            version(5, doc("c", "3")),
        ];
        let listed: Vec<(i64, String)> =
            releases(&history).into_iter().map(|s| (s.version, s.release.fingerprint)).collect();
        assert_eq!(listed, [(5, "c".to_owned()), (3, "b".to_owned()), (1, "a".to_owned())]);
    }
}
