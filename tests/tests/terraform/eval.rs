//! Terraform expressions evaluated with hcl-rs, for the checks that must see what an expression
//! does (a validation, a precondition, a dynamic block's `for_each`, a `for_each` key) rather than
//! how it is written.
//!
//! A [`Scope`] holds what the check gives: `var.*` (the variables' defaults, overridden), seeded
//! `local.*`, and any other root (`each`, `self`, a resource type). The remaining locals of the
//! files are evaluated in that scope where they can be; one that cannot (it reads a data source or
//! calls a function not implemented here) becomes an opaque string, much like a value Terraform
//! knows only after apply. Only the Terraform functions the checks meet are implemented; calling
//! another one is an evaluation error, which the caller reports or counts as "not evaluated".

use hcl::edit::expr::Expression;
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
    /// references to each other need; the ones that do not evaluate become opaque strings.
    pub fn with_locals_of(mut self, files: &[&TfFile]) -> Scope {
        let mut pending: Vec<(String, &Expression)> = files
            .iter()
            .flat_map(|file| file.body.get_blocks("locals"))
            .flat_map(|block| block.body.attributes())
            .filter(|attribute| !self.locals.contains_key(attribute.key.as_str()))
            .map(|attribute| (attribute.key.as_str().to_owned(), &attribute.value))
            .collect();
        loop {
            let before = pending.len();
            let mut unresolved = Vec::new();
            for (name, expr) in pending {
                match self.eval(expr) {
                    Ok(value) => {
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
        let mut ctx = Context::new();
        ctx.declare_var("var", Value::Object(self.vars.clone()));
        ctx.declare_var("local", Value::Object(self.locals.clone()));
        for (name, value) in &self.roots {
            ctx.declare_var(name.as_str(), value.clone());
        }
        ctx.declare_func("length", FuncDef::builder().param(ParamType::Any).build(length));
        ctx.declare_func("alltrue", FuncDef::builder().param(ParamType::Any).build(alltrue));
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
            FuncDef::builder()
                .param(ParamType::String)
                .param(ParamType::String)
                .param(ParamType::String)
                .build(replace),
        );
        ctx.declare_func("concat", FuncDef::builder().variadic_param(ParamType::Any).build(concat));
        ctx.declare_func("contains", FuncDef::builder().param(ParamType::Any).param(ParamType::Any).build(contains));
        ctx.declare_func("index", FuncDef::builder().param(ParamType::Any).param(ParamType::Any).build(index));
        ctx.declare_func("join", FuncDef::builder().param(ParamType::String).param(ParamType::Any).build(join));
        ctx.declare_func("regex", FuncDef::builder().param(ParamType::String).param(ParamType::String).build(regex));
        ctx.declare_func(
            "regexall",
            FuncDef::builder().param(ParamType::String).param(ParamType::String).build(regexall),
        );
        ctx.declare_func(
            "setproduct",
            FuncDef::builder().param(ParamType::Any).param(ParamType::Any).build(setproduct),
        );
        ctx.declare_func("tonumber", FuncDef::builder().param(ParamType::Any).build(tonumber));
        ctx.declare_func("toset", FuncDef::builder().param(ParamType::Any).build(toset));
        hcl::Expression::from(expr.clone()).evaluate(&ctx).map_err(|err| err.to_string())
    }
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
