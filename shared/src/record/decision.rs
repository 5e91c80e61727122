//! The record decision: what an ECR push means for each target environment. Pure: all state
//! comes in as arguments, so every branch is table-tested without AWS.

use aws_smithy_types::DateTime;

use crate::config::{Config, Service};
use crate::event::ecr::{ActionResult, ActionType, ImageAction};
use crate::order::{TagFacts, Verdict};
use crate::ports::ParameterKind;

crate::names::named_enum! {
    /// Why a push changes nothing, logged and returned by name.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum SkipReason {
        /// The action is a DELETE (or another non-push action).
        NotAPush => "not_a_push",
        /// The push did not succeed.
        NotSuccessful => "not_successful",
        /// The push has no tag (`image-tag` absent or empty).
        EmptyTag => "empty_tag",
        /// No service is configured for the repository.
        RepositoryNotConfigured => "repository_not_configured",
        /// The tag does not match the service's `tag_pattern`.
        TagPatternMismatch => "tag_pattern_mismatch",
        /// The service deploys to no environment on push (`deploy_on_push` is empty).
        NoDeployOnPush => "no_deploy_on_push",
        /// ECR no longer has an image with this tag.
        ImageGone => "image_gone",
        /// The tag now points at another digest: the push that moved it has its own event.
        TagMoved => "tag_moved",
        /// The parameter already holds this tag; writing it again would start a needless run.
        Unchanged => "unchanged",
        /// The tag is older than (or as old as) the one the parameter holds.
        NotNewer => "not_newer",
        /// The tag cannot be ordered under the service's order policy (e.g. `latest` under numeric).
        TagNotOrderable => "tag_not_orderable",
        /// The record sweep found no image pushed since the parameter's last write that it could
        /// record: nothing was missed.
        NoNewerImage => "no_newer_image",
        /// The record sweep creates no parameter: infra/ creates them, or the first push does.
        NoParameter => "no_parameter",
        /// Promote stopped writing before the invocation's time-out; the next look writes it.
        Deferred => "deferred",
    }
}

crate::names::named_enum! {
    /// Why a write happens.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum WriteReason {
        /// The parameter does not exist yet.
        NewParameter => "new_parameter",
        /// The tag is newer under the service's order policy.
        Newer => "newer",
        /// An operator set this tag on purpose (`tagrelay pin`), whatever the order policy says.
        Pinned => "pinned",
        /// A concurrent writer overwrote this newer tag without having seen it; it is put back.
        Restored => "restored",
    }
}

/// A push that passed the event-level checks: a successful, tagged push to a configured
/// repository whose tag fits the service's pattern.
#[derive(Debug, Clone, Copy)]
pub struct Push<'a> {
    pub service: &'a Service,
    pub tag: &'a str,
    pub digest: Option<&'a str>,
}

/// An event that is not acted on: the reason, with the service when one was found.
///
/// A struct here as in `deploy` (`deploy::Ignored`): the reason is a named enum (logged and
/// returned by its name), and the struct carries what the event's one log line says besides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ignored<'a> {
    pub service: Option<&'a str>,
    pub reason: SkipReason,
}

/// The checks that need nothing but the event and the config.
pub fn classify<'a>(detail: &'a ImageAction, config: &'a Config) -> Result<Push<'a>, Ignored<'a>> {
    let ignore = |service: Option<&'a Service>, reason| Ignored { service: service.map(|s| s.name.as_str()), reason };
    let service = config.service_for_repository(&detail.repository_name);
    if detail.action_type != ActionType::Push {
        return Err(ignore(service, SkipReason::NotAPush));
    }
    if detail.result != ActionResult::Success {
        return Err(ignore(service, SkipReason::NotSuccessful));
    }
    let Some(tag) = detail.tag() else {
        return Err(ignore(service, SkipReason::EmptyTag));
    };
    let Some(service) = service else {
        return Err(ignore(None, SkipReason::RepositoryNotConfigured));
    };
    if !service.tag_pattern.is_match(tag) {
        return Err(ignore(Some(service), SkipReason::TagPatternMismatch));
    }
    if service.deploy_on_push.is_empty() {
        return Err(ignore(Some(service), SkipReason::NoDeployOnPush));
    }
    Ok(Push { service, tag, digest: detail.image_digest.as_deref() })
}

/// What ECR says now about the pushed tag.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageState {
    Present { digest: String, pushed_at: Option<DateTime> },
    Gone,
}

