//! Dependencies inside the crate point one way (docs/ARCHITECTURE.md §3): no module of
//! `shared/src` imports a module that imports it back, neither between the top-level modules
//! (`ports` ← `aws`, `event` ← `deploy`/`record`, …) nor between the files of one module. Read from
//! the source: every `crate::…` and `super::…` path outside `#[cfg(test)]`, `use` groups expanded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`deploy::handler`) → source file, for every file under `src/`.
fn modules(root: &Path) -> BTreeMap<String, PathBuf> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root).expect("under src/").with_extension("");
                let parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
                let parts: Vec<&str> = parts.iter().map(String::as_str).filter(|p| *p != "mod").collect();
                if parts != ["lib"] {
                    found.insert(parts.join("::"), path);
                }
            }
        }
    }
    found
}

/// The code of a file without its `#[cfg(test)]` part (tests may import anything).
fn production_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("a readable source file");
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Every path after `crate::` or `super::`, with `use` groups (`a::{b, c::d}`) expanded.
fn paths(code: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for anchor in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(at) = rest.find(anchor) {
            let preceded_by_word =
                at > 0 && rest[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_');
            let tail = &rest[at + anchor.len()..];
            rest = tail;
            if preceded_by_word {
                continue;
            }
            let kind = anchor.trim_end_matches("::").to_owned();
            for path in expand("", tail) {
                out.push((kind.clone(), path));
            }
        }
    }
    out
}

/// The paths a `use` tree starting at `text` names, each prefixed with `prefix`.
fn expand(prefix: &str, text: &str) -> Vec<String> {
    let head: String = text.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
    let after = &text[head.len()..];
    let joined = format!("{prefix}{head}");
    if !after.starts_with('{') {
        return vec![joined.trim_end_matches("::").to_owned()];
    }
    // A group: split its top level at commas.
    let mut depth = 0;
    let mut items = Vec::new();
    let mut start = 1;
    for (i, c) in after.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    items.push(&after[start..i]);
                    break;
                }
            }
            ',' if depth == 1 => {
                items.push(&after[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items
        .iter()
        .map(|item| item.trim())
        .filter(|item| !item.is_empty())
        .flat_map(|item| expand(&joined, item))
        .collect()
}

/// The longest known module a path names.
fn resolve(path: &str, known: &BTreeMap<String, PathBuf>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty() && *p != "self").collect();
    (1..=parts.len()).rev().map(|n| parts[..n].join("::")).find(|candidate| known.contains_key(candidate))
}

fn related(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
}

/// File-level edges: module → modules it names (not its own ancestors or descendants: a
/// `mod.rs` re-exports its children).
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let known = modules(&root);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, file) in &known {
        let is_mod_file = file.file_name().is_some_and(|n| n == "mod.rs");
        let parent = match (is_mod_file, module.rsplit_once("::")) {
            (true, _) => module.clone(),
            (false, Some((parent, _))) => parent.to_owned(),
            (false, None) => String::new(),
        };
        for (kind, path) in paths(&production_code(file)) {
            let full = if kind == "super" && !parent.is_empty() { format!("{parent}::{path}") } else { path };
            if let Some(target) = resolve(&full, &known) {
                if !related(module, &target) {
                    graph.entry(module.clone()).or_default().insert(target);
                }
            }
        }
    }
    graph
}

/// The first cycle found, as the modules along it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut found = stack[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, stack, done) {
                return Some(found);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn top(module: &str) -> String {
    module.split("::").next().unwrap_or(module).to_owned()
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let graph = edges();
    assert!(graph.values().map(BTreeSet::len).sum::<usize>() > 20, "the scan found too few imports: {graph:?}");
    assert_eq!(cycle(&graph), None);
}

#[test]
fn top_level_modules_depend_one_way() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, targets) in edges() {
        for to in targets {
            if top(&from) != top(&to) {
                graph.entry(top(&from)).or_default().insert(top(&to));
            }
        }
    }
    assert_eq!(cycle(&graph), None);
    // The ports are the core's: they import nothing of the adapters or the handlers.
    let ports = graph.get("ports").cloned().unwrap_or_default();
    assert!(ports.iter().all(|m| m == "names"), "ports imports {ports:?}");
    for core in ["event", "config", "order", "naming"] {
        let imports = graph.get(core).cloned().unwrap_or_default();
        assert!(
            !imports.iter().any(|m| ["aws", "deploy", "record", "lambda_init"].contains(&m.as_str())),
            "{core} imports {imports:?}"
        );
    }
}

#[test]
fn the_scan_sees_a_cycle_when_there_is_one() {
    let graph = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert_eq!(cycle(&graph), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    assert_eq!(
        expand("", "deploy::{handler::{Deployer, Summary}, observe};"),
        ["deploy::handler::Deployer", "deploy::handler::Summary", "deploy::observe"]
    );
}
