//! What a command found, and how it is printed: a table, or `--output json`, plus the problems
//! that make the exit code 1. Every command's report implements `Render`, so printing is one path.

use std::io::Write;

use serde::Serialize;

use crate::args::Output;
use crate::error::{CliError, EXIT_PROBLEM};

/// A command's report. Its JSON is its `Serialize`.
pub trait Render: Serialize {
    /// The table an operator reads.
    fn render(&self) -> String;

    /// What needs a person, one line each; any makes the exit code 1.
    fn problems(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A rendered report, ready to print in either format.
pub struct Report {
    pub json: serde_json::Value,
    pub table: String,
    pub problems: Vec<String>,
}

impl Report {
    pub fn of<R: Render>(report: &R) -> Result<Self, CliError> {
        let json = serde_json::to_value(report).map_err(|err| CliError::Output(err.into()))?;
        Ok(Self { json, table: report.render(), problems: report.problems() })
    }

    /// Prints the report and returns the exit code.
    pub fn print(&self, output: Output, out: &mut impl Write, err: &mut impl Write) -> Result<u8, CliError> {
        match output {
            Output::Table => out.write_all(self.table.as_bytes())?,
            Output::Json => {
                serde_json::to_writer_pretty(&mut *out, &self.json).map_err(|e| CliError::Output(e.into()))?;
                writeln!(out)?;
            }
        }
        for problem in &self.problems {
            writeln!(err, "tagrelay: {problem}")?;
        }
        Ok(if self.problems.is_empty() { 0 } else { EXIT_PROBLEM })
    }
}
