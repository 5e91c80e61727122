//! EventBridge event patterns, as far as `infra/` writes them: parsed and checked once, then
//! matched against events the way an EventBridge rule does
//! (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html>).
//!
//! `infra/event-patterns/*.json` and `infra/events.tf` (which narrows them to what is ours: lists
//! of repository, project and alarm names, the image-tag parameters by `suffix` or `prefix` per
//! environment, the release and approval records by `wildcard`, the ECS rule by the service ARN
//! prefixes of our clusters, and `exists` where a name list would not fit a pattern) use these,
//! and those are emulated:
//!
//! * nested objects: a pattern field whose value is an object matches the event field's object;
//! * leaf arrays of strings, any of which may match exactly (`""` matches only `""`);
//! * in such an array, `{"prefix": "<string>"}`: a string value that starts with it (case
//!   sensitive; never a number, boolean or `null`);
//! * `{"suffix": "<string>"}`: a string value that ends with it, likewise;
//! * `{"wildcard": "<string>"}`: a string value that the whole wildcard matches, `*` standing for
//!   any run of characters (none included, `/` included); `\*` is a literal `*` and `\\` a literal
//!   `\`; a backslash before anything else and two unescaped `*` in a row are invalid, as
//!   EventBridge has it (aws/event-ruler README, "Wildcard matching"; EventBridge User Guide,
//!   "Wildcard matching");
//! * `{"exists": true}`: the field is there with a value that is not an object (any string,
//!   number, boolean or `null`; in an array, any such element).
//!
//! On the event side, as EventBridge does: a field that is an array matches when any element does
//! (nested arrays are flattened), and objects inside an array are matched one element at a time,
//! so two fields of a pattern never match in two different elements.
//!
//! Everything else of EventBridge's grammar is refused when the pattern is parsed, with
//! [`PatternError::Unsupported`] naming the operator and where it is: the other operators
//! (`equals-ignore-case`, `anything-but`, `numeric`, `cidr`), `{"exists": false}`, `prefix`,
//! `suffix` or `wildcard` with anything but a string (`{"prefix": {"equals-ignore-case": …}}`), an
//! empty `prefix` or `suffix`, `$or`, and number, boolean and `null` values. A rule that needs one
//! gets it here first, with its tests; until then a local rule can never match differently from
//! the one in AWS.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The operators of EventBridge's grammar; `prefix`, `suffix` and `wildcard` with a string and
/// `exists` with `true` are emulated, the rest refused: `infra/` uses none of them.
const OPERATORS: [&str; 8] =
    ["prefix", "suffix", "equals-ignore-case", "wildcard", "anything-but", "exists", "numeric", "cidr"];

/// A parsed, valid event pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPattern {
    root: ObjectPattern,
    json: Value,
}

