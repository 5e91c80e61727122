//! The one shape of a function's handler: a JSON event in, a response or a typed error out.
//! Lambda serves it (`lambda_init::serve`) and the operator replays dead-lettered events through
//! it (`tagrelay redrive`), so both see the same response and the same errors.

use std::fmt::Display;
use std::future::Future;

pub use lambda_runtime::Diagnostic;
use serde::Serialize;
use tracing::error;

use crate::event::EventError;

/// A function's handler (`Recorder`, `Deployer`).
pub trait Handler {
    /// The function's response (a `Summary`).
    type Response: Serialize;
    type Error: HandlerError;

    /// Handles one invocation. Events not acted on return `Ok` with the reason; an invalid event
    /// or a failing AWS call returns `Err`, so Lambda retries and then dead-letters it.
    fn handle(&self, event: &serde_json::Value) -> impl Future<Output = Result<Self::Response, Self::Error>>;
}

/// A handler's error. An unreadable payload becomes one (`From<EventError>`) before any handler
/// runs, so it fails like any other invalid event.
pub trait HandlerError: std::error::Error + From<EventError> {
    /// Lambda's `errorType` for this error: what the invocation reports and alarms see.
    fn error_type(&self) -> &'static str;

    /// Whether the handler already logged this failure, one line per environment or service;
    /// otherwise [`log_failure`] logs the event's one line.
    fn logged(&self) -> bool;
}

/// The invocation's error as Lambda reports it: the one mapping of every handler error.
pub fn diagnostic<E: HandlerError>(err: &E) -> Diagnostic {
    Diagnostic { error_type: err.error_type().to_owned(), error_message: err.to_string() }
}

/// The one `decision="error"` line of an event that failed as a whole (an invalid event, a
/// failing read), unless the handler logged its parts already.
pub fn log_failure<E: HandlerError>(err: &E) {
    if !err.logged() {
        error!(decision = "error", error = %err, "event not handled; it will be retried");
    }
}

/// The failures of several environments or services, in one error message.
pub fn join<E: Display>(errors: &[E]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_join_in_order() {
        assert_eq!(join(&["a failed", "b failed"]), "a failed; b failed");
        assert_eq!(join::<&str>(&[]), "");
    }
}
