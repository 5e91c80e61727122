//! One module per command: gather through the ports, decide, report.

pub mod change;
pub mod history;
pub mod redrive;
pub mod retry;
pub mod status;