/// Why a pattern is refused. `path` is where in the pattern, like `detail.state[1]` (empty for
/// the top level).
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    /// EventBridge would refuse it too.
    #[error("{}", describe(.file.as_deref(), "is not valid", .path, .message))]
    Invalid { file: Option<PathBuf>, path: String, message: String },

    /// Valid in EventBridge, but not emulated: `feature` is what the pattern uses.
    #[error("{}", describe(.file.as_deref(), "is refused", .path, &not_emulated(.feature)))]
    Unsupported { file: Option<PathBuf>, path: String, feature: String },

    #[error("could not read the event pattern {}: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the event pattern {} is not JSON: {source}", file.display())]
    Json {
        file: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl PatternError {
    /// Where in the pattern the problem is, for [`PatternError::Invalid`] and
    /// [`PatternError::Unsupported`].
    pub fn path(&self) -> Option<&str> {
        match self {
            PatternError::Invalid { path, .. } | PatternError::Unsupported { path, .. } => Some(path),
            _ => None,
        }
    }

    fn in_file(self, file: &Path) -> PatternError {
        match self {
            PatternError::Invalid { path, message, .. } => {
                PatternError::Invalid { file: Some(file.to_path_buf()), path, message }
            }
            PatternError::Unsupported { path, feature, .. } => {
                PatternError::Unsupported { file: Some(file.to_path_buf()), path, feature }
            }
            other => other,
        }
    }
}

fn describe(file: Option<&Path>, verdict: &str, path: &str, message: &str) -> String {
    let place = if path.is_empty() { "the top level".to_string() } else { path.to_string() };
    match file {
        Some(file) => format!("event pattern {} {verdict} at {place}: {message}", file.display()),
        None => format!("event pattern {verdict} at {place}: {message}"),
    }
}

fn not_emulated(feature: &str) -> String {
    format!(
        "{feature} is not emulated by the local EventBridge, which matches what infra/ uses: nested \
         fields, lists of strings, prefix, suffix, wildcard and exists: true (see testbed/README.md)"
    )
}

fn invalid(path: &str, message: impl Into<String>) -> PatternError {
    PatternError::Invalid { file: None, path: path.to_string(), message: message.into() }
}

fn unsupported(path: &str, feature: impl Into<String>) -> PatternError {
    PatternError::Unsupported { file: None, path: path.to_string(), feature: feature.into() }
}

impl EventPattern {
    /// Parses and checks a pattern, as `PutRule` does, refusing what is not emulated.
    pub fn parse(pattern: &Value) -> Result<EventPattern, PatternError> {
        let Value::Object(fields) = pattern else {
            return Err(invalid("", format!("an event pattern is a JSON object, not {}", json_kind(pattern))));
        };
        let root = ObjectPattern::parse(fields, "")?;
        Ok(EventPattern { root, json: pattern.clone() })
    }

    /// Reads and parses a pattern file (such as `infra/event-patterns/*.json`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<EventPattern, PatternError> {
        let file = path.as_ref();
        let text =
            std::fs::read_to_string(file).map_err(|source| PatternError::Read { file: file.to_path_buf(), source })?;
        let json: Value =
            serde_json::from_str(&text).map_err(|source| PatternError::Json { file: file.to_path_buf(), source })?;
        EventPattern::parse(&json).map_err(|err| err.in_file(file))
    }

    /// Whether `event` matches, as EventBridge decides it for a rule with this pattern.
    pub fn matches(&self, event: &Value) -> bool {
        self.root.matches(Some(event))
    }

    /// The pattern as it was written.
    pub fn as_json(&self) -> &Value {
        &self.json
    }
}

impl std::fmt::Display for EventPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.json)
    }
}

/// The fields of one level of the pattern; all must match.
#[derive(Debug, Clone, PartialEq)]
struct ObjectPattern {
    fields: Vec<(String, FieldPattern)>,
}

#[derive(Debug, Clone, PartialEq)]
enum FieldPattern {
    /// A leaf: the field's value must match one of these.
    Leaf(Vec<Leaf>),
    /// The field is an object (or an array of objects) matching this.
    Object(ObjectPattern),
}

/// One value of a leaf array.
#[derive(Debug, Clone, PartialEq)]
enum Leaf {
    /// `"text"`: exactly this string.
    Exact(String),
    /// `{"prefix": "text"}`: a string starting with this (case sensitive).
    Prefix(String),
    /// `{"suffix": "text"}`: a string ending with this (case sensitive).
    Suffix(String),
    /// `{"wildcard": "a*b"}`: a string the whole wildcard matches.
    Wildcard(Wildcard),
    /// `{"exists": true}`: any value that is not an object.
    Exists,
}

impl Leaf {
    /// Whether this entry takes `value`, one leaf value of the event's field.
    fn matches(&self, value: &Value) -> bool {
        match (self, value) {
            (Leaf::Exists, _) => true,
            (Leaf::Exact(exact), Value::String(text)) => text == exact,
            (Leaf::Prefix(prefix), Value::String(text)) => text.starts_with(prefix.as_str()),
            (Leaf::Suffix(suffix), Value::String(text)) => text.ends_with(suffix.as_str()),
            (Leaf::Wildcard(wildcard), Value::String(text)) => wildcard.matches(text),
            _ => false,
        }
    }
}

/// A `wildcard` operand: literal runs separated by `*`, each `*` standing for any run of
/// characters (including none and `/`). The operand must match the whole value.
#[derive(Debug, Clone, PartialEq)]
struct Wildcard {
    /// The literal runs between the stars, unescaped: `a*b*` is `["a", "b", ""]`; a string
    /// without a star is one run that must equal the value.
    literals: Vec<String>,
}

