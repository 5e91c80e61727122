//! The record sweep. ECR sends its events on a best-effort basis (EventBridge: "Delivery type:
//! Best effort"), so a push can go unseen. On the schedule, per service with `deploy_on_push`,
//! the sweep lists the repository's tagged images and, per target environment, records the
//! newest image (by the order policy) whose tag fits the pattern and that was pushed after the
//! parameter's last write — through the same decision and write path as a push, so it never
//! moves anything backwards, and never undoes a pin, a rollback or a hand edit (those are
//! writes: only images pushed after them count).
//!
//! Cost per sweep: the parameters of every swept service read together, ten names a
//! `GetParameters` call (100 calls at 1,000 services in one environment, not 1,000); per service
//! one `DescribeImages` per 1,000 tagged images (no sort, no time filter, so every page is read),
//! bounded at `MAX_PAGES`; for `pushed-at`, one `DescribeImages` per distinct current tag.

use std::collections::BTreeMap;

use aws_smithy_types::DateTime;
use futures_util::stream::{self, StreamExt};
use tracing::{info, warn};

use super::decision::{decide, Decision, Push, SkipReason, Target};
use super::outcome::{EnvironmentOutcome, RecordError, ServiceSweep, SweepSummary, WriteFailure};
use super::recorder::Recorder;
use crate::config::Service;
use crate::order::{OrderPolicy, TagFacts, Verdict};
use crate::ports::{AwsError, ImageRegistry, ListedImage, ParameterHistory, ParameterStore, StoredParameter};

/// Pages of up to 1,000 images read per repository and sweep: 10,000 tagged images. Past that
/// the sweep sees an arbitrary part of the repository and says so (an ECR lifecycle policy
/// that expires old images keeps it whole).
pub const MAX_PAGES: usize = 10;

/// An image the sweep may record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate<'a> {
    pub tag: &'a str,
    pub digest: &'a str,
    pub pushed_at: DateTime,
}

impl Candidate<'_> {
    fn facts(&self) -> TagFacts<'_> {
        TagFacts { tag: self.tag, pushed_at: Some(self.pushed_at) }
    }
}

/// The newest image pushed after `since` (the parameter's last write; `None`: unknown, every
/// image counts) whose tag fits the service's pattern and policy. Newest by the order policy; under
/// `none` (the last event wins) the one pushed last. Pure.
pub fn newest_candidate<'a>(
    service: &Service,
    images: &'a [ListedImage],
    since: Option<DateTime>,
) -> Option<Candidate<'a>> {
    let rank = if service.order == OrderPolicy::None { OrderPolicy::PushedAt } else { service.order };
    let mut best: Option<Candidate<'a>> = None;
    for image in images {
        // Without a push time an image cannot be placed after the last write.
        let Some(pushed_at) = image.pushed_at else { continue };
        if since.is_some_and(|since| pushed_at <= since) {
            continue;
        }
        for tag in &image.tags {
            let candidate = Candidate { tag, digest: &image.digest, pushed_at };
            if !service.tag_pattern.is_match(tag) || !rank.can_order(candidate.facts()) {
                continue;
            }
            let newer = best.is_none_or(|best| rank.compare(candidate.facts(), best.facts()) == Verdict::Advance);
            if newer {
                best = Some(candidate);
            }
        }
    }
    best
}

/// The sweep's decision for one target, and the push it would record. Pure.
fn sweep_decision<'a>(
    service: &'a Service,
    images: &'a [ListedImage],
    target: &Target<'_>,
) -> (Decision, Push<'a>, Option<DateTime>) {
    // Without a parameter there is no last write to be behind, and nothing to tell an old image
    // from a missed one: installing tagrelay must not deploy old images.
    let candidate = match target.current {
        Some(_) => newest_candidate(service, images, target.last_modified),
        None => None,
    };
    let push = Push { service, tag: candidate.map_or("", |c| c.tag), digest: candidate.map(|c| c.digest) };
    match candidate {
        Some(c) => (decide(&push, Some(c.pushed_at), target), push, Some(c.pushed_at)),
        None if target.current.is_none() => (Decision::Skip { reason: SkipReason::NoParameter }, push, None),
        None => (Decision::Skip { reason: SkipReason::NoNewerImage }, push, None),
    }
}

/// Services swept at once.
const SWEEP_CONCURRENCY: usize = 4;

