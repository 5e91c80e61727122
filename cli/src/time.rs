//! Times and durations as operators read and type them: RFC 3339, UTC, whole seconds; `90s`.

use std::time::{Duration, SystemTime};

use aws_smithy_types::DateTime;

pub fn format(at: DateTime) -> String {
    tagrelay::timestamp::format(at)
}

pub fn format_opt(at: Option<DateTime>) -> Option<String> {
    at.map(format)
}

pub fn now() -> DateTime {
    DateTime::from(SystemTime::now())
}

/// `90s`, `30m`, `2h`, `1d` (the core's durations); a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let with_unit =
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) { format!("{text}s") } else { text.to_owned() };
    tagrelay::duration::parse_duration(&with_unit).map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_the_cores_and_a_bare_number_is_seconds() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 2h "), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        for bad in ["", "m", "1w", "-1s", "1.5h", "99999999999999999999"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
