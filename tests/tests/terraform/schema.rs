//! The AWS provider's schema, as extracted by tests/infra/extract_provider_schema.py from the
//! pinned `@cdktf/provider-aws`, and the check of infra/'s `resource` and `data` blocks against it:
//! every type exists, and every argument and nested block name (recursively, `dynamic` blocks
//! included) is one the provider knows. Terraform would refuse the others at `init`/`plan`; this
//! finds them without Terraform.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use hcl::edit::structure::{Block, Body, Structure};
use serde::Deserialize;

use super::files::TfFile;
use super::hcl_read::{declarations, Declaration, DeclarationKind};

/// Meta-arguments Terraform accepts in every `resource` and `data` block.
const META_ARGUMENTS: [&str; 4] = ["count", "for_each", "depends_on", "provider"];
const META_BLOCKS: [&str; 3] = ["lifecycle", "provisioner", "connection"];
/// The arguments of a `dynamic "x" { ... }` block besides its `content` block.
const DYNAMIC_ARGUMENTS: [&str; 3] = ["for_each", "iterator", "labels"];
/// Resource types of Terraform itself (provider `terraform.io/builtin/terraform`).
const BUILTIN_RESOURCES: [&str; 1] = ["terraform_data"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSchema {
    pub generated_by: String,
    pub package: String,
    pub package_version: String,
    pub provider: String,
    pub provider_version: String,
    pub resource_types: BTreeSet<String>,
    pub data_source_types: BTreeSet<String>,
    pub resources: BTreeMap<String, BlockSchema>,
    pub data_sources: BTreeMap<String, BlockSchema>,
}

/// What may appear inside one block: arguments (`name = ...`) and nested blocks (`name { ... }`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockSchema {
    pub arguments: BTreeSet<String>,
    pub blocks: BTreeMap<String, BlockSchema>,
}

impl ProviderSchema {
    pub fn load(path: &Path) -> Result<ProviderSchema, String> {
        let text = std::fs::read_to_string(path).map_err(|err| format!("{}: {err}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|err| format!("{}:{}: not a provider schema extract: {err}", path.display(), err.line()))
    }

    fn types(&self, kind: DeclarationKind) -> (&BTreeSet<String>, &BTreeMap<String, BlockSchema>) {
        match kind {
            DeclarationKind::Resource => (&self.resource_types, &self.resources),
            DeclarationKind::Data => (&self.data_source_types, &self.data_sources),
        }
    }
}

/// One name the provider does not know, or a block the check cannot read.
#[derive(Debug)]
pub struct Finding {
    /// `file:line`
    pub at: String,
    /// `aws_lambda_function.this`
    pub address: String,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.at, self.address, self.message)
    }
}

/// What the check looked at, so a test can tell a real pass from an empty one.
#[derive(Debug, Default)]
pub struct Coverage {
    pub declarations: usize,
    /// `aws_x` for resource types, `data.aws_x` for data sources.
    pub types: BTreeSet<String>,
    /// Argument occurrences checked (meta-arguments not counted).
    pub arguments: usize,
    /// Nested block occurrences checked (`dynamic` ones included).
    pub blocks: usize,
}

/// Checks every `resource` and `data` block of `file`.
pub fn check_file(schema: &ProviderSchema, file: &TfFile, coverage: &mut Coverage) -> Vec<Finding> {
    let (found, malformed) = declarations(file);
    let mut findings: Vec<Finding> = malformed
        .into_iter()
        .map(|m| Finding { at: file.at(m.block), address: m.block.ident.as_str().to_owned(), message: m.problem })
        .collect();
    for declaration in &found {
        let mut check = Check { file, address: declaration.address(), findings: &mut findings, coverage };
        check.declaration(schema, declaration);
    }
    findings
}

struct Check<'a> {
    file: &'a TfFile,
    address: String,
    findings: &'a mut Vec<Finding>,
    coverage: &'a mut Coverage,
}

