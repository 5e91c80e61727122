//! The run manifest: what a build deploys, in full. The fingerprint on the build is a digest
//! (`fingerprint`); the manifest is the state it digests, with each parameter's value at its
//! version, written by trigger-deploy to `/tagrelay/{environment}/manifest` before StartBuild
//! (in parts when large: `crate::document`), one version per start, described
//! `tagrelay run <fingerprint>`. The build finds it by that description in the parameter's
//! history and deploys exactly its values (infra/buildspec.yml); `status` and `trace` read it
//! the same way.
//!
//! The values are the ones trigger-deploy read at those versions, so a build deploys what its
//! fingerprint names even if a parameter was deleted and created again since: SSM versions are
//! immutable, and the values are taken when the versions are.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::fingerprint::{fingerprint, of_state, state};
use crate::ports::{ParameterVersion, StoredParameter};

const DESCRIPTION_PREFIX: &str = "tagrelay run ";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub fingerprint: String,
    pub environment: String,
    /// parameter name → its version and value.
    pub parameters: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub version: i64,
    pub value: String,
}

impl Manifest {
    /// The manifest of a run of `parameters` (what reconcile read) in `environment`.
    pub fn of(environment: &str, parameters: &BTreeMap<String, StoredParameter>) -> Self {
        Self {
            fingerprint: fingerprint(parameters),
            environment: environment.to_owned(),
            parameters: parameters
                .iter()
                .map(|(name, stored)| (name.clone(), Entry { version: stored.version, value: stored.value.clone() }))
                .collect(),
        }
    }

    /// The document as stored.
    pub fn document(&self) -> String {
        // Plain strings, numbers and maps only: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The description of the parameter version that holds it: how the build finds it.
    pub fn description(&self) -> String {
        description(&self.fingerprint)
    }

    /// Whether its entries are the state its fingerprint names (a hand-edited manifest is not).
    pub fn is_consistent(&self) -> bool {
        let stored: BTreeMap<String, StoredParameter> = self
            .parameters
            .iter()
            .map(|(name, entry)| (name.clone(), StoredParameter::string(entry.value.clone(), entry.version, None)))
            .collect();
        of_state(&state(&stored)) == self.fingerprint
    }
}

/// The description of the manifest version of a run of `fingerprint`.
pub fn description(fingerprint: &str) -> String {
    format!("{DESCRIPTION_PREFIX}{fingerprint}")
}

/// The manifest of `fingerprint` in a manifest parameter's history (documents resolved: see
/// `document::read_history`): the newest version described so that reads as a consistent
/// manifest of that fingerprint (racing starts may write it twice; a hand edit is passed over).
pub fn find(history: &[ParameterVersion], fingerprint: &str) -> Option<Manifest> {
    let wanted = description(fingerprint);
    history
        .iter()
        .filter(|version| version.description.as_deref() == Some(wanted.as_str()))
        .filter_map(|version| Some((version.version, serde_json::from_str::<Manifest>(&version.value).ok()?)))
        .filter(|(_, manifest)| manifest.fingerprint == fingerprint && manifest.is_consistent())
        .max_by_key(|(version, _)| *version)
        .map(|(_, manifest)| manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameters(entries: &[(&str, i64, &str)]) -> BTreeMap<String, StoredParameter> {
        entries.iter().map(|(n, v, t)| ((*n).to_owned(), StoredParameter::string(*t, *v, None))).collect()
    }

    fn version(version: i64, manifest: &Manifest, description: &str) -> ParameterVersion {
        ParameterVersion {
            version,
            value: manifest.document(),
            modified_at: None,
            modified_by: None,
            description: Some(description.to_owned()),
        }
    }

    #[test]
    fn a_manifest_names_every_value_at_its_version_under_its_fingerprint() {
        let read = parameters(&[("/web/dev/tag", 4, "43"), ("/api/dev/tag", 2, "7")]);
        let manifest = Manifest::of("dev", &read);
        assert_eq!(manifest.fingerprint, fingerprint(&read));
        assert_eq!(manifest.description(), format!("tagrelay run {}", manifest.fingerprint));
        assert_eq!(
            manifest.document(),
            format!(
                r#"{{"fingerprint":"{}","environment":"dev","parameters":{{"/api/dev/tag":{{"version":2,"value":"7"}},"/web/dev/tag":{{"version":4,"value":"43"}}}}}}"#,
                manifest.fingerprint
            )
        );
        assert!(manifest.is_consistent());
    }

    #[test]
    fn the_newest_consistent_manifest_of_the_fingerprint_is_found() {
        let first = Manifest::of("dev", &parameters(&[("/web/dev/tag", 4, "43")]));
        let second = Manifest::of("dev", &parameters(&[("/web/dev/tag", 5, "44")]));
        let mut edited = second.clone();
        edited.parameters.get_mut("/web/dev/tag").expect("entry").value = "99".into();
        let history = [
            version(1, &first, &first.description()),
            version(2, &second, &second.description()),
            version(3, &first, &first.description()),
            version(4, &edited, &second.description()),
        ];
        assert_eq!(find(&history, &first.fingerprint).map(|m| m.parameters), Some(first.parameters.clone()));
        assert_eq!(find(&history[..3], &second.fingerprint), Some(second.clone()));
        assert_eq!(find(&history, &second.fingerprint), Some(second.clone()), "the newest copy was edited by hand");
        assert_eq!(find(&history[3..], &second.fingerprint), None);
        assert_eq!(find(&history, "sha256:00"), None);
    }
}
