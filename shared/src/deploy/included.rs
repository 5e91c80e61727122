//! A parameter change the newest run already has. Lambda delivers trigger-deploy's events one
//! at a time when they queue (a promotion into a region writes a parameter per service, each an
//! event), so by the time an event is handled its change may be in a build that has started and
//! even ended since. Reconciling it would read every parameter of the environment (⌈N/10⌉
//! `GetParameters`, 100 at 1,000 services) to decide what the newest run's own reconcile
//! decided: one call that reads the changed parameter with the run manifest's head answers it.
//! Any other change has its own event, and the sweep re-asks for the ones lost.

use super::deployer::Deployer;
use super::manifest::Manifest;
use super::outcome::ReconcileError;
use crate::config::Environment;
use crate::document::resolve;
use crate::ports::{BuildRecord, BuildStatus, ParameterStore, StoredParameter};

/// Whether the run `manifest` describes is the run of `build` (its fingerprint, a manifest that
/// adds up) and deployed `parameter` as it is now (`current`): its version and its value, since
/// a parameter deleted and created again starts at version 1 again. Only a run that ended
/// succeeded or failed: a stopped one (or one in a state CodeBuild added later) is started again
/// by reconcile. Pure.
pub fn in_run(manifest: &Manifest, build: &BuildRecord, parameter: &str, current: Option<&StoredParameter>) -> bool {
    let same_run = build.fingerprint.as_deref() == Some(manifest.fingerprint.as_str())
        && (build.status == BuildStatus::Succeeded || build.status.is_failure())
        && manifest.is_consistent();
    let deployed = manifest.parameters.get(parameter);
    same_run
        && current
            .zip(deployed)
            .is_some_and(|(current, deployed)| current.version == deployed.version && current.value == deployed.value)
}

impl<P, B, E, I> Deployer<P, B, E, I>
where
    P: ParameterStore + Sync,
{
    /// `build`, the newest tagrelay build, when its run deployed `parameter` as it is now. The
    /// manifest's head is the newest version (written just before its start), so a racing
    /// start that wrote another is no match and the caller reconciles in full. Unreadable
    /// manifests are no match either.
    pub(super) async fn change_in_newest_run(
        &self,
        environment: &Environment,
        parameter: &str,
        newest: &BuildRecord,
    ) -> Result<bool, ReconcileError> {
        if newest.fingerprint.is_none() {
            return Ok(false);
        }
        let head = environment.manifest_parameter();
        // A failed read (the head or its parts) is no answer: the full reconcile reads, and
        // reports, for itself.
        let Ok(mut read) = self.parameters.get_parameters(&[parameter.to_owned(), head.clone()]).await else {
            return Ok(false);
        };
        let Some(stored) = read.remove(&head) else { return Ok(false) };
        let Ok(document) = resolve(&self.parameters, &head, &stored.value).await else { return Ok(false) };
        let Ok(manifest) = serde_json::from_str::<Manifest>(&document) else { return Ok(false) };
        Ok(in_run(&manifest, newest, parameter, read.get(parameter)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn parameters(versions: &[(&str, i64)]) -> BTreeMap<String, StoredParameter> {
        versions
            .iter()
            .map(|(name, v)| ((*name).to_owned(), StoredParameter::string(format!("{v}"), *v, None)))
            .collect()
    }

    fn build(fingerprint: &str) -> BuildRecord {
        BuildRecord {
            id: "tagrelay-dev:7".into(),
            status: BuildStatus::Succeeded,
            fingerprint: Some(fingerprint.into()),
            started: None,
            ended: None,
        }
    }

    #[test]
    fn only_the_version_the_newest_run_deployed_is_in_it() {
        let manifest = Manifest::of("dev", &parameters(&[("/a/dev/t", 3), ("/b/dev/t", 5)]));
        let newest = build(&manifest.fingerprint);
        let now = parameters(&[("/a/dev/t", 3), ("/b/dev/t", 6)]);
        assert!(in_run(&manifest, &newest, "/a/dev/t", now.get("/a/dev/t")));
        // Changed since the run, new since it, or deleted: reconcile in full.
        assert!(!in_run(&manifest, &newest, "/b/dev/t", now.get("/b/dev/t")));
        assert!(!in_run(&manifest, &newest, "/c/dev/t", None));
        assert!(!in_run(&manifest, &newest, "/a/dev/t", None));
        // Deleted and created again: version 3 again, another value.
        let again = StoredParameter::string("1044", 3, None);
        assert!(!in_run(&manifest, &newest, "/a/dev/t", Some(&again)));
        // A stopped run deployed nothing.
        for status in [BuildStatus::Stopped, BuildStatus::Other] {
            let ended = BuildRecord { status, ..newest.clone() };
            assert!(!in_run(&manifest, &ended, "/a/dev/t", now.get("/a/dev/t")), "{status:?}");
        }
        let failed = BuildRecord { status: BuildStatus::Failed, ..newest.clone() };
        assert!(in_run(&manifest, &failed, "/a/dev/t", now.get("/a/dev/t")));
        // Another run's manifest (a racing start wrote it), or one edited by hand.
        assert!(!in_run(&manifest, &build("sha256:other"), "/a/dev/t", now.get("/a/dev/t")));
        let mut edited = manifest.clone();
        if let Some(entry) = edited.parameters.get_mut("/b/dev/t") {
            entry.version = 9;
        }
        assert!(!in_run(&edited, &newest, "/a/dev/t", now.get("/a/dev/t")));
    }
}
