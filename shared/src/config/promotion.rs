//! The promotion fields of an environment (`promote_from`, `soak`, `gate_alarms`, `approval`,
//! `rollback_alarms`, `rollback_window`) and the checks that span environments and services:
//! the chain names defined environments and does not loop, and an environment fed by promotion
//! takes no pushes (one source of tags per environment).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{ConfigError, Environment, Problem, RawEnvironment, Service};
use crate::duration::parse_duration;

/// `soak`: at most a week (a longer one is a release train, not a soak).
pub(super) const SOAK_RANGE: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(7 * 86_400));
/// `rollback_window`: ECS needs a minute to show anything; CloudWatch keeps alarm history 30 days.
pub(super) const ROLLBACK_WINDOW_RANGE: (Duration, Duration) =
    (Duration::from_secs(60), Duration::from_secs(7 * 86_400));
pub const DEFAULT_ROLLBACK_WINDOW: Duration = Duration::from_secs(30 * 60);
/// CloudWatch alarm names: 1 to 255 characters.
const MAX_ALARM_NAME: usize = 255;

/// The validated promotion fields of one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Promotion {
    pub promote_from: Option<String>,
    pub soak: Duration,
    pub gate_alarms: Vec<String>,
    pub approval: bool,
    pub rollback_alarms: Vec<String>,
    pub rollback_window: Duration,
}

/// Checks one environment's promotion fields on their own; `check_chain` checks them together.
pub(super) fn promotion(name: &str, raw: &RawEnvironment) -> Result<Promotion, ConfigError> {
    let field = |suffix: &str| format!("environments.{name}.{suffix}");
    let duration = |text: Option<String>, suffix: &str, default: Duration, range: (Duration, Duration)| match text {
        None => Ok(default),
        Some(text) => {
            let value = parse_duration(&text).map_err(|err| ConfigError::invalid(field(suffix), err.into()))?;
            if (range.0..=range.1).contains(&value) {
                Ok(value)
            } else {
                Err(ConfigError::invalid(field(suffix), Problem::OutOfRange { value, range }))
            }
        }
    };
    let alarms = |names: Option<Vec<String>>, suffix: &str| -> Result<Vec<String>, ConfigError> {
        let names = names.unwrap_or_default();
        for (index, alarm) in names.iter().enumerate() {
            let at = || field(&format!("{suffix}[{index}]"));
            if alarm.is_empty() || alarm.chars().count() > MAX_ALARM_NAME || alarm.chars().any(char::is_control) {
                return Err(ConfigError::invalid(at(), Problem::AlarmName(alarm.clone())));
            }
            if names[..index].contains(alarm) {
                return Err(ConfigError::invalid(at(), Problem::DuplicateAlarm(alarm.clone())));
            }
        }
        Ok(names)
    };
    let soak = duration(raw.soak.clone(), "soak", Duration::ZERO, SOAK_RANGE)?;
    let gate_alarms = alarms(raw.gate_alarms.clone(), "gate_alarms")?;
    let approval = raw.approval.unwrap_or(false);
    if raw.promote_from.is_none() {
        // Gates without a source would silently gate nothing.
        let gated = [("soak", raw.soak.is_some()), ("gate_alarms", raw.gate_alarms.is_some()), ("approval", approval)];
        if let Some((suffix, _)) = gated.iter().find(|(_, set)| *set) {
            return Err(ConfigError::invalid(field(suffix), Problem::GateWithoutSource));
        }
    }
    Ok(Promotion {
        promote_from: raw.promote_from.clone(),
        soak,
        gate_alarms,
        approval,
        rollback_alarms: alarms(raw.rollback_alarms.clone(), "rollback_alarms")?,
        rollback_window: duration(
            raw.rollback_window.clone(),
            "rollback_window",
            DEFAULT_ROLLBACK_WINDOW,
            ROLLBACK_WINDOW_RANGE,
        )?,
    })
}

/// Every `promote_from` names another defined environment, and following them never comes
/// back to where it started.
pub(super) fn check_chain(environments: &BTreeMap<String, Environment>) -> Result<(), ConfigError> {
    for environment in environments.values() {
        let Some(upstream) = environment.promote_from.as_deref() else { continue };
        let field = format!("environments.{}.promote_from", environment.name);
        if !environments.contains_key(upstream) {
            return Err(ConfigError::invalid(field, Problem::UnknownEnvironment(upstream.to_owned())));
        }
        let mut chain = vec![environment.name.clone()];
        let mut next = Some(upstream);
        while let Some(name) = next {
            chain.push(name.to_owned());
            if name == environment.name {
                return Err(ConfigError::invalid(field, Problem::PromotionLoop(chain.join(" ← "))));
            }
            next = environments.get(name).and_then(|e| e.promote_from.as_deref());
        }
    }
    Ok(())
}

