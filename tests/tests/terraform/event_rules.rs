//! How infra/events.tf builds its EventBridge rules, read from the HCL rather than re-typed here:
//! which `event-patterns/*.json` file each rule starts from, which function it targets, and which
//! `detail` field it narrows to our own names (repositories, parameters, projects). Terraform's
//! `merge` of that one field is simple enough to apply to the JSON in a test, so the narrowed
//! patterns can be matched against the fixture events without Terraform.
//!
//! The reader accepts exactly the shape events.tf is written in:
//!
//! ```hcl
//! locals {
//!   base_patterns = { ecr = jsondecode(file("${path.module}/event-patterns/ecr-image-action.json")), ... }
//!   rules = {
//!     ecr-push = {
//!       function = "record-image-tag"
//!       pattern = merge(local.base_patterns.ecr, {
//!         detail = merge(local.base_patterns.ecr.detail, { "repository-name" = local.repositories })
//!       })
//!     }
//!   }
//! }
//! ```
//!
//! or, for a rule narrowed by service ARN prefix (the ECS deployment rule; the event names its
//! service only in `resources`), at the top level:
//!
//! ```hcl
//!     ecs-deployment = {
//!       function = "trigger-deploy"
//!       create   = length(local.ecs_clusters) > 0
//!       pattern  = merge(local.base_patterns.ecs, { resources = local.ecs_service_arn_prefixes })
//!     }
//! ```
//!
//! or, for a base pattern without a `detail` (the alarm rule's: source and detail-type only),
//! with the narrowing as the whole `detail`:
//!
//! ```hcl
//!     alarm-state-change = {
//!       function = "promote"
//!       create   = length(local.promotion_alarm_names) > 0
//!       pattern  = merge(local.base_patterns.alarm, { detail = { alarmName = local.promotion_alarm_names } })
//!     }
//! ```
//!
//! and says so, naming the line, when it meets anything else.

use std::collections::BTreeMap;

use hcl::edit::expr::Expression;

use super::files::TfFile;
use super::hcl_read::{func_call, local, object_entries};

const PATTERN_DIR: &str = "event-patterns/";

/// One rule of `local.rules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub key: String,
    /// `events.tf:17`
    pub at: String,
    pub function: String,
    /// The `local.base_patterns` entry it starts from.
    pub base: String,
    /// The `detail` field it narrows, e.g. `repository-name`; `resources` for a rule narrowed at
    /// the top level (see [`Rule::top_level`]).
    pub narrowed_field: String,
    /// What it narrows to, as written: `local.repositories`.
    pub narrowed_to: String,
    /// Narrowed at the top level (`resources`, a list of `{ prefix = … }`), not in `detail`.
    pub top_level: bool,
    /// Its `create` condition as written, if it has one (`None`: always created).
    pub create: Option<String>,
    /// The narrowing is the whole `detail` (`detail = { <field> = <names> }`), not merged into the
    /// base pattern's: right only for a base pattern without a `detail`, which the caller checks.
    pub replaces_detail: bool,
}

/// `local.base_patterns`: key → pattern file name (`ecr-image-action.json`), and `local.rules`.
#[derive(Debug)]
pub struct EventRules {
    pub base_patterns: BTreeMap<String, String>,
    pub rules: Vec<Rule>,
}

pub fn read(file: &TfFile) -> Result<EventRules, String> {
    let base_attribute =
        local(file, "base_patterns").ok_or_else(|| format!("{}: no `local.base_patterns`", file.name))?;
    let rules_attribute = local(file, "rules").ok_or_else(|| format!("{}: no `local.rules`", file.name))?;

    let mut base_patterns = BTreeMap::new();
    let entries = object_entries(&base_attribute.value)
        .ok_or_else(|| format!("{}: local.base_patterns is not an object literal", file.at(base_attribute)))?;
    for (key, expr) in entries {
        base_patterns.insert(key.to_owned(), pattern_file(file, expr)?);
    }

    let entries = object_entries(&rules_attribute.value)
        .ok_or_else(|| format!("{}: local.rules is not an object literal", file.at(rules_attribute)))?;
    let rules = entries.into_iter().map(|(key, expr)| rule(file, key, expr)).collect::<Result<_, _>>()?;
    Ok(EventRules { base_patterns, rules })
}