impl Check<'_> {
    fn report(&mut self, node: &impl hcl::edit::Span, message: String) {
        self.findings.push(Finding { at: self.file.at(node), address: self.address.clone(), message });
    }

    fn declaration(&mut self, schema: &ProviderSchema, declaration: &Declaration<'_>) {
        let type_name = declaration.type_name;
        if declaration.kind == DeclarationKind::Resource && BUILTIN_RESOURCES.contains(&type_name) {
            return;
        }
        let (names, schemas) = schema.types(declaration.kind);
        let what = match declaration.kind {
            DeclarationKind::Resource => "resource type",
            DeclarationKind::Data => "data source",
        };
        if !names.contains(type_name) {
            let closest = closest(type_name, names.iter().map(String::as_str));
            let message = format!(
                "unknown {what} `{type_name}` in {} {}{}",
                schema.provider,
                schema.provider_version,
                hint(&closest)
            );
            self.report(declaration.block, message);
            return;
        }
        let Some(block_schema) = schemas.get(type_name) else {
            let message = format!(
                "{what} `{type_name}` exists, but the extract has no schema for it: re-run `python3 {}` \
                 (it scans infra/ for the types to include)",
                schema.generated_by
            );
            self.report(declaration.block, message);
            return;
        };
        self.coverage.declarations += 1;
        self.coverage.types.insert(match declaration.kind {
            DeclarationKind::Resource => type_name.to_owned(),
            DeclarationKind::Data => format!("data.{type_name}"),
        });
        self.body(&declaration.block.body, block_schema, type_name, true);
    }

    /// `path` names the block for messages: `aws_codebuild_project`, `…environment`.
    fn body(&mut self, body: &Body, schema: &BlockSchema, path: &str, top: bool) {
        for structure in body.iter() {
            match structure {
                Structure::Attribute(attribute) => {
                    let name = attribute.key.as_str();
                    if top && META_ARGUMENTS.contains(&name) {
                        continue;
                    }
                    self.coverage.arguments += 1;
                    if schema.arguments.contains(name) {
                        continue;
                    }
                    let message = if schema.blocks.contains_key(name) {
                        format!("`{name}` is a nested block of {path}, not an argument: write `{name} {{ ... }}`")
                    } else {
                        format!("unknown argument `{name}` of {path}{}", describe(name, schema))
                    };
                    self.report(attribute, message);
                }
                Structure::Block(block) => {
                    let name = block.ident.as_str();
                    if top && META_BLOCKS.contains(&name) {
                        continue;
                    }
                    self.coverage.blocks += 1;
                    if name == "dynamic" {
                        self.dynamic(block, schema, path);
                    } else if let Some(nested) = schema.blocks.get(name) {
                        self.body(&block.body, nested, &format!("{path}.{name}"), false);
                    } else if schema.arguments.contains(name) {
                        let message = format!("`{name}` is an argument of {path}, not a block: write `{name} = ...`");
                        self.report(block, message);
                    } else {
                        let message = format!("unknown block `{name}` in {path}{}", describe(name, schema));
                        self.report(block, message);
                    }
                }
            }
        }
    }

    /// `dynamic "x" { for_each = ...  content { ... } }` stands for blocks `x`: its content is
    /// checked as the body of `x`.
    fn dynamic(&mut self, block: &Block, schema: &BlockSchema, path: &str) {
        let [label] = block.labels.as_slice() else {
            self.report(block, format!("a `dynamic` block in {path} needs exactly one label (the block it generates)"));
            return;
        };
        let name = label.as_str();
        let Some(nested) = schema.blocks.get(name) else {
            let message =
                format!("`dynamic \"{name}\"` generates an unknown block of {path}{}", describe(name, schema));
            self.report(block, message);
            return;
        };
        let mut contents = 0;
        for structure in block.body.iter() {
            match structure {
                Structure::Attribute(attribute) if DYNAMIC_ARGUMENTS.contains(&attribute.key.as_str()) => {}
                Structure::Block(content) if content.ident.as_str() == "content" => {
                    contents += 1;
                    self.body(&content.body, nested, &format!("{path}.{name}"), false);
                }
                other => {
                    let message = format!(
                        "`dynamic \"{name}\"` allows only for_each, iterator, labels and one content block, found `{}`",
                        structure_name(other)
                    );
                    self.report(other, message);
                }
            }
        }
        if contents != 1 {
            self.report(block, format!("`dynamic \"{name}\"` needs exactly one `content` block, found {contents}"));
        }
    }
}

fn structure_name(structure: &Structure) -> &str {
    match structure {
        Structure::Attribute(attribute) => attribute.key.as_str(),
        Structure::Block(block) => block.ident.as_str(),
    }
}

/// "; did you mean `x`? arguments: a, b; blocks: c" — what the block does accept.
fn describe(name: &str, schema: &BlockSchema) -> String {
    let candidates = schema.arguments.iter().chain(schema.blocks.keys()).map(String::as_str);
    let list = |names: Vec<&str>| if names.is_empty() { "none".to_owned() } else { names.join(", ") };
    format!(
        "{}; arguments: {}; blocks: {}",
        hint(&closest(name, candidates)),
        list(schema.arguments.iter().map(String::as_str).collect()),
        list(schema.blocks.keys().map(String::as_str).collect()),
    )
}

fn hint(closest: &[&str]) -> String {
    match closest {
        [] => String::new(),
        names => format!(" (did you mean `{}`?)", names.join("` or `")),
    }
}

/// The candidates nearest to `name` by edit distance, if any is near enough to be a typo.
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    let scored: Vec<(usize, &str)> =
        candidates.map(|c| (edit_distance(name, c), c)).filter(|(d, _)| *d <= limit).collect();
    let best = scored.iter().map(|(d, _)| *d).min();
    scored.into_iter().filter(|(d, _)| Some(*d) == best).map(|(_, c)| c).take(3).collect()
}

/// Levenshtein distance, with a transposition counted as one edit (`memroy` → `memory`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between a[..i] and b[..j]; the first row and column are j and i.
    let mut rows: Vec<Vec<usize>> =
        (0..=a.len()).map(|i| (0..=b.len()).map(|j| if i == 0 { j } else { i }).collect()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}