impl Wildcard {
    /// Parses an operand as EventBridge does: `\*` is a literal star, `\\` a literal backslash,
    /// any other backslash is invalid, and so are two unescaped stars in a row.
    fn parse(operand: &str, path: &str) -> Result<Wildcard, PatternError> {
        let mut literals = vec![String::new()];
        let mut chars = operand.chars().peekable();
        let mut position = 0;
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(escaped @ ('*' | '\\')) => {
                        literals.last_mut().expect("one run at least").push(escaped);
                        position += 1;
                    }
                    _ => {
                        return Err(invalid(
                            path,
                            format!(
                                "invalid escape character at position {position} of the wildcard (only \\* and \\\\ are escapes)"
                            ),
                        ))
                    }
                },
                '*' => {
                    if chars.peek() == Some(&'*') {
                        return Err(invalid(
                            path,
                            format!("consecutive wildcard characters at position {position} of the wildcard"),
                        ));
                    }
                    literals.push(String::new());
                }
                c => literals.last_mut().expect("one run at least").push(c),
            }
            position += 1;
        }
        Ok(Wildcard { literals })
    }

    /// Whether the whole of `text` matches: the first run at the start, the last at the end, the
    /// ones between in order, each as early as it can be (which finds a match whenever there is
    /// one: an earlier run never makes a later one impossible).
    fn matches(&self, text: &str) -> bool {
        let (first, rest) = self.literals.split_first().expect("one run at least");
        let Some((last, middle)) = rest.split_last() else {
            return text == first; // no star
        };
        // The first and last runs must not overlap: `a*a` does not match "a".
        if !text.starts_with(first.as_str()) || !text.ends_with(last.as_str()) || text.len() < first.len() + last.len()
        {
            return false;
        }
        let mut remaining = &text[first.len()..text.len() - last.len()];
        for run in middle {
            match remaining.find(run.as_str()) {
                Some(at) => remaining = &remaining[at + run.len()..],
                None => return false,
            }
        }
        true
    }
}

/// "a string", "an object", …: what a JSON value is, for error messages.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn field_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl ObjectPattern {
    fn parse(fields: &Map<String, Value>, path: &str) -> Result<ObjectPattern, PatternError> {
        if fields.is_empty() {
            return Err(invalid(path, "empty objects are not allowed"));
        }
        let mut pattern = ObjectPattern { fields: Vec::new() };
        for (key, value) in fields {
            let here = field_path(path, key);
            if key == "$or" {
                return Err(unsupported(&here, "the \"$or\" operator"));
            }
            let field = match value {
                Value::Array(values) => FieldPattern::Leaf(parse_leaf(values, &here)?),
                Value::Object(nested) => FieldPattern::Object(ObjectPattern::parse(nested, &here)?),
                other => {
                    return Err(invalid(
                        &here,
                        format!(
                            "must be an array of values to match (like [{other}]) or an object of fields, not {}",
                            json_kind(other)
                        ),
                    ))
                }
            };
            pattern.fields.push((key.clone(), field));
        }
        Ok(pattern)
    }

    fn matches(&self, value: Option<&Value>) -> bool {
        let mut objects = Vec::new();
        collect_objects(value, &mut objects);
        if objects.is_empty() {
            // The field is missing or not an object: nothing below it can match.
            return false;
        }
        objects.into_iter().any(|object| self.matches_object(object))
    }

    fn matches_object(&self, object: &Map<String, Value>) -> bool {
        self.fields.iter().all(|(key, field)| field.matches(object.get(key)))
    }
}

impl FieldPattern {
    fn matches(&self, value: Option<&Value>) -> bool {
        match self {
            FieldPattern::Object(object) => object.matches(value),
            FieldPattern::Leaf(leaves) => {
                let mut values = Vec::new();
                collect_leaves(value, &mut values);
                values.iter().any(|value| leaves.iter().any(|leaf| leaf.matches(value)))
            }
        }
    }
}

