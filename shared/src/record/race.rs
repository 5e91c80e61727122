//! Concurrent writers without a lock. SSM has no conditional overwrite, and a single writer
//! (reserved concurrency 1) is a quota new accounts do not have, so two writers — two pushes, a
//! push and the sweep, a push and an operator — may both decide on the value they read and write
//! one after the other. The later write can then be older under the order policy.
//!
//! The repair: every writer knows the version it read (`base`) and the version its write got
//! (`ours`). Versions strictly between them were written by someone it did not see — its blind
//! window — and it alone is responsible for them: if one of them is newer under the policy than
//! what it wrote, it writes that value back. Every overwrite is in exactly one writer's blind
//! window (the one who made it), so the newest value is restored once, by one writer, and a
//! writer whose value is older never touches a later write. Pure; the handler does the I/O.

use crate::order::{OrderPolicy, TagFacts, Verdict};

/// A version another writer wrote between our read and our write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlindWrite<'a> {
    pub version: i64,
    pub facts: TagFacts<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RaceVerdict {
    /// What we wrote stands.
    Keep,
    /// We overwrote a newer value we had not seen: write it back.
    Restore { value: String, overwritten_version: i64 },
}

/// Whether there is a blind window to look at: the write landed later than the next version.
pub fn raced(base: i64, ours: i64) -> bool {
    ours > base + 1
}

/// Decides after a write of `ours` under `policy`. `deliberate` writes (a pin, a rollback) win
/// on purpose and restore nothing; neither does `none`, where the last write wins by definition.
pub fn after_write(policy: OrderPolicy, deliberate: bool, ours: TagFacts<'_>, blind: &[BlindWrite<'_>]) -> RaceVerdict {
    if deliberate || policy == OrderPolicy::None {
        return RaceVerdict::Keep;
    }
    let mut newest: Option<&BlindWrite<'_>> = None;
    for write in blind {
        let best = newest.map_or(ours, |w| w.facts);
        if write.facts.tag != best.tag && policy.compare(write.facts, best) == Verdict::Advance {
            newest = Some(write);
        }
    }
    match newest {
        Some(write) => RaceVerdict::Restore { value: write.facts.tag.to_owned(), overwritten_version: write.version },
        None => RaceVerdict::Keep,
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_types::DateTime;

    use super::*;

    fn tag(tag: &str) -> TagFacts<'_> {
        TagFacts { tag, pushed_at: None }
    }

    fn blind<'a>(version: i64, value: &'a str) -> BlindWrite<'a> {
        BlindWrite { version, facts: tag(value) }
    }

    fn restore(value: &str, overwritten_version: i64) -> RaceVerdict {
        RaceVerdict::Restore { value: value.to_owned(), overwritten_version }
    }

    #[test]
    fn a_blind_window_is_a_write_that_skipped_a_version() {
        assert!(!raced(5, 6));
        assert!(!raced(0, 1), "created the parameter");
        assert!(raced(5, 7));
        assert!(raced(0, 2), "someone created it first");
    }

    /// (name, policy, deliberate, ours, blind window, expected)
    type Case<'a> = (&'a str, OrderPolicy, bool, &'a str, Vec<BlindWrite<'a>>, RaceVerdict);

    #[test]
    fn race_table() {
        use OrderPolicy::*;
        let cases: Vec<Case<'_>> = vec![
            ("nobody else wrote", Numeric, false, "12", vec![], RaceVerdict::Keep),
            ("we overwrote an older value", Numeric, false, "12", vec![blind(6, "11")], RaceVerdict::Keep),
            ("we overwrote a newer value", Numeric, false, "11", vec![blind(6, "12")], restore("12", 6)),
            (
                "the newest of several is restored",
                Numeric,
                false,
                "11",
                vec![blind(6, "13"), blind(7, "12"), blind(8, "10")],
                restore("13", 6),
            ),
            ("the same value twice is no loss", Numeric, false, "12", vec![blind(6, "12")], RaceVerdict::Keep),
            ("semver", Semver, false, "1.2.0", vec![blind(6, "1.10.0")], restore("1.10.0", 6)),
            ("a pre-release is older", Semver, false, "1.2.0", vec![blind(6, "1.2.0-rc.1")], RaceVerdict::Keep),
            ("a pin wins on purpose", Numeric, true, "9", vec![blind(6, "12")], RaceVerdict::Keep),
            ("none: the last write wins", None, false, "a", vec![blind(6, "b")], RaceVerdict::Keep),
            (
                "a hand-written value that orders as nothing is not restored",
                Numeric,
                false,
                "11",
                vec![blind(6, "latest")],
                RaceVerdict::Keep,
            ),
        ];
        for (name, policy, deliberate, ours, window, expected) in cases {
            assert_eq!(after_write(policy, deliberate, tag(ours), &window), expected, "{name}");
        }
    }

    #[test]
    fn pushed_at_compares_push_times() {
        let at = |secs| Some(DateTime::from_secs(secs));
        let ours = TagFacts { tag: "aaa", pushed_at: at(100) };
        let newer = BlindWrite { version: 4, facts: TagFacts { tag: "bbb", pushed_at: at(200) } };
        let older = BlindWrite { version: 4, facts: TagFacts { tag: "ccc", pushed_at: at(50) } };
        let gone = BlindWrite { version: 4, facts: TagFacts { tag: "ddd", pushed_at: None } };
        assert_eq!(after_write(OrderPolicy::PushedAt, false, ours, &[newer]), restore("bbb", 4));
        assert_eq!(after_write(OrderPolicy::PushedAt, false, ours, &[older]), RaceVerdict::Keep);
        assert_eq!(after_write(OrderPolicy::PushedAt, false, ours, &[gone]), RaceVerdict::Keep);
    }
}
