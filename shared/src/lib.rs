//! tagrelay core: configuration, events, naming, tag order, the decisions, the ports (the AWS
//! calls as traits, and the records they exchange) and their SDK adapters, and telemetry.
//! Decisions are pure; AWS is reached only through `ports`, implemented by `aws`.

pub mod aws;
pub mod config;
pub mod deploy;
pub mod document;
pub mod duration;
pub mod event;
pub mod handler;
pub mod lambda_init;
mod names;
pub mod naming;
pub mod order;
pub mod ports;
pub mod promote;
pub mod record;
pub mod telemetry;
pub mod time_budget;
pub mod timestamp;
