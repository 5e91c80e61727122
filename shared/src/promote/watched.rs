//! An alarm as promote reads it: its state now and its recent state changes. The gates of a
//! promotion and the rollback alarms of an environment are both read this way.

use crate::ports::{AlarmStatus, AlarmTransition};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedAlarm {
    pub name: String,
    /// `None` when CloudWatch does not know the alarm.
    pub status: Option<AlarmStatus>,
    /// Its state changes since the time the decision looks back to (a gate: the soak; a
    /// rollback alarm: the suspect's write), oldest first. Read only when the alarm changed
    /// state since then.
    pub changes: Vec<AlarmTransition>,
}
