//! Terraform expressions evaluated with hcl-rs, for the checks that must see what an expression
//! does (a validation, a precondition, a dynamic block's `for_each`, a `for_each` key) rather than
//! how it is written.
//!
//! A [`Scope`] holds what the check gives: `var.*` (the variables' defaults, overridden), seeded
//! `local.*`, and any other root (`each`, `self`, a resource type). The remaining locals of the
//! files are evaluated in that scope where they can be; one that cannot (it reads a data source or
//! calls a function not implemented here) becomes an opaque string, much like a value Terraform
//! knows only after apply. Only the Terraform functions the checks meet are implemented, each with
//! Terraform's documented semantics and a test below; calling another one is an evaluation error,
//! which the caller reports or counts as "not evaluated".

use hcl::edit::expr::{Expression, Traversal, TraversalOperator};
use hcl::edit::visit_mut::{visit_expr_mut, VisitMut};
use hcl::edit::{Decorated, Ident};
use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::{Map, Number, Value};

use super::files::TfFile;

#[derive(Clone, Default)]
pub struct Scope {
    vars: Map<String, Value>,
    locals: Map<String, Value>,
    roots: Map<String, Value>,
}

impl Scope {
    /// `var.*` = the `default` of every `variable` block in `files`; variables without a default
    /// are left out until [`Scope::var`] sets them.
    pub fn with_defaults(files: &[&TfFile]) -> Scope {
        let mut vars = Map::new();
        for file in files {
            for block in file.body.get_blocks("variable") {
                let (Some(name), Some(default)) = (block.labels.first(), block.body.get_attribute("default")) else {
                    continue;
                };
                let value = Scope::default().eval(&default.value).unwrap_or_else(|err| {
                    panic!("{}: the default of {} is not a literal: {err}", file.at(default), name.as_str())
                });
                vars.insert(name.as_str().to_owned(), value);
            }
        }
        Scope { vars, ..Scope::default() }
    }

    pub fn var(mut self, name: &str, value: Value) -> Scope {
        self.vars.insert(name.to_owned(), value);
        self
    }

    /// A local with this value, whatever the files compute for it.
    pub fn local(mut self, name: &str, value: Value) -> Scope {
        self.locals.insert(name.to_owned(), value);
        self
    }

    /// Another root reference: `each`, `self`, `aws_ecs_task_definition`, …
    pub fn bind(mut self, name: &str, value: Value) -> Scope {
        self.roots.insert(name.to_owned(), value);
        self
    }

    /// Evaluates the locals of `files` that are not set yet, in as many passes as their
    /// references to each other need; the ones that do not evaluate become opaque strings. One
    /// context serves every pass: a local is added to it once, when it evaluates.
    pub fn with_locals_of(mut self, files: &[&TfFile]) -> Scope {
        let mut pending: Vec<(String, &Expression)> = files
            .iter()
            .flat_map(|file| file.body.get_blocks("locals"))
            .flat_map(|block| block.body.attributes())
            .filter(|attribute| !self.locals.contains_key(attribute.key.as_str()))
            .map(|attribute| (attribute.key.as_str().to_owned(), &attribute.value))
            .collect();
        let mut ctx = self.context();
        loop {
            let before = pending.len();
            let mut unresolved = Vec::new();
            for (name, expr) in pending {
                match evaluate(&ctx, expr) {
                    Ok(value) => {
                        ctx.declare_var(flat_name("local", &name), value.clone());
                        self.locals.insert(name, value);
                    }
                    Err(_) => unresolved.push((name, expr)),
                }
            }
            pending = unresolved;
            if pending.is_empty() || pending.len() == before {
                break;
            }
        }
        for (name, _) in pending {
            let opaque = format!("(local.{name}: not evaluated)");
            self.locals.insert(name, Value::String(opaque));
        }
        self
    }

    pub fn eval(&self, expr: &Expression) -> Result<Value, String> {
        evaluate(&self.context(), expr)
    }

    /// The variables, locals and roots of this scope, and the functions implemented here. Each
    /// variable and local is a variable of its own (`var.name` is read as `var__name`, see
    /// [`Flatten`]): hcl-rs clones the value of the root a traversal starts from, and cloning all
    /// the locals at each `local.x` (in a `for` over 10,000 parameters, 10,000 times) made an
    /// evaluation at 1,000 services x 10 environments take hours.
    fn context(&self) -> Context<'static> {
        let mut ctx = Context::new();
        for (name, value) in &self.vars {
            ctx.declare_var(flat_name("var", name), value.clone());
        }
        for (name, value) in &self.locals {
            ctx.declare_var(flat_name("local", name), value.clone());
        }
        for (name, value) in &self.roots {
            ctx.declare_var(name.as_str(), value.clone());
        }
        declare_functions(&mut ctx);
        ctx
    }
}