/// The tag must still exist and still point at the pushed digest; otherwise the event is stale
/// and a later event (the delete, or the push that moved the tag) covers it. Returns the image's
/// push time for the `pushed-at` policy.
pub fn confirm_image(push: &Push<'_>, image: &ImageState) -> Result<Option<DateTime>, SkipReason> {
    match image {
        ImageState::Gone => Err(SkipReason::ImageGone),
        ImageState::Present { digest, .. } if push.digest.is_some_and(|pushed| pushed != digest) => {
            Err(SkipReason::TagMoved)
        }
        ImageState::Present { pushed_at, .. } => Ok(*pushed_at),
    }
}

/// One target environment's state, as read before deciding.
#[derive(Debug, Clone, PartialEq)]
pub struct Target<'a> {
    pub environment: &'a str,
    pub parameter: String,
    /// The parameter's value, `None` when it does not exist.
    pub current: Option<String>,
    /// ECR's push time of the image `current` names (only read for `pushed-at`).
    pub current_pushed_at: Option<DateTime>,
    /// The version read (0 when the parameter does not exist): a write that lands at a later
    /// version than the next one raced another writer.
    pub version: i64,
    /// The parameter's type; `String` when it does not exist (tagrelay creates it so).
    pub kind: ParameterKind,
    /// When the parameter was last written: the record sweep looks only at images pushed since.
    pub last_modified: Option<DateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// `from` is `None` when the parameter does not exist yet.
    Write {
        from: Option<String>,
        to: String,
        reason: WriteReason,
    },
    Skip {
        reason: SkipReason,
    },
    /// The parameter is in a state tagrelay must not write over: an error someone has to see.
    Refuse {
        kind: ParameterKind,
    },
}

/// Decides for one environment, given the confirmed image's push time. Unchanged comes first:
/// a duplicate event is a no-op. A tag the policy cannot order is never written, not even to a
/// new parameter, so it cannot block the first orderable tag.
pub fn decide(push: &Push<'_>, pushed_at: Option<DateTime>, target: &Target<'_>) -> Decision {
    let skip = |reason| Decision::Skip { reason };
    if let Some(refused) = refuse(target) {
        return refused;
    }
    if target.current.as_deref() == Some(push.tag) {
        return skip(SkipReason::Unchanged);
    }
    let policy = push.service.order;
    let candidate = TagFacts { tag: push.tag, pushed_at };
    if !policy.can_order(candidate) {
        return skip(SkipReason::TagNotOrderable);
    }
    let write = |reason| Decision::Write { from: target.current.clone(), to: push.tag.to_owned(), reason };
    let Some(current) = target.current.as_deref() else {
        return write(WriteReason::NewParameter);
    };
    match policy.compare(candidate, TagFacts { tag: current, pushed_at: target.current_pushed_at }) {
        Verdict::Advance => write(WriteReason::Newer),
        Verdict::NotNewer => skip(SkipReason::NotNewer),
        Verdict::NotOrderable => skip(SkipReason::TagNotOrderable),
    }
}

/// An operator's deliberate choice (`tagrelay pin`): the order policy is not asked, but a
/// value that is already there is still not written (it would start a needless run).
pub fn decide_pin(tag: &str, target: &Target<'_>) -> Decision {
    if let Some(refused) = refuse(target) {
        return refused;
    }
    if target.current.as_deref() == Some(tag) {
        return Decision::Skip { reason: SkipReason::Unchanged };
    }
    Decision::Write { from: target.current.clone(), to: tag.to_owned(), reason: WriteReason::Pinned }
}

