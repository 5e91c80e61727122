//! The fingerprint of an environment's desired state: every parameter as `name=version`, sorted
//! by name, joined with `,`. A build carries the fingerprint it was started with, so any later
//! run can tell what a build deployed.

use std::collections::BTreeMap;

/// `versions` maps parameter name to version; a `BTreeMap` iterates sorted by name.
pub fn fingerprint(versions: &BTreeMap<String, i64>) -> String {
    versions.iter().map(|(name, version)| format!("{name}={version}")).collect::<Vec<_>>().join(",")
}

/// A StartBuild idempotency token for a run of this fingerprint that follows `follows`, the
/// newest tagrelay build reconcile saw (`None`: the first run): two reconciles racing to start
/// the same run send the same token and CodeBuild starts one build; a deliberate new run of the
/// same state (after a STOPPED run) follows another build and gets a new one. 32 hex digits of
/// two FNV-1a lanes: a stable hash, not a secret.
pub fn idempotency_token(fingerprint: &str, follows: Option<&str>) -> String {
    let input = format!("{fingerprint}#{}", follows.unwrap_or(""));
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
        let token = idempotency_token("/a/dev/tag=12", None);
        assert_eq!(token.len(), 32);
        assert_eq!(token, idempotency_token("/a/dev/tag=12", None));
        assert_ne!(token, idempotency_token("/a/dev/tag=13", None));
        assert_ne!(token, idempotency_token("/a/dev/tag=12", Some("tagrelay-dev:1")));
    }
}