/// An environment fed by promotion takes no pushes: two sources of tags would overwrite each
/// other's releases.
pub(super) fn check_push_targets(
    environments: &BTreeMap<String, Environment>,
    services: &BTreeMap<String, Service>,
) -> Result<(), ConfigError> {
    for service in services.values() {
        for (index, name) in service.deploy_on_push.iter().enumerate() {
            if let Some(upstream) = environments.get(name).and_then(|e| e.promote_from.as_deref()) {
                return Err(ConfigError::invalid(
                    format!("services.{}.deploy_on_push[{index}]", service.name),
                    Problem::PromotedEnvironment { environment: name.clone(), upstream: upstream.to_owned() },
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::config::{Config, ConfigError};

    fn parse(doc: serde_json::Value) -> Result<Config, ConfigError> {
        Config::from_json(&doc.to_string())
    }

    fn chain(staging: serde_json::Value, prod: serde_json::Value) -> serde_json::Value {
        json!({
            "environments": { "dev": {}, "staging": staging, "prod": prod },
            "services": { "web": { "deploy_on_push": ["dev"] } }
        })
    }

    #[test]
    fn the_documented_chain_parses_with_its_defaults() {
        let config = parse(chain(
            json!({ "promote_from": "dev", "soak": "15m", "gate_alarms": ["dev-api-5xx"] }),
            json!({ "promote_from": "staging", "soak": "1h", "approval": true, "gate_alarms": ["staging-api-5xx"],
                    "rollback_alarms": ["prod-api-5xx"], "rollback_window": "30m" }),
        ))
        .expect("valid");
        let dev = config.environment("dev").expect("dev");
        assert_eq!((dev.promote_from.as_deref(), dev.soak, dev.approval), (None, std::time::Duration::ZERO, false));
        assert_eq!(dev.rollback_window, super::DEFAULT_ROLLBACK_WINDOW);
        let prod = config.environment("prod").expect("prod");
        assert_eq!(prod.promote_from.as_deref(), Some("staging"));
        assert_eq!(prod.soak.as_secs(), 3600);
        assert!(prod.approval);
        assert_eq!(prod.rollback_alarms, ["prod-api-5xx"]);
        assert_eq!(config.chain().iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["dev", "staging", "prod"]);
        assert_eq!(config.downstream_of("dev").iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["staging"]);
        assert_eq!(prod.approval_parameter(), "/tagrelay/prod/approval");
        assert_eq!(prod.rollback_parameter(), "/tagrelay/prod/rollback");
    }

    #[test]
    fn bad_promotion_fields_are_refused_naming_the_field() {
        let cases = [
            (
                chain(json!({ "promote_from": "qa" }), json!({})),
                "environments.staging.promote_from",
                "\"qa\" is not defined",
            ),
            (
                chain(json!({ "promote_from": "staging" }), json!({})),
                "environments.staging.promote_from",
                "staging ← staging",
            ),
            (
                chain(json!({ "promote_from": "prod" }), json!({ "promote_from": "staging" })),
                "environments.prod.promote_from",
                "prod ← staging ← prod",
            ),
            (
                chain(json!({ "promote_from": "dev", "soak": "8d" }), json!({})),
                "environments.staging.soak",
                "outside 0s..=7d",
            ),
            (
                chain(json!({ "promote_from": "dev", "soak": "15" }), json!({})),
                "environments.staging.soak",
                "not a duration",
            ),
            (
                chain(json!({ "rollback_window": "30s" }), json!({})),
                "environments.staging.rollback_window",
                "outside 1m..=7d",
            ),
            (
                chain(json!({ "promote_from": "dev", "gate_alarms": [""] }), json!({})),
                "environments.staging.gate_alarms[0]",
                "alarm name",
            ),
            (
                chain(json!({ "rollback_alarms": ["a", "b\u{7}"] }), json!({})),
                "environments.staging.rollback_alarms[1]",
                "alarm name",
            ),
            (
                chain(json!({ "rollback_alarms": ["a", "a"] }), json!({})),
                "environments.staging.rollback_alarms[1]",
                "twice",
            ),
            (chain(json!({ "approval": true }), json!({})), "environments.staging.approval", "without promote_from"),
            (chain(json!({ "soak": "1m" }), json!({})), "environments.staging.soak", "without promote_from"),
            (
                chain(json!({ "gate_alarms": [] }), json!({})),
                "environments.staging.gate_alarms",
                "without promote_from",
            ),
            (chain(json!({ "approval": "yes" }), json!({})), "environments.staging.approval", "expected a boolean"),
        ];
        for (doc, field, words) in cases {
            let err = parse(doc.clone()).expect_err("invalid");
            assert_eq!(err.field(), field, "{doc}: {err}");
            assert!(err.to_string().contains(words), "{err} should say {words:?}");
        }
        // Rollback alone needs no source: an environment fed by pushes may roll back too.
        assert!(parse(chain(json!({ "rollback_alarms": ["dev-5xx"] }), json!({}))).is_ok());
        assert!(parse(chain(json!({ "promote_from": "dev", "soak": "0s", "approval": false }), json!({}))).is_ok());
    }

    #[test]
    fn an_environment_fed_by_promotion_takes_no_pushes() {
        let doc = json!({
            "environments": { "dev": {}, "prod": { "promote_from": "dev" } },
            "services": { "web": { "deploy_on_push": ["dev"] }, "api": { "deploy_on_push": ["dev", "prod"] } }
        });
        let err = parse(doc).expect_err("two sources");
        assert_eq!(err.field(), "services.api.deploy_on_push[1]", "{err}");
        assert!(err.to_string().contains("promoted from \"dev\""), "{err}");
    }
}
