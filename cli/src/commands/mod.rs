//! One module per command, each owning its clap arguments (`<Command>Args`), its `run` on the
//! `Context`, and its report's rendering (`report::Render`). A new command is a file here and a
//! variant of `args::Command` with its arm in `lib.rs` `run`.

pub mod approve;
pub mod change;
pub mod history;
pub mod redrive;
pub mod releases;
pub mod retry;
pub mod rollback;
pub mod status;
pub mod trace;