impl<P: ParameterStore + ParameterHistory + Sync, R: ImageRegistry + Sync> Recorder<P, R> {
    /// Sweeps every service that deploys on push. A service whose reads fail does not stop the
    /// others; the sweep then returns an error (Lambda retries it; the next sweep comes anyway).
    pub(super) async fn sweep(&self) -> Result<SweepSummary, RecordError> {
        let mut summary = SweepSummary { trigger: "scheduled sweep", services: Vec::new() };
        let mut failed = Vec::new();
        let services: Vec<&Service> = self.config.services().filter(|s| !s.deploy_on_push.is_empty()).collect();
        let read = &self.read_all(&services).await;
        // A few services at a time, in order: at 1,000 services one after the other is 1,000
        // DescribeImages round trips (~40 s), close to the function's time-out; more at once
        // would only meet ECR's and SSM's rate limits sooner (throttling is retried).
        let swept: Vec<_> = stream::iter(&services)
            .map(|service| async move {
                let mut failed = Vec::new();
                (self.sweep_service(service, read.as_ref(), &mut failed).await, failed)
            })
            .buffered(SWEEP_CONCURRENCY)
            .collect()
            .await;
        for (service, (result, writes_failed)) in services.iter().zip(swept) {
            failed.extend(writes_failed);
            match result {
                Ok(swept) => summary.services.push(swept),
                Err(err) => {
                    warn!(service = %service.name, repository = %service.repository, decision = "error", error = %err, "record sweep of the service failed");
                    failed.push(WriteFailure::Aws(err));
                }
            }
        }
        if failed.is_empty() {
            Ok(summary)
        } else {
            Err(RecordError::Sweep { services: services.len(), failed })
        }
    }

    /// Every swept parameter in one read (ten names a call). `None` when it fails: then each
    /// service reads its own, so a parameter the role may not read (or one throttled read) fails
    /// only its service, as before the reads were joined.
    async fn read_all(&self, services: &[&Service]) -> Option<BTreeMap<String, StoredParameter>> {
        let names: Vec<String> = services
            .iter()
            .flat_map(|s| {
                let environments: Vec<&str> = s.deploy_on_push.iter().map(String::as_str).collect();
                self.parameter_names(s, &environments)
            })
            .collect();
        match self.parameters.get_parameters(&names).await {
            Ok(read) => Some(read),
            Err(err) => {
                info!(parameters = names.len(), decision = "read_each", error = %err, "the sweep's joined read failed: each service reads its own parameters");
                None
            }
        }
    }

    async fn sweep_service(
        &self,
        service: &Service,
        read: Option<&BTreeMap<String, StoredParameter>>,
        failed: &mut Vec<WriteFailure>,
    ) -> Result<ServiceSweep, AwsError> {
        let (images, truncated) = self.list_tagged_images(&service.repository).await?;
        if truncated {
            warn!(service = %service.name, repository = %service.repository, images = images.len(), decision = "truncated", reason = "too_many_images", "the repository has more tagged images than the sweep reads; images past them are not caught up (add an ECR lifecycle policy)");
        }
        let environments: Vec<&str> = service.deploy_on_push.iter().map(String::as_str).collect();
        // The joined read is as old as the sweep so far (tens of seconds at 1,000 services): it
        // only tells which services need nothing. One that would be written is read again now,
        // so a push, a pin or a rollback handled meanwhile is what the decision sees.
        let targets = match read {
            Some(read) => {
                let names = self.parameter_names(service, &environments);
                let current: BTreeMap<String, StoredParameter> =
                    names.iter().filter_map(|n| read.get(n).map(|p| (n.clone(), p.clone()))).collect();
                let joined = self.service_targets(service, None, &environments, names.clone(), current.clone()).await?;
                let writes = joined
                    .iter()
                    .any(|target| matches!(sweep_decision(service, &images, target).0, Decision::Write { .. }));
                if !writes {
                    joined
                } else {
                    let now = self.parameters.get_parameters(&names).await?;
                    let versions = |read: &BTreeMap<String, StoredParameter>| {
                        read.iter().map(|(n, p)| (n.clone(), p.version)).collect::<Vec<_>>()
                    };
                    // Unchanged since the joined read: its targets stand (no second push-time lookup).
                    if versions(&now) == versions(&current) {
                        joined
                    } else {
                        self.service_targets(service, None, &environments, names, now).await?
                    }
                }
            }
            None => self.read_service_targets(service, None, &environments).await?,
        };
        let mut decisions = Vec::new();
        for target in &targets {
            let (decision, push, pushed_at) = sweep_decision(service, &images, target);
            let description = format!(
                "Image tag of {} in {}, recorded by tagrelay's sweep from ECR image {} (its push event was not handled)",
                service.name,
                target.environment,
                push.digest.unwrap_or("unknown digest")
            );
            let outcome = self.apply(&push, pushed_at, target, decision, description, failed).await;
            decisions.push(EnvironmentOutcome {
                environment: target.environment.to_owned(),
                parameter: target.parameter.clone(),
                previous: target.current.clone(),
                outcome,
            });
        }
        Ok(ServiceSweep {
            service: service.name.clone(),
            repository: service.repository.clone(),
            images: images.len(),
            truncated,
            decisions,
        })
    }

