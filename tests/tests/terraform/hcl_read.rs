//! Small readers over hcl-edit structures, shared by the checks: the blocks a file declares,
//! `locals` entries, object keys, string literals. Terraform expressions are not evaluated:
//! a reader returns `None` where the source is not the literal shape it looks for, and the
//! caller says what it expected.

use hcl::edit::expr::{Expression, ObjectKey};
use hcl::edit::structure::{Attribute, Block};

use super::files::TfFile;

/// A top-level `resource "type" "name"` or `data "type" "name"` block.
pub struct Declaration<'a> {
    pub kind: DeclarationKind,
    pub type_name: &'a str,
    pub name: &'a str,
    pub block: &'a Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclarationKind {
    Resource,
    Data,
}

impl Declaration<'_> {
    /// The address Terraform uses: `type.name`, or `data.type.name`.
    pub fn address(&self) -> String {
        match self.kind {
            DeclarationKind::Resource => format!("{}.{}", self.type_name, self.name),
            DeclarationKind::Data => format!("data.{}.{}", self.type_name, self.name),
        }
    }
}

/// Why a top-level block that should be a declaration is not one.
pub struct Malformed<'a> {
    pub block: &'a Block,
    pub problem: String,
}

/// The `resource` and `data` blocks of a file. Every other top-level block (`module`, `provider`,
/// `variable`, `output`, `locals`, `terraform`, `moved`, `import`, `check`, `removed`) is not a
/// declaration of a provider type and is left out.
pub fn declarations(file: &TfFile) -> (Vec<Declaration<'_>>, Vec<Malformed<'_>>) {
    let mut found = Vec::new();
    let mut malformed = Vec::new();
    for block in file.body.blocks() {
        let kind = match block.ident.as_str() {
            "resource" => DeclarationKind::Resource,
            "data" => DeclarationKind::Data,
            _ => continue,
        };
        match block.labels.as_slice() {
            [type_name, name] => {
                found.push(Declaration { kind, type_name: type_name.as_str(), name: name.as_str(), block })
            }
            labels => malformed.push(Malformed {
                block,
                problem: format!("`{}` needs two labels (type and name), found {}", block.ident.as_str(), labels.len()),
            }),
        }
    }
    (found, malformed)
}

/// The attribute `name` of any top-level `locals` block of the file.
pub fn local<'a>(file: &'a TfFile, name: &str) -> Option<&'a Attribute> {
    file.body.get_blocks("locals").find_map(|block| block.body.get_attribute(name))
}

/// The entries of an object expression `{ key = value, "key-2" = value }`, in order. `None` if
/// the expression is not an object literal or a key is computed.
pub fn object_entries(expr: &Expression) -> Option<Vec<(&str, &Expression)>> {
    let Expression::Object(object) = expr else { return None };
    object
        .iter()
        .map(|(key, value)| {
            let key = match key {
                ObjectKey::Ident(ident) => ident.as_str(),
                ObjectKey::Expression(expr) => expr.as_str()?,
            };
            Some((key, value.expr()))
        })
        .collect()
}

/// The string literals of an array expression `["a", "b"]`, possibly inside one function call
/// such as `toset([...])`. `None` for anything else.
pub fn string_list(expr: &Expression) -> Option<Vec<&str>> {
    match expr {
        Expression::Array(array) => array.iter().map(Expression::as_str).collect(),
        Expression::FuncCall(call) if call.args.len() == 1 => call.args.iter().next().and_then(string_list),
        _ => None,
    }
}

/// The name and arguments of a function call `name(args...)`.
pub fn func_call(expr: &Expression) -> Option<(&str, Vec<&Expression>)> {
    let Expression::FuncCall(call) = expr else { return None };
    Some((call.name.name.as_str(), call.args.iter().collect()))
}

/// The top-level `variable "<name>"` block of a file.
pub fn variable<'a>(file: &'a TfFile, name: &str) -> Option<&'a Block> {
    file.body.get_blocks("variable").find(|block| block.labels.first().is_some_and(|label| label.as_str() == name))
}

/// The `resource "<type_name>" "<name>"` block of a file.
pub fn resource<'a>(file: &'a TfFile, type_name: &str, name: &str) -> Option<&'a Block> {
    declarations(file)
        .0
        .into_iter()
        .find(|d| d.kind == DeclarationKind::Resource && d.type_name == type_name && d.name == name)
        .map(|d| d.block)
}

/// The string literals given as the pattern of a `regex(...)` call anywhere in `expr`, looking
/// through function calls, conditionals, parentheses and operators.
pub fn regex_patterns(expr: &Expression) -> Vec<&str> {
    let mut found = Vec::new();
    collect_regex_patterns(expr, &mut found);
    found
}

fn collect_regex_patterns<'a>(expr: &'a Expression, found: &mut Vec<&'a str>) {
    match expr {
        Expression::FuncCall(call) => {
            if call.name.name.as_str() == "regex" {
                found.extend(call.args.iter().next().and_then(Expression::as_str));
            }
            call.args.iter().for_each(|arg| collect_regex_patterns(arg, found));
        }
        Expression::Conditional(conditional) => {
            for part in [&conditional.cond_expr, &conditional.true_expr, &conditional.false_expr] {
                collect_regex_patterns(part, found);
            }
        }
        Expression::Parenthesis(inner) => collect_regex_patterns(inner.inner(), found),
        Expression::BinaryOp(op) => {
            collect_regex_patterns(&op.lhs_expr, found);
            collect_regex_patterns(&op.rhs_expr, found);
        }
        Expression::UnaryOp(op) => collect_regex_patterns(&op.expr, found),
        Expression::ForExpr(for_expr) => {
            collect_regex_patterns(&for_expr.intro.collection_expr, found);
            for_expr.key_expr.iter().for_each(|key| collect_regex_patterns(key, found));
            collect_regex_patterns(&for_expr.value_expr, found);
            for_expr.cond.iter().for_each(|cond| collect_regex_patterns(&cond.expr, found));
        }
        Expression::Array(items) => items.iter().for_each(|item| collect_regex_patterns(item, found)),
        _ => {}
    }
}
