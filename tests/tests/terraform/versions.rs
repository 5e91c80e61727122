//! `required_providers` constraints, so the test can tell whether the provider version the
//! schema extract was generated from is one infra/ accepts.

use super::files::TfFile;
use super::hcl_read::object_entries;

/// `version` constraints of provider `source` (e.g. `hashicorp/aws`) in the file's
/// `terraform { required_providers { ... } }`, with where they are written.
pub fn required_versions(file: &TfFile, source: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for terraform in file.body.get_blocks("terraform") {
        for providers in terraform.body.get_blocks("required_providers") {
            for attribute in providers.body.attributes() {
                let Some(entries) = object_entries(&attribute.value) else { continue };
                let field = |key: &str| entries.iter().find(|(k, _)| *k == key).and_then(|(_, v)| v.as_str());
                if let (Some(found_source), Some(version)) = (field("source"), field("version")) {
                    if found_source == source {
                        found.push((file.at(attribute), version.to_owned()));
                    }
                }
            }
        }
    }
    found
}

/// Whether `version` (like `6.25.0`) meets a Terraform constraint such as `>= 5.60, < 7.0`
/// (operators `=`, `!=`, `>`, `>=`, `<`, `<=`, `~>`; no pre-releases).
pub fn satisfies(version: &str, constraint: &str) -> Result<bool, String> {
    let have = numbers(version)?;
    for clause in constraint.split(',') {
        let clause = clause.trim();
        let split = clause.find(|c: char| c.is_ascii_digit()).ok_or_else(|| format!("no version in `{clause}`"))?;
        let (operator, bound) = (clause[..split].trim(), &clause[split..]);
        let want = numbers(bound)?;
        let width = have.len().max(want.len());
        let pad = |v: &[u64]| v.iter().copied().chain(std::iter::repeat(0)).take(width).collect::<Vec<_>>();
        let (h, w) = (pad(&have), pad(&want));
        let ok = match operator {
            "" | "=" => h == w,
            "!=" => h != w,
            ">" => h > w,
            ">=" => h >= w,
            "<" => h < w,
            "<=" => h <= w,
            // ~> 5.60 allows 5.x from 5.60; ~> 5.60.1 allows 5.60.x from 5.60.1.
            "~>" => {
                h >= w
                    && have.get(..want.len().saturating_sub(1).max(1))
                        == want.get(..want.len().saturating_sub(1).max(1))
            }
            other => return Err(format!("unknown operator `{other}` in `{clause}`")),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn numbers(version: &str) -> Result<Vec<u64>, String> {
    version.trim().split('.').map(|part| part.parse().map_err(|_| format!("`{version}` is not a version"))).collect()
}
