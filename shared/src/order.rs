//! Tag order policies: may a new tag replace the one an environment has now?

use std::cmp::Ordering;
use std::str::FromStr;

use aws_smithy_types::DateTime;
use thiserror::Error;

crate::names::named_enum! {
    /// How tags of one service are ordered.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum OrderPolicy {
        /// Tags are build numbers: only a greater number advances (1000 > 101).
        #[default]
        Numeric => "numeric",
        /// Tags are semantic versions (an optional leading `v`); pre-releases order below their release.
        Semver => "semver",
        /// ECR's `imagePushedAt` of the new image must be later than that of the current image.
        PushedAt => "pushed-at",
        /// Last event wins.
        None => "none",
    }
}

impl OrderPolicy {
    /// Whether this policy needs ECR's push times of the current images.
    pub fn needs_push_times(self) -> bool {
        self == Self::PushedAt
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown order {:?} (expected one of {})", .0, OrderPolicy::NAMES.join(", "))]
pub struct UnknownOrder(pub String);

impl FromStr for OrderPolicy {
    type Err = UnknownOrder;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or_else(|| UnknownOrder(s.to_owned()))
    }
}

/// A tag with the ECR fact the `pushed-at` policy compares; `pushed_at` is `None` when the
/// image is not (or no longer) in ECR.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TagFacts<'a> {
    pub tag: &'a str,
    pub pushed_at: Option<DateTime>,
}

/// The verdict of a policy on replacing `current` with `candidate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Advance,
    /// The candidate is older than, or as old as, the current tag.
    NotNewer,
    /// The candidate cannot be ordered under this policy (e.g. `latest` under `numeric`).
    NotOrderable,
}

impl OrderPolicy {
    /// Whether this policy can place `candidate` at all (`latest` is no build number).
    pub fn can_order(self, candidate: TagFacts<'_>) -> bool {
        match self {
            Self::None => true,
            Self::Numeric => numeric_key(candidate.tag).is_some(),
            Self::Semver => semver_key(candidate.tag).is_some(),
            Self::PushedAt => candidate.pushed_at.is_some(),
        }
    }

    /// Decides whether `candidate` may replace `current`. A current value the policy cannot
    /// order (a placeholder, an image that is gone) never blocks a valid candidate: otherwise
    /// one stray value would freeze the environment forever.
    pub fn compare(self, candidate: TagFacts<'_>, current: TagFacts<'_>) -> Verdict {
        match self {
            Self::None => Verdict::Advance,
            Self::Numeric => by_key(numeric_key(candidate.tag), numeric_key(current.tag)),
            Self::Semver => by_key(semver_key(candidate.tag), semver_key(current.tag)),
            Self::PushedAt => match candidate.pushed_at {
                None => Verdict::NotOrderable,
                Some(new) => match current.pushed_at {
                    None => Verdict::Advance,
                    Some(old) => by_key(Some(epoch_nanos(new)), Some(epoch_nanos(old))),
                },
            },
        }
    }
}

/// Whether `value` can name an image in ECR at all: 1 to 300 characters (ECR's `imageTag`
/// limit) of the characters an image tag may have, not starting with `.` or `-`. A hand-edited
/// value that cannot is never sent to `DescribeImages` (which would refuse the whole call): the
/// policy treats it like a placeholder.
pub fn can_be_image_tag(value: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    (1..=300).contains(&value.len()) && value.bytes().all(allowed) && !value.starts_with('.') && !value.starts_with('-')
}

fn by_key<K: Ord>(candidate: Option<K>, current: Option<K>) -> Verdict {
    match (candidate, current) {
        (None, _) => Verdict::NotOrderable,
        (Some(_), None) => Verdict::Advance,
        (Some(new), Some(old)) => match new.cmp(&old) {
            Ordering::Greater => Verdict::Advance,
            Ordering::Equal | Ordering::Less => Verdict::NotNewer,
        },
    }
}

/// Build numbers of any length: compare digit strings without leading zeros, by length first,
/// so no number is too large to order.
fn numeric_key(tag: &str) -> Option<(usize, &str)> {
    if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = tag.trim_start_matches('0');
    Some((digits.len(), digits))
}

/// Precedence per semver 2.0: build metadata does not count, and a release sorts after its
/// pre-releases (`semver::Prerelease` alone puts the empty one first).
fn semver_key(tag: &str) -> Option<(u64, u64, u64, bool, semver::Prerelease)> {
    let version = semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()?;
    let is_release = version.pre.is_empty();
    Some((version.major, version.minor, version.patch, is_release, version.pre))
}

