//! The fingerprint of an environment's desired state: every parameter as `name=version`, sorted
//! by name, joined with `,`. A build carries the fingerprint it was started with, so any later
//! run can tell what a build deployed.

use std::collections::BTreeMap;

/// `versions` maps parameter name to version; a `BTreeMap` iterates sorted by name.
pub fn fingerprint(versions: &BTreeMap<String, i64>) -> String {
    versions.iter().map(|(name, version)| format!("{name}={version}")).collect::<Vec<_>>().join(",")
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
/// two FNV-1a lanes: a stable hash, not a secret.
pub fn idempotency_token(project: &str, environment: &str, fingerprint: &str, follows: Option<&str>) -> String {
    let input = format!("{TOKEN_SCHEME}\n{project}\n{environment}\n{fingerprint}\n{}", follows.unwrap_or(""));
    [0xcbf2_9ce4_8422_2325_u64, 0x6c62_272e_07bb_0142_u64]
        .iter()
        .map(|offset| {
            let hash =
                input.bytes().fold(*offset, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
            format!("{hash:016x}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_sorted_name_equals_version() {
        let versions = BTreeMap::from([("/b/dev/tag".to_owned(), 3), ("/a/dev/tag".to_owned(), 12)]);
        assert_eq!(fingerprint(&versions), "/a/dev/tag=12,/b/dev/tag=3");
        assert_eq!(fingerprint(&BTreeMap::new()), "");
    }

    #[test]
    fn tokens_are_stable_per_run_and_differ_for_another_run() {
        let token = idempotency_token("tagrelay-dev", "dev", "/a/dev/tag=12", None);
        assert_eq!(token.len(), 32);
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(token, idempotency_token("tagrelay-dev", "dev", "/a/dev/tag=12", None));
        let others = [
            idempotency_token("tagrelay-dev", "dev", "/a/dev/tag=13", None),
            idempotency_token("tagrelay-dev", "dev", "/a/dev/tag=12", Some("tagrelay-dev:1")),
            idempotency_token("tagrelay-qa", "dev", "/a/dev/tag=12", None),
            idempotency_token("tagrelay-dev", "qa", "/a/dev/tag=12", None),
        ];
        assert!(others.iter().all(|other| *other != token));
    }
}
