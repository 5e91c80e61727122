//! The fingerprint of an environment's desired state: its one definition, used by every consumer
//! (StartBuild, reconcile, the release and approval records, `tagrelay status`, `retry` and
//! `trace`, the buildspec, the tests' harness).
//!
//! The **state** is every parameter of the environment as `name=version@digest`, sorted by name,
//! joined with `,`, e.g. `/my-api/dev/docker-image-tag=3@c0aa4a0b,/worker/dev/docker-image-tag=1@ba7816bf`.
//! The **fingerprint** is `sha256:` and the SHA-256 of the state in hex: 71 characters at any
//! number of services, so it fits a CodeBuild variable (4,096 characters; the state of 100
//! services did not) and a log line. The state itself, with the value of every parameter at its
//! version, is the build's **run manifest** (`manifest`), written before the build starts, so
//! nothing a build deployed is less readable than when the state travelled on the build.
//!
//! Why a digest of the value and not only the version: a parameter that is deleted and created
//! again restarts at version 1, so `name=version` could equal what is already deployed while the
//! value differs, and the new tag would never be deployed. The digest is of the value itself
//! rather than of the last-modified time because it changes exactly when what Terraform would
//! read changes: re-creating a parameter with the value it had deploys nothing, and the
//! fingerprint is a function of what GetParameters returns (no clock, no precision). The digest
//! is the first 8 hex digits of the value's SHA-256 (`printf %s 1043 | sha256sum | cut -c1-8`).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::ports::StoredParameter;

/// Separates a parameter's version from its value's digest. SSM names cannot contain `@`, `=`
/// or `,`, so the state parses back unambiguously.
const DIGEST_SEPARATOR: char = '@';
/// What every fingerprint starts with.
pub const FINGERPRINT_PREFIX: &str = "sha256:";

/// The state of `parameters` (name → what SSM holds); empty when there is none.
pub fn state(parameters: &BTreeMap<String, StoredParameter>) -> String {
    parameters
        .iter()
        .map(|(name, stored)| format!("{name}={}{DIGEST_SEPARATOR}{}", stored.version, value_digest(&stored.value)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The fingerprint of `parameters`; empty when there is none.
pub fn fingerprint(parameters: &BTreeMap<String, StoredParameter>) -> String {
    of_state(&state(parameters))
}

/// The fingerprint of a state; empty for the empty state.
pub fn of_state(state: &str) -> String {
    if state.is_empty() {
        return String::new();
    }
    format!("{FINGERPRINT_PREFIX}{}", sha256_hex(state, 64))
}

/// Whether a build (or record) made with `recorded` deployed the state whose fingerprint is
/// `current`.
///
/// Builds and records of tagrelay before the fingerprint became a digest carry the state itself
/// (`name=version@digest,…`): it matches when its digest is `current`, so upgrading tagrelay
/// starts no Terraform run and writes no release by itself. The older `name=version` form (no
/// value digest) cannot be compared with a digest: such an environment gets one run of its
/// current state after the upgrade, which deploys what already runs.
pub fn same_state(recorded: &str, current: &str) -> bool {
    if recorded.is_empty() || current.is_empty() {
        return false;
    }
    recorded == current || (!recorded.starts_with(FINGERPRINT_PREFIX) && of_state(recorded) == current)
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
    fn the_state_is_sorted_name_equals_version_at_value_digest_and_the_fingerprint_its_digest() {
        let parameters = stored(&[("/b/dev/tag", 3, "abc"), ("/a/dev/tag", 12, "1043")]);
        assert_eq!(state(&parameters), "/a/dev/tag=12@c0aa4a0b,/b/dev/tag=3@ba7816bf");
        // printf %s '/a/dev/tag=12@c0aa4a0b,/b/dev/tag=3@ba7816bf' | sha256sum: the buildspec checks it so.
        assert_eq!(fingerprint(&parameters), "sha256:ebc92115730b8e6063591fe227a69fcfda4b9ca4b3fbd38a15aba6ec55b581a8");
        assert_eq!(fingerprint(&BTreeMap::new()), "");
        // Fixed size at any number of services: a CodeBuild variable holds 4,096 characters.
        let many: Vec<(String, i64, String)> =
            (0..1_000).map(|n| (format!("/service-{n:04}/prod/docker-image-tag"), n, n.to_string())).collect();
        let many = many.iter().map(|(n, v, t)| (n.as_str(), *v, t.as_str())).collect::<Vec<_>>();
        assert!(state(&stored(&many)).len() > 40_000);
        assert_eq!(fingerprint(&stored(&many)).len(), 71);
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
    fn a_build_matches_its_own_fingerprint_and_one_that_recorded_the_same_state_itself() {
        let current = of_state("/a/dev/tag=12@c0aa4a0b,/b/dev/tag=3@ba7816bf");
        let cases = [
            ("itself", current.clone(), true),
            ("another fingerprint", of_state("/a/dev/tag=12@00000000,/b/dev/tag=3@ba7816bf"), false),
            (
                "the state, as builds before the digest recorded it",
                "/a/dev/tag=12@c0aa4a0b,/b/dev/tag=3@ba7816bf".into(),
                true,
            ),
            ("another state", "/a/dev/tag=11@c0aa4a0b,/b/dev/tag=3@ba7816bf".into(), false),
            ("name=version only: cannot be compared", "/a/dev/tag=12,/b/dev/tag=3".into(), false),
            ("empty", String::new(), false),
        ];
        for (name, recorded, expected) in cases {
            assert_eq!(same_state(&recorded, &current), expected, "{name}");
        }
        assert!(!same_state("", ""), "no state is never deployed");
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
