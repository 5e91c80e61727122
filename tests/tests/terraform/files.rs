//! infra/'s Terraform files, parsed with hcl-rs. The structures come from its `edit` parser
//! (hcl-edit, re-exported by hcl-rs): unlike `hcl::Body` they keep byte spans, so every finding
//! of the later checks can name `file:line`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use hcl::edit::parser;
use hcl::edit::structure::Body;
use hcl::edit::Span;

/// One parsed `.tf` file. `name` is how messages name it (relative to the workspace root).
pub struct TfFile {
    pub name: String,
    pub text: String,
    pub body: Body,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `detail` is hcl-rs's own rendering: the offending line with a caret under the column.
    #[error("{name}:{line}:{column}: not valid HCL: {message}\n{detail}")]
    Parse { name: String, line: usize, column: usize, message: String, detail: String },
}

impl TfFile {
    /// Parses `text`; a syntax error names `name:line:column`.
    pub fn parse(name: impl Into<String>, text: String) -> Result<TfFile, LoadError> {
        let name = name.into();
        match parser::parse_body(&text) {
            Ok(body) => Ok(TfFile { name, text, body }),
            Err(err) => Err(LoadError::Parse {
                line: err.location().line(),
                column: err.location().column(),
                message: err.message().to_owned(),
                detail: err.to_string(),
                name,
            }),
        }
    }

    /// The 1-based line where `node` starts (0 if the parser recorded no span).
    pub fn line_of(&self, node: &impl Span) -> usize {
        node.span().map_or(0, |span| line_at(&self.text, span.start))
    }

    /// The source text of `node`, as written (empty if the parser recorded no span).
    pub fn source_of(&self, node: &impl Span) -> &str {
        node.span().and_then(|span: Range<usize>| self.text.get(span)).unwrap_or_default().trim()
    }

    /// `name:line` of `node`, for messages.
    pub fn at(&self, node: &impl Span) -> String {
        format!("{}:{}", self.name, self.line_of(node))
    }
}

fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Every `.tf` file under `dir`, recursively (examples included, `.terraform/` caches skipped),
/// sorted so that messages come in a stable order.
pub fn tf_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries =
            std::fs::read_dir(&current).map_err(|source| LoadError::Read { path: current.clone(), source })?;
        for entry in entries {
            let path = entry.map_err(|source| LoadError::Read { path: current.clone(), source })?.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|name| name != ".terraform") {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|ext| ext == "tf") {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Reads and parses one file, naming it relative to `root`.
pub fn load(root: &Path, path: &Path) -> Result<TfFile, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.to_path_buf(), source })?;
    let name = path.strip_prefix(root).unwrap_or(path).display().to_string();
    TfFile::parse(name, text)
}

/// Every file under `root/dir`, or every error (all of them, not just the first).
pub fn load_all(root: &Path, dir: &str) -> Result<Vec<TfFile>, Vec<LoadError>> {
    let paths = tf_files(&root.join(dir)).map_err(|err| vec![err])?;
    let (files, errors): (Vec<_>, Vec<_>) = paths.iter().map(|path| load(root, path)).partition(Result::is_ok);
    if errors.is_empty() {
        Ok(files.into_iter().filter_map(Result::ok).collect())
    } else {
        Err(errors.into_iter().filter_map(Result::err).collect())
    }
}
