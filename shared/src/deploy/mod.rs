//! trigger-deploy: is an environment's deployed state behind its parameters? Start at most one
//! Terraform run per environment, coalescing every change that lands while one runs.

pub mod deployer;
pub mod fingerprint;
pub mod handler;
pub mod history;
pub mod included;
pub mod manifest;
pub mod observe;
pub mod outcome;
pub mod reconcile;
pub mod refusal;
pub mod release;
pub mod trigger;
pub mod verify;

pub use deployer::Deployer;
pub use outcome::{DeployError, EnvironmentOutcome, Outcome, ReconcileError, Summary};
pub use reconcile::{Decision, StartReason, Trigger};
pub use trigger::{IgnoreReason, Ignored};