fn epoch_nanos(time: DateTime) -> i128 {
    i128::from(time.secs()) * 1_000_000_000 + i128::from(time.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(tag: &str) -> TagFacts<'_> {
        TagFacts { tag, pushed_at: None }
    }

    fn pushed(tag: &str, secs: i64) -> TagFacts<'_> {
        TagFacts { tag, pushed_at: Some(DateTime::from_secs(secs)) }
    }

    #[test]
    fn policy_names_round_trip() {
        for name in OrderPolicy::NAMES {
            let policy: OrderPolicy = name.parse().expect("documented name parses");
            assert_eq!(policy.as_str(), name);
        }
        assert_eq!("fifo".parse::<OrderPolicy>(), Err(UnknownOrder("fifo".into())));
        assert_eq!("Numeric".parse::<OrderPolicy>(), Err(UnknownOrder("Numeric".into())));
        assert_eq!(
            UnknownOrder("fifo".into()).to_string(),
            "unknown order \"fifo\" (expected one of numeric, semver, pushed-at, none)"
        );
    }

    #[test]
    fn numeric_orders_by_value_not_by_text() {
        let cases = [
            ("1000", "101", Verdict::Advance),
            ("101", "1000", Verdict::NotNewer),
            ("42", "42", Verdict::NotNewer),
            ("0042", "42", Verdict::NotNewer),
            ("43", "042", Verdict::Advance),
            ("123456789012345678901234567890", "99999999999999999999", Verdict::Advance),
            ("7", "placeholder", Verdict::Advance),
            ("latest", "7", Verdict::NotOrderable),
            ("-1", "7", Verdict::NotOrderable),
            ("1.5", "1", Verdict::NotOrderable),
        ];
        for (new, old, verdict) in cases {
            assert_eq!(OrderPolicy::Numeric.compare(tag(new), tag(old)), verdict, "{new} vs {old}");
        }
    }

    #[test]
    fn semver_orders_pre_releases_below_their_release() {
        let cases = [
            ("1.2.10", "1.2.9", Verdict::Advance),
            ("v2.0.0", "1.99.99", Verdict::Advance),
            ("1.0.0", "1.0.0-rc.1", Verdict::Advance),
            ("1.0.0-rc.1", "1.0.0", Verdict::NotNewer),
            ("1.0.0-rc.2", "1.0.0-rc.1", Verdict::Advance),
            ("1.0.0-rc.1", "0.9.0", Verdict::Advance),
            ("1.0.0+build.7", "1.0.0+build.6", Verdict::NotNewer),
            ("v1.0.0", "1.0.0", Verdict::NotNewer),
            ("1.0.0", "placeholder", Verdict::Advance),
            ("1.0", "0.9.0", Verdict::NotOrderable),
        ];
        for (new, old, verdict) in cases {
            assert_eq!(OrderPolicy::Semver.compare(tag(new), tag(old)), verdict, "{new} vs {old}");
        }
    }

    #[test]
    fn pushed_at_compares_ecr_push_times() {
        let p = OrderPolicy::PushedAt;
        assert_eq!(p.compare(pushed("b", 200), pushed("a", 100)), Verdict::Advance);
        assert_eq!(p.compare(pushed("a", 100), pushed("b", 200)), Verdict::NotNewer);
        assert_eq!(p.compare(pushed("a", 100), pushed("b", 100)), Verdict::NotNewer);
        // The image the parameter names is gone from ECR: the new one wins.
        assert_eq!(p.compare(pushed("a", 100), tag("gone")), Verdict::Advance);
        // Without the new image's push time there is nothing to compare.
        assert_eq!(p.compare(tag("a"), pushed("b", 100)), Verdict::NotOrderable);
        let precise = TagFacts { tag: "c", pushed_at: Some(DateTime::from_fractional_secs(100, 0.5)) };
        assert_eq!(p.compare(precise, pushed("a", 100)), Verdict::Advance);
    }

    #[test]
    fn can_order_matches_what_compare_accepts() {
        assert!(OrderPolicy::Numeric.can_order(tag("0042")));
        assert!(!OrderPolicy::Numeric.can_order(tag("latest")));
        assert!(OrderPolicy::Semver.can_order(tag("v1.2.3-rc.1")));
        assert!(!OrderPolicy::Semver.can_order(tag("1.2")));
        assert!(OrderPolicy::PushedAt.can_order(pushed("anything", 1)));
        assert!(!OrderPolicy::PushedAt.can_order(tag("anything")));
        assert!(OrderPolicy::None.can_order(tag("latest")));
    }

    #[test]
    fn none_lets_the_last_event_win() {
        assert_eq!(OrderPolicy::None.compare(tag("old"), tag("new")), Verdict::Advance);
    }

    #[test]
    fn only_values_that_can_be_ecr_tags_are_looked_up() {
        for good in ["1043", "v1.2.3-rc.1", "a", "abc_DEF", &"7".repeat(300)] {
            assert!(can_be_image_tag(good), "{good}");
        }
        for bad in ["", "has space", "slash/tag", ".hidden", "-dash", "tag:colon", "é", &"7".repeat(301)] {
            assert!(!can_be_image_tag(bad), "{bad}");
        }
    }
}
