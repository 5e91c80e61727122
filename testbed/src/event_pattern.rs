//! EventBridge event patterns: parsed and checked once, then matched against events the way an
//! EventBridge rule does (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html>,
//! `eb-create-pattern-operators.html`, and AWS's matching library `aws/event-ruler`).
//!
//! What is supported:
//!
//! * nested objects: a pattern field whose value is an object matches the event field's object;
//! * leaf arrays of literals (string, number, `true`/`false`, `null`), any of which may match
//!   (`""` and `null` are different values; numbers compare by value, so `5` matches `5.0`);
//! * event fields that are arrays: the field matches when any element does (nested arrays are
//!   flattened); objects inside an array are matched one element at a time, so two fields of a
//!   pattern never match in two different elements;
//! * the operators `prefix`, `suffix` (both also with `{"equals-ignore-case": …}`),
//!   `equals-ignore-case`, `wildcard` (`*`, with `\*` and `\\` as escapes, no `**`),
//!   `anything-but` (a value, a list of strings or of numbers, or `{"prefix"|"suffix": …}`,
//!   `{"equals-ignore-case": …}`, `{"wildcard": …}`), `exists` (`true`/`false`, on leaf fields
//!   only: a field holding an object or an empty array does not exist), `numeric` (`=`, or one
//!   or two bounds with `<`, `<=`, `>`, `>=`), `cidr` (IPv4 and IPv6), and `$or`;
//! * every operator but `exists: false` needs the field to be present: `anything-but` never
//!   matches a missing field.
//!
//! Differences from AWS that a test could notice: `$or` is always the operator here (event-ruler
//! falls back to a plain field named `$or` when it is not an array of two or more objects; this
//! refuses such a pattern instead), and numbers are compared as `f64`, not with event-ruler's
//! 15-digit decimal precision.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// A parsed, valid event pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPattern {
    root: ObjectPattern,
    json: Value,
}

/// Why a pattern is not valid. `path` is where in the pattern, like `detail.state[1].anything-but`
/// (empty for the top level).
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("{}", describe_invalid(.file.as_deref(), .path, .message))]
    Invalid { file: Option<PathBuf>, path: String, message: String },

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
    /// Where in the pattern the problem is, for [`PatternError::Invalid`].
    pub fn path(&self) -> Option<&str> {
        match self {
            PatternError::Invalid { path, .. } => Some(path),
            _ => None,
        }
    }
}

fn describe_invalid(file: Option<&Path>, path: &str, message: &str) -> String {
    let place = if path.is_empty() { "the top level".to_string() } else { path.to_string() };
    match file {
        Some(file) => format!("event pattern {} is not valid at {place}: {message}", file.display()),
        None => format!("event pattern is not valid at {place}: {message}"),
    }
}

fn invalid(path: &str, message: impl Into<String>) -> PatternError {
    PatternError::Invalid { file: None, path: path.to_string(), message: message.into() }
}

impl EventPattern {
    /// Parses and checks a pattern, as `PutRule` does.
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
        EventPattern::parse(&json).map_err(|err| match err {
            PatternError::Invalid { path, message, .. } => {
                PatternError::Invalid { file: Some(file.to_path_buf()), path, message }
            }
            other => other,
        })
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

impl fmt::Display for EventPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.json)
    }
}

/// The fields of one level of the pattern (all must match) and its `$or` (one must match).
#[derive(Debug, Clone, PartialEq)]
struct ObjectPattern {
    fields: Vec<(String, FieldPattern)>,
    any_of: Vec<ObjectPattern>,
}

#[derive(Debug, Clone, PartialEq)]
enum FieldPattern {
    /// A leaf: the field's value must match one of these.
    Leaf(Vec<Matcher>),
    /// The field is an object (or an array of objects) matching this.
    Object(ObjectPattern),
}

#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Literal(Literal),
    Prefix(Affix),
    Suffix(Affix),
    EqualsIgnoreCase(String),
    Wildcard(Wildcard),
    AnythingBut(AnythingBut),
    Exists(bool),
    Numeric(Range),
    Cidr(Cidr),
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    String(String),
    Number(f64),
    Bool(bool),
    Null,
}