/// `var.name` → `var__name`, `local.name` → `local__name`.
fn flat_name(root: &str, name: &str) -> String {
    format!("{root}__{name}")
}

/// Rewrites `var.<name>…` and `local.<name>…` into traversals of the variables `var__<name>` and
/// `local__<name>` that [`Scope::context`] declares, everywhere in an expression (templates'
/// interpolations included). The value is the same; only what a reference clones changes.
struct Flatten;

impl VisitMut for Flatten {
    fn visit_expr_mut(&mut self, expr: &mut Expression) {
        if let Expression::Traversal(traversal) = expr {
            let flat = match (&traversal.expr, traversal.operators.first().map(|op| op.value())) {
                (Expression::Variable(root), Some(TraversalOperator::GetAttr(name)))
                    if matches!(root.as_str(), "var" | "local") =>
                {
                    Some(flat_name(root.as_str(), name.as_str()))
                }
                _ => None,
            };
            if let Some(flat) = flat {
                let root = Expression::Variable(Decorated::new(Ident::new(flat)));
                let rest: Vec<_> = traversal.operators.drain(1..).collect();
                *expr =
                    if rest.is_empty() { root } else { Expression::Traversal(Box::new(Traversal::new(root, rest))) };
            }
        }
        visit_expr_mut(self, expr);
    }
}

fn evaluate(ctx: &Context, expr: &Expression) -> Result<Value, String> {
    let mut expr = expr.clone();
    Flatten.visit_expr_mut(&mut expr);
    hcl::Expression::from(expr).evaluate(ctx).map_err(|err| err.to_string())
}

fn declare_functions(ctx: &mut Context) {
    ctx.declare_func("length", FuncDef::builder().param(ParamType::Any).build(length));
    ctx.declare_func("alltrue", FuncDef::builder().param(ParamType::Any).build(alltrue));
    ctx.declare_func("anytrue", FuncDef::builder().param(ParamType::Any).build(anytrue));
    ctx.declare_func("values", FuncDef::builder().param(ParamType::Any).build(values));
    ctx.declare_func("flatten", FuncDef::builder().param(ParamType::Any).build(flatten));
    ctx.declare_func("split", FuncDef::builder().param(ParamType::String).param(ParamType::String).build(split));
    ctx.declare_func(
        "strcontains",
        FuncDef::builder().param(ParamType::String).param(ParamType::String).build(strcontains),
    );
    ctx.declare_func("keys", FuncDef::builder().param(ParamType::Any).build(keys));
    ctx.declare_func("sort", FuncDef::builder().param(ParamType::Any).build(sort));
    ctx.declare_func("distinct", FuncDef::builder().param(ParamType::Any).build(distinct));
    ctx.declare_func("merge", FuncDef::builder().variadic_param(ParamType::Any).build(merge));
    ctx.declare_func("coalesce", FuncDef::builder().variadic_param(ParamType::Any).build(coalesce));
    ctx.declare_func(
        "lookup",
        FuncDef::builder().param(ParamType::Any).param(ParamType::String).param(ParamType::Any).build(lookup),
    );
    ctx.declare_func(
        "replace",
        FuncDef::builder().param(ParamType::String).param(ParamType::String).param(ParamType::String).build(replace),
    );
    ctx.declare_func("concat", FuncDef::builder().variadic_param(ParamType::Any).build(concat));
    ctx.declare_func("contains", FuncDef::builder().param(ParamType::Any).param(ParamType::Any).build(contains));
    ctx.declare_func("index", FuncDef::builder().param(ParamType::Any).param(ParamType::Any).build(index));
    ctx.declare_func("join", FuncDef::builder().param(ParamType::String).param(ParamType::Any).build(join));
    ctx.declare_func("regex", FuncDef::builder().param(ParamType::String).param(ParamType::String).build(regex));
    ctx.declare_func("regexall", FuncDef::builder().param(ParamType::String).param(ParamType::String).build(regexall));
    ctx.declare_func("setproduct", FuncDef::builder().param(ParamType::Any).param(ParamType::Any).build(setproduct));
    ctx.declare_func("tonumber", FuncDef::builder().param(ParamType::Any).build(tonumber));
    ctx.declare_func("toset", FuncDef::builder().param(ParamType::Any).build(toset));
    ctx.declare_func("one", FuncDef::builder().param(ParamType::Any).build(one));
    ctx.declare_func(
        "substr",
        FuncDef::builder().param(ParamType::String).param(ParamType::Number).param(ParamType::Number).build(substr),
    );
    ctx.declare_func("base64encode", FuncDef::builder().param(ParamType::String).build(base64encode));
    ctx.declare_func("sha256", FuncDef::builder().param(ParamType::String).build(sha256));
    ctx.declare_func("ceil", FuncDef::builder().param(ParamType::Number).build(ceil));
    ctx.declare_func("floor", FuncDef::builder().param(ParamType::Number).build(floor));
    ctx.declare_func("min", FuncDef::builder().variadic_param(ParamType::Number).build(min));
    ctx.declare_func("max", FuncDef::builder().variadic_param(ParamType::Number).build(max));
    ctx.declare_func("range", FuncDef::builder().variadic_param(ParamType::Number).build(range));
    ctx.declare_func("jsonencode", FuncDef::builder().param(ParamType::Any).build(jsonencode));
    ctx.declare_func(
        "startswith",
        FuncDef::builder().param(ParamType::String).param(ParamType::String).build(startswith),
    );
    ctx.declare_func("endswith", FuncDef::builder().param(ParamType::String).param(ParamType::String).build(endswith));
}