/// A parameter someone turned into a `SecureString` (or `StringList`) was read without
/// decryption: its value is not a tag, and overwriting it as a `String` would silently change
/// its type. Nothing is written until a person sets it right.
fn refuse(target: &Target<'_>) -> Option<Decision> {
    (target.current.is_some() && target.kind != ParameterKind::String).then_some(Decision::Refuse { kind: target.kind })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ecr::ActionResult::{Failure, Success};
    use crate::event::ecr::ActionType::{Delete, Other, Push};

    fn config(order: &str) -> Config {
        let doc = serde_json::json!({
            "environments": {
                "dev": { "codebuild_project": "tagrelay-dev" },
                "prod": { "codebuild_project": "tagrelay-prod" }
            },
            "services": {
                "my-api": { "deploy_on_push": ["dev", "prod"], "order": order, "tag_pattern": "^[0-9a-z.-]+$" },
                "batch": { "repository": "team/batch", "deploy_on_push": [] }
            }
        });
        Config::from_json(&doc.to_string()).expect("valid test config")
    }

    fn detail(action: ActionType, result: ActionResult, repo: &str, tag: Option<&str>) -> ImageAction {
        ImageAction {
            action_type: action,
            result,
            repository_name: repo.to_owned(),
            image_digest: Some("sha256:new".to_owned()),
            image_tag: tag.map(str::to_owned),
        }
    }

    #[test]
    fn classify_table() {
        let config = config("numeric");
        let cases = [
            (detail(Delete, Success, "my-api", Some("7")), Some("my-api"), SkipReason::NotAPush),
            (detail(Other, Success, "my-api", Some("7")), Some("my-api"), SkipReason::NotAPush),
            (detail(Push, Failure, "my-api", Some("7")), Some("my-api"), SkipReason::NotSuccessful),
            (detail(Push, Success, "my-api", Some("")), Some("my-api"), SkipReason::EmptyTag),
            (detail(Push, Success, "my-api", None), Some("my-api"), SkipReason::EmptyTag),
            (detail(Push, Success, "unknown", Some("7")), None, SkipReason::RepositoryNotConfigured),
            (detail(Push, Success, "my-api", Some("Not_Matching")), Some("my-api"), SkipReason::TagPatternMismatch),
            (detail(Push, Success, "team/batch", Some("7")), Some("batch"), SkipReason::NoDeployOnPush),
        ];
        for (detail, service, reason) in cases {
            let ignored = classify(&detail, &config).expect_err("must be ignored");
            assert_eq!(ignored, Ignored { service, reason }, "{detail:?}");
        }
        let push_detail = detail(Push, Success, "my-api", Some("7"));
        let push = classify(&push_detail, &config).expect("a push to act on");
        assert_eq!((push.service.name.as_str(), push.tag, push.digest), ("my-api", "7", Some("sha256:new")));
    }

    fn target(current: Option<&str>, current_pushed_at: Option<i64>) -> Target<'static> {
        Target {
            environment: "dev",
            parameter: "/my-api/dev/docker-image-tag".into(),
            current: current.map(str::to_owned),
            current_pushed_at: current_pushed_at.map(DateTime::from_secs),
            version: i64::from(current.is_some()),
            kind: ParameterKind::String,
            last_modified: None,
        }
    }

    fn write(from: Option<&str>, to: &str, reason: WriteReason) -> Decision {
        Decision::Write { from: from.map(str::to_owned), to: to.to_owned(), reason }
    }

    fn skip(reason: SkipReason) -> Decision {
        Decision::Skip { reason }
    }

    #[test]
    fn confirm_image_table() {
        let config = config("numeric");
        let pushed = detail(Push, Success, "my-api", Some("8"));
        let push = classify(&pushed, &config).expect("a push");
        let at = Some(DateTime::from_secs(5));
        let present = |digest: &str| ImageState::Present { digest: digest.into(), pushed_at: at };
        assert_eq!(confirm_image(&push, &present("sha256:new")), Ok(at));
        assert_eq!(confirm_image(&push, &present("sha256:other")), Err(SkipReason::TagMoved));
        assert_eq!(confirm_image(&push, &ImageState::Gone), Err(SkipReason::ImageGone));

        // An event without a digest is checked by tag alone.
        let mut undigested = pushed.clone();
        undigested.image_digest = None;
        let push = classify(&undigested, &config).expect("a push");
        assert_eq!(confirm_image(&push, &present("sha256:whatever")), Ok(at));
    }

    /// (order, pushed tag, its push time, current value, current push time, expected)
    type Case = (&'static str, &'static str, Option<i64>, Option<&'static str>, Option<i64>, Decision);

    #[test]
    fn decide_table() {
        use SkipReason::*;
        let cases: Vec<Case> = vec![
            ("numeric", "1043", Some(2), None, None, write(None, "1043", WriteReason::NewParameter)),
            ("numeric", "1043", Some(2), Some("1042"), None, write(Some("1042"), "1043", WriteReason::Newer)),
            ("numeric", "1000", Some(2), Some("101"), None, write(Some("101"), "1000", WriteReason::Newer)),
            ("numeric", "1042", Some(2), Some("1043"), None, skip(NotNewer)),
            ("numeric", "1043", Some(2), Some("1043"), None, skip(Unchanged)),
            (
                "numeric",
                "1044",
                Some(2),
                Some("placeholder"),
                None,
                write(Some("placeholder"), "1044", WriteReason::Newer),
            ),
            ("numeric", "abc", Some(2), Some("1043"), None, skip(TagNotOrderable)),
            ("numeric", "abc", Some(2), None, None, skip(TagNotOrderable)),
            (
                "semver",
                "1.0.0",
                Some(2),
                Some("1.0.0-rc.1"),
                None,
                write(Some("1.0.0-rc.1"), "1.0.0", WriteReason::Newer),
            ),
            ("semver", "1.0.0-rc.2", Some(2), Some("1.0.0"), None, skip(NotNewer)),
            ("semver", "v2", Some(2), None, None, skip(TagNotOrderable)),
            ("pushed-at", "b", Some(200), Some("a"), Some(100), write(Some("a"), "b", WriteReason::Newer)),
            ("pushed-at", "a", Some(100), Some("b"), Some(200), skip(NotNewer)),
            ("pushed-at", "a", Some(100), Some("b"), Some(100), skip(NotNewer)),
            ("pushed-at", "a", Some(100), Some("gone"), None, write(Some("gone"), "a", WriteReason::Newer)),
            ("pushed-at", "a", None, None, None, skip(TagNotOrderable)),
            // Re-tagging a digest keeps its original imagePushedAt: a new tag on an older image
            // is not newer, and a second tag on the image deployed now is as old as it.
            ("pushed-at", "retag-old", Some(50), Some("b"), Some(200), skip(NotNewer)),
            ("pushed-at", "retag-same", Some(200), Some("b"), Some(200), skip(NotNewer)),
            ("none", "1", Some(1), Some("9"), None, write(Some("9"), "1", WriteReason::Newer)),
            ("none", "9", Some(1), Some("9"), None, skip(Unchanged)),
        ];
        for (order, tag, pushed_at, current, current_at, expected) in cases {
            let config = config(order);
            let pushed = detail(Push, Success, "my-api", Some(tag));
            let push = classify(&pushed, &config).expect("a push");
            let decision = decide(&push, pushed_at.map(DateTime::from_secs), &target(current, current_at));
            assert_eq!(decision, expected, "{order}: {tag} over {current:?}");
        }
    }

    #[test]
    fn reason_names_match_their_serialised_form() {
        let all = [
            SkipReason::NotAPush,
            SkipReason::NotSuccessful,
            SkipReason::EmptyTag,
            SkipReason::RepositoryNotConfigured,
            SkipReason::TagPatternMismatch,
            SkipReason::NoDeployOnPush,
            SkipReason::ImageGone,
            SkipReason::TagMoved,
            SkipReason::Unchanged,
            SkipReason::NotNewer,
            SkipReason::TagNotOrderable,
            SkipReason::NoNewerImage,
            SkipReason::NoParameter,
        ];
        for reason in all {
            assert_eq!(serde_json::to_value(reason).ok(), Some(serde_json::json!(reason.as_str())));
        }
        for reason in [WriteReason::NewParameter, WriteReason::Newer, WriteReason::Pinned, WriteReason::Restored] {
            assert_eq!(serde_json::to_value(reason).ok(), Some(serde_json::json!(reason.as_str())));
        }
    }

    #[test]
    fn a_pin_ignores_the_order_but_not_an_unchanged_value() {
        assert_eq!(decide_pin("1040", &target(Some("1043"), None)), write(Some("1043"), "1040", WriteReason::Pinned));
        assert_eq!(decide_pin("1040", &target(None, None)), write(None, "1040", WriteReason::Pinned));
        assert_eq!(decide_pin("1040", &target(Some("1040"), None)), skip(SkipReason::Unchanged));
    }

    #[test]
    fn a_parameter_that_is_not_a_string_is_never_written() {
        let config = config("numeric");
        let pushed = detail(Push, Success, "my-api", Some("1044"));
        let push = classify(&pushed, &config).expect("a push");
        for kind in [ParameterKind::SecureString, ParameterKind::StringList, ParameterKind::Other] {
            // The ciphertext of a SecureString read without decryption orders as nothing, so the
            // order policy alone would overwrite it.
            let hand_edited = Target { kind, ..target(Some("AQICAHh…ciphertext"), None) };
            assert_eq!(decide(&push, Some(DateTime::from_secs(2)), &hand_edited), Decision::Refuse { kind });
            assert_eq!(decide_pin("1040", &hand_edited), Decision::Refuse { kind });
        }
        // A parameter that does not exist is created as a String.
        let missing = Target { kind: ParameterKind::SecureString, ..target(None, None) };
        assert!(matches!(decide(&push, Some(DateTime::from_secs(2)), &missing), Decision::Write { .. }));
    }
}
