//! What promote reads of CloudWatch: the state of the gate and rollback alarms
//! (`DescribeAlarms`, metric and composite alike) and when they changed state
//! (`DescribeAlarmHistory`, `StateUpdate` items). The promotion and rollback decisions read only
//! these.

use std::future::Future;

use aws_smithy_types::DateTime;

use super::AwsError;

/// DescribeAlarms takes at most 100 alarm names per call; the adapter splits longer lists.
pub const DESCRIBE_ALARMS_MAX: usize = 100;

crate::names::named_enum! {
    /// An alarm's `StateValue`, by CloudWatch's names.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum AlarmState {
        Ok => "OK",
        Alarm => "ALARM",
        InsufficientData => "INSUFFICIENT_DATA",
    }
}

/// One alarm as DescribeAlarms answers for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmStatus {
    pub name: String,
    pub state: AlarmState,
    /// `StateTransitionedTimestamp`: when the state value last changed (not its reason).
    /// CloudWatch leaves it out for an alarm that never changed state.
    pub transitioned_at: Option<DateTime>,
}

/// One state change of an alarm, from its history (`HistoryData`'s `oldState`/`newState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmTransition {
    pub at: DateTime,
    pub from: AlarmState,
    pub to: AlarmState,
}

pub trait Alarms {
    /// The named alarms, metric and composite, in no particular order; names CloudWatch does
    /// not know are left out (the caller treats a missing gate alarm as blocking).
    fn describe_alarms(&self, names: &[String]) -> impl Future<Output = Result<Vec<AlarmStatus>, AwsError>> + Send;

    /// The alarm's state changes at or after `since`, oldest first (`HistoryItemType`
    /// `StateUpdate`; CloudWatch keeps 30 days). Items whose `HistoryData` is not a state change
    /// are left out; an alarm CloudWatch does not know has none.
    fn state_changes(
        &self,
        name: &str,
        since: DateTime,
    ) -> impl Future<Output = Result<Vec<AlarmTransition>, AwsError>> + Send;
}