/// The objects a pattern level is matched against: the value itself, or the objects of an array.
fn collect_objects<'a>(value: Option<&'a Value>, into: &mut Vec<&'a Map<String, Value>>) {
    match value {
        Some(Value::Object(object)) => into.push(object),
        Some(Value::Array(items)) => items.iter().for_each(|item| collect_objects(Some(item), into)),
        _ => {}
    }
}

/// The leaf values of a field: the value, or the non-object elements of an array (flattened).
fn collect_leaves<'a>(value: Option<&'a Value>, into: &mut Vec<&'a Value>) {
    match value {
        None | Some(Value::Object(_)) => {}
        Some(Value::Array(items)) => items.iter().for_each(|item| collect_leaves(Some(item), into)),
        Some(leaf) => into.push(leaf),
    }
}

fn parse_leaf(values: &[Value], path: &str) -> Result<Vec<Leaf>, PatternError> {
    if values.is_empty() {
        return Err(invalid(path, "empty arrays are not allowed"));
    }
    values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let here = format!("{path}[{index}]");
            match value {
                Value::String(text) => Ok(Leaf::Exact(text.clone())),
                Value::Array(_) => Err(invalid(&here, "arrays cannot be nested in a pattern's array of values")),
                Value::Object(operator) => parse_operator(operator, &here),
                Value::Number(_) | Value::Bool(_) | Value::Null => {
                    Err(unsupported(&here, format!("matching {}", json_kind(value))))
                }
            }
        })
        .collect()
}

/// `{"operator": …}` in a list of values: `prefix`, `suffix` and `wildcard` with a string and
/// `exists` with `true` are emulated; what EventBridge would refuse is invalid, what it would take
/// otherwise is not emulated.
fn parse_operator(operator: &Map<String, Value>, path: &str) -> Result<Leaf, PatternError> {
    let mut names = operator.keys();
    let name = match (names.next(), names.next()) {
        (Some(name), None) => name.as_str(),
        _ => return Err(refuse_operator(operator, path)),
    };
    let here = field_path(path, name);
    match (name, &operator[name]) {
        ("prefix" | "suffix", Value::String(text)) if text.is_empty() => {
            Err(unsupported(&here, format!("an empty \"{name}\"")))
        }
        ("prefix", Value::String(prefix)) => Ok(Leaf::Prefix(prefix.clone())),
        ("suffix", Value::String(suffix)) => Ok(Leaf::Suffix(suffix.clone())),
        ("wildcard", Value::String(operand)) => Wildcard::parse(operand, &here).map(Leaf::Wildcard),
        ("prefix" | "suffix" | "wildcard", Value::Object(nested)) => match nested.keys().next() {
            Some(inner) if nested.len() == 1 => {
                Err(unsupported(&field_path(&here, inner), format!("the \"{inner}\" operator inside \"{name}\"")))
            }
            _ => Err(invalid(&here, format!("\"{name}\" takes a string or one operator"))),
        },
        ("prefix" | "suffix" | "wildcard", other) => {
            Err(invalid(&here, format!("\"{name}\" takes a string, not {}", json_kind(other))))
        }
        ("exists", Value::Bool(true)) => Ok(Leaf::Exists),
        ("exists", Value::Bool(false)) => Err(unsupported(&here, "\"exists\": false")),
        ("exists", other) => Err(invalid(&here, format!("\"exists\" takes true or false, not {}", json_kind(other)))),
        _ => Err(refuse_operator(operator, path)),
    }
}

/// The error for an operator that is not emulated: what EventBridge would refuse is invalid, what
/// it would take is not emulated.
fn refuse_operator(operator: &Map<String, Value>, path: &str) -> PatternError {
    let mut names = operator.keys();
    match (names.next(), names.next()) {
        (None, _) => invalid(path, "empty objects are not allowed"),
        (Some(_), Some(_)) => invalid(
            path,
            format!(
                "a matching object has exactly one operator, not {} ({})",
                operator.len(),
                operator.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ),
        (Some(name), None) if OPERATORS.contains(&name.as_str()) => {
            unsupported(&field_path(path, name), format!("the \"{name}\" operator"))
        }
        (Some(name), None) => {
            invalid(path, format!("unknown operator \"{name}\" (EventBridge's are {})", OPERATORS.join(", ")))
        }
    }
}
