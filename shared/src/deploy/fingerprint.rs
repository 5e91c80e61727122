//! The fingerprint of an environment's desired state: its one definition, used by every consumer
//! (StartBuild, reconcile, `tagrelay status` and `retry`, the tests' harness).
//!
//! Every parameter of the environment as `name=version@digest`, sorted by name, joined with `,`,
//! e.g. `/my-api/dev/docker-image-tag=3@c0aa4a0b,/worker/dev/docker-image-tag=1@ba7816bf`. A
//! build is started with it (`TAGRELAY_FINGERPRINT`), so any later run can tell what a build
//! deployed.
//!
//! Why a digest of the value and not only the version: a parameter that is deleted and created
//! again restarts at version 1, so `name=version` could equal what is already deployed while the
//! value differs, and the new tag would never be deployed. The digest is of the value itself
//! rather than of the last-modified time because it changes exactly when what Terraform would
//! read changes: re-creating a parameter with the value it had deploys nothing, and the
//! fingerprint is a function of what GetParameters returns (no clock, no precision). The version
//! stays so the fingerprint stays readable next to `tagrelay status`'s VERSION column and so that
//! two states are never equal just because their values are. The digest is the first 8 hex
//! digits of the value's SHA-256 (`printf %s 1043 | sha256sum | cut -c1-8`): stable across
//! versions and machines, small enough for a CodeBuild variable (4,096 characters), and it only
//! has to tell apart the values one parameter held at the same version.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::ports::StoredParameter;

/// Separates a parameter's version from its value's digest. SSM names cannot contain `@`, `=`
/// or `,`, so the fingerprint parses back unambiguously.
const DIGEST_SEPARATOR: char = '@';

