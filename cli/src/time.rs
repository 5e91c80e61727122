//! Times as operators read them: RFC 3339, UTC, whole seconds.

use std::time::SystemTime;

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;

pub fn format(at: DateTime) -> String {
    DateTime::from_secs(at.secs()).fmt(Format::DateTime).unwrap_or_else(|_| at.secs().to_string())
}

pub fn format_opt(at: Option<DateTime>) -> Option<String> {
    at.map(format)
}

pub fn now() -> DateTime {
    DateTime::from(SystemTime::now())
}