/// The lists, one after the other.
fn concat(args: FuncArgs) -> Result<Value, String> {
    let mut out = Vec::new();
    for arg in args.iter() {
        let Value::Array(items) = arg else { return Err(format!("concat of {arg}")) };
        out.extend(items.iter().cloned());
    }
    Ok(Value::Array(out))
}

/// `contains(list, value)`
fn contains(args: FuncArgs) -> Result<Value, String> {
    let Value::Array(items) = &args[0] else { return Err(format!("contains in {}", args[0])) };
    Ok(Value::Bool(items.contains(&args[1])))
}

/// `index(list, value)`: the first position of the value; an error when it is not there.
fn index(args: FuncArgs) -> Result<Value, String> {
    let Value::Array(items) = &args[0] else { return Err(format!("index in {}", args[0])) };
    items.iter().position(|item| *item == args[1]).map(number).ok_or_else(|| format!("index: {} not found", args[1]))
}

/// `join(separator, list)` of strings.
fn join(args: FuncArgs) -> Result<Value, String> {
    let separator = args[0].as_str().ok_or("join with a non-string separator")?;
    let Value::Array(items) = &args[1] else { return Err(format!("join of {}", args[1])) };
    let parts: Vec<&str> =
        items.iter().map(|item| item.as_str().ok_or_else(|| format!("join of {item}"))).collect::<Result<_, _>>()?;
    Ok(Value::String(parts.join(separator)))
}

/// Terraform's regular expressions are RE2's; the `regex` crate takes the same syntax for what
/// infra/ uses (classes, anchors, `\p{..}`).
fn compile(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern).map_err(|err| format!("regex {pattern:?}: {err}"))
}

/// `regex(pattern, string)`: the match, or its capture groups; an error when it does not match.
fn regex(args: FuncArgs) -> Result<Value, String> {
    let (Some(pattern), Some(string)) = (args[0].as_str(), args[1].as_str()) else {
        return Err("regex of non-strings".to_owned());
    };
    let regex = compile(pattern)?;
    let captures = regex.captures(string).ok_or_else(|| format!("regex: {pattern:?} does not match {string:?}"))?;
    Ok(match regex.captures_len() {
        1 => Value::String(captures[0].to_owned()),
        _ => Value::Array(
            captures
                .iter()
                .skip(1)
                .map(|group| group.map_or(Value::Null, |m| Value::String(m.as_str().to_owned())))
                .collect(),
        ),
    })
}

/// `regexall(pattern, string)`: every match (without capture groups: the matched strings).
fn regexall(args: FuncArgs) -> Result<Value, String> {
    let (Some(pattern), Some(string)) = (args[0].as_str(), args[1].as_str()) else {
        return Err("regexall of non-strings".to_owned());
    };
    let regex = compile(pattern)?;
    if regex.captures_len() > 1 {
        return Err("regexall with capture groups is not implemented".to_owned());
    }
    Ok(Value::Array(regex.find_iter(string).map(|m| Value::String(m.as_str().to_owned())).collect()))
}