/// A `prefix` or `suffix`, plain or `equals-ignore-case`.
#[derive(Debug, Clone, PartialEq)]
struct Affix {
    text: String,
    ignore_case: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum AnythingBut {
    Values(Vec<Literal>),
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(Vec<String>),
    Wildcard(Vec<Wildcard>),
}

/// A numeric range; `(bound, inclusive)`.
#[derive(Debug, Clone, PartialEq)]
struct Range {
    lower: Option<(f64, bool)>,
    upper: Option<(f64, bool)>,
}

#[derive(Debug, Clone, PartialEq)]
struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

/// A wildcard pattern: `None` is a `*`, `Some(c)` a literal character.
#[derive(Debug, Clone, PartialEq)]
struct Wildcard(Vec<Option<char>>);

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

fn index_path(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

impl ObjectPattern {
    fn parse(fields: &Map<String, Value>, path: &str) -> Result<ObjectPattern, PatternError> {
        if fields.is_empty() {
            return Err(invalid(path, "empty objects are not allowed"));
        }
        let mut pattern = ObjectPattern { fields: Vec::new(), any_of: Vec::new() };
        for (key, value) in fields {
            let here = field_path(path, key);
            if key == "$or" {
                pattern.any_of = parse_or(value, &here)?;
                continue;
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
            // The field is missing or not an object: only "does not exist" can match below it.
            return self.matches_object(None);
        }
        objects.into_iter().any(|object| self.matches_object(Some(object)))
    }

    fn matches_object(&self, object: Option<&Map<String, Value>>) -> bool {
        self.fields.iter().all(|(key, field)| field.matches(object.and_then(|o| o.get(key))))
            && (self.any_of.is_empty() || self.any_of.iter().any(|alternative| alternative.matches_object(object)))
    }
}

fn parse_or(value: &Value, path: &str) -> Result<Vec<ObjectPattern>, PatternError> {
    let Value::Array(alternatives) = value else {
        return Err(invalid(path, format!("$or takes an array of two or more patterns, not {}", json_kind(value))));
    };
    if alternatives.len() < 2 {
        return Err(invalid(path, "$or takes an array of two or more patterns"));
    }
    alternatives
        .iter()
        .enumerate()
        .map(|(index, alternative)| {
            let here = index_path(path, index);
            match alternative {
                Value::Object(fields) => ObjectPattern::parse(fields, &here),
                other => Err(invalid(&here, format!("each $or alternative is an object, not {}", json_kind(other)))),
            }
        })
        .collect()
}

impl FieldPattern {
    fn matches(&self, value: Option<&Value>) -> bool {
        match self {
            FieldPattern::Object(object) => object.matches(value),
            FieldPattern::Leaf(matchers) => {
                let mut values = Vec::new();
                collect_leaves(value, &mut values);
                matchers.iter().any(|matcher| matcher.matches(&values))
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

fn parse_leaf(values: &[Value], path: &str) -> Result<Vec<Matcher>, PatternError> {
    if values.is_empty() {
        return Err(invalid(path, "empty arrays are not allowed"));
    }
    values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let here = index_path(path, index);
            match value {
                Value::Object(operator) => parse_operator(operator, &here),
                Value::Array(_) => Err(invalid(&here, "arrays cannot be nested in a pattern's array of values")),
                literal => Ok(Matcher::Literal(parse_literal(literal, &here)?)),
            }
        })
        .collect()
}

fn parse_literal(value: &Value, path: &str) -> Result<Literal, PatternError> {
    match value {
        Value::String(text) => Ok(Literal::String(text.clone())),
        Value::Number(number) => number
            .as_f64()
            .filter(|n| n.is_finite())
            .map(Literal::Number)
            .ok_or_else(|| invalid(path, format!("{number} is not a number EventBridge can match"))),
        Value::Bool(flag) => Ok(Literal::Bool(*flag)),
        Value::Null => Ok(Literal::Null),
        other => Err(invalid(path, format!("expected a string, number, boolean or null, not {}", json_kind(other)))),
    }
}

fn single_operator<'a>(operator: &'a Map<String, Value>, path: &str) -> Result<(&'a str, &'a Value), PatternError> {
    let mut entries = operator.iter();
    match (entries.next(), entries.next()) {
        (Some((name, value)), None) => Ok((name.as_str(), value)),
        (None, _) => Err(invalid(path, "empty objects are not allowed")),
        (Some(_), Some(_)) => Err(invalid(
            path,
            format!(
                "a matching object has exactly one operator, not {} ({})",
                operator.len(),
                operator.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

fn parse_operator(operator: &Map<String, Value>, path: &str) -> Result<Matcher, PatternError> {
    let (name, value) = single_operator(operator, path)?;
    let here = field_path(path, name);
    match name {
        "prefix" => Ok(Matcher::Prefix(parse_affix(value, &here)?)),
        "suffix" => Ok(Matcher::Suffix(parse_affix(value, &here)?)),
        "equals-ignore-case" => Ok(Matcher::EqualsIgnoreCase(string_operand(value, &here)?)),
        "wildcard" => Ok(Matcher::Wildcard(Wildcard::parse(&string_operand(value, &here)?, &here)?)),
        "anything-but" => Ok(Matcher::AnythingBut(parse_anything_but(value, &here)?)),
        "exists" => match value {
            Value::Bool(flag) => Ok(Matcher::Exists(*flag)),
            other => Err(invalid(&here, format!("exists takes true or false, not {}", json_kind(other)))),
        },
        "numeric" => Ok(Matcher::Numeric(Range::parse(value, &here)?)),
        "cidr" => Ok(Matcher::Cidr(Cidr::parse(&string_operand(value, &here)?, &here)?)),
        unknown => Err(invalid(
            path,
            format!(
                "unknown operator \"{unknown}\" (expected prefix, suffix, equals-ignore-case, wildcard, \
                 anything-but, exists, numeric or cidr)"
            ),
        )),
    }
}

fn string_operand(value: &Value, path: &str) -> Result<String, PatternError> {
    match value {
        Value::String(text) => Ok(text.clone()),
        other => Err(invalid(path, format!("expected a string, not {}", json_kind(other)))),
    }
}

fn parse_affix(value: &Value, path: &str) -> Result<Affix, PatternError> {
    match value {
        Value::String(text) => Ok(Affix { text: text.clone(), ignore_case: false }),
        Value::Object(operator) => match single_operator(operator, path)? {
            ("equals-ignore-case", Value::String(text)) => Ok(Affix { text: text.to_lowercase(), ignore_case: true }),
            ("equals-ignore-case", other) => Err(invalid(
                &field_path(path, "equals-ignore-case"),
                format!("expected a string, not {}", json_kind(other)),
            )),
            (name, _) => Err(invalid(
                path,
                format!("expected a string or {{\"equals-ignore-case\": \"…\"}}, not the operator \"{name}\""),
            )),
        },
        other => Err(invalid(path, format!("expected a string, not {}", json_kind(other)))),
    }
}

fn parse_anything_but(value: &Value, path: &str) -> Result<AnythingBut, PatternError> {
    match value {
        Value::String(_) | Value::Number(_) => Ok(AnythingBut::Values(vec![parse_literal(value, path)?])),
        Value::Array(items) => {
            let Some(first) = items.first() else {
                return Err(invalid(path, "empty arrays are not allowed"));
            };
            if !first.is_string() && !first.is_number() {
                return Err(invalid(
                    &index_path(path, 0),
                    format!("an anything-but list holds strings or numbers, not {}", json_kind(first)),
                ));
            }
            // The list holds only strings or only numbers, as its first element says.
            let numbers = first.is_number();
            let odd =
                items.iter().enumerate().find(|(_, item)| if numbers { !item.is_number() } else { !item.is_string() });
            if let Some((index, odd)) = odd {
                return Err(invalid(
                    &index_path(path, index),
                    format!(
                        "an anything-but list holds only strings or only numbers: this is {}, the first is {}",
                        json_kind(odd),
                        json_kind(first)
                    ),
                ));
            }
            let values = items
                .iter()
                .enumerate()
                .map(|(index, item)| parse_literal(item, &index_path(path, index)))
                .collect::<Result<_, _>>()?;
            Ok(AnythingBut::Values(values))
        }
        Value::Object(operator) => {
            let (name, operand) = single_operator(operator, path)?;
            let here = field_path(path, name);
            match name {
                "prefix" => Ok(AnythingBut::Prefix(string_operand(operand, &here)?)),
                "suffix" => Ok(AnythingBut::Suffix(string_operand(operand, &here)?)),
                "equals-ignore-case" => Ok(AnythingBut::EqualsIgnoreCase(
                    string_or_strings(operand, &here)?.into_iter().map(|s| s.to_lowercase()).collect(),
                )),
                "wildcard" => Ok(AnythingBut::Wildcard(
                    string_or_strings(operand, &here)?
                        .iter()
                        .enumerate()
                        .map(|(index, text)| Wildcard::parse(text, &index_path(&here, index)))
                        .collect::<Result<_, _>>()?,
                )),
                unknown => Err(invalid(
                    path,
                    format!(
                        "anything-but takes a value, a list, or one of prefix, suffix, equals-ignore-case, \
                         wildcard; not \"{unknown}\""
                    ),
                )),
            }
        }
        other => Err(invalid(
            path,
            format!(
                "anything-but takes a string, a number, a list of them, or an operator object; not {}",
                json_kind(other)
            ),
        )),
    }
}

fn string_or_strings(value: &Value, path: &str) -> Result<Vec<String>, PatternError> {
    match value {
        Value::String(text) => Ok(vec![text.clone()]),
        Value::Array(items) if !items.is_empty() => {
            items.iter().enumerate().map(|(index, item)| string_operand(item, &index_path(path, index))).collect()
        }
        Value::Array(_) => Err(invalid(path, "empty arrays are not allowed")),
        other => Err(invalid(path, format!("expected a string or a list of strings, not {}", json_kind(other)))),
    }
}

impl Range {
    fn parse(value: &Value, path: &str) -> Result<Range, PatternError> {
        let Value::Array(items) = value else {
            return Err(invalid(
                path,
                format!("numeric takes an array like [\">\", 0, \"<=\", 5], not {}", json_kind(value)),
            ));
        };
        if items.is_empty() || items.len() % 2 != 0 || items.len() > 4 {
            return Err(invalid(
                path,
                format!("numeric takes one or two operator-number pairs, like [\">\", 0, \"<=\", 5]; got {value}"),
            ));
        }
        let mut range = Range { lower: None, upper: None };
        for (pair, chunk) in items.chunks_exact(2).enumerate() {
            let [operator, bound] = chunk else { continue };
            let operator_path = index_path(path, pair * 2);
            let number_path = index_path(path, pair * 2 + 1);
            let operator = operator
                .as_str()
                .ok_or_else(|| invalid(&operator_path, format!("expected an operator, not {}", json_kind(operator))))?;
            let bound = bound
                .as_f64()
                .filter(|n| n.is_finite())
                .ok_or_else(|| invalid(&number_path, format!("expected a number, not {bound}")))?;
            let (slot, inclusive, name) = match operator {
                "=" if items.len() == 2 => {
                    range.lower = Some((bound, true));
                    range.upper = Some((bound, true));
                    continue;
                }
                "=" => return Err(invalid(&operator_path, "\"=\" cannot be combined with another operator")),
                ">" => (&mut range.lower, false, "a lower"),
                ">=" => (&mut range.lower, true, "a lower"),
                "<" => (&mut range.upper, false, "an upper"),
                "<=" => (&mut range.upper, true, "an upper"),
                other => {
                    return Err(invalid(
                        &operator_path,
                        format!("unknown numeric operator \"{other}\" (expected =, <, <=, >, >=)"),
                    ))
                }
            };
            if slot.is_some() {
                return Err(invalid(&operator_path, format!("the range has {name} bound already")));
            }
            *slot = Some((bound, inclusive));
        }
        if let (Some((low, _)), Some((high, _))) = (range.lower, range.upper) {
            if items.len() == 4 && low >= high {
                return Err(invalid(path, format!("the lower bound {low} must be less than the upper bound {high}")));
            }
        }
        Ok(range)
    }

    fn contains(&self, n: f64) -> bool {
        let above = match self.lower {
            Some((bound, true)) => n >= bound,
            Some((bound, false)) => n > bound,
            None => true,
        };
        let below = match self.upper {
            Some((bound, true)) => n <= bound,
            Some((bound, false)) => n < bound,
            None => true,
        };
        above && below
    }
}

impl Cidr {
    fn parse(text: &str, path: &str) -> Result<Cidr, PatternError> {
        let bad = || invalid(path, format!("\"{text}\" is not a CIDR block like 10.0.0.0/24"));
        let (address, length) = text.split_once('/').ok_or_else(bad)?;
        let network: IpAddr = address.parse().map_err(|_| bad())?;
        let prefix_len: u8 = length.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return Err(bad());
        }
        Ok(Cidr { network, prefix_len })
    }

    fn contains(&self, text: &str) -> bool {
        let Ok(address) = text.parse::<IpAddr>() else { return false };
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix_len)).unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix_len)).unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

impl Wildcard {
    fn parse(text: &str, path: &str) -> Result<Wildcard, PatternError> {
        let mut tokens = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    if tokens.last() == Some(&None) {
                        return Err(invalid(
                            path,
                            format!("consecutive wildcard characters are not allowed: \"{text}\""),
                        ));
                    }
                    tokens.push(None);
                }
                '\\' => match chars.next() {
                    Some(escaped @ ('*' | '\\')) => tokens.push(Some(escaped)),
                    _ => {
                        return Err(invalid(
                            path,
                            format!("a backslash may only escape * or \\ in a wildcard: \"{text}\""),
                        ))
                    }
                },
                literal => tokens.push(Some(literal)),
            }
        }
        Ok(Wildcard(tokens))
    }

    /// Glob matching with backtracking to the last `*`.
    fn matches(&self, text: &str) -> bool {
        let pattern = &self.0;
        let text: Vec<char> = text.chars().collect();
        let (mut p, mut t) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match pattern.get(p) {
                Some(Some(c)) if *c == text[t] => {
                    p += 1;
                    t += 1;
                }
                Some(None) => {
                    star = Some((p, t));
                    p += 1;
                }
                _ => match star {
                    Some((star_p, star_t)) => {
                        p = star_p + 1;
                        t = star_t + 1;
                        star = Some((star_p, star_t + 1));
                    }
                    None => return false,
                },
            }
        }
        pattern[p..].iter().all(Option::is_none)
    }
}

impl Literal {
    fn matches(&self, value: &Value) -> bool {
        match (self, value) {
            (Literal::String(expected), Value::String(actual)) => expected == actual,
            (Literal::Number(expected), Value::Number(actual)) => actual.as_f64() == Some(*expected),
            (Literal::Bool(expected), Value::Bool(actual)) => expected == actual,
            (Literal::Null, Value::Null) => true,
            _ => false,
        }
    }
}

impl Affix {
    fn matches(&self, value: &str, suffix: bool) -> bool {
        let folded;
        let value = if self.ignore_case {
            folded = value.to_lowercase();
            folded.as_str()
        } else {
            value
        };
        if suffix {
            value.ends_with(&self.text)
        } else {
            value.starts_with(&self.text)
        }
    }
}

impl AnythingBut {
    /// Whether `value` is excluded. Only strings can be excluded by prefix, suffix, case and
    /// wildcard; a value of another type is "anything but" them.
    fn excludes(&self, value: &Value) -> bool {
        match (self, value) {
            (AnythingBut::Values(values), value) => values.iter().any(|v| v.matches(value)),
            (AnythingBut::Prefix(prefix), Value::String(text)) => text.starts_with(prefix.as_str()),
            (AnythingBut::Suffix(suffix), Value::String(text)) => text.ends_with(suffix.as_str()),
            (AnythingBut::EqualsIgnoreCase(values), Value::String(text)) => {
                let folded = text.to_lowercase();
                values.contains(&folded)
            }
            (AnythingBut::Wildcard(patterns), Value::String(text)) => patterns.iter().any(|p| p.matches(text)),
            _ => false,
        }
    }
}

impl Matcher {
    /// Whether the field, whose leaf values are `values` (none when it is missing), matches.
    fn matches(&self, values: &[&Value]) -> bool {
        match self {
            Matcher::Exists(true) => !values.is_empty(),
            Matcher::Exists(false) => values.is_empty(),
            _ => values.iter().any(|value| self.matches_value(value)),
        }
    }

    fn matches_value(&self, value: &Value) -> bool {
        match self {
            Matcher::Literal(literal) => literal.matches(value),
            Matcher::Prefix(affix) => value.as_str().is_some_and(|text| affix.matches(text, false)),
            Matcher::Suffix(affix) => value.as_str().is_some_and(|text| affix.matches(text, true)),
            Matcher::EqualsIgnoreCase(expected) => {
                value.as_str().is_some_and(|text| text.to_lowercase() == expected.to_lowercase())
            }
            Matcher::Wildcard(wildcard) => value.as_str().is_some_and(|text| wildcard.matches(text)),
            Matcher::AnythingBut(anything_but) => !anything_but.excludes(value),
            Matcher::Numeric(range) => value.as_f64().is_some_and(|n| range.contains(n)),
            Matcher::Cidr(cidr) => value.as_str().is_some_and(|text| cidr.contains(text)),
            Matcher::Exists(_) => false,
        }
    }
}
