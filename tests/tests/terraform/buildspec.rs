//! The commands of a CodeBuild buildspec phase, read from the YAML text the way infra/buildspec.yml
//! writes them (no YAML library: the file uses two forms only), so that a test can run them.
//!
//! ```yaml
//! phases:
//!   build:
//!     commands:
//!       - echo one line
//!       - |
//!         a block
//!         of lines
//! ```

/// The commands of `phases.<phase>.commands`, each as the shell text CodeBuild runs: a one-line
/// item as written, a `|` block with its indentation removed. Comment lines are skipped.
pub fn phase_commands(text: &str, phase: &str) -> Result<Vec<String>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |line: &str| line.len() - line.trim_start().len();
    let significant = |line: &str| !line.trim().is_empty() && !line.trim_start().starts_with('#');
    let find = |from: usize, wanted: &str, at: usize| {
        (from..lines.len())
            .take_while(|&i| !significant(lines[i]) || indent(lines[i]) >= at)
            .find(|&i| indent(lines[i]) == at && lines[i].trim() == wanted)
    };

    let phases = find(0, "phases:", 0).ok_or("no `phases:`")?;
    let phase_at = find(phases + 1, &format!("{phase}:"), 2).ok_or_else(|| format!("no phase `{phase}`"))?;
    let commands = find(phase_at + 1, "commands:", 4).ok_or_else(|| format!("phase `{phase}` has no `commands:`"))?;

    let mut found = Vec::new();
    let mut i = commands + 1;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if !significant(line) {
            continue;
        }
        if indent(line) <= 4 {
            break;
        }
        let item = line
            .trim_start()
            .strip_prefix("- ")
            .filter(|_| indent(line) == 6)
            .ok_or_else(|| format!("line {i}: expected a `- ` command item at indentation 6: {line}"))?;
        if item != "|" {
            found.push(item.to_owned());
            continue;
        }
        let mut block = Vec::new();
        while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) > 6) {
            block.push(lines[i]);
            i += 1;
        }
        while block.last().is_some_and(|line| line.trim().is_empty()) {
            block.pop();
        }
        let base = block.iter().filter(|line| !line.trim().is_empty()).map(|line| indent(line)).min().unwrap_or(0);
        let dedented: Vec<&str> = block.iter().map(|line| line.get(base..).unwrap_or_default()).collect();
        found.push(format!("{}\n", dedented.join("\n")));
    }
    Ok(found)
}
