//! Which environments an event concerns (pure). In promotion order, so an upstream rollback is
//! decided before a promotion out of that environment.

use super::super::event::promote::PromoteEvent;
use crate::config::{Config, Environment};

crate::names::named_enum! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum IgnoreReason {
        /// A parameter change that is no release record feeding a promotion and no approval.
        NotAPromoteParameter => "not_a_promote_parameter",
        /// An alarm no environment gates on or rolls back on.
        UnknownAlarm => "unknown_alarm",
    }
}

/// The environments to decide for, or why the event concerns none.
pub fn environments<'a>(config: &'a Config, event: &PromoteEvent) -> Result<Vec<&'a Environment>, IgnoreReason> {
    let concerned: Vec<&Environment> = match event {
        PromoteEvent::ParameterChange(change) => {
            let name = change.name.as_str();
            config
                .environments()
                .filter(|e| {
                    let upstream = e.promote_from.as_deref().and_then(|u| config.environment(u));
                    let fed = upstream.is_some_and(|u| u.release_parameter() == name);
                    let own_release = !e.rollback_alarms.is_empty() && e.release_parameter() == name;
                    let approved = e.approval && e.approval_parameter() == name;
                    fed || own_release || approved
                })
                .collect()
        }
        PromoteEvent::AlarmStateChange(change) => {
            let alarm = &change.alarm_name;
            config
                .environments()
                .filter(|e| e.gate_alarms.contains(alarm) || e.rollback_alarms.contains(alarm))
                .collect()
        }
        PromoteEvent::Scheduled => {
            config.environments().filter(|e| e.promote_from.is_some() || !e.rollback_alarms.is_empty()).collect()
        }
    };
    if concerned.is_empty() {
        return Err(match event {
            PromoteEvent::AlarmStateChange(_) => IgnoreReason::UnknownAlarm,
            _ => IgnoreReason::NotAPromoteParameter,
        });
    }
    // Promotion order (a schedule with nothing configured is an empty list, not an error).
    Ok(config.chain().into_iter().filter(|e| concerned.iter().any(|c| c.name == e.name)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::cloudwatch::AlarmStateChange;
    use crate::event::ssm::{Operation, ParameterChange};
    use crate::ports::AlarmState;

    fn alarm(name: &str) -> PromoteEvent {
        let change = AlarmStateChange {
            alarm_name: name.into(),
            state: AlarmState::Alarm,
            previous_state: None,
            state_timestamp: None,
        };
        PromoteEvent::AlarmStateChange(change)
    }

    fn config() -> Config {
        let doc = serde_json::json!({
            "environments": {
                "dev": { "rollback_alarms": ["dev-5xx"] },
                "staging": { "promote_from": "dev", "gate_alarms": ["dev-5xx"] },
                "prod": { "promote_from": "staging", "approval": true, "rollback_alarms": ["prod-5xx"] },
                "sandbox": {}
            },
            "services": { "web": { "deploy_on_push": ["dev", "sandbox"] } }
        });
        Config::from_json(&doc.to_string()).expect("valid")
    }

    fn names(result: Result<Vec<&Environment>, IgnoreReason>) -> Result<Vec<String>, IgnoreReason> {
        result.map(|list| list.into_iter().map(|e| e.name.clone()).collect())
    }

    fn parameter(name: &str) -> PromoteEvent {
        PromoteEvent::ParameterChange(ParameterChange {
            operation: Operation::Update,
            name: name.into(),
            description: None,
        })
    }

    #[test]
    fn each_event_concerns_the_environments_it_can_change_in_promotion_order() {
        let config = config();
        let cases: [(PromoteEvent, Result<Vec<&str>, IgnoreReason>); 8] = [
            (parameter("/tagrelay/dev/verified"), Ok(vec!["dev", "staging"])),
            (parameter("/tagrelay/staging/verified"), Ok(vec!["prod"])),
            (parameter("/tagrelay/prod/verified"), Ok(vec!["prod"])),
            (parameter("/tagrelay/prod/approval"), Ok(vec!["prod"])),
            (parameter("/tagrelay/staging/approval"), Err(IgnoreReason::NotAPromoteParameter)),
            (parameter("/tagrelay/prod/rollback"), Err(IgnoreReason::NotAPromoteParameter)),
            (alarm("dev-5xx"), Ok(vec!["dev", "staging"])),
            (PromoteEvent::Scheduled, Ok(vec!["dev", "staging", "prod"])),
        ];
        for (event, expected) in cases {
            let expected = expected.map(|list| list.into_iter().map(str::to_owned).collect());
            assert_eq!(names(environments(&config, &event)), expected, "{event:?}");
        }
        assert_eq!(names(environments(&config, &alarm("other"))), Err(IgnoreReason::UnknownAlarm));
    }
}
