//! Offline checks of infra/: parsing (hcl-rs), names against the AWS provider's schema, the
//! cross-checks with the code (environment variables) and the fixtures (event rules), and what
//! the expressions that decide a deploy's fate evaluate to (eval, policy, buildspec).

pub mod buildspec;
pub mod code_env;
pub mod eval;
pub mod event_rules;
pub mod files;
pub mod hcl_read;
pub mod policy;
pub mod schema;
pub mod versions;