/// `jsondecode(file("${path.module}/event-patterns/NAME.json"))` → `NAME.json`.
fn pattern_file(file: &TfFile, expr: &Expression) -> Result<String, String> {
    let unexpected = || {
        format!(
            "{}: expected jsondecode(file(\"${{path.module}}/{PATTERN_DIR}<name>.json\")), found `{}`",
            file.at(expr),
            file.source_of(expr)
        )
    };
    let Some(("jsondecode", args)) = func_call(expr) else { return Err(unexpected()) };
    let [inner] = args.as_slice() else { return Err(unexpected()) };
    let Some(("file", args)) = func_call(inner) else { return Err(unexpected()) };
    let [path] = args.as_slice() else { return Err(unexpected()) };
    let written = file.source_of(*path);
    let name = written
        .strip_prefix(&format!("\"${{path.module}}/{PATTERN_DIR}"))
        .and_then(|rest| rest.strip_suffix('"'))
        .filter(|name| name.ends_with(".json") && !name.contains(['/', '$']))
        .ok_or_else(unexpected)?;
    Ok(name.to_owned())
}

fn rule(file: &TfFile, key: &str, expr: &Expression) -> Result<Rule, String> {
    let at = file.at(expr);
    let fields = object_entries(expr).ok_or_else(|| format!("{at}: rule {key} is not an object literal"))?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("{at}: rule {key} has no `{name}`"))
    };
    let function = field("function")?
        .as_str()
        .ok_or_else(|| format!("{at}: rule {key}: `function` is not a string literal"))?
        .to_owned();
    let pattern = field("pattern")?;
    let shape = || {
        format!(
            "{}: rule {key}: expected pattern = merge(local.base_patterns.<base>, {{ detail = \
             merge(local.base_patterns.<base>.detail, {{ <field> = <names> }}) }}), found `{}`",
            file.at(pattern),
            file.source_of(pattern)
        )
    };

    let create = fields.iter().find(|(k, _)| *k == "create").map(|(_, v)| file.source_of(*v).to_owned());

    let Some(("merge", args)) = func_call(pattern) else { return Err(shape()) };
    let [base, overlay] = args.as_slice() else { return Err(shape()) };
    let base = file.source_of(*base).strip_prefix("local.base_patterns.").ok_or_else(shape)?.to_owned();
    let overlay = object_entries(overlay).ok_or_else(shape)?;
    if let [("resources", resources)] = overlay.as_slice() {
        return Ok(Rule {
            key: key.to_owned(),
            at,
            function,
            base,
            narrowed_field: "resources".to_owned(),
            narrowed_to: file.source_of(*resources).to_owned(),
            top_level: true,
            create,
            replaces_detail: false,
        });
    }
    let [("detail", detail)] = overlay.as_slice() else { return Err(shape()) };

    if let Some(narrowing) = object_entries(detail) {
        let [(narrowed_field, narrowed_to)] = narrowing.as_slice() else { return Err(shape()) };
        return Ok(Rule {
            key: key.to_owned(),
            at,
            function,
            base,
            narrowed_field: (*narrowed_field).to_owned(),
            narrowed_to: file.source_of(*narrowed_to).to_owned(),
            top_level: false,
            create,
            replaces_detail: true,
        });
    }
    let Some(("merge", args)) = func_call(detail) else { return Err(shape()) };
    let [base_detail, narrowing] = args.as_slice() else { return Err(shape()) };
    if file.source_of(*base_detail) != format!("local.base_patterns.{base}.detail") {
        return Err(shape());
    }
    let narrowing = object_entries(narrowing).ok_or_else(shape)?;
    let [(narrowed_field, narrowed_to)] = narrowing.as_slice() else { return Err(shape()) };

    Ok(Rule {
        key: key.to_owned(),
        at,
        function,
        base,
        narrowed_field: (*narrowed_field).to_owned(),
        narrowed_to: file.source_of(*narrowed_to).to_owned(),
        top_level: false,
        create,
        replaces_detail: false,
    })
}
