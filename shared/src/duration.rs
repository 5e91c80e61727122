//! Durations as people write them in the configuration and on the command line: `90s`, `30m`,
//! `2h`, `1d`. One parser, so `verify_timeout` and `tagrelay status --stale-after` read alike.

use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    #[error("`{0}` is not a duration such as 90s, 30m, 2h or 1d")]
    NotADuration(String),
    #[error("`{0}`: the unit must be s, m, h or d")]
    Unit(String),
    #[error("`{0}` is too long")]
    TooLong(String),
}

/// `<n>s|m|h|d`: a whole number and a unit.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| DurationError::NotADuration(text.to_owned()))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "" => return Err(DurationError::NotADuration(text.to_owned())),
        _ => return Err(DurationError::Unit(text.to_owned())),
    };
    number.checked_mul(seconds).map(Duration::from_secs).ok_or_else(|| DurationError::TooLong(text.to_owned()))
}

/// `90s`, `30m`, `2h`: the largest unit that divides it.
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0 => "0s".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "m", "30", " 30m", "30m ", "1w", "-1s", "1.5h", "30 m", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_duration("1w"), Err(DurationError::Unit("1w".into())));
    }

    #[test]
    fn formatting_reads_back() {
        for text in ["0s", "90s", "30m", "2h", "1d", "61m"] {
            let parsed = parse_duration(text).expect("valid");
            assert_eq!(parse_duration(&format_duration(parsed)), Ok(parsed), "{text}");
        }
        assert_eq!(format_duration(Duration::from_secs(1800)), "30m");
    }
}
