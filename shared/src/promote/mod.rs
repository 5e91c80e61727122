//! promote: moves verified releases on through the chain (dev → staging → prod) behind gates
//! (soak, alarms, approval), and rolls an environment back when its alarm fires. Pure decisions
//! in `decision.rs` and `rollback.rs`; the records in `records.rs`.

pub mod decision;
pub mod records;
pub mod rollback;