    /// Every tagged image of the repository, up to `MAX_PAGES` pages; `true` when there are more.
    async fn list_tagged_images(&self, repository: &str) -> Result<(Vec<ListedImage>, bool), AwsError> {
        let mut images = Vec::new();
        let mut next_token = None;
        for _ in 0..MAX_PAGES {
            let page = self.images.tagged_images(repository, next_token).await?;
            images.extend(page.images);
            next_token = page.next_token;
            if next_token.is_none() {
                return Ok((images, false));
            }
        }
        Ok((images, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn service(order: &str, pattern: &str) -> Service {
        let doc = serde_json::json!({
            "environments": { "dev": {} },
            "services": { "api": { "deploy_on_push": ["dev"], "order": order, "tag_pattern": pattern } }
        });
        let config = Config::from_json(&doc.to_string()).expect("valid");
        config.service("api").expect("configured").clone()
    }

    fn image(digest: &str, tags: &[&str], at: Option<i64>) -> ListedImage {
        ListedImage {
            digest: digest.into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            pushed_at: at.map(DateTime::from_secs),
        }
    }

    fn newest(order: &str, pattern: &str, images: &[ListedImage], since: Option<i64>) -> Option<String> {
        newest_candidate(&service(order, pattern), images, since.map(DateTime::from_secs)).map(|c| c.tag.to_owned())
    }

    #[test]
    fn candidate_table() {
        let images = vec![
            image("sha256:a", &["101"], Some(100)),
            image("sha256:b", &["103", "latest"], Some(300)),
            image("sha256:c", &["102"], Some(400)),
            image("sha256:d", &["feature-x"], Some(500)),
            image("sha256:e", &["104"], None),
        ];
        let cases: Vec<(&str, &str, Option<i64>, Option<&str>)> = vec![
            ("numeric, never written", "^[0-9]+$", None, Some("103")),
            ("numeric: the greatest number, not the last push", "^[0-9]+$", Some(50), Some("103")),
            ("only images pushed after the last write", "^[0-9]+$", Some(300), Some("102")),
            ("pushed at the very time of the write is not after it", "^[0-9]+$", Some(400), None),
            ("nothing since", "^[0-9]+$", Some(600), None),
            ("the pattern filters tags", "^10[12]$", None, Some("102")),
        ];
        for (name, pattern, since, expected) in cases {
            assert_eq!(newest("numeric", pattern, &images, since).as_deref(), expected, "{name}");
        }
        assert_eq!(
            newest("pushed-at", "^.+$", &images, None).as_deref(),
            Some("feature-x"),
            "pushed-at: the last push"
        );
        assert_eq!(newest("none", "^[0-9]+$", &images, None).as_deref(), Some("102"), "none: the last push that fits");
        assert_eq!(newest("semver", "^.+$", &images, None), None, "no semver tag at all");
    }

    #[test]
    fn semver_candidates_order_by_precedence() {
        let images = vec![
            image("sha256:a", &["v1.10.0"], Some(100)),
            image("sha256:b", &["v1.9.0"], Some(200)),
            image("sha256:c", &["v2.0.0-rc.1"], Some(300)),
        ];
        assert_eq!(newest("semver", "^v", &images, None).as_deref(), Some("v2.0.0-rc.1"));
        assert_eq!(newest("semver", "^v[0-9.]+$", &images, None).as_deref(), Some("v1.10.0"));
    }
}
