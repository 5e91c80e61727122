//! tagrelay core: configuration, events, naming, tag order, the decisions, the AWS ports and
//! their adapters, and telemetry. Decisions are pure; AWS is reached only through `aws`.

pub mod aws;
pub mod config;
pub mod deploy;
pub mod event;
pub mod lambda_init;
pub mod naming;
pub mod order;
pub mod record;
pub mod telemetry;
