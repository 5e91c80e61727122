//! Which environment variables the functions' code reads, found in the source: every
//! `env::var(…)` / `env::var_os(…)` call, its argument a string literal or a `&str` constant
//! defined in the scanned sources (`pub const CONFIG_ENV: &str = "TAGRELAY_CONFIG";`). A lexical
//! scan, not a compiler: lines that start with `//` are skipped, and an argument that is neither
//! a literal nor a known constant is reported as unresolved so that a test decides about it
//! rather than the scan guessing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const CALLS: [&str; 4] = ["env::var(", "env::var_os(", "env::vars(", "env::vars_os("];

/// Where a variable is read: `shared/src/config.rs:141`.
pub type Location = String;

#[derive(Debug, Default)]
pub struct EnvReads {
    /// Variable name → where it is read.
    pub names: BTreeMap<String, Vec<Location>>,
    /// Calls whose argument the scan cannot resolve: (where, the argument as written).
    pub unresolved: Vec<(Location, String)>,
}

impl EnvReads {
    pub fn merge(&mut self, other: EnvReads) {
        for (name, locations) in other.names {
            self.names.entry(name).or_default().extend(locations);
        }
        self.unresolved.extend(other.unresolved);
    }
}

/// A scanned source file: its name for messages and its text.
pub struct Source {
    pub name: String,
    pub text: String,
}

/// Every `.rs` file under `root/dir`, recursively.
pub fn sources(root: &Path, dir: &str) -> Result<Vec<Source>, String> {
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut pending = vec![root.join(dir)];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current).map_err(|err| format!("{}: {err}", current.display()))?;
        for entry in entries {
            let path = entry.map_err(|err| format!("{}: {err}", current.display()))?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|err| format!("{}: {err}", path.display()))?;
            Ok(Source { name: path.strip_prefix(root).unwrap_or(&path).display().to_string(), text })
        })
        .collect()
}

/// `const NAME: &str = "value";` definitions (any visibility) in `sources`. A name defined twice
/// with different values is left out: an argument naming it then stays unresolved.
pub fn str_constants(sources: &[Source]) -> BTreeMap<String, String> {
    let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
    for source in sources {
        for line in code_lines(&source.text) {
            if let Some((name, value)) = str_constant(line.1) {
                let entry = seen.entry(name.to_owned()).or_insert_with(|| Some(value.to_owned()));
                if entry.as_deref() != Some(value) {
                    *entry = None;
                }
            }
        }
    }
    seen.into_iter().filter_map(|(name, value)| Some((name, value?))).collect()
}

fn str_constant(line: &str) -> Option<(&str, &str)> {
    let mut rest = line.trim();
    for visibility in ["pub(crate) ", "pub(super) ", "pub "] {
        rest = rest.strip_prefix(visibility).unwrap_or(rest);
    }
    let rest = rest.strip_prefix("const ")?;
    let (name, rest) = rest.split_once(':')?;
    let rest = rest.trim_start();
    let rest = rest.strip_prefix("&'static str").or_else(|| rest.strip_prefix("&str"))?;
    let value = rest.trim_start().strip_prefix('=')?.trim().strip_suffix(';')?;
    Some((name.trim(), string_literal(value)?))
}

/// `"TEXT"` without escapes → `TEXT`.
fn string_literal(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains(['"', '\\'])).then_some(inner)
}

/// The environment reads in `source`, resolving constant names with `constants`.
pub fn env_reads(source: &Source, constants: &BTreeMap<String, String>) -> EnvReads {
    let mut reads = EnvReads::default();
    for (line_number, line) in code_lines(&source.text) {
        for call in CALLS {
            let mut rest = line;
            while let Some(start) = rest.find(call) {
                let after = &rest[start + call.len()..];
                let argument = after.find(')').map_or(after, |end| &after[..end]).trim();
                let at = format!("{}:{line_number}", source.name);
                match resolve(argument, constants) {
                    Some(name) => reads.names.entry(name.to_owned()).or_default().push(at),
                    None => reads.unresolved.push((at, format!("{call}{argument})"))),
                }
                rest = after;
            }
        }
    }
    reads
}

/// A literal, or a constant by its name or path (`CONFIG_ENV`, `tagrelay::config::CONFIG_ENV`).
fn resolve<'a>(argument: &'a str, constants: &'a BTreeMap<String, String>) -> Option<&'a str> {
    if let Some(literal) = string_literal(argument) {
        return Some(literal);
    }
    let name = argument.rsplit("::").next()?;
    let is_path = argument.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if is_path && !name.is_empty() {
        constants.get(name).map(String::as_str)
    } else {
        None
    }
}

/// (1-based line number, line) of every line that is not a `//` comment.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, line)| (i + 1, line)).filter(|(_, line)| !line.trim_start().starts_with("//"))
}

/// Compares the variables the code reads with those Terraform sets (name → where). Returns one
/// message per difference, naming the variable and where it is read or set.
pub fn compare(what: &str, reads: &BTreeMap<String, Vec<Location>>, set: &BTreeMap<String, Location>) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, locations) in reads {
        if !set.contains_key(name) {
            problems.push(format!("{name} is read by {what} ({}) but Terraform does not set it", locations.join(", ")));
        }
    }
    for (name, at) in set {
        if !reads.contains_key(name) {
            problems.push(format!("{name} is set for {what} at {at} but the code never reads it"));
        }
    }
    problems
}
