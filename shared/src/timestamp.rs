//! Times as tagrelay's records hold them: RFC 3339, UTC, whole seconds (`2026-11-30T12:40:31Z`).
//! One format for release, rollback and approval records, so they compare as times.

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;

/// `at`, truncated to the second.
pub fn format(at: DateTime) -> String {
    DateTime::from_secs(at.secs()).fmt(Format::DateTime).unwrap_or_else(|_| at.secs().to_string())
}

/// A record's time; `None` for text that is none (a hand-edited record).
pub fn parse(text: &str) -> Option<DateTime> {
    DateTime::from_str(text, Format::DateTime).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_at_whole_seconds() {
        let at = DateTime::from_fractional_secs(1_796_042_431, 0.7);
        assert_eq!(format(at), "2026-11-30T12:40:31Z");
        assert_eq!(parse("2026-11-30T12:40:31Z"), Some(DateTime::from_secs(1_796_042_431)));
        assert_eq!(parse("yesterday"), None);
    }
}