/// `setproduct(a, b)` of two lists: every pair, in order.
fn setproduct(args: FuncArgs) -> Result<Value, String> {
    let (Value::Array(first), Value::Array(second)) = (&args[0], &args[1]) else {
        return Err(format!("setproduct of {} and {}", args[0], args[1]));
    };
    Ok(Value::Array(
        first.iter().flat_map(|a| second.iter().map(|b| Value::Array(vec![a.clone(), b.clone()]))).collect(),
    ))
}

/// `tonumber("15")`: a whole number (what infra/ converts), as a float beyond i64.
fn tonumber(args: FuncArgs) -> Result<Value, String> {
    match &args[0] {
        Value::Number(n) => Ok(Value::Number(*n)),
        Value::String(s) => s
            .parse::<i64>()
            .map(Number::from)
            .or_else(|_| s.parse::<f64>().ok().and_then(Number::from_f64).ok_or(()))
            .map(Value::Number)
            .map_err(|()| format!("tonumber of {s:?}")),
        other => Err(format!("tonumber of {other}")),
    }
}

/// `one(list)`: null for an empty list, the element of a list of one, an error otherwise.
fn one(args: FuncArgs) -> Result<Value, String> {
    match &args[0] {
        Value::Array(items) if items.is_empty() => Ok(Value::Null),
        Value::Array(items) if items.len() == 1 => Ok(items[0].clone()),
        Value::Array(items) => Err(format!("one: the list has {} elements, not 0 or 1", items.len())),
        other => Err(format!("one of {other}")),
    }
}

/// A set of strings, as Terraform iterates it: sorted, without repeats.
fn toset(args: FuncArgs) -> Result<Value, String> {
    let Value::Array(mut items) = sort(args)? else { unreachable!("sort returns a list") };
    items.dedup();
    Ok(Value::Array(items))
}

fn number(n: usize) -> Value {
    Value::Number(Number::from(n as u64))
}

/// Characters of a string (Terraform counts Unicode characters), elements of a list or map.
fn length(args: FuncArgs) -> Result<Value, String> {
    match &args[0] {
        Value::String(s) => Ok(number(s.chars().count())),
        Value::Array(items) => Ok(number(items.len())),
        Value::Object(entries) => Ok(number(entries.len())),
        other => Err(format!("length of {other}")),
    }
}

fn alltrue(args: FuncArgs) -> Result<Value, String> {
    let Value::Array(items) = &args[0] else { return Err(format!("alltrue of {}", args[0])) };
    items
        .iter()
        .try_fold(true, |all, item| item.as_bool().map(|b| all && b).ok_or_else(|| format!("alltrue of {item}")))
        .map(Value::Bool)
}

fn anytrue(args: FuncArgs) -> Result<Value, String> {
    let Value::Array(items) = &args[0] else { return Err(format!("anytrue of {}", args[0])) };
    items
        .iter()
        .try_fold(false, |any, item| item.as_bool().map(|b| any || b).ok_or_else(|| format!("anytrue of {item}")))
        .map(Value::Bool)
}

/// The values of a map, in the order of its keys (as Terraform returns them).
fn values(args: FuncArgs) -> Result<Value, String> {
    let Value::Object(entries) = &args[0] else { return Err(format!("values of {}", args[0])) };
    let mut sorted: Vec<(&String, &Value)> = entries.iter().collect();
    sorted.sort_by_key(|(key, _)| *key);
    Ok(Value::Array(sorted.into_iter().map(|(_, value)| value.clone()).collect()))
}

fn flatten(args: FuncArgs) -> Result<Value, String> {
    fn into(value: &Value, out: &mut Vec<Value>) {
        match value {
            Value::Array(items) => items.iter().for_each(|item| into(item, out)),
            other => out.push(other.clone()),
        }
    }
    let Value::Array(_) = &args[0] else { return Err(format!("flatten of {}", args[0])) };
    let mut out = Vec::new();
    into(&args[0], &mut out);
    Ok(Value::Array(out))
}

