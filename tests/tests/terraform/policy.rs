//! The statements of a `data "aws_iam_policy_document"` block as written: plain `statement`
//! blocks, and `dynamic "statement"` blocks with the `for_each` that decides whether (and how
//! often) they are there. Actions must be string literals, so that a check reads what is granted.

use hcl::edit::expr::Expression;
use hcl::edit::structure::{Block, Body};

use super::files::TfFile;
use super::hcl_read::{declarations, string_list, DeclarationKind};

pub struct Statement<'a> {
    /// `file:line`
    pub at: String,
    pub actions: Vec<&'a str>,
    /// The statement's body (a dynamic block's `content`).
    pub body: &'a Body,
    /// `Some` for a `dynamic "statement"` block.
    pub for_each: Option<&'a Expression>,
}

impl Statement<'_> {
    /// The source text of an attribute (`resources`, …), if the statement sets it.
    pub fn source<'f>(&self, file: &'f TfFile, name: &str) -> Option<&'f str> {
        self.body.get_attribute(name).map(|attribute| file.source_of(&attribute.value))
    }

    pub fn conditions(&self) -> impl Iterator<Item = &Block> {
        self.body.get_blocks("condition")
    }
}

/// The statements of `data.aws_iam_policy_document.<name>` in `file`; panics (naming the line)
/// when the document is missing or a statement is not written as this reader expects.
pub fn statements<'a>(file: &'a TfFile, name: &str) -> Vec<Statement<'a>> {
    let (found, _) = declarations(file);
    let document = found
        .iter()
        .find(|d| d.kind == DeclarationKind::Data && d.type_name == "aws_iam_policy_document" && d.name == name)
        .unwrap_or_else(|| panic!("{} has no data.aws_iam_policy_document.{name}", file.name));
    let mut statements = Vec::new();
    for block in document.block.body.blocks() {
        let (body, for_each) = match (block.ident.as_str(), block.labels.first().map(|label| label.as_str())) {
            ("statement", None) => (&block.body, None),
            ("dynamic", Some("statement")) => {
                let content = block
                    .body
                    .get_blocks("content")
                    .next()
                    .unwrap_or_else(|| panic!("{}: dynamic \"statement\" without content", file.at(block)));
                let for_each = block
                    .body
                    .get_attribute("for_each")
                    .unwrap_or_else(|| panic!("{}: dynamic \"statement\" without for_each", file.at(block)));
                (&content.body, Some(&for_each.value))
            }
            _ => continue,
        };
        let actions = body
            .get_attribute("actions")
            .and_then(|attribute| string_list(&attribute.value))
            .unwrap_or_else(|| panic!("{}: a statement's actions must be a list of string literals", file.at(block)));
        statements.push(Statement { at: file.at(block), actions, body, for_each });
    }
    statements
}
