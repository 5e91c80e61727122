//! promote: moves verified releases on through the chain (dev → staging → prod) behind gates
//! (soak, alarms, approval), and rolls an environment back when its alarm fires. Pure decisions
//! in `decision.rs` and `rollback.rs`; the records in `records.rs`; the reads in `observe.rs`;
//! the function in `handler.rs`; the CLI's `approve` and `rollback` in `operator.rs`.

pub mod decision;
pub mod handler;
pub mod observe;
pub mod operator;
pub mod outcome;
pub mod promoter;
pub mod records;
pub mod rollback;
pub mod trigger;
pub mod watched;

pub use promoter::Promoter;