/// `split(separator, string)`
fn split(args: FuncArgs) -> Result<Value, String> {
    let (Some(separator), Some(string)) = (args[0].as_str(), args[1].as_str()) else {
        return Err("split of non-strings".to_owned());
    };
    Ok(Value::Array(string.split(separator).map(|part| Value::String(part.to_owned())).collect()))
}

/// `strcontains(string, substring)`
fn strcontains(args: FuncArgs) -> Result<Value, String> {
    let (Some(string), Some(substring)) = (args[0].as_str(), args[1].as_str()) else {
        return Err("strcontains of non-strings".to_owned());
    };
    Ok(Value::Bool(string.contains(substring)))
}

/// The keys of a map, sorted.
fn keys(args: FuncArgs) -> Result<Value, String> {
    let Value::Object(entries) = &args[0] else { return Err(format!("keys of {}", args[0])) };
    let mut names: Vec<&String> = entries.keys().collect();
    names.sort();
    Ok(Value::Array(names.into_iter().map(|name| Value::String(name.clone())).collect()))
}

/// A list of strings in lexical order (Terraform's `sort` takes strings only).
fn sort(args: FuncArgs) -> Result<Value, String> {
    let Value::Array(items) = &args[0] else { return Err(format!("sort of {}", args[0])) };
    let mut strings: Vec<&str> =
        items.iter().map(|item| item.as_str().ok_or_else(|| format!("sort of {item}"))).collect::<Result<_, _>>()?;
    strings.sort_unstable();
    Ok(Value::Array(strings.into_iter().map(|s| Value::String(s.to_owned())).collect()))
}

/// The list without repeats, first occurrences kept in order.
fn distinct(args: FuncArgs) -> Result<Value, String> {
    let Value::Array(items) = &args[0] else { return Err(format!("distinct of {}", args[0])) };
    let mut out: Vec<Value> = Vec::new();
    for item in items {
        if !out.contains(item) {
            out.push(item.clone());
        }
    }
    Ok(Value::Array(out))
}

/// Maps or objects merged, a later argument's attribute winning; null arguments are skipped.
fn merge(args: FuncArgs) -> Result<Value, String> {
    let mut merged = Map::new();
    for arg in args.iter() {
        match arg {
            Value::Object(entries) => merged.extend(entries.iter().map(|(k, v)| (k.clone(), v.clone()))),
            Value::Null => {}
            other => return Err(format!("merge of {other}")),
        }
    }
    Ok(Value::Object(merged))
}

/// The first argument that is neither null nor an empty string; an error when there is none,
/// as in Terraform.
fn coalesce(args: FuncArgs) -> Result<Value, String> {
    args.iter()
        .find(|arg| !matches!(arg, Value::Null) && arg.as_str() != Some(""))
        .cloned()
        .ok_or_else(|| "coalesce: no non-null, non-empty-string argument".to_owned())
}

/// `lookup(map, key, default)`
fn lookup(args: FuncArgs) -> Result<Value, String> {
    let Value::Object(entries) = &args[0] else { return Err(format!("lookup in {}", args[0])) };
    let key = args[1].as_str().ok_or("lookup of a non-string key")?;
    Ok(entries.get(key).cloned().unwrap_or_else(|| args[2].clone()))
}

/// `replace(string, substring, replacement)` with a plain substring; the `/regex/` form is not
/// implemented.
fn replace(args: FuncArgs) -> Result<Value, String> {
    let (Some(string), Some(substring), Some(replacement)) = (args[0].as_str(), args[1].as_str(), args[2].as_str())
    else {
        return Err("replace of non-strings".to_owned());
    };
    if substring.len() > 1 && substring.starts_with('/') && substring.ends_with('/') {
        return Err(format!("replace with the regular expression {substring} is not implemented"));
    }
    Ok(Value::String(string.replace(substring, replacement)))
}

/// A whole number argument (Terraform converts a fractional one by truncating toward zero where
/// it needs an index or a length; the checks pass whole numbers only, so anything else is an
/// error here).
fn whole(value: &Value, what: &str) -> Result<i64, String> {
    let Value::Number(n) = value else { return Err(format!("{what}: {value} is not a number")) };
    n.as_i64().ok_or_else(|| format!("{what}: {n} is not a whole number"))
}

