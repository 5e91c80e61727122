//! tagrelay's end-to-end scenarios run on the test bed (`tagrelay-testbed`); this library holds
//! what they and `xtask` share: [`events`], EventBridge events as AWS delivers them.
//!
//! The scenarios are in `tests/tests/`, the AWS sample events in `tests/fixtures/events/`, the
//! offline Terraform checks in `tests/tests/infra_terraform.rs`.

pub mod events;
