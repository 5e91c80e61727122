//! tagrelay's developer tasks: `cargo run -p xtask -- <task>` (the Makefile's `demo` and `bench`).
//!
//! * `demo`: the whole pipeline on the test bed's local AWS ([`demo`]).
//! * `bench`: sizes, cold start and warm invocation of record-image-tag ([`bench`]).
//! * `burst`: a deterministic burst of pushes, deployed two ways; writes
//!   `docs/burst-simulation.md` ([`burst`]).
//! * `scale`: 1,000 services × 10 environments on the local AWS, a burst of 1,000 pushes: AWS
//!   calls per event, invocation times, init and memory (`docs/performance.md`, [`scale`]).
//!
//! They print what they measure and assert nothing.

use std::process::ExitCode;

mod bench;
mod burst;
mod demo;
mod error;
mod scale;

use error::TaskError;

const USAGE: &str = "usage: cargo run -p xtask -- demo|bench|burst|scale [options]";

fn main() -> ExitCode {
    let Some(task) = std::env::args().nth(1) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match task.as_str() {
        "demo" => on_runtime(demo::run()),
        "bench" => on_runtime(bench::run()),
        "burst" => burst::run(),
        "scale" => match scale::Options::parse(std::env::args().skip(2)) {
            Ok(options) => on_runtime(scale::run(options)),
            Err(err) => {
                eprintln!("{err}; usage: cargo run -p xtask -- {}", scale::USAGE);
                return ExitCode::from(2);
            }
        },
        other => {
            eprintln!("no task {other:?}; {USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{task} failed: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a task that drives the test bed, on the multi-threaded runtime its emulators need.
fn on_runtime(task: impl std::future::Future<Output = Result<(), TaskError>>) -> Result<(), TaskError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| TaskError::Runtime { source })?;
    runtime.block_on(task)
}