/// `substr(string, offset, length)`, as Terraform (cty's `Substr`): `offset` counts from the
/// start, or from the end when negative; `length` -1 takes the rest; an offset past the end gives
/// `""` and a length past the end stops there. Counted in Unicode characters: Terraform counts
/// grapheme clusters, which differ only for combining sequences (as with `length` above).
fn substr(args: FuncArgs) -> Result<Value, String> {
    let string = args[0].as_str().ok_or("substr of a non-string")?;
    let chars: Vec<char> = string.chars().collect();
    let total = chars.len() as i64;
    let (mut offset, length) = (whole(&args[1], "substr offset")?, whole(&args[2], "substr length")?);
    if offset < 0 {
        offset += total;
        if offset < 0 {
            return Err(format!("substr: offset {} is before the start of a {total}-character string", offset - total));
        }
    }
    if length < -1 {
        return Err(format!("substr: length {length} must be -1 (the rest) or at least 0"));
    }
    let start = offset.min(total) as usize;
    let end = if length == -1 { chars.len() } else { (offset.saturating_add(length)).min(total) as usize };
    Ok(Value::String(chars[start..end.max(start)].iter().collect()))
}

/// `base64encode(string)`: the UTF-8 bytes in standard Base64 (RFC 4648, `+/`, `=` padding).
fn base64encode(args: FuncArgs) -> Result<Value, String> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = args[0].as_str().ok_or("base64encode of a non-string")?.as_bytes();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    Ok(Value::String(out))
}