/// The fingerprint of `parameters` (name → what SSM holds); empty when there is none.
pub fn fingerprint(parameters: &BTreeMap<String, StoredParameter>) -> String {
    parameters
        .iter()
        .map(|(name, stored)| format!("{name}={}{DIGEST_SEPARATOR}{}", stored.version, value_digest(&stored.value)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether a build started with `recorded` deployed the state whose fingerprint is `current`.
///
/// Builds started by tagrelay before the digest was added recorded `name=version` only. Such a
/// fingerprint matches when every version is the same, so upgrading tagrelay starts no Terraform
/// run by itself; a parameter re-created before the first run of the new version is missed
/// that once, as it was before.
pub fn same_state(recorded: &str, current: &str) -> bool {
    if recorded == current {
        return true;
    }
    let legacy = !recorded.contains(DIGEST_SEPARATOR);
    legacy && !recorded.is_empty() && recorded == without_digests(current)
}

fn without_digests(fingerprint: &str) -> String {
    fingerprint
        .split(',')
        .map(|entry| entry.split_once(DIGEST_SEPARATOR).map_or(entry, |(name_version, _)| name_version))
        .collect::<Vec<_>>()
        .join(",")
}

/// The first 8 hex digits of the value's SHA-256.
fn value_digest(value: &str) -> String {
    sha256_hex(value, 8)
}

/// The first `digits` hex digits of SHA-256 of `input`.
fn sha256_hex(input: &str, digits: usize) -> String {
    let hash = Sha256::digest(input.as_bytes());
    hash.iter().map(|byte| format!("{byte:02x}")).collect::<String>()[..digits].to_owned()
}

/// Changed whenever what StartBuild sends for the same token changes, so that two tagrelay
/// versions running side by side (during a deploy) never send one token with two requests.
const TOKEN_SCHEME: &str = "tagrelay-start/2";

/// The StartBuild idempotency token for a run of `fingerprint` in `environment` (whose project is
/// `project`) that follows `follows`, the newest tagrelay build reconcile saw (`None`: the first
/// run). Two reconciles racing to start the same run send the same token and CodeBuild starts
/// one build; a deliberate new run of the same state (after a STOPPED or, on `retry`, a failed
/// one) follows another build and gets another token. Every StartBuild parameter (project,
/// `TAGRELAY_FINGERPRINT`, `TAGRELAY_ENVIRONMENT`) is a function of this input, so a repeated
/// token never meets other parameters (CodeBuild's parameter-mismatch error). 32 hex digits of
/// SHA-256: deterministic, not a secret.
pub fn idempotency_token(project: &str, environment: &str, fingerprint: &str, follows: Option<&str>) -> String {
    let input = format!("{TOKEN_SCHEME}\n{project}\n{environment}\n{fingerprint}\n{}", follows.unwrap_or(""));
    sha256_hex(&input, 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(entries: &[(&str, i64, &str)]) -> BTreeMap<String, StoredParameter> {
        entries
            .iter()
            .map(|(name, version, value)| ((*name).to_owned(), StoredParameter::string(*value, *version, None)))
            .collect()
    }

    #[test]
    fn fingerprint_is_sorted_name_equals_version_at_value_digest() {
        let parameters = stored(&[("/b/dev/tag", 3, "abc"), ("/a/dev/tag", 12, "1043")]);
        assert_eq!(fingerprint(&parameters), "/a/dev/tag=12@c0aa4a0b,/b/dev/tag=3@ba7816bf");
        assert_eq!(fingerprint(&BTreeMap::new()), "");
    }

    #[test]
    fn a_recreated_parameter_with_another_value_has_another_fingerprint() {
        let deployed = fingerprint(&stored(&[("/a/dev/tag", 1, "1043")]));
        assert_ne!(fingerprint(&stored(&[("/a/dev/tag", 1, "1044")])), deployed, "re-created at version 1");
        assert_eq!(fingerprint(&stored(&[("/a/dev/tag", 1, "1043")])), deployed, "same value: same state");
        assert_ne!(fingerprint(&stored(&[("/a/dev/tag", 2, "1043")])), deployed, "written again");
    }

    #[test]
    fn digests_are_stable_and_tell_values_apart() {
        // Recorded in builds: a change of hash would make every environment look behind.
        assert_eq!(value_digest(""), "e3b0c442");
        assert_eq!(value_digest("1043"), "c0aa4a0b");
        let digests: std::collections::BTreeSet<String> = (0..10_000).map(|n| value_digest(&n.to_string())).collect();
        assert_eq!(digests.len(), 10_000);
    }

    #[test]
    fn a_build_matches_its_own_fingerprint_and_a_legacy_one_with_the_same_versions() {
        let current = "/a/dev/tag=12@c0aa4a0b,/b/dev/tag=3@ba7816bf";
        let cases = [
            ("itself", current, true),
            ("another digest", "/a/dev/tag=12@00000000,/b/dev/tag=3@ba7816bf", false),
            ("another version", "/a/dev/tag=11@c0aa4a0b,/b/dev/tag=3@ba7816bf", false),
            ("legacy, same versions", "/a/dev/tag=12,/b/dev/tag=3", true),
            ("legacy, another version", "/a/dev/tag=12,/b/dev/tag=2", false),
            ("legacy, a parameter fewer", "/a/dev/tag=12", false),
            ("empty", "", false),
        ];
        for (name, recorded, expected) in cases {
            assert_eq!(same_state(recorded, current), expected, "{name}");
        }
    }

    #[test]
    fn tokens_are_stable_per_run_and_differ_for_another_run() {
        let token = idempotency_token("tagrelay-dev", "dev", "/a/dev/tag=12@c0aa4a0b", None);
        assert_eq!(token.len(), 32);
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(token, idempotency_token("tagrelay-dev", "dev", "/a/dev/tag=12@c0aa4a0b", None));
        let others = [
            idempotency_token("tagrelay-dev", "dev", "/a/dev/tag=13@c0aa4a0b", None),
            idempotency_token("tagrelay-dev", "dev", "/a/dev/tag=12@c0aa4a0b", Some("tagrelay-dev:1")),
            idempotency_token("tagrelay-qa", "dev", "/a/dev/tag=12@c0aa4a0b", None),
            idempotency_token("tagrelay-dev", "qa", "/a/dev/tag=12@c0aa4a0b", None),
        ];
        assert!(others.iter().all(|other| *other != token));
    }
}