/// `sha256(string)`: the SHA-256 of the UTF-8 bytes, 64 lowercase hex digits.
fn sha256(args: FuncArgs) -> Result<Value, String> {
    use sha2::{Digest, Sha256};
    let string = args[0].as_str().ok_or("sha256 of a non-string")?;
    Ok(Value::String(Sha256::digest(string.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()))
}

fn float(value: &Value, what: &str) -> Result<f64, String> {
    value.as_number().and_then(Number::as_f64).ok_or_else(|| format!("{what} of {value}"))
}

fn from_float(value: f64) -> Result<Value, String> {
    Number::from_f64(value).map(Value::Number).ok_or_else(|| format!("{value} is not a finite number"))
}

/// `ceil(number)`: the closest whole number greater than or equal to it.
fn ceil(args: FuncArgs) -> Result<Value, String> {
    from_float(float(&args[0], "ceil")?.ceil())
}

/// `floor(number)`: the closest whole number less than or equal to it.
fn floor(args: FuncArgs) -> Result<Value, String> {
    from_float(float(&args[0], "floor")?.floor())
}

/// `min(numbers...)`; Terraform needs at least one.
fn min(args: FuncArgs) -> Result<Value, String> {
    let values: Vec<f64> = args.iter().map(|arg| float(arg, "min")).collect::<Result<_, _>>()?;
    values.into_iter().reduce(f64::min).map_or(Err("min of nothing".to_owned()), from_float)
}

/// `max(numbers...)`; Terraform needs at least one.
fn max(args: FuncArgs) -> Result<Value, String> {
    let values: Vec<f64> = args.iter().map(|arg| float(arg, "max")).collect::<Result<_, _>>()?;
    values.into_iter().reduce(f64::max).map_or(Err("max of nothing".to_owned()), from_float)
}

/// `range(limit)`, `range(start, limit)`, `range(start, limit, step)` over whole numbers: from
/// `start` (0) up to, not including, `limit`, by `step` (1, or -1 when `limit` < `start`).
/// Terraform refuses a step of 0 and a step that moves away from the limit, and lists at most
/// 1,024 elements.
fn range(args: FuncArgs) -> Result<Value, String> {
    let numbers: Vec<i64> = args.iter().map(|arg| whole(arg, "range")).collect::<Result<_, _>>()?;
    let (start, limit, step) = match numbers.as_slice() {
        [limit] => (0, *limit, 1),
        [start, limit] => (*start, *limit, if limit < start { -1 } else { 1 }),
        [start, limit, step] => (*start, *limit, *step),
        _ => return Err(format!("range takes 1 to 3 arguments, not {}", numbers.len())),
    };
    if step == 0 || (limit > start && step < 0) || (limit < start && step > 0) {
        return Err(format!("range({start}, {limit}, {step}) never reaches its limit"));
    }
    let mut out = Vec::new();
    let mut at = start;
    while (step > 0 && at < limit) || (step < 0 && at > limit) {
        if out.len() == 1024 {
            return Err("range: more than 1024 elements".to_owned());
        }
        out.push(Value::Number(Number::from(at)));
        at += step;
    }
    Ok(Value::Array(out))
}

/// `startswith(string, prefix)`
fn startswith(args: FuncArgs) -> Result<Value, String> {
    let (Some(string), Some(prefix)) = (args[0].as_str(), args[1].as_str()) else {
        return Err("startswith of non-strings".to_owned());
    };
    Ok(Value::Bool(string.starts_with(prefix)))
}

/// `endswith(string, suffix)`
fn endswith(args: FuncArgs) -> Result<Value, String> {
    let (Some(string), Some(suffix)) = (args[0].as_str(), args[1].as_str()) else {
        return Err("endswith of non-strings".to_owned());
    };
    Ok(Value::Bool(string.ends_with(suffix)))
}

/// `jsonencode(value)` as Terraform writes it: compact, object keys in lexical order (cty orders
/// an object's attributes by name), and strings escaped as Go's `encoding/json` does (`"`, `\`
/// and control characters; `<`, `>`, `&`, U+2028 and U+2029 as `\u003c`, `\u003e`, `\u0026`,
/// `\u2028`, `\u2029`; other characters as they are, in UTF-8). Whole numbers are written
/// without a fraction.
fn jsonencode(args: FuncArgs) -> Result<Value, String> {
    let mut out = String::new();
    write_json(&args[0], &mut out)?;
    Ok(Value::String(out))
}

fn write_json(value: &Value, out: &mut String) -> Result<(), String> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) if f.is_finite() => out.push_str(&f.to_string()),
            _ => return Err(format!("jsonencode of the number {n}")),
        },
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out)?;
            }
            out.push(']');
        }
        Value::Object(entries) => {
            let mut sorted: Vec<(&String, &Value)> = entries.iter().collect();
            sorted.sort_by_key(|(key, _)| *key);
            out.push('{');
            for (i, (key, item)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(key, out);
                out.push(':');
                write_json(item, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Go 1.22 and later (Terraform 1.10 is built with 1.23) write these two short.
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `expression` evaluated with no variables or locals.
    fn eval(expression: &str) -> Result<Value, String> {
        let body: hcl::edit::structure::Body =
            format!("probe = {expression}\n").parse().unwrap_or_else(|err| panic!("{expression}: {err}"));
        let attribute = body.get_attribute("probe").expect("probe");
        Scope::default().eval(&attribute.value)
    }

    fn text(s: &str) -> Value {
        Value::String(s.to_owned())
    }

    fn n(i: i64) -> Value {
        Value::Number(Number::from(i))
    }

    #[test]
    fn substr_takes_characters_from_an_offset_as_terraform_does() {
        // The examples of Terraform's documentation (functions/substr).
        assert_eq!(eval(r#"substr("hello world", 1, 4)"#), Ok(text("ello")));
        assert_eq!(eval(r#"substr("🤔🤷", 0, 1)"#), Ok(text("🤔")), "characters, not bytes");
        assert_eq!(eval(r#"substr("hello world", -5, -1)"#), Ok(text("world")));
        assert_eq!(eval(r#"substr("hello world", 6, 10)"#), Ok(text("world")), "a length past the end stops there");
        assert_eq!(eval(r#"substr("hello", 10, 2)"#), Ok(text("")), "an offset past the end is empty");
        assert_eq!(eval(r#"substr("hello", 0, 0)"#), Ok(text("")));
        assert!(eval(r#"substr("hello", -6, 1)"#).is_err());
        // What the config parts rely on: consecutive windows put the whole string back together.
        let whole = "abcdefghij".repeat(7);
        let parts: String = (0..8)
            .map(|i| eval(&format!(r#"substr("{whole}", {} * 10, 10)"#, i)).expect("a part"))
            .map(|part| part.as_str().expect("a string").to_owned())
            .collect();
        assert_eq!(parts, whole);
    }

    #[test]
    fn base64encode_and_sha256_work_on_the_utf8_bytes() {
        // RFC 4648 section 10's test vectors, and Terraform's example.
        for (input, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("Hello World", "SGVsbG8gV29ybGQ="),
            ("é", "w6k="),
        ] {
            assert_eq!(eval(&format!(r#"base64encode("{input}")"#)), Ok(text(encoded)), "{input:?}");
        }
        // 4 * ceil(bytes / 3) characters: at most 10,920 exactly when at most 8,190 bytes.
        for bytes in [8188, 8189, 8190, 8191, 8192] {
            let encoded = eval(&format!(r#"length(base64encode("{}"))"#, "a".repeat(bytes))).expect("a length");
            assert_eq!(encoded.as_number().and_then(Number::as_u64), Some(4 * (bytes as u64).div_ceil(3)));
            assert_eq!(encoded.as_number().and_then(Number::as_u64).is_some_and(|l| l <= 10920), bytes <= 8190);
        }
        assert_eq!(
            eval(r#"sha256("hello world")"#),
            Ok(text("b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"))
        );
        assert_eq!(eval(r#"sha256("")"#), Ok(text("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")));
    }

    #[test]
    fn numbers_round_and_ranges_count_as_terraform_does() {
        assert_eq!(eval("ceil(9000 / 4000)"), Ok(n(3)), "Terraform's division is exact, not whole");
        assert_eq!(eval("ceil(8000 / 4000)"), Ok(n(2)));
        assert_eq!(eval("ceil(0 / 4000)"), Ok(n(0)));
        assert_eq!(eval("floor(4.9)"), Ok(n(4)));
        assert_eq!(eval("floor(-1.5)"), Ok(n(-2)));
        assert_eq!(eval("min(12, 54, 3)"), Ok(n(3)));
        assert_eq!(eval("max(12, 54, 3)"), Ok(n(54)));
        assert_eq!(eval("range(3)"), Ok(Value::Array(vec![n(0), n(1), n(2)])));
        assert_eq!(eval("range(1, 4)"), Ok(Value::Array(vec![n(1), n(2), n(3)])));
        assert_eq!(eval("range(4, 1)"), Ok(Value::Array(vec![n(4), n(3), n(2)])));
        assert_eq!(eval("range(0, 10, 5)"), Ok(Value::Array(vec![n(0), n(5)])));
        assert_eq!(eval("range(0)"), Ok(Value::Array(vec![])));
        assert!(eval("range(0, 10, -1)").is_err());
        assert!(eval("range(2000)").is_err(), "Terraform lists at most 1,024");
    }

    #[test]
    fn jsonencode_writes_what_terraform_writes() {
        // Keys in order, compact, HTML characters escaped as Go's encoding/json does.
        assert_eq!(
            eval(r#"jsonencode({ b = [1, "x"], a = { d = true, c = null } })"#),
            Ok(text(r#"{"a":{"c":null,"d":true},"b":[1,"x"]}"#))
        );
        assert_eq!(eval(r#"jsonencode("a<b>&\"c\"\\é")"#), Ok(text(r#""a\u003cb\u003e\u0026\"c\"\\é""#)));
        assert_eq!(eval(r#"jsonencode("tab\there\nnewline")"#), Ok(text(r#""tab\there\nnewline""#)));
        assert_eq!(eval("jsonencode(2.5)"), Ok(text("2.5")));
        assert_eq!(eval("jsonencode(4000 * 3)"), Ok(text("12000")));
        // What the precondition on a rule measures: the characters of that text.
        assert_eq!(eval(r#"length(jsonencode({ name = [{ prefix = "/a/" }] }))"#), Ok(n(27)));
    }

    #[test]
    fn one_gives_the_only_element_or_null() {
        assert_eq!(eval("one([])"), Ok(Value::Null));
        assert_eq!(eval(r#"one(["x"])"#), Ok(text("x")));
        assert!(eval(r#"one(["x", "y"])"#).is_err());
    }

    #[test]
    fn anytrue_is_true_when_one_element_is() {
        assert_eq!(eval("anytrue([false, true])"), Ok(Value::Bool(true)));
        assert_eq!(eval("anytrue([false])"), Ok(Value::Bool(false)));
        assert_eq!(eval("anytrue([])"), Ok(Value::Bool(false)), "Terraform: false for an empty list");
    }

    #[test]
    fn startswith_and_endswith_compare_plainly() {
        assert_eq!(eval(r#"startswith("/tagrelay/dev/verified", "/tagrelay/")"#), Ok(Value::Bool(true)));
        assert_eq!(eval(r#"startswith("/tagrelayx", "/tagrelay/")"#), Ok(Value::Bool(false)));
        assert_eq!(eval(r#"endswith("/a/dev/docker-image-tag", "/dev/docker-image-tag")"#), Ok(Value::Bool(true)));
        assert_eq!(eval(r#"endswith("tag", "/tag")"#), Ok(Value::Bool(false)));
    }
}
