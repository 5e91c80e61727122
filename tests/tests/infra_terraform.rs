//! infra/ checked offline, without Terraform or an AWS account:
//!
//! * every `.tf` file parses (hcl-rs), and a syntax error names `file:line`;
//! * every `resource`/`data` type, argument and nested block name exists in the AWS provider's
//!   schema (tests/infra/aws-provider-schema.json, extracted from the pinned `@cdktf/provider-aws`
//!   by tests/infra/extract_provider_schema.py), and the provider version it comes from is one
//!   infra/versions.tf accepts;
//! * the functions' environment in infra/lambda.tf is exactly what their code reads;
//! * every pattern file in infra/event-patterns/ feeds one rule of infra/events.tf, and after
//!   the narrowing events.tf applies, every fixture event matches the rule of its kind and no other;
//! * what the expressions that decide whether a deploy works evaluate to (hcl-rs, with the few
//!   Terraform functions they call): no reserved concurrency by default, the build role's source
//!   and state permissions per source type, for_each keys known at plan time, name-length limits,
//!   the schedule's rate syntax, the example service's rollback check;
//! * infra/buildspec.yml's commands, run with bash against a stub `terraform`.

mod terraform;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use hcl::edit::expr::Expression;
use hcl::edit::structure::Block;
use hcl::Value as HclValue;
use regex::Regex;
use serde_json::{json, Value};
use tagrelay::config::DEFAULT_TAG_PATTERN;
use tagrelay::deploy::verify::{HoldReason, VerifiedBy};
use tagrelay::deploy::Outcome;
use tagrelay::order::OrderPolicy;
use tagrelay_testbed::event_pattern::EventPattern;
use tagrelay_testbed::workspace_root;
use terraform::code_env::{self, EnvReads, Source};
use terraform::eval::Scope;
use terraform::event_rules::{self, EventRules};
use terraform::files::{self, TfFile};
use terraform::hcl_read::{
    declarations, func_call, local, object_entries, regex_patterns, resource, string_list, variable, DeclarationKind,
};
use terraform::schema::{check_file, Coverage, Finding, ProviderSchema};
use terraform::versions::{required_versions, satisfies};
use terraform::{buildspec, policy};

const SCHEMA_EXTRACT: &str = "tests/infra/aws-provider-schema.json";

fn infra_files() -> Vec<TfFile> {
    files::load_all(&workspace_root(), "infra").unwrap_or_else(|errors| {
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("infra/ has files that do not parse:\n{}", messages.join("\n"))
    })
}

fn infra_file(name: &str) -> TfFile {
    let root = workspace_root();
    files::load(&root, &root.join(name)).unwrap_or_else(|err| panic!("{err}"))
}

fn provider_schema() -> ProviderSchema {
    ProviderSchema::load(&workspace_root().join(SCHEMA_EXTRACT)).unwrap_or_else(|err| panic!("{err}"))
}

fn snippet(text: &str) -> TfFile {
    TfFile::parse("snippet.tf", text.to_owned()).unwrap_or_else(|err| panic!("{err}"))
}

fn check_snippet(text: &str) -> (Vec<Finding>, Coverage) {
    let mut coverage = Coverage::default();
    let findings = check_file(&provider_schema(), &snippet(text), &mut coverage);
    (findings, coverage)
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

#[test]
fn every_tf_file_under_infra_parses() {
    let files = infra_files();
    let names: Vec<&str> = files.iter().map(|file| file.name.as_str()).collect();
    for expected in ["infra/lambda.tf", "infra/versions.tf", "infra/examples/ecs-service/main.tf"] {
        assert!(names.contains(&expected), "{expected} was not found among {names:?}");
    }
}

#[test]
fn a_syntax_error_names_the_file_and_line() {
    let text = "resource \"aws_sqs_queue\" \"q\" {\n  name = \"a\"\n  delay_seconds = = 5\n}\n";
    let err = TfFile::parse("infra/broken.tf", text.to_owned()).err().expect("a syntax error");
    let message = err.to_string();
    assert!(message.starts_with("infra/broken.tf:3:"), "the message should start with file:line: {message}");
    assert!(message.contains("delay_seconds = = 5"), "the message should quote the line: {message}");
}

// ---------------------------------------------------------------------------------------------
// Provider schema
// ---------------------------------------------------------------------------------------------

#[test]
fn every_resource_and_data_block_uses_names_the_aws_provider_knows() {
    let schema = provider_schema();
    let mut coverage = Coverage::default();
    let findings: Vec<String> = infra_files()
        .iter()
        .flat_map(|file| check_file(&schema, file, &mut coverage))
        .map(|finding| finding.to_string())
        .collect();
    assert!(
        findings.is_empty(),
        "names the AWS provider {} does not know:\n{}",
        schema.provider_version,
        findings.join("\n")
    );
    assert!(coverage.declarations >= 40 && coverage.types.len() >= 20, "suspiciously little checked: {coverage:?}");
    println!(
        "checked {} resource/data blocks of {} types ({} arguments, {} nested blocks) against {} {}",
        coverage.declarations,
        coverage.types.len(),
        coverage.arguments,
        coverage.blocks,
        schema.provider,
        schema.provider_version
    );
}

#[test]
fn the_schema_check_catches_a_misspelt_argument() {
    let (findings, _) = check_snippet("resource \"aws_lambda_function\" \"f\" {\n  memroy_size = 128\n}\n");
    let [finding] = findings.as_slice() else { panic!("expected one finding, got {findings:#?}") };
    let message = finding.to_string();
    assert!(message.starts_with("snippet.tf:2: aws_lambda_function.f: unknown argument `memroy_size`"), "{message}");
    assert!(message.contains("did you mean `memory_size`?"), "{message}");
    assert!(message.contains("arguments: architectures,"), "it should list what exists: {message}");
}

#[test]
fn the_schema_check_follows_nested_and_dynamic_blocks() {
    let text = r#"
resource "aws_codebuild_project" "p" {
  name         = "p"
  service_role = "arn"
  for_each     = {}
  artifacts { type = "NO_ARTIFACTS" }
  source { type = "S3" }
  environment {
    compute_type = "BUILD_GENERAL1_SMALL"
    image        = "i"
    type         = "ARM_CONTAINER"
    dynamic "environment_variable" {
      for_each = {}
      content {
        name  = "a"
        vaule = "b"
      }
    }
    dynamic "enviroment_variable" {
      for_each = {}
      content {}
    }
  }
  logs_config {
    cloudwatch_logs { status = "ENABLED" }
  }
  tags { a = "b" }
  lifecycle { ignore_changes = [tags] }
}

data "aws_iam_policy_documnet" "d" {}

data "aws_region" "r" {
  nmae = "x"
}
"#;
    let (findings, coverage) = check_snippet(text);
    let messages: Vec<String> = findings.iter().map(ToString::to_string).collect();
    let expect = [
        "snippet.tf:16: aws_codebuild_project.p: unknown argument `vaule` of aws_codebuild_project.environment.environment_variable (did you mean `value`?)",
        "snippet.tf:19: aws_codebuild_project.p: `dynamic \"enviroment_variable\"` generates an unknown block of aws_codebuild_project.environment (did you mean `environment_variable`?)",
        "snippet.tf:27: aws_codebuild_project.p: `tags` is an argument of aws_codebuild_project, not a block",
        "snippet.tf:31: data.aws_iam_policy_documnet.d: unknown data source `aws_iam_policy_documnet` in registry.terraform.io/hashicorp/aws",
        "snippet.tf:34: data.aws_region.r: unknown argument `nmae` of aws_region (did you mean `name`?)",
    ];
    assert_eq!(messages.len(), expect.len(), "{messages:#?}");
    for (message, expected) in messages.iter().zip(expect) {
        assert!(message.starts_with(expected), "\n  got: {message}\n want: {expected}…");
    }
    assert_eq!(coverage.declarations, 2, "{coverage:?}");
}

#[test]
fn module_provider_variable_and_output_blocks_are_not_resources() {
    let text = r#"
terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = ">= 5.60" }
  }
}
provider "aws" { region = "eu-west-1" }
module "aws_lambda_function" {
  source      = "./nowhere"
  memroy_size = 128
}
variable "aws_sqs_queue" { type = string }
output "aws_iam_role" { value = 1 }
locals { aws_kms_key = 1 }
resource "terraform_data" "marker" { input = 1 }
"#;
    let (findings, coverage) = check_snippet(text);
    assert!(findings.is_empty(), "{findings:#?}");
    assert_eq!(coverage.declarations, 0, "nothing here is an AWS resource or data source: {coverage:?}");
    let one_label = snippet("resource \"aws_sqs_queue\" {}\n");
    let (_, malformed) = declarations(&one_label);
    assert_eq!(malformed.len(), 1, "a resource block with one label is reported");
}

#[test]
fn the_schema_extract_comes_from_a_provider_version_infra_accepts() {
    let schema = provider_schema();
    assert_eq!(schema.provider, "registry.terraform.io/hashicorp/aws");
    assert!(
        schema.resource_types.len() > 1000 && schema.data_source_types.len() > 400,
        "the extract should list every type of the provider"
    );
    let constraints: Vec<(String, String)> =
        infra_files().iter().flat_map(|file| required_versions(file, "hashicorp/aws")).collect();
    assert!(constraints.len() >= 2, "infra/versions.tf and the example's pin the provider: {constraints:?}");
    for (at, constraint) in &constraints {
        let ok = satisfies(&schema.provider_version, constraint).unwrap_or_else(|err| panic!("{at}: {err}"));
        assert!(
            ok,
            "{SCHEMA_EXTRACT} is from provider {} ({} {}), which {at} (\"{constraint}\") does not accept: \
             re-run tests/infra/extract_provider_schema.py with a matching package version",
            schema.provider_version, schema.package, schema.package_version
        );
    }
}

#[test]
fn version_constraints_are_read_as_terraform_does() {
    let cases = [
        ("6.25.0", ">= 5.60, < 7.0", true),
        ("5.60.0", ">= 5.60, < 7.0", true),
        ("5.59.9", ">= 5.60, < 7.0", false),
        ("7.0.0", ">= 5.60, < 7.0", false),
        ("5.99.0", "~> 5.60", true),
        ("6.0.0", "~> 5.60", false),
        ("5.60.9", "~> 5.60.1", true),
        ("5.61.0", "~> 5.60.1", false),
        ("6.25.0", "!= 6.25.0", false),
        ("6.25.0", "6.25.0", true),
    ];
    for (version, constraint, expected) in cases {
        assert_eq!(satisfies(version, constraint), Ok(expected), "{version} against {constraint}");
    }
    assert!(satisfies("6.x", ">= 5").is_err());
}

// ---------------------------------------------------------------------------------------------
// Environment variables: what the code reads, what Terraform sets
// ---------------------------------------------------------------------------------------------

/// Reads the scan cannot resolve, each with why it is not a variable Terraform should set.
const DYNAMIC_READS: [(&str, &str, &str); 1] = [(
    "shared/src/lambda_init.rs",
    "env::var_os(key)",
    "default_lambda_env: the AWS_LAMBDA_* variables Lambda itself sets, defaulted outside Lambda",
)];

/// Variables Lambda or the AWS SDK provide (AWS_REGION, AWS_LAMBDA_RUNTIME_API, credentials, …):
/// never set by Terraform (Lambda refuses most of them as reserved).
fn set_by_lambda(name: &str) -> bool {
    name.starts_with("AWS_")
}

fn function_dirs(root: &Path) -> Vec<String> {
    let dir = root.join("functions");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .filter_map(|path| path.file_name().and_then(|name| name.to_str()).map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// What one function's code reads: its own crate and the shared one.
fn function_reads(root: &Path, function: &str) -> EnvReads {
    let load = |dir: &str| code_env::sources(root, dir).unwrap_or_else(|err| panic!("{err}"));
    let mut sources: Vec<Source> = load("shared/src");
    sources.extend(load(&format!("functions/{function}/src")));
    let constants = code_env::str_constants(&sources);
    let mut reads = EnvReads::default();
    for source in &sources {
        reads.merge(code_env::env_reads(source, &constants));
    }
    reads
}

/// `environment { variables = { ... } }` of an `aws_lambda_function`: name → `file:line`.
fn terraform_environment(
    file: &TfFile,
    block: &hcl::edit::structure::Block,
    address: &str,
) -> BTreeMap<String, String> {
    let variables = block
        .body
        .get_blocks("environment")
        .find_map(|environment| environment.body.get_attribute("variables"))
        .unwrap_or_else(|| panic!("{}: {address} has no environment {{ variables = ... }}", file.at(block)));
    let entries = object_entries(&variables.value).unwrap_or_else(|| {
        panic!(
            "{}: {address}: environment.variables must be an object literal for this test to read it",
            file.at(variables)
        )
    });
    entries.into_iter().map(|(name, value)| (name.to_owned(), file.at(value))).collect()
}

#[test]
fn terraform_sets_exactly_the_environment_the_functions_read() {
    let root = workspace_root();
    let functions = function_dirs(&root);
    assert!(functions.len() >= 2, "functions/ should hold the two functions: {functions:?}");

    let main = infra_file("infra/main.tf");
    let declared = local(&main, "functions").expect("infra/main.tf defines local.functions");
    let mut declared_names: Vec<&str> = string_list(&declared.value)
        .unwrap_or_else(|| panic!("{}: local.functions should be a literal list of names", main.at(declared)));
    declared_names.sort_unstable();
    assert_eq!(declared_names, functions, "{}: local.functions must name every crate in functions/", main.at(declared));

    let mut problems = Vec::new();
    let mut checked = 0;
    for file in infra_files().iter().filter(|file| !file.name.starts_with("infra/examples/")) {
        let (found, _) = declarations(file);
        for declaration in
            found.iter().filter(|d| d.kind == DeclarationKind::Resource && d.type_name == "aws_lambda_function")
        {
            let address = declaration.address();
            let for_each =
                declaration.block.body.get_attribute("for_each").map(|attribute| file.source_of(&attribute.value));
            assert_eq!(
                for_each,
                Some("local.functions"),
                "{}: {address}: this test knows which functions a resource runs only through `for_each = local.functions`",
                file.at(declaration.block)
            );
            let set = terraform_environment(file, declaration.block, &address);
            for function in &functions {
                let reads = function_reads(&root, function);
                for (at, call) in &reads.unresolved {
                    let known = DYNAMIC_READS
                        .iter()
                        .any(|(file, known_call, _)| at.starts_with(&format!("{file}:")) && call == known_call);
                    if !known {
                        problems.push(format!(
                            "{at}: `{call}`: the scan cannot tell which variable this reads; use a string literal or \
                             a `const NAME: &str`, or list it in DYNAMIC_READS with a reason"
                        ));
                    }
                }
                let own: BTreeMap<String, Vec<String>> =
                    reads.names.into_iter().filter(|(name, _)| !set_by_lambda(name)).collect();
                assert!(
                    !own.is_empty(),
                    "found no variable read by {function}: is the scan still finding env::var calls?"
                );
                problems.extend(code_env::compare(&format!("{function} ({address})"), &own, &set));
                checked += 1;
            }
        }
    }
    assert_eq!(checked, functions.len(), "expected one aws_lambda_function resource running every function");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_dynamic_read_listed_still_exists() {
    let root = workspace_root();
    let mut unresolved = Vec::new();
    for function in function_dirs(&root) {
        unresolved.extend(function_reads(&root, &function).unresolved);
    }
    for (file, call, why) in DYNAMIC_READS {
        assert!(
            unresolved.iter().any(|(at, found)| at.starts_with(&format!("{file}:")) && found == call),
            "DYNAMIC_READS lists `{call}` in {file} ({why}), which the scan no longer finds: remove it"
        );
    }
}

#[test]
fn the_source_scan_resolves_literals_and_constants() {
    let source = Source {
        name: "src/lib.rs".to_owned(),
        text: [
            "pub const CONFIG: &str = \"APP_CONFIG\";",
            "pub(crate) const OTHER: &'static str = \"APP_OTHER\";",
            "// std::env::var(\"IN_A_COMMENT\")",
            "fn f(name: &str) {",
            "    let _ = std::env::var(crate::config::CONFIG);",
            "    let _ = env::var_os(\"APP_LITERAL\").is_some() && env::var(OTHER).is_ok();",
            "    let _ = std::env::var(name);",
            "    let _ = std::env::vars();",
            "}",
        ]
        .join("\n"),
    };
    let constants = code_env::str_constants(std::slice::from_ref(&source));
    let reads = code_env::env_reads(&source, &constants);
    let names: Vec<(&str, &[String])> = reads.names.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
    assert_eq!(
        names,
        [
            ("APP_CONFIG", &["src/lib.rs:5".to_owned()][..]),
            ("APP_LITERAL", &["src/lib.rs:6".to_owned()][..]),
            ("APP_OTHER", &["src/lib.rs:6".to_owned()][..]),
        ]
    );
    let unresolved: Vec<&str> = reads.unresolved.iter().map(|(_, call)| call.as_str()).collect();
    assert_eq!(unresolved, ["env::var(name)", "env::vars()"]);
}

#[test]
fn the_environment_comparison_fails_both_ways() {
    let reads = BTreeMap::from([("TAGRELAY_CONFIG".to_owned(), vec!["shared/src/config.rs:141".to_owned()])]);
    let set = BTreeMap::from([("TAGRELAY_CONFIGG".to_owned(), "infra/lambda.tf:93".to_owned())]);
    let problems = code_env::compare("record-image-tag", &reads, &set);
    assert_eq!(
        problems,
        [
            "TAGRELAY_CONFIG is read by record-image-tag (shared/src/config.rs:141) but Terraform does not set it",
            "TAGRELAY_CONFIGG is set for record-image-tag at infra/lambda.tf:93 but the code never reads it",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Event rules: pattern files, narrowing, fixtures
// ---------------------------------------------------------------------------------------------

/// Which rule of events.tf each fixture event reaches when the stack is configured with the names
/// the fixtures carry (`fixture_owner`: their repositories, project, cluster, alarms, and the
/// service `my-api` in `dev`): `None` for none (the scheduled event reaches every function
/// through the sweep's schedule, not a pattern). Every file in tests/fixtures/events/ must be
/// listed.
const FIXTURE_RULES: [(&str, Option<&str>); 16] = [
    ("ecr-push.json", Some("ecr-push")),
    ("ecr-push-media-types.json", Some("ecr-push")),
    // Delivered; record-image-tag then skips it (no tag) with an INFO line.
    ("ecr-push-empty-tag.json", Some("ecr-push")),
    ("ecr-delete.json", None),
    // Its parameter, `foo`, can be no image-tag parameter (names start with /): the same event
    // for `/my-api/dev/docker-image-tag` is one of `derived_events`.
    ("ssm-parameter-create.json", None),
    ("ssm-parameter-update-no-description.json", Some("parameter-change")),
    ("codebuild-succeeded.json", Some("build-finished")),
    ("codebuild-in-progress.json", None),
    ("scheduled-event.json", None),
    // In cluster `default`.
    ("ecs-deployment-in-progress.json", Some("ecs-deployment")),
    ("ecs-deployment-rollback-in-progress.json", Some("ecs-deployment")),
    ("ecs-deployment-completed.json", Some("ecs-deployment")),
    ("ecs-deployment-failed.json", Some("ecs-deployment")),
    // promote's rule, narrowed to the gate and rollback alarms by detail.alarmName.
    ("cloudwatch-alarm-metric.json", Some("alarm-state-change")),
    ("cloudwatch-alarm-metric-math.json", Some("alarm-state-change")),
    ("cloudwatch-alarm-composite.json", Some("alarm-state-change")),
];

fn event_rules() -> (TfFile, EventRules) {
    let file = infra_file("infra/events.tf");
    let rules = event_rules::read(&file).unwrap_or_else(|err| panic!("{err}"));
    (file, rules)
}

fn json_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .filter_map(|path| path.file_name().and_then(|name| name.to_str()).map(str::to_owned))
        .collect()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

#[test]
fn every_pattern_file_feeds_a_rule_and_every_rule_targets_a_function() {
    let root = workspace_root();
    let (file, rules) = event_rules();
    let on_disk = json_files(&root.join("infra/event-patterns"));
    let referenced: BTreeSet<String> = rules.base_patterns.values().cloned().collect();
    assert_eq!(
        referenced, on_disk,
        "infra/events.tf local.base_patterns must use every file in infra/event-patterns/, and only those"
    );
    assert_eq!(referenced.len(), rules.base_patterns.len(), "two base patterns read the same file");

    let functions = function_dirs(&root);
    // A pattern may feed a rule per function (Parameter Store changes: trigger-deploy's image
    // tags, promote's records), never two rules of one function.
    for base in rules.base_patterns.keys() {
        let targets: Vec<&str> =
            rules.rules.iter().filter(|rule| &rule.base == base).map(|rule| rule.function.as_str()).collect();
        let distinct: BTreeSet<&str> = targets.iter().copied().collect();
        assert!(
            !targets.is_empty() && distinct.len() == targets.len(),
            "base pattern `{base}` should feed one rule per function, feeds rules targeting {targets:?}"
        );
    }
    for rule in &rules.rules {
        assert!(
            rules.base_patterns.contains_key(&rule.base),
            "{}: rule {} uses unknown base pattern `{}`",
            rule.at,
            rule.key,
            rule.base
        );
        assert!(
            functions.contains(&rule.function),
            "{}: rule {} targets `{}`, not a crate in functions/",
            rule.at,
            rule.key,
            rule.function
        );
        assert!(
            rule.narrowed_to.starts_with("local."),
            "{}: rule {} narrows to `{}`, expected a list in locals",
            rule.at,
            rule.key,
            rule.narrowed_to
        );
        // `detail = { field = names }` drops the base pattern's detail: only for a base without one.
        if rule.replaces_detail {
            let base = read_json(&root.join("infra/event-patterns").join(&rules.base_patterns[&rule.base]));
            assert!(
                base.get("detail").is_none(),
                "{}: rule {} replaces the detail of {}, which has one: merge it instead",
                rule.at,
                rule.key,
                rules.base_patterns[&rule.base]
            );
        }
    }

    // The rules, targets and permissions are made from local.rules, one of each per rule.
    let (found, _) = declarations(&file);
    let wiring = [
        ("aws_cloudwatch_event_rule", "event_pattern", "jsonencode(each.value.pattern)"),
        ("aws_cloudwatch_event_target", "arn", "aws_lambda_function.this[each.value.function].arn"),
        ("aws_lambda_permission", "source_arn", "aws_cloudwatch_event_rule.pattern[each.key].arn"),
    ];
    for (type_name, argument, expected) in wiring {
        let declaration = found
            .iter()
            .find(|d| d.type_name == type_name && d.name == "pattern")
            .unwrap_or_else(|| panic!("infra/events.tf has no {type_name}.pattern"));
        let source =
            |name: &str| declaration.block.body.get_attribute(name).map(|attribute| file.source_of(&attribute.value));
        assert_eq!(
            source("for_each"),
            Some("local.created_rules"),
            "{}: {type_name}.pattern",
            file.at(declaration.block)
        );
        assert_eq!(source(argument), Some(expected), "{}: {type_name}.pattern {argument}", file.at(declaration.block));
    }
}

/// `local.base_patterns` as `jsondecode(file(...))` reads them: key → the pattern file's JSON.
fn base_patterns() -> HclValue {
    let (_, rules) = event_rules();
    let dir = workspace_root().join("infra/event-patterns");
    let patterns: serde_json::Map<String, Value> =
        rules.base_patterns.iter().map(|(key, file)| (key.clone(), read_json(&dir.join(file)))).collect();
    hcl_value(Value::Object(patterns))
}

/// Every rule of `local.rules` as this configuration renders it: key → its pattern, or `None`
/// when its `create` is false (the rule is not made; `local.created_rules` keeps the others).
fn rendered_rules(scope: &Scope) -> BTreeMap<String, Option<Value>> {
    let rules = eval_source(scope, "local.rules").unwrap_or_else(|err| panic!("local.rules: {err}"));
    let rules = serde_json::to_value(rules).expect("JSON");
    let Some(rules) = rules.as_object() else { panic!("local.rules did not evaluate: {rules}") };
    rules
        .iter()
        .map(|(key, rule)| {
            let created = rule.get("create").is_none_or(|create| create.as_bool().expect("create is a bool"));
            (key.clone(), created.then(|| rule["pattern"].clone()))
        })
        .collect()
}

/// The rules of `rendered` that take `event` (each pattern parsed as the test bed's EventBridge
/// parses it, which refuses what it does not emulate).
fn rules_taking(rendered: &BTreeMap<String, Option<Value>>, event: &Value) -> Vec<String> {
    rendered
        .iter()
        .filter_map(|(key, pattern)| pattern.as_ref().map(|pattern| (key, pattern)))
        .filter(|(key, pattern)| {
            EventPattern::parse(pattern)
                .unwrap_or_else(|err| panic!("rule {key}: the rendered pattern {pattern} is refused: {err}"))
                .matches(event)
        })
        .map(|(key, _)| key.clone())
        .collect()
}

/// The stack configured with the names the fixture events carry, in their region and account:
/// repositories `my-repository-name` and `team/my-api` (service `my-api`), the project
/// `my-sample-project` and cluster `default` of `dev`, and `prod` promoted from `dev` with approval
/// and the fixtures' three alarms.
fn fixture_owner() -> Scope {
    scope_in(
        "us-west-2",
        "111122223333",
        json!({
            "dev": { "codebuild_project": "my-sample-project", "ecs_cluster": "default" },
            "prod": {
                "codebuild_project": "tagrelay-prod", "promote_from": "dev", "approval": true,
                "gate_alarms": ["ServerCpuTooHigh", "TotalNetworkTrafficTooHigh"],
                "rollback_alarms": ["ServiceAggregatedAlarm"],
            },
        }),
        json!({
            "my-api": service(json!({ "repository": "team/my-api", "deploy_on_push": ["dev"] })),
            "my-repository-name": service(json!({ "deploy_on_push": ["dev"] })),
        }),
    )
}

/// The same shape configured with names none of the fixtures carry.
fn fixture_stranger() -> Scope {
    scope_in(
        "us-west-2",
        "111122223333",
        json!({
            "lab": { "codebuild_project": "another-project", "ecs_cluster": "another" },
            "live": {
                "codebuild_project": "tagrelay-live", "promote_from": "lab", "approval": true,
                "gate_alarms": ["another-alarm"], "rollback_alarms": ["yet-another-alarm"],
            },
        }),
        json!({ "other": service(json!({ "repository": "other", "deploy_on_push": ["lab"] })) }),
    )
}

/// Events derived from the fixtures, with the rules each must reach under `fixture_owner`: the
/// names the narrowing must take and the near misses it must not (another environment, the parts
/// of a record, the run manifests, the configuration, the records promote does not decide on).
fn derived_events() -> Vec<(String, Value, Vec<&'static str>)> {
    let fixtures = workspace_root().join("tests/fixtures/events");
    let named = |file: &str, pointer: &str, value: &str| {
        let mut event = read_json(&fixtures.join(file));
        *event.pointer_mut(pointer).unwrap_or_else(|| panic!("{file} has no {pointer}")) = json!(value);
        (format!("{file} with {pointer} = {value}"), event)
    };
    let parameter = |name: &str| named("ssm-parameter-create.json", "/detail/name", name);
    let mut cases = Vec::new();
    for (name, rules) in [
        ("/my-api/dev/docker-image-tag", vec!["parameter-change"]),
        ("/my-api/prod/docker-image-tag", vec!["parameter-change"]),
        // A service not configured (yet): the rule takes every service of a configured
        // environment; trigger-deploy ignores it.
        ("/new-api/dev/docker-image-tag", vec!["parameter-change"]),
        // Another environment's parameter.
        ("/my-api/qa/docker-image-tag", vec![]),
        ("/my-api/predev/docker-image-tag", vec![]),
        ("/my-api/dev/docker-image-tag-part/0", vec![]),
        // The records promote decides on; their parts and the other records never.
        ("/tagrelay/dev/verified", vec!["promote-parameter-change"]),
        ("/tagrelay/prod/verified", vec!["promote-parameter-change"]),
        ("/tagrelay/prod/approval", vec!["promote-parameter-change"]),
        ("/tagrelay/dev/verified-part/0", vec![]),
        ("/tagrelay/prod/approval-part/0", vec![]),
        ("/tagrelay/prod/rollback", vec![]),
        ("/tagrelay/prod/rollback-part/0", vec![]),
        // The run manifest of a build and its parts, and the configuration: no rule needs them.
        ("/tagrelay/dev/manifest", vec![]),
        ("/tagrelay/dev/manifest-part/0", vec![]),
        ("/tagrelay/dev/manifest-part/12", vec![]),
        ("/tagrelay/_config", vec![]),
        ("/tagrelay/_config-part/0", vec![]),
        ("foo", vec![]),
    ] {
        let (what, event) = parameter(name);
        cases.push((what, event, rules));
    }
    for (file, pointer, value) in [
        ("ecr-push.json", "/detail/repository-name", "someone-elses"),
        ("codebuild-succeeded.json", "/detail/project-name", "someone-elses"),
        ("cloudwatch-alarm-metric.json", "/detail/alarmName", "someone-elses"),
        ("ecs-deployment-completed.json", "/resources/0", "arn:aws:ecs:us-west-2:111122223333:service/defaults/x"),
        ("ecs-deployment-completed.json", "/resources/0", "arn:aws:ecs:us-west-2:111122223333:service/servicetest"),
    ] {
        let (what, event) = named(file, pointer, value);
        cases.push((what, event, vec![]));
    }
    cases
}

#[test]
fn after_narrowing_every_fixture_matches_the_rule_of_its_kind_and_no_other() {
    let root = workspace_root();
    let (_, rules) = event_rules();
    let fixtures_dir = root.join("tests/fixtures/events");
    let listed: BTreeSet<String> = FIXTURE_RULES.iter().map(|(name, _)| (*name).to_owned()).collect();
    assert_eq!(
        listed,
        json_files(&fixtures_dir),
        "FIXTURE_RULES must say which rule each fixture in {} reaches",
        fixtures_dir.display()
    );
    for rule in FIXTURE_RULES.iter().filter_map(|(_, rule)| *rule) {
        assert!(
            rules.rules.iter().any(|r| r.key == rule),
            "FIXTURE_RULES names rule {rule}, which events.tf does not define"
        );
    }

    let owner = rendered_rules(&fixture_owner());
    let stranger = rendered_rules(&fixture_stranger());
    assert!(owner.values().all(Option::is_some), "the owner configuration makes every rule: {owner:?}");
    assert!(stranger.values().all(Option::is_some), "so does the stranger's");
    let mut failures = Vec::new();
    let mut cases: Vec<(String, Value, Vec<&str>)> = FIXTURE_RULES
        .iter()
        .map(|(name, rule)| ((*name).to_owned(), read_json(&fixtures_dir.join(name)), rule.iter().copied().collect()))
        .collect();
    cases.extend(derived_events());
    for (what, event, expected) in &cases {
        let taken = rules_taking(&owner, event);
        if taken != *expected {
            failures.push(format!("{what}: taken by {taken:?}, expected {expected:?}"));
        }
        // With names none of the fixtures carry, none of ours takes them (the release and approval
        // records excepted: promote's wildcards take every environment's).
        let promote_record = event["detail"]["name"].as_str().is_some_and(|name| {
            name.starts_with("/tagrelay/") && (name.ends_with("/verified") || name.ends_with("/approval"))
        });
        let taken = rules_taking(&stranger, event);
        let expected: Vec<&str> = if promote_record { vec!["promote-parameter-change"] } else { vec![] };
        if taken != expected {
            failures.push(format!("{what}: configured for other names, taken by {taken:?}, expected {expected:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} events misrouted:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// `expression` (Terraform source) evaluated in `scope`.
fn eval_source(scope: &Scope, expression: &str) -> Result<HclValue, String> {
    let probe = snippet(&format!("probe = {expression}\n"));
    scope.eval(&probe.body.get_attribute("probe").expect("probe").value)
}

/// The stack's locals computed for these environments (`local.environments`: name → fields, the
/// ECS ones at least) and services (`var.services`, every attribute given).
fn ecs_scope(environments: Value, services: Value) -> Scope {
    let files = stack_files();
    let scope = stack_scope(&files)
        .local("environments", hcl_value(with_optional_fields(environments)))
        .var("services", hcl_value(services));
    with_locals(scope, &files)
}

/// The optional attributes of an `environments` entry that locals read, and their defaults
/// (Terraform fills in optional() attributes; the evaluator does not).
const ENVIRONMENT_OPTIONALS: [(&str, Value); 8] = [
    ("ecs_cluster", Value::Null),
    ("verify_timeout", Value::Null),
    ("promote_from", Value::Null),
    ("soak", Value::Null),
    ("gate_alarms", Value::Null),
    ("approval", Value::Null),
    ("rollback_alarms", Value::Null),
    ("rollback_window", Value::Null),
];

/// Each environment of `environments` with the optional attributes it does not set, as null.
fn with_optional_fields(mut environments: Value) -> Value {
    for environment in environments.as_object_mut().expect("environments by name").values_mut() {
        let fields = environment.as_object_mut().expect("an environment is an object");
        for (name, default) in &ENVIRONMENT_OPTIONALS {
            fields.entry(*name).or_insert_with(|| default.clone());
        }
    }
    environments
}

/// A `var.services` entry with every attribute (Terraform fills in optional() defaults; the
/// evaluator does not): `fields` over the defaults.
fn service(fields: Value) -> Value {
    let mut service = json!({
        "repository": null, "deploy_on_push": [], "tag_pattern": "^[0-9]+$", "order": "numeric",
        "ecs_service": null, "verify_on_ecs": true, "container": null,
    });
    for (key, value) in fields.as_object().expect("an object") {
        service[key] = value.clone();
    }
    service
}

/// `count` services named `<stem>-0001`… with repositories `<repo_stem>-0001`…, pushed into `dev`.
fn many_services(count: usize, stem: &str, repo_stem: &str) -> Value {
    let services: serde_json::Map<String, Value> = (1..=count)
        .map(|i| {
            let repository = format!("{repo_stem}-{i:04}");
            (format!("{stem}-{i:04}"), service(json!({ "repository": repository, "deploy_on_push": ["dev"] })))
        })
        .collect();
    Value::Object(services)
}

/// `count` environments, `dev` first (where `many_services` pushes), each with its project.
fn environment_names(count: usize) -> Value {
    const NAMES: [&str; 10] = ["dev", "qa", "int", "uat", "perf", "staging", "preprod", "prod", "prod-eu", "prod-us"];
    let environments: serde_json::Map<String, Value> = NAMES
        .iter()
        .take(count)
        .map(|name| ((*name).to_owned(), json!({ "codebuild_project": format!("tagrelay-{name}") })))
        .collect();
    Value::Object(environments)
}

fn pattern_of(rendered: &BTreeMap<String, Option<Value>>, key: &str) -> Value {
    rendered[key].clone().unwrap_or_else(|| panic!("rule {key} is not created"))
}

#[test]
fn the_parameter_rule_takes_each_environment_by_the_side_of_the_template_that_names_it() {
    let environments =
        json!({ "dev": { "codebuild_project": "tagrelay-dev" }, "prod": { "codebuild_project": "tagrelay-prod" } });
    let services = json!({ "my-api": service(json!({ "deploy_on_push": ["dev"] })) });
    let names = |template: &str| {
        let scope = configured(environments.clone(), services.clone(), &[("parameter_template", json!(template))]);
        serde_json::to_value(eval_source(&scope, "local.parameter_rule_names").expect("evaluates")).expect("JSON")
    };
    assert_eq!(
        names("/{service}/{environment}/docker-image-tag"),
        json!([{ "suffix": "/dev/docker-image-tag" }, { "suffix": "/prod/docker-image-tag" }])
    );
    assert_eq!(names("/{environment}/{service}"), json!([{ "prefix": "/dev/" }, { "prefix": "/prod/" }]));
    assert_eq!(
        names("/apps/{environment}/{service}/tag"),
        json!([{ "prefix": "/apps/dev/" }, { "prefix": "/apps/prod/" }])
    );
    assert_eq!(names("/{service}-{environment}"), json!([{ "suffix": "-dev" }, { "suffix": "-prod" }]));
    // The environment between two {service}: neither side names it, one prefix for all (wide;
    // trigger-deploy filters exactly).
    assert_eq!(names("/{service}/{environment}/{service}"), json!([{ "prefix": "/" }]));
    // No wildcard: each wildcard value adds to a rule's complexity, which EventBridge caps.
    for template in ["/{service}/{environment}/docker-image-tag", "/{environment}/{service}"] {
        assert!(!names(template).to_string().contains("wildcard"), "{template}");
    }
}

#[test]
fn a_list_that_would_not_fit_a_pattern_falls_back_to_prefixes_or_every_event() {
    let environments = json!({ "dev": { "codebuild_project": "tagrelay-dev" } });
    let push = |repository: &str, action: &str| {
        let mut event = read_json(&workspace_root().join("tests/fixtures/events/ecr-push.json"));
        event["detail"]["repository-name"] = json!(repository);
        event["detail"]["action-type"] = json!(action);
        event
    };
    let ecr = |count: usize, prefixes: Value| {
        let scope = configured(
            environments.clone(),
            many_services(count, "svc", "team/service"),
            &[("repository_prefixes", prefixes)],
        );
        let length = eval_source(&scope, "length(jsonencode(local.ecr_exact_pattern))").expect("a length");
        let length = length.as_number().and_then(hcl::Number::as_u64).expect("a whole number");
        let by = eval_source(&scope, "local.ecr_repository_filter_by").expect("evaluates");
        (length, by.as_str().expect("a string").to_owned(), rendered_rules(&scope))
    };

    // The names while the exact pattern fits 1,800 characters, whatever the prefixes.
    for count in [1, 50, 70] {
        let (length, by, _) = ecr(count, json!(["team/"]));
        assert_eq!(by == "names", length <= 1800, "{count} repositories: {length} characters, by {by}");
    }
    let (length, by, rendered) = ecr(70, json!([]));
    assert!(length <= 1800 && by == "names", "{length}");
    assert_eq!(pattern_of(&rendered, "ecr-push")["detail"]["repository-name"][69], "team/service-0070");
    assert_eq!(rules_taking(&rendered, &push("team/service-0070", "PUSH")), ["ecr-push"]);
    assert!(rules_taking(&rendered, &push("team/service-0071", "PUSH")).is_empty());

    // Beyond: the prefixes, when set.
    let (length, by, rendered) = ecr(120, json!(["team/"]));
    assert!(length > 1800 && by == "prefixes", "{length} {by}");
    assert_eq!(pattern_of(&rendered, "ecr-push")["detail"]["repository-name"], json!([{ "prefix": "team/" }]));
    assert_eq!(rules_taking(&rendered, &push("team/service-0001", "PUSH")), ["ecr-push"]);
    assert_eq!(
        rules_taking(&rendered, &push("team/not-configured", "PUSH")),
        ["ecr-push"],
        "wider: the function skips it"
    );
    assert!(rules_taking(&rendered, &push("other/service", "PUSH")).is_empty());
    // Else every successful push: the name is there, whatever it is.
    let (_, by, rendered) = ecr(120, json!([]));
    assert_eq!(by, "any");
    assert_eq!(pattern_of(&rendered, "ecr-push")["detail"]["repository-name"], json!([{ "exists": true }]));
    assert_eq!(rules_taking(&rendered, &push("someone/elses", "PUSH")), ["ecr-push"]);
    assert!(rules_taking(&rendered, &push("team/service-0001", "DELETE")).is_empty(), "still pushes only");
    for (_, pattern) in rendered.iter().filter_map(|(k, p)| p.as_ref().map(|p| (k, p))) {
        assert!(pattern.to_string().len() <= 2048, "{pattern}");
    }

    // Alarms: the same three steps.
    let alarms = |count: usize, prefixes: Value| {
        let names: Vec<String> = (1..=count).map(|i| format!("payments-platform-gate-alarm-{i:04}")).collect();
        let environments = json!({
            "dev": { "codebuild_project": "tagrelay-dev" },
            "prod": { "codebuild_project": "tagrelay-prod", "promote_from": "dev", "gate_alarms": names },
        });
        let scope =
            configured(environments, many_services(1, "svc", "team/service"), &[("alarm_name_prefixes", prefixes)]);
        pattern_of(&rendered_rules(&scope), "alarm-state-change")["detail"]["alarmName"].clone()
    };
    assert_eq!(alarms(3, json!(["payments-"]))[2], "payments-platform-gate-alarm-0003");
    assert_eq!(alarms(60, json!(["payments-"])), json!([{ "prefix": "payments-" }]));
    assert_eq!(alarms(60, json!([])), json!([{ "exists": true }]));

    // ECS: one prefix per cluster, or the account's service ARN prefix.
    let clusters = |length: usize| {
        let environments: serde_json::Map<String, Value> = (0..10)
            .map(|i| {
                let name = format!("env{i}");
                let cluster = format!("{i}{}", "c".repeat(length - 1));
                (name.clone(), json!({ "codebuild_project": format!("tagrelay-{name}"), "ecs_cluster": cluster }))
            })
            .collect();
        let scope = ecs_scope(Value::Object(environments), many_services(1, "svc", "team/service"));
        pattern_of(&rendered_rules(&scope), "ecs-deployment")["resources"].clone()
    };
    let short = clusters(20);
    assert_eq!(short.as_array().map(Vec::len), Some(10), "{short}");
    assert_eq!(
        short[0],
        json!({ "prefix": format!("arn:aws:ecs:eu-west-1:123456789012:service/0{}/", "c".repeat(19)) })
    );
    assert_eq!(clusters(255), json!([{ "prefix": "arn:aws:ecs:eu-west-1:123456789012:service/" }]));
}

#[test]
fn the_name_prefixes_are_validated_and_must_cover_every_configured_name() {
    let files = stack_files();
    let services = json!({
        "my-api": service(json!({ "repository": "team/my-api", "deploy_on_push": ["dev"] })),
        "worker": service(json!({ "repository": "ops/worker", "deploy_on_push": ["dev"] })),
    });
    let check = |prefixes: Value, message_start: &str| {
        let scope = stack_scope(&files)
            .var("environments", hcl_value(var_environments(json!({ "dev": {} }))))
            .var("services", hcl_value(services.clone()))
            .var("repository_prefixes", hcl_value(prefixes));
        validation_result("repository_prefixes", message_start, &scope)
    };
    for accepted in [json!([]), json!(["team/", "ops/"]), json!(["t", "o"])] {
        assert_eq!(check(accepted.clone(), "repository_prefixes must"), (true, String::new()), "{accepted}");
        assert_eq!(check(accepted.clone(), "Every configured repository"), (true, String::new()), "{accepted}");
    }
    for refused in [json!([""]), json!(["Team/"]), json!(["team/", "team/"]), json!(["-x"])] {
        assert!(!check(refused.clone(), "repository_prefixes must").0, "{refused}");
    }
    let (ok, message) = check(json!(["team/"]), "Every configured repository");
    assert!(!ok && message.ends_with(": services.worker.repository = ops/worker."), "{message}");

    let alarms = |prefixes: Value, message_start: &str| {
        let environments = json!({
            "dev": { "rollback_alarms": ["dev-api-5xx"] },
            "prod": { "promote_from": "dev", "gate_alarms": ["dev-api-5xx", "shared-latency"] },
        });
        let scope = stack_scope(&files)
            .var("environments", hcl_value(var_environments(environments)))
            .var("alarm_name_prefixes", hcl_value(prefixes));
        validation_result("alarm_name_prefixes", message_start, &scope)
    };
    assert_eq!(alarms(json!(["dev-", "shared-"]), "Every gate and rollback alarm"), (true, String::new()));
    let (ok, message) = alarms(json!(["dev-"]), "Every gate and rollback alarm");
    assert!(!ok && message.ends_with(": shared-latency."), "{message}");
    assert!(!alarms(json!(["a\u{7}"]), "alarm_name_prefixes must").0);
}

#[test]
fn the_ecs_rule_exists_only_with_a_cluster_and_takes_each_clusters_services_once() {
    let (file, rules) = event_rules();
    let conditional: Vec<(&str, &str)> =
        rules.rules.iter().filter_map(|rule| rule.create.as_deref().map(|c| (rule.key.as_str(), c))).collect();
    let keys: Vec<&str> = conditional.iter().map(|(key, _)| *key).collect();
    assert_eq!(
        keys,
        ["ecs-deployment", "promote-parameter-change", "alarm-state-change"],
        "the rules whose narrowing may be empty are conditional, and only those"
    );
    let create = conditional[0].1;
    let created = local(&file, "created_rules").expect("infra/events.tf: local.created_rules");
    assert_eq!(
        file.source_of(&created.value),
        "{ for key, rule in local.rules : key => rule if try(rule.create, true) }",
        "{}",
        file.at(created)
    );

    let services = json!({ "my-api": service(json!({})) });
    let without =
        ecs_scope(json!({ "dev": { "ecs_cluster": null }, "prod": { "ecs_cluster": null } }), services.clone());
    assert_eq!(
        eval_source(&without, create),
        Ok(HclValue::Bool(false)),
        "no cluster: no rule (EventBridge refuses [])"
    );

    let environments = json!({
        "dev": { "ecs_cluster": "shared" }, "qa": { "ecs_cluster": "shared" },
        "prod": { "ecs_cluster": "prod" }, "lab": { "ecs_cluster": null },
    });
    let with = ecs_scope(environments, services);
    assert_eq!(eval_source(&with, create), Ok(HclValue::Bool(true)));
    assert_eq!(
        eval_source(&with, "local.ecs_service_arn_prefixes"),
        Ok(hcl_value(json!([
            { "prefix": "arn:aws:ecs:eu-west-1:123456789012:service/prod/" },
            { "prefix": "arn:aws:ecs:eu-west-1:123456789012:service/shared/" },
        ]))),
        "one prefix per cluster, ending in / so that cluster `prod` does not take `prod-b`'s services"
    );
}

#[test]
fn the_event_rule_reader_refuses_a_shape_it_does_not_know() {
    let text = r#"
locals {
  base_patterns = {
    ecr = jsondecode(file("${path.module}/event-patterns/ecr-image-action.json"))
  }
  rules = {
    ecr-push = {
      function = "record-image-tag"
      pattern  = local.base_patterns.ecr
    }
  }
}
"#;
    let err = event_rules::read(&snippet(text)).expect_err("an unnarrowed rule");
    assert!(err.starts_with("snippet.tf:9: rule ecr-push: expected pattern = merge("), "{err}");

    let text = text.replace("event-patterns/ecr-image-action.json", "patterns/ecr.json");
    let err = event_rules::read(&snippet(&text)).expect_err("a file outside event-patterns/");
    assert!(err.starts_with("snippet.tf:4: expected jsondecode(file("), "{err}");
}

// ---------------------------------------------------------------------------------------------
// What the expressions evaluate to: concurrency, the build role, names, the example service
// ---------------------------------------------------------------------------------------------

/// infra/*.tf without the example (a separate root module with locals of its own).
fn stack_files() -> Vec<TfFile> {
    infra_files().into_iter().filter(|file| !file.name.starts_with("infra/examples/")).collect()
}

fn example_files() -> Vec<TfFile> {
    infra_files().into_iter().filter(|file| file.name.starts_with("infra/examples/ecs-service/")).collect()
}

fn named<'a>(files: &'a [TfFile], name: &str) -> &'a TfFile {
    files.iter().find(|file| file.name == name).unwrap_or_else(|| panic!("{name} was not found"))
}

fn resource_in<'a>(file: &'a TfFile, type_name: &str, name: &str) -> &'a Block {
    resource(file, type_name, name).unwrap_or_else(|| panic!("{} has no {type_name}.{name}", file.name))
}

fn attribute_of<'a>(file: &TfFile, block: &'a Block, name: &str) -> &'a Expression {
    &block.body.get_attribute(name).unwrap_or_else(|| panic!("{}: no `{name}`", file.at(block))).value
}

fn hcl_value(json: Value) -> HclValue {
    hcl::to_value(&json).expect("JSON converts to an HCL value")
}

fn text(value: &str) -> HclValue {
    HclValue::String(value.to_owned())
}

/// The stack's variables at their defaults, in a known partition, region and account, with the
/// pattern files read as `local.base_patterns` reads them.
fn stack_scope(files: &[TfFile]) -> Scope {
    let refs: Vec<&TfFile> = files.iter().collect();
    Scope::with_defaults(&refs)
        .local("partition", text("aws"))
        .local("region", text("eu-west-1"))
        .local("account_id", text("123456789012"))
        .local("base_patterns", base_patterns())
}

/// The stack's locals for these environments and services (as `ecs_scope`) and these variables.
fn configured(environments: Value, services: Value, vars: &[(&str, Value)]) -> Scope {
    let files = stack_files();
    let mut scope = stack_scope(&files)
        .local("environments", hcl_value(with_optional_fields(environments)))
        .var("services", hcl_value(services));
    for (name, value) in vars {
        scope = scope.var(name, hcl_value(value.clone()));
    }
    with_locals(scope, &files)
}

/// The stack's locals for these environments and services (as `ecs_scope`), in another region
/// and account.
fn scope_in(region: &str, account: &str, environments: Value, services: Value) -> Scope {
    let files = stack_files();
    let scope = stack_scope(&files)
        .local("region", text(region))
        .local("account_id", text(account))
        .local("environments", hcl_value(with_optional_fields(environments)))
        .var("services", hcl_value(services));
    with_locals(scope, &files)
}

fn with_locals(scope: Scope, files: &[TfFile]) -> Scope {
    let refs: Vec<&TfFile> = files.iter().collect();
    scope.with_locals_of(&refs)
}

/// Each `validation` condition of a variable, evaluated: `file:line` → the result (`Err` when it
/// calls what the evaluator does not implement, such as `can`).
fn validations(file: &TfFile, variable_name: &str, scope: &Scope) -> Vec<(String, Result<bool, String>)> {
    let block =
        variable(file, variable_name).unwrap_or_else(|| panic!("{} has no variable {variable_name}", file.name));
    block
        .body
        .get_blocks("validation")
        .map(|validation| {
            let condition = attribute_of(file, validation, "condition");
            (file.at(validation), scope.eval(condition).and_then(|value| boolean(&value)))
        })
        .collect()
}

/// Each `precondition` (or `postcondition`) condition in a resource's lifecycle, evaluated.
fn conditions(file: &TfFile, block: &Block, kind: &str, scope: &Scope) -> Vec<(String, Result<bool, String>)> {
    block
        .body
        .get_blocks("lifecycle")
        .flat_map(|lifecycle| lifecycle.body.get_blocks(kind))
        .map(|check| {
            let condition = attribute_of(file, check, "condition");
            (file.at(check), scope.eval(condition).and_then(|value| boolean(&value)))
        })
        .collect()
}

fn boolean(value: &HclValue) -> Result<bool, String> {
    value.as_bool().ok_or_else(|| format!("not a bool: {value}"))
}

/// Nothing refused: every condition that evaluated is true.
fn all_pass(results: &[(String, Result<bool, String>)]) -> bool {
    results.iter().all(|(_, result)| !matches!(result, Ok(false)))
}

/// Refused: some condition evaluated to false.
fn some_fail(results: &[(String, Result<bool, String>)]) -> bool {
    results.iter().any(|(_, result)| matches!(result, Ok(false)))
}

#[test]
fn the_evaluator_computes_what_it_can_and_leaves_the_rest_opaque() {
    let file = snippet(
        r#"
variable "size" { default = 2 }
variable "names" { type = list(string) }
locals {
  first   = split("/", local.path)[1]
  path    = "a/b/c"
  doubled = var.size * 2
  keys    = flatten([for index, name in var.names : ["${name}|${index}"]])
  region  = data.aws_region.current.id
  zone    = data.aws_availability_zone.current.name
}
"#,
    );
    let scope =
        Scope::with_defaults(&[&file]).var("names", hcl_value(json!(["x", "y"]))).local("region", text("eu-west-1"));
    let scope = scope.with_locals_of(&[&file]).bind("each", hcl_value(json!({ "key": "dev" })));
    // `probe = <expression>` parsed and evaluated in the scope.
    let probe = |expression: &str| {
        let file = snippet(&format!("probe = {expression}\n"));
        scope.eval(&file.body.get_attribute("probe").expect("probe").value)
    };
    assert_eq!(probe("local.doubled"), Ok(hcl_value(json!(4))));
    assert_eq!(probe("local.first"), Ok(text("b")), "a local that reads a later one");
    assert_eq!(probe("local.keys"), Ok(hcl_value(json!(["x|0", "y|1"]))));
    assert_eq!(probe("local.region"), Ok(text("eu-west-1")), "a seeded local is not computed");
    assert_eq!(probe("local.zone"), Ok(text("(local.zone: not evaluated)")), "a data source is opaque");
    assert_eq!(probe("each.key"), Ok(text("dev")));
    let err = probe("fileexists(\"x\")").expect_err("a function not implemented");
    assert!(err.contains("fileexists"), "{err}");
}

#[test]
fn no_function_reserves_concurrency_by_default() {
    let files = stack_files();
    let lambda = named(&files, "infra/lambda.tf");
    let function = resource_in(lambda, "aws_lambda_function", "this");
    let Some(reserved) = function.body.get_attribute("reserved_concurrent_executions") else {
        return; // not set at all: nothing reserved
    };
    let scope = with_locals(stack_scope(&files), &files);
    let main = named(&files, "infra/main.tf");
    let functions = local(main, "functions").and_then(|declared| string_list(&declared.value));
    for name in functions.expect("infra/main.tf: local.functions, a literal list") {
        let value = scope.clone().bind("each", hcl_value(json!({ "key": name, "value": name }))).eval(&reserved.value);
        assert_eq!(
            value,
            Ok(HclValue::Null),
            "{}: {name} reserves concurrency by default; any reservation fails `apply` in an account \
             whose concurrency quota is the new-account 10 (Lambda keeps 100 unreserved)",
            lambda.at(reserved)
        );
    }
}

#[test]
fn a_reserved_concurrency_is_optional_and_at_least_one() {
    let files = stack_files();
    let variables = named(&files, "infra/variables.tf");
    for name in ["record_image_tag_reserved_concurrency", "trigger_deploy_reserved_concurrency"] {
        let with = |value: HclValue| validations(variables, name, &stack_scope(&files).var(name, value));
        for accepted in [HclValue::Null, hcl_value(json!(1)), hcl_value(json!(5))] {
            let results = with(accepted.clone());
            assert!(!results.is_empty() && all_pass(&results), "{name} = {accepted} should be accepted: {results:?}");
            assert!(results.iter().all(|(_, result)| result.is_ok()), "{name}: {results:?}");
        }
        let results = with(hcl_value(json!(0)));
        assert!(some_fail(&results), "{name} = 0 (a function that never runs) should be refused: {results:?}");
    }
}

/// The statements of `codebuild_base` that a `dynamic` block adds for this configuration: their
/// actions (sorted) and the resource each instance grants them on.
fn source_grants(files: &[TfFile], scope: &Scope) -> Vec<(Vec<String>, String)> {
    let iam = named(files, "infra/iam.tf");
    let mut grants = Vec::new();
    for statement in policy::statements(iam, "codebuild_base") {
        let Some(for_each) = statement.for_each else { continue };
        assert_eq!(
            statement.source(iam, "resources"),
            Some("[statement.value]"),
            "{}: a source statement grants its actions on the for_each value",
            statement.at
        );
        let instances = match scope.eval(for_each) {
            Ok(HclValue::Array(items)) => items,
            other => panic!("{}: for_each should evaluate to a list, got {other:?}", statement.at),
        };
        let mut actions: Vec<String> = statement.actions.iter().map(|action| (*action).to_owned()).collect();
        actions.sort();
        for instance in instances {
            let resource = instance.as_str().unwrap_or_else(|| panic!("{}: {instance} is not an ARN", statement.at));
            grants.push((actions.clone(), resource.to_owned()));
        }
    }
    grants.sort();
    grants
}

#[test]
fn the_build_role_may_read_the_source_of_each_source_type() {
    const CODECOMMIT_URL: &str = "https://git-codecommit.eu-west-1.amazonaws.com/v1/repos/platform";
    const S3_ZIP: &str = "acme-build-sources/platform/terraform.zip";
    const CONNECTION: &str =
        "arn:aws:codeconnections:eu-west-1:123456789012:connection/6f0c1a52-3b7e-4a4e-9d55-0d9c8a1f2b3c";
    const OLD_CONNECTION: &str =
        "arn:aws:codestar-connections:eu-west-1:123456789012:connection/6f0c1a52-3b7e-4a4e-9d55-0d9c8a1f2b3c";
    let connections =
        ["codeconnections:GetConnection", "codeconnections:GetConnectionToken", "codeconnections:UseConnection"];
    let old_connections = [
        "codestar-connections:GetConnection",
        "codestar-connections:GetConnectionToken",
        "codestar-connections:UseConnection",
    ];
    /// Actions granted on a resource.
    type Grant<'a> = (&'a [&'a str], &'a str);
    let cases: [(&str, &str, Option<&str>, Vec<Grant>); 9] = [
        (
            "CODECOMMIT",
            CODECOMMIT_URL,
            None,
            vec![(&["codecommit:GitPull"], "arn:aws:codecommit:eu-west-1:123456789012:platform")],
        ),
        (
            "S3",
            S3_ZIP,
            None,
            vec![
                (&["s3:GetBucketAcl", "s3:GetBucketLocation"], "arn:aws:s3:::acme-build-sources"),
                (&["s3:GetObject", "s3:GetObjectVersion"], "arn:aws:s3:::acme-build-sources/platform/terraform.zip"),
            ],
        ),
        // An account source credential for the host: no IAM permission.
        ("GITHUB", "https://github.com/acme/platform.git", None, vec![]),
        ("GITHUB_ENTERPRISE", "https://git.acme.example/platform/terraform.git", None, vec![]),
        ("BITBUCKET", "https://bitbucket.org/acme/platform.git", None, vec![]),
        ("GITLAB", "https://gitlab.com/acme/platform.git", None, vec![]),
        ("GITLAB_SELF_MANAGED", "https://gitlab.acme.example/platform/terraform.git", None, vec![]),
        ("GITHUB", "https://github.com/acme/platform.git", Some(CONNECTION), vec![(&connections, CONNECTION)]),
        (
            "GITLAB",
            "https://gitlab.com/acme/platform.git",
            Some(OLD_CONNECTION),
            vec![(&connections, OLD_CONNECTION), (&old_connections, OLD_CONNECTION)],
        ),
    ];

    let files = stack_files();
    for (source_type, location, connection, expected) in cases {
        let scope = stack_scope(&files)
            .var("source_type", text(source_type))
            .var("source_location", text(location))
            .var("source_connection_arn", connection.map_or(HclValue::Null, text));
        let scope = with_locals(scope, &files);
        let mut expected: Vec<(Vec<String>, String)> = expected
            .into_iter()
            .map(|(actions, resource)| (actions.iter().map(|a| (*a).to_owned()).collect(), resource.to_owned()))
            .collect();
        expected.sort();
        assert_eq!(
            source_grants(&files, &scope),
            expected,
            "source_type {source_type}, source_connection_arn {connection:?}: the build role's source permissions"
        );
    }

    // What a source needs is granted only for that source: no plain statement carries it.
    let iam = named(&files, "infra/iam.tf");
    let source_only =
        ["codecommit:", "codeconnections:", "codestar-connections:", "s3:GetObjectVersion", "s3:GetBucket"];
    for statement in policy::statements(iam, "codebuild_base").iter().filter(|s| s.for_each.is_none()) {
        let unconditional: Vec<&&str> =
            statement.actions.iter().filter(|action| source_only.iter().any(|p| action.starts_with(p))).collect();
        assert!(unconditional.is_empty(), "{}: {unconditional:?} granted whatever the source", statement.at);
    }
}

#[test]
fn a_source_connection_is_the_projects_source_auth() {
    let files = stack_files();
    let codebuild = named(&files, "infra/codebuild.tf");
    let project = resource_in(codebuild, "aws_codebuild_project", "this");
    let source = project.body.get_blocks("source").next().expect("a source block");
    let auth = source
        .body
        .get_blocks("dynamic")
        .find(|block| block.labels.first().is_some_and(|label| label.as_str() == "auth"))
        .unwrap_or_else(|| panic!("{}: no dynamic \"auth\" in the project's source", codebuild.at(source)));
    let content = auth.body.get_blocks("content").next().expect("a content block");
    assert_eq!(attribute_of(codebuild, content, "type").as_str(), Some("CODECONNECTIONS"));
    assert_eq!(codebuild.source_of(attribute_of(codebuild, content, "resource")), "auth.value");

    let connection = "arn:aws:codeconnections:eu-west-1:123456789012:connection/6f0c1a52-3b7e-4a4e-9d55-0d9c8a1f2b3c";
    let for_each = attribute_of(codebuild, auth, "for_each");
    let scope = stack_scope(&files);
    assert_eq!(scope.eval(for_each), Ok(HclValue::Array(vec![])), "no connection: no auth block");
    let scope = scope.var("source_connection_arn", text(connection));
    assert_eq!(scope.eval(for_each), Ok(HclValue::Array(vec![text(connection)])));
}

#[test]
fn the_source_validations_accept_exactly_the_forms_the_role_is_derived_from() {
    let files = stack_files();
    let variables = named(&files, "infra/variables.tf");
    let pattern = |variable_name: &str, marker: &str| {
        let block = variable(variables, variable_name).expect("the variable");
        let found: Vec<&str> = block
            .body
            .get_blocks("validation")
            .map(|validation| attribute_of(variables, validation, "condition"))
            .filter(|condition| variables.source_of(*condition).contains(marker))
            .flat_map(regex_patterns)
            .collect();
        let [pattern] = found.as_slice() else {
            panic!("{variable_name}: one regex validation for {marker}: {found:?}")
        };
        Regex::new(pattern).unwrap_or_else(|err| panic!("{variable_name}: {err}"))
    };
    let cases = [
        (
            pattern("source_location", "\"CODECOMMIT\""),
            &[
                "https://git-codecommit.eu-west-1.amazonaws.com/v1/repos/platform",
                "https://git-codecommit-fips.us-east-1.amazonaws.com/v1/repos/my_repo.infra",
                "https://git-codecommit.cn-north-1.amazonaws.com.cn/v1/repos/platform",
            ][..],
            &[
                "https://git-codecommit.eu-west-1.amazonaws.com/v1/repos/",
                "https://git-codecommit.eu-west-1.amazonaws.com/v1/repos/team/platform",
                "https://github.com/acme/platform.git",
                "ssh://git-codecommit.eu-west-1.amazonaws.com/v1/repos/platform",
                "codecommit::eu-west-1://platform",
            ][..],
        ),
        (
            pattern("source_location", "\"S3\""),
            &["acme-build-sources/platform/terraform.zip", "acme-build-sources/t.zip"][..],
            &["acme-build-sources", "acme-build-sources/", "acme-build-sources/platform/", "s3://acme/t.zip"][..],
        ),
        (
            pattern("source_connection_arn", "regex"),
            &[
                "arn:aws:codeconnections:eu-west-1:123456789012:connection/6f0c1a52-3b7e-4a4e-9d55-0d9c8a1f2b3c",
                "arn:aws:codestar-connections:us-east-1:123456789012:connection/6f0c1a52-3b7e-4a4e-9d55-0d9c8a1f2b3c",
                "arn:aws-cn:codeconnections:cn-north-1:123456789012:connection/6f0c1a52",
            ][..],
            &[
                "arn:aws:codeconnections:eu-west-1:123456789012:host/6f0c1a52",
                "arn:aws:codecommit:eu-west-1:123456789012:platform",
                "6f0c1a52-3b7e-4a4e-9d55-0d9c8a1f2b3c",
            ][..],
        ),
    ];
    for (regex, good, bad) in cases {
        for value in good {
            assert!(regex.is_match(value), "{regex} should accept {value}");
        }
        for value in bad {
            assert!(!regex.is_match(value), "{regex} should refuse {value}");
        }
    }
}

#[test]
fn the_state_bucket_is_listed_without_a_prefix_condition() {
    let files = stack_files();
    let iam = named(&files, "infra/iam.tf");
    let statements = policy::statements(iam, "codebuild_base");
    let listing: Vec<_> = statements.iter().filter(|s| s.actions.contains(&"s3:ListBucket")).collect();
    let [listing] = listing.as_slice() else { panic!("one statement should grant s3:ListBucket") };
    assert!(listing.for_each.is_none(), "{}: every build needs it", listing.at);
    assert_eq!(
        listing.conditions().count(),
        0,
        "{}: a GetObject request has no s3:prefix, so with the condition S3 answers a missing state \
         object with 403 instead of 404 and the first `terraform init` of a new state key fails",
        listing.at
    );
    let resources = listing.body.get_attribute("resources").expect("resources");
    let scope = stack_scope(&files).var("state_bucket", text("acme-terraform-state"));
    assert_eq!(scope.eval(&resources.value), Ok(hcl_value(json!(["arn:aws:s3:::acme-terraform-state"]))));
}

#[test]
fn policy_attachments_are_keyed_by_position_not_by_arn() {
    let files = stack_files();
    let iam = named(&files, "infra/iam.tf");
    let attachment = resource_in(iam, "aws_iam_role_policy_attachment", "codebuild_terraform");
    let for_each = attribute_of(iam, attachment, "for_each");
    // The ARNs of policies created in the same apply are unknown at plan time; the keys must not
    // change with them.
    let instances = |dev: [&str; 2], prod: &str| {
        let environments = json!({ "dev": { "policy_arns": dev }, "prod": { "policy_arns": [prod] } });
        match stack_scope(&files).local("environments", hcl_value(environments)).eval(for_each) {
            Ok(HclValue::Object(instances)) => instances,
            other => panic!("{}: for_each should evaluate to a map, got {other:?}", iam.at(attachment)),
        }
    };
    let first = instances(
        ["arn:aws:iam::123456789012:policy/a", "arn:aws:iam::123456789012:policy/b"],
        "arn:aws:iam::aws:policy/c",
    );
    let second = instances(
        ["arn:aws:iam::123456789012:policy/x", "arn:aws:iam::123456789012:policy/y"],
        "arn:aws:iam::aws:policy/z",
    );
    let keys = |instances: &hcl::Map<String, HclValue>| instances.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&first), ["dev|0", "dev|1", "prod|0"], "{}", iam.at(for_each));
    assert_eq!(keys(&first), keys(&second), "{}: the keys depend on the ARNs", iam.at(for_each));
    let field = |key: &str, name: &str| first[key].as_object().and_then(|pair| pair.get(name)).cloned();
    assert_eq!(field("dev|1", "arn"), Some(text("arn:aws:iam::123456789012:policy/b")));
    assert_eq!(field("prod|0", "environment"), Some(text("prod")));
}

#[test]
fn a_codebuild_project_name_leaves_room_for_its_role_name() {
    let files = stack_files();
    let variables = named(&files, "infra/variables.tf");
    let environments = |project: &str| {
        hcl_value(json!({ "dev": {
            "codebuild_project": project, "state_key": null, "working_directory": ".", "var_file": null,
            "source_version": null, "policy_arns": [], "policy_json": null,
        }}))
    };
    let at_most = "p".repeat(58);
    let too_long = "p".repeat(59);
    let results =
        validations(variables, "environments", &stack_scope(&files).var("environments", environments(&at_most)));
    assert!(all_pass(&results), "a 58-character codebuild_project is accepted: {results:?}");
    let results =
        validations(variables, "environments", &stack_scope(&files).var("environments", environments(&too_long)));
    assert!(some_fail(&results), "a 59-character codebuild_project makes a 65-character role name: {results:?}");

    // The default name, <name_prefix>-<env>, is checked on the role.
    let iam = named(&files, "infra/iam.tf");
    let role = resource_in(iam, "aws_iam_role", "codebuild");
    let each = |project: &str| hcl_value(json!({ "key": "dev", "value": { "codebuild_project": project } }));
    let results = conditions(iam, role, "precondition", &stack_scope(&files).bind("each", each(&at_most)));
    assert!(!results.is_empty() && all_pass(&results), "{results:?}");
    let results = conditions(iam, role, "precondition", &stack_scope(&files).bind("each", each(&too_long)));
    assert!(some_fail(&results), "{}: a role name over 64 characters should be refused: {results:?}", iam.at(role));
    let messages: Vec<&str> = role
        .body
        .get_blocks("lifecycle")
        .flat_map(|lifecycle| lifecycle.body.get_blocks("precondition"))
        .map(|check| iam.source_of(attribute_of(iam, check, "error_message")))
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("name_prefix") && m.contains("codebuild_project")),
        "the message should name the fields to change: {messages:?}"
    );
}

#[test]
fn the_parameter_name_limit_counts_the_arn_prefix() {
    let files = stack_files();
    let lambda = named(&files, "infra/lambda.tf");
    let function = resource_in(lambda, "aws_lambda_function", "this");
    // SSM counts arn:aws:ssm:eu-west-1:123456789012:parameter (44 characters) into the 1,011.
    let prefix = "arn:aws:ssm:eu-west-1:123456789012:parameter";
    let with_name_length = |length: usize| {
        let name = format!("/{}", "a".repeat(length - 1));
        let scope = stack_scope(&files).local("parameter_names", hcl_value(json!([name])));
        let scope = with_locals(scope, &files).bind("each", hcl_value(json!({ "key": "record-image-tag" })));
        conditions(lambda, function, "precondition", &scope)
    };
    let results = with_name_length(1011 - prefix.len());
    assert!(all_pass(&results), "a 1,011-character ARN is accepted: {results:?}");
    let results = with_name_length(1011 - prefix.len() + 1);
    assert!(some_fail(&results), "{}: a 1,012-character ARN should be refused: {results:?}", lambda.at(function));
}

#[test]
fn the_schedule_expression_validation_matches_what_eventbridge_accepts() {
    let files = stack_files();
    let variables = named(&files, "infra/variables.tf");
    let block = variable(variables, "schedule_expression").expect("variable schedule_expression");
    let patterns: Vec<&str> = block
        .body
        .get_blocks("validation")
        .flat_map(|validation| regex_patterns(attribute_of(variables, validation, "condition")))
        .collect();
    let [pattern] = patterns.as_slice() else { panic!("one regex validation of schedule_expression: {patterns:?}") };
    let regex = Regex::new(pattern).unwrap_or_else(|err| panic!("{err}"));
    // EventBridge: a singular unit for 1, a plural one for more.
    let accepted = [
        "rate(1 minute)",
        "rate(1 hour)",
        "rate(1 day)",
        "rate(2 minutes)",
        "rate(5 minutes)",
        "rate(10 minutes)",
        "rate(12 hours)",
        "rate(100 days)",
        "cron(0/5 * * * ? *)",
    ];
    let refused = [
        "rate(1 minutes)",
        "rate(5 minute)",
        "rate(1 hours)",
        "rate(2 day)",
        "rate(0 minutes)",
        "rate(01 minute)",
        "rate(5 seconds)",
        "rate(5minutes)",
        "rate(5 minutes) ",
        "cron()",
        "5 minutes",
    ];
    for expression in accepted {
        assert!(regex.is_match(expression), "{pattern} should accept {expression}");
    }
    for expression in refused {
        assert!(!regex.is_match(expression), "{pattern} should refuse {expression}");
    }
}

#[test]
fn no_reference_to_the_deprecated_region_name_remains() {
    let deprecated = Regex::new(r"data\.aws_region\.[A-Za-z0-9_-]+\.name\b").expect("a valid regex");
    let found: Vec<String> = infra_files()
        .iter()
        .flat_map(|file| {
            file.text
                .lines()
                .enumerate()
                .filter(|(_, line)| deprecated.is_match(line))
                .map(|(i, line)| format!("{}:{}: {}", file.name, i + 1, line.trim()))
        })
        .collect();
    assert!(
        found.is_empty(),
        "aws_region's `name` is deprecated in AWS provider 6 (and gone in 7); use `id`:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_example_service_does_not_wait_and_fails_honestly_when_it_does() {
    let files = example_files();
    let main = named(&files, "infra/examples/ecs-service/main.tf");
    let service = resource_in(main, "aws_ecs_service", "this");
    let refs: Vec<&TfFile> = files.iter().collect();
    let defaults = Scope::with_defaults(&refs);
    let wait = attribute_of(main, service, "wait_for_steady_state");
    assert_eq!(
        defaults.eval(wait),
        Ok(HclValue::Bool(false)),
        "{}: waiting reports success after a circuit-breaker rollback (terraform-provider-aws \
         #19519, #20858) and makes every run as long as the rollout",
        main.at(wait)
    );

    // Whoever waits: the service must end on the task definition this apply registered.
    let registered = "arn:aws:ecs:eu-west-1:123456789012:task-definition/my-api-dev:8";
    let after = |running: &str| {
        let scope = defaults
            .clone()
            .bind("self", hcl_value(json!({ "task_definition": running })))
            .bind("aws_ecs_task_definition", hcl_value(json!({ "this": { "arn": registered } })));
        conditions(main, service, "postcondition", &scope)
    };
    let results = after(registered);
    assert!(!results.is_empty() && all_pass(&results), "{results:?}");
    let rolled_back = after("arn:aws:ecs:eu-west-1:123456789012:task-definition/my-api-dev:7");
    assert!(some_fail(&rolled_back), "{}: a rolled-back deployment should fail the run", main.at(service));
}

#[test]
fn record_image_tag_may_repair_a_lost_race_and_sweep_its_repositories() {
    let files = stack_files();
    let iam = named(&files, "infra/iam.tf");
    let statements = policy::statements(iam, "record_image_tag");
    let granted_on = |action: &str| {
        let found: Vec<&str> = statements
            .iter()
            .filter(|statement| statement.actions.contains(&action))
            .filter_map(|statement| statement.source(iam, "resources"))
            .collect();
        found
    };
    // After a PutParameter, the versions written between its read and its write.
    assert_eq!(granted_on("ssm:GetParameterHistory"), ["local.image_tag_grant_arns"]);
    // The push time of a pushed tag, and the record sweep's pages of each repository.
    assert_eq!(granted_on("ecr:DescribeImages"), ["local.repository_grant_arns"]);
}

// ---------------------------------------------------------------------------------------------
// The sweep schedule: both functions
// ---------------------------------------------------------------------------------------------

#[test]
fn the_sweep_schedule_invokes_every_function() {
    let events = infra_file("infra/events.tf");
    let expected = [
        ("aws_cloudwatch_event_target", "rule", "aws_cloudwatch_event_rule.sweep.name"),
        ("aws_cloudwatch_event_target", "arn", "aws_lambda_function.this[each.key].arn"),
        ("aws_lambda_permission", "function_name", "aws_lambda_function.this[each.key].function_name"),
        ("aws_lambda_permission", "source_arn", "aws_cloudwatch_event_rule.sweep.arn"),
    ];
    for (type_name, argument, wanted) in expected {
        let block = resource_in(&events, type_name, "sweep");
        // local.functions names every crate in functions/ (checked above).
        assert_eq!(events.source_of(attribute_of(&events, block, "for_each")), "local.functions", "{type_name}.sweep");
        assert_eq!(events.source_of(attribute_of(&events, block, argument)), wanted, "{type_name}.sweep {argument}");
    }
}

// ---------------------------------------------------------------------------------------------
// infra/buildspec.yml
// ---------------------------------------------------------------------------------------------

fn buildspec_text() -> String {
    let path = workspace_root().join("infra/buildspec.yml");
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// A directory of its own under the system temp dir, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("tagrelay-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `script` with bash, as CodeBuild's `shell: bash` does, in an environment of exactly
/// `env` plus a PATH whose first entry holds a `terraform` that records its arguments, one per
/// line. Returns stdout and the recorded arguments.
fn run_buildspec_command(label: &str, script: &str, env: &[(&str, &str)]) -> (String, Vec<String>) {
    let dir = TempDir::new(label);
    let args_file = dir.0.join("terraform-args");
    let terraform = "#!/bin/sh\nfor arg in \"$@\"; do printf '%s\\n' \"$arg\"; done > \"$TERRAFORM_ARGS\"\n";
    let (args_path, src_dir) = (args_file.display().to_string(), dir.0.display().to_string());
    let mut full_env: Vec<(&str, &str)> = vec![("TERRAFORM_ARGS", &args_path), ("CODEBUILD_SRC_DIR", &src_dir)];
    full_env.extend_from_slice(env);
    let output = buildspec::bash_with_stubs(&dir.0, script, &full_env, &[("terraform", terraform)]);
    assert!(
        output.status.success(),
        "{label}: the command failed ({}):\n{script}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let recorded = std::fs::read_to_string(&args_file).unwrap_or_default();
    (String::from_utf8_lossy(&output.stdout).into_owned(), recorded.lines().map(str::to_owned).collect())
}

#[test]
fn the_build_runs_terraform_apply_with_a_var_file_only_when_one_is_set() {
    let commands = buildspec::phase_commands(&buildspec_text(), "build").unwrap_or_else(|err| panic!("{err}"));
    let [command] = commands.as_slice() else { panic!("the build phase should run one command: {commands:#?}") };
    let env = [("TAGRELAY_WORKING_DIR", "."), ("TAGRELAY_LOCK_TIMEOUT", "10m")];
    let apply = ["apply", "-auto-approve", "-input=false", "-no-color", "-lock-timeout=10m"];

    let (_, args) = run_buildspec_command("apply", command, &env);
    assert_eq!(args, apply, "without TAGRELAY_VAR_FILE");

    let with_var_file = [env.as_slice(), &[("TAGRELAY_VAR_FILE", "prod.tfvars")]].concat();
    let (_, args) = run_buildspec_command("apply-var-file", command, &with_var_file);
    assert_eq!(args, [&apply[..], &["-var-file=prod.tfvars"]].concat(), "with TAGRELAY_VAR_FILE");
}

#[test]
fn the_buildspec_expands_no_array_bare() {
    // Under `set -u`, bash before 4.4 calls "${a[@]}" of an empty array an unbound variable;
    // ${a[@]+"${a[@]}"} expands to nothing instead.
    let text = buildspec_text();
    let expansion = Regex::new(r#""\$\{([A-Za-z_][A-Za-z0-9_]*)\[@\]\}""#).expect("a valid regex");
    let bare: Vec<String> = expansion
        .captures_iter(&text)
        .filter(|found| {
            let whole = found.get(0).expect("the match");
            let guard = format!("${{{}[@]+", &found[1]);
            !(text[..whole.start()].ends_with(&guard) && text[whole.end()..].starts_with('}'))
        })
        .map(|found| found[0].to_owned())
        .collect();
    assert!(bare.is_empty(), "infra/buildspec.yml expands {bare:?} bare; write ${{name[@]+\"${{name[@]}}\"}}");
    assert!(expansion.is_match(&text), "the check should see the var_args expansion it guards");
}

#[test]
fn the_buildspec_passes_no_reason_and_says_who_started_the_run() {
    // Every StartBuild parameter is a function of the idempotency token: the reason is logged
    // by trigger-deploy, not passed to (or exported from) the build.
    let text = buildspec_text();
    assert!(!text.contains("TAGRELAY_REASON"), "infra/buildspec.yml still reads or exports TAGRELAY_REASON");

    let commands = buildspec::phase_commands(&text, "pre_build").unwrap_or_else(|err| panic!("{err}"));
    let announce: Vec<&String> = commands.iter().filter(|c| c.contains("echo") && !c.contains("terraform")).collect();
    let script: String = commands
        .iter()
        .take_while(|c| !c.contains("terraform") && !c.contains("aws ssm"))
        .map(|c| format!("{c}\n"))
        .collect();
    assert!(!announce.is_empty(), "pre_build should say what kind of run this is: {commands:#?}");

    let env = [("TAGRELAY_ENVIRONMENT", "dev")];
    let (stdout, _) = run_buildspec_command("announce-manual", &script, &env);
    assert!(stdout.contains("manual run") && stdout.contains("environment=dev"), "{stdout}");
    let tagrelay = [("TAGRELAY_ENVIRONMENT", "dev"), ("TAGRELAY_FINGERPRINT", "v1:abc")];
    let (stdout, _) = run_buildspec_command("announce-tagrelay", &script, &tagrelay);
    assert!(stdout.contains("tagrelay run") && stdout.contains("fingerprint=v1:abc"), "{stdout}");
}

#[test]
fn the_buildspec_reader_takes_items_and_blocks() {
    let text = "version: 0.2\nphases:\n  install:\n    commands:\n      - echo install\n  build:\n    commands:\n      # a comment\n      - echo one\n      - |\n        (\n          set -e\n          echo two\n        )\n\n  post_build:\n    commands:\n      - echo after\n";
    let commands = buildspec::phase_commands(text, "build").expect("the build phase");
    assert_eq!(commands, ["echo one", "(\n  set -e\n  echo two\n)\n"]);
    assert!(buildspec::phase_commands(text, "pre_build").is_err());
}

// ---------------------------------------------------------------------------------------------
// Facts written in infra/ and in the code
// ---------------------------------------------------------------------------------------------

/// `services.<svc>.<field>`'s default in `variable "services"`'s type,
/// `map(object({ …, field = optional(string, "<default>") }))`.
fn service_default<'a>(variables: &'a TfFile, field: &str) -> &'a str {
    let block = variable(variables, "services").expect("variable services");
    let (map, args) = func_call(attribute_of(variables, block, "type")).expect("services is typed");
    assert_eq!(map, "map");
    let (object, args) = func_call(args[0]).expect("map(object(...))");
    assert_eq!(object, "object");
    let entries = object_entries(args[0]).expect("object({...})");
    let (_, optional) = entries.iter().find(|(name, _)| *name == field).unwrap_or_else(|| panic!("no {field}"));
    let (optional, args) = func_call(optional).expect("optional(type, default)");
    assert_eq!(optional, "optional");
    args.get(1).and_then(|default| default.as_str()).unwrap_or_else(|| panic!("{field} has no default"))
}

#[test]
fn the_order_policies_and_service_defaults_in_infra_are_the_ones_the_code_has() {
    let files = stack_files();
    let variables = named(&files, "infra/variables.tf");
    assert_eq!(service_default(variables, "order"), OrderPolicy::default().as_str());
    assert_eq!(service_default(variables, "tag_pattern"), DEFAULT_TAG_PATTERN);

    // The validation that lists the policies: `contains([...], svc.order)`.
    let block = variable(variables, "services").expect("variable services");
    let listed = Regex::new(r#"contains\(\[([^\]]*)\],\s*svc\.order\)"#).expect("regex");
    let lists: Vec<Vec<String>> = block
        .body
        .get_blocks("validation")
        .filter_map(|validation| {
            let condition = attribute_of(variables, validation, "condition").to_string();
            let names = listed.captures(&condition)?.get(1)?.as_str().to_owned();
            Some(names.split(',').map(|name| name.trim().trim_matches('"').to_owned()).collect())
        })
        .collect();
    let [names] = lists.as_slice() else { panic!("one validation of services.<svc>.order: {lists:?}") };
    assert_eq!(names, &OrderPolicy::NAMES.map(str::to_owned), "infra/variables.tf and shared/src/order.rs");
    assert!(OrderPolicy::NAMES.iter().all(|name| name.parse::<OrderPolicy>().is_ok()));
}

/// `local.tagrelay_config` evaluated for these environments (`local.environments`) and services.
fn rendered_config(environments: Value, services: Value) -> Value {
    let scope = ecs_scope(environments, services);
    let rendered = eval_source(&scope, "local.tagrelay_config").unwrap_or_else(|err| panic!("{err}"));
    serde_json::to_value(&rendered).expect("JSON")
}

#[test]
fn the_config_document_renders_the_ecs_fields_only_when_set_and_the_code_reads_it() {
    // Without ECS: the document of before, plus parameter_placeholder.
    let plain = rendered_config(
        json!({ "dev": { "codebuild_project": "tagrelay-dev", "ecs_cluster": null, "verify_timeout": null } }),
        json!({ "my-api": service(json!({ "deploy_on_push": ["dev"] })) }),
    );
    assert_eq!(
        plain,
        json!({
            "parameter_template": "/{service}/{environment}/docker-image-tag",
            "parameter_placeholder": "initial",
            "environments": { "dev": { "codebuild_project": "tagrelay-dev" } },
            "services": { "my-api": {
                "repository": "my-api", "deploy_on_push": ["dev"], "tag_pattern": "^[0-9]+$", "order": "numeric",
            } },
        })
    );
    let config = tagrelay::config::Config::from_json(&plain.to_string()).unwrap_or_else(|err| panic!("{err}"));
    let dev = config.environment("dev").expect("dev");
    assert_eq!((dev.ecs_cluster.as_deref(), dev.verify_timeout), (None, tagrelay::config::DEFAULT_VERIFY_TIMEOUT));
    let api = config.service("my-api").expect("my-api");
    assert_eq!((api.ecs_service.as_deref(), api.container.as_str()), (Some("my-api"), "my-api"), "the defaults");

    // With ECS: a cluster per environment (one without), a service by another ECS name and
    // container, one by its own, one that is not an ECS service.
    let ecs = rendered_config(
        json!({
            "dev": { "codebuild_project": "tagrelay-dev", "ecs_cluster": "dev", "verify_timeout": null },
            "prod": { "codebuild_project": "tagrelay-prod", "ecs_cluster": "prod-cluster", "verify_timeout": "20m" },
            "lab": { "codebuild_project": "tagrelay-lab", "ecs_cluster": null, "verify_timeout": null },
        }),
        json!({
            "my-api": service(json!({ "deploy_on_push": ["dev"], "ecs_service": "api", "container": "app" })),
            "worker": service(json!({ "deploy_on_push": ["dev"] })),
            "reports": service(json!({ "verify_on_ecs": false })),
        }),
    );
    assert_eq!(ecs["parameter_placeholder"], "initial");
    assert_eq!(
        ecs["environments"],
        json!({
            "dev": { "codebuild_project": "tagrelay-dev", "ecs_cluster": "dev" },
            "prod": { "codebuild_project": "tagrelay-prod", "ecs_cluster": "prod-cluster", "verify_timeout": "20m" },
            "lab": { "codebuild_project": "tagrelay-lab" },
        })
    );
    let fields = |name: &str| {
        let service = ecs["services"][name].as_object().unwrap_or_else(|| panic!("{name}")).clone();
        // Sorted: serde_json keeps insertion order when another crate of the workspace turns on
        // its `preserve_order`.
        let mut fields: Vec<(String, Value)> =
            service.into_iter().filter(|(key, _)| ["ecs_service", "container"].contains(&key.as_str())).collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        fields
    };
    assert_eq!(fields("my-api"), [("container".to_owned(), json!("app")), ("ecs_service".to_owned(), json!("api"))]);
    assert_eq!(fields("worker"), [], "absent: the code's default (the service's name)");
    assert_eq!(fields("reports"), [("ecs_service".to_owned(), Value::Null)], "not an ECS service: null");

    let config = tagrelay::config::Config::from_json(&ecs.to_string()).unwrap_or_else(|err| panic!("{err}"));
    let prod = config.environment("prod").expect("prod");
    assert_eq!(prod.ecs_cluster.as_deref(), Some("prod-cluster"));
    assert_eq!(prod.verify_timeout, std::time::Duration::from_secs(20 * 60));
    assert_eq!(config.environment("lab").and_then(|lab| lab.ecs_cluster.as_deref()), None);
    let ecs_names = |name: &str| config.service(name).map(|s| (s.ecs_service.clone(), s.container.clone()));
    assert_eq!(ecs_names("my-api"), Some((Some("api".to_owned()), "app".to_owned())));
    assert_eq!(ecs_names("worker"), Some((Some("worker".to_owned()), "worker".to_owned())));
    assert_eq!(ecs_names("reports").and_then(|(ecs_service, _)| ecs_service), None);
}

// ---------------------------------------------------------------------------------------------
// The configuration document: inline, or in SSM parameters (infra/config.tf)
// ---------------------------------------------------------------------------------------------

/// The stack's locals with this document as `local.tagrelay_config`, `config_storage` and, when
/// given, the SSM parameters Terraform would have written (`aws_ssm_parameter`: `config`,
/// `config_part`, each a list of `{ name, version }`).
fn config_scope(files: &[TfFile], document: Value, storage: &str, parameters: Option<Value>) -> Scope {
    let mut scope =
        stack_scope(files).local("tagrelay_config", hcl_value(document)).var("config_storage", text(storage));
    if let Some(parameters) = parameters {
        scope = scope.bind("aws_ssm_parameter", hcl_value(parameters));
    }
    with_locals(scope, files)
}

fn number_of(scope: &Scope, expression: &str) -> u64 {
    let value = eval_source(scope, expression).unwrap_or_else(|err| panic!("{expression}: {err}"));
    value.as_number().and_then(hcl::Number::as_u64).unwrap_or_else(|| panic!("{expression} = {value}"))
}

fn flag_of(scope: &Scope, expression: &str) -> bool {
    eval_source(scope, expression).unwrap_or_else(|err| panic!("{expression}: {err}")).as_bool().expect("a bool")
}

fn string_of(scope: &Scope, expression: &str) -> String {
    let value = eval_source(scope, expression).unwrap_or_else(|err| panic!("{expression}: {err}"));
    value.as_str().unwrap_or_else(|| panic!("{expression} = {value}")).to_owned()
}

/// What Lambda measures of a function's variables, in bytes, written by two JSON writers: one that
/// keeps characters outside ASCII as UTF-8 (serde_json) and one that escapes them as `\uXXXX`.
fn lambda_measures(variables: &Value) -> [usize; 2] {
    let utf8 = serde_json::to_string(variables).expect("JSON");
    let escaped: String = utf8
        .chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                c.encode_utf16(&mut [0; 2]).iter().map(|unit| format!("\\u{unit:04x}")).collect()
            }
        })
        .collect();
    [utf8.len(), escaped.len()]
}

#[test]
fn the_configuration_stays_inline_only_while_every_variable_fits_lambdas_4_kb_with_margin() {
    // Documents of every size around the threshold, ASCII and not: the bound infra computes is at
    // least what Lambda measures (by either writer), and inline means at most 3,584 of 4,096.
    let files = stack_files();
    let mut seen = BTreeSet::new();
    for pad in (3400..3560).step_by(23).chain([3500, 3501, 3502, 3503, 3504, 3505, 3506]) {
        for filler in ["a", "\"", "é", "😀", "<"] {
            let document =
                json!({ "padding": filler.repeat(pad / filler.len().max(1) / 4) + &"x".repeat(pad * 3 / 4) });
            let scope = config_scope(&files, document, "auto", None);
            let json_text = string_of(&scope, "local.config_json");
            let bound = number_of(&scope, "local.config_inline_bytes") as usize;
            let inline = !flag_of(&scope, "local.config_in_ssm");
            let measured = lambda_measures(&json!({ "TAGRELAY_CONFIG": json_text }));
            assert!(measured.iter().all(|m| *m <= bound), "{filler:?} x {pad}: Lambda {measured:?} > bound {bound}");
            assert_eq!(inline, bound <= 3584, "{filler:?} x {pad}: bound {bound}");
            if inline {
                assert!(measured.iter().all(|m| *m <= 3584), "{measured:?}");
            }
            seen.insert(inline);
        }
    }
    assert_eq!(seen, BTreeSet::from([false, true]), "both sides of the threshold were tried");

    // Forced: the environment whatever the size (a precondition stops one over 4 KB), or SSM.
    let small = json!({ "environments": {}, "services": {} });
    assert!(!flag_of(&config_scope(&files, small.clone(), "environment", None), "local.config_in_ssm"));
    assert!(flag_of(&config_scope(&files, small.clone(), "ssm", None), "local.config_in_ssm"));
    assert!(!flag_of(&config_scope(&files, small, "auto", None), "local.config_in_ssm"));
    let lambda = named(&files, "infra/lambda.tf");
    let function = resource_in(lambda, "aws_lambda_function", "this");
    let check = lifecycle_check(lambda, function, "config_inline_bytes");
    for (pad, storage, holds) in [(100, "environment", true), (5000, "environment", false), (5000, "auto", true)] {
        let scope = config_scope(&files, json!({ "padding": "x".repeat(pad) }), storage, None);
        assert_eq!(scope.eval(attribute_of(lambda, check, "condition")), Ok(HclValue::Bool(holds)), "{pad} {storage}");
    }
    let variables = named(&files, "infra/variables.tf");
    for (value, accepted) in [("auto", true), ("environment", true), ("ssm", true), ("s3", false), ("", false)] {
        let results = validations(variables, "config_storage", &stack_scope(&files).var("config_storage", text(value)));
        assert_eq!(all_pass(&results), accepted, "config_storage = {value:?}: {results:?}");
    }

    // The functions get the document itself while inline: their one variable.
    let scope = config_scope(&files, json!({ "services": {} }), "auto", None);
    assert_eq!(string_of(&scope, "local.function_tagrelay_config"), r#"{"services":{}}"#);
    let environment = function.body.get_blocks("environment").next().expect("environment");
    assert_eq!(
        lambda.source_of(attribute_of(lambda, environment, "variables")).split_whitespace().collect::<Vec<_>>().join(" "),
        "{ TAGRELAY_CONFIG = local.function_tagrelay_config # the document, or ssm:/tagrelay/_config:<version> (config.tf) }"
    );

    // How many services that is, rendered by main.tf: three environments, services like the
    // Deploy example's.
    let services_inline = |environments: usize| {
        let envs = environment_names(environments);
        // The largest count still inline, by bisection (the size grows with each service).
        let (mut inline, mut in_ssm) = (0, 200);
        while in_ssm - inline > 1 {
            let count = (inline + in_ssm) / 2;
            let scope = configured(envs.clone(), many_services(count, "payments-api", "payments-api"), &[]);
            if flag_of(&scope, "local.config_in_ssm") {
                in_ssm = count;
            } else {
                inline = count;
            }
        }
        inline
    };
    let (three, ten) = (services_inline(3), services_inline(10));
    eprintln!("config inline: up to {three} services with 3 environments, {ten} with 10 (then SSM)");
    assert!(three >= 20, "{three}");
}

#[test]
fn a_large_configuration_is_stored_as_parts_the_head_lists_at_their_versions() {
    use sha2::{Digest, Sha256};
    let environments = environment_names(4);
    let scope = configured(environments.clone(), many_services(300, "payments-api", "payments-api"), &[]);
    let document = string_of(&scope, "local.config_json");
    assert!(flag_of(&scope, "local.config_in_ssm"), "{} characters", document.len());
    let count = number_of(&scope, "local.config_part_count") as usize;
    assert_eq!(count, document.chars().count().div_ceil(4000));
    let parts = strings(eval_source(&scope, "local.config_parts"));
    assert_eq!(parts.len(), count);
    assert!(parts.iter().all(|part| part.chars().count() <= 4000), "4,000 characters a part");
    assert_eq!(parts.concat(), document, "the parts in order are the document");

    // The head, with the versions Terraform knows after writing the parts.
    let part_parameters: Vec<Value> =
        (0..count).map(|i| json!({ "name": format!("/tagrelay/_config-part/{i}"), "version": i + 3 })).collect();
    let written = json!({ "config": [{ "name": "/tagrelay/_config", "version": 7 }], "config_part": part_parameters });
    let files = stack_files();
    let stored = with_locals(
        stack_scope(&files)
            .local("environments", hcl_value(with_optional_fields(environments)))
            .var("services", hcl_value(many_services(300, "payments-api", "payments-api")))
            .bind("aws_ssm_parameter", hcl_value(written)),
        &files,
    );
    let config_tf = named(&files, "infra/config.tf");
    let head = resource_in(config_tf, "aws_ssm_parameter", "config");
    let value = stored.eval(attribute_of(config_tf, head, "insecure_value")).expect("the head's value");
    let value: Value = serde_json::from_str(value.as_str().expect("a string")).expect("JSON");
    let sha256: String = Sha256::digest(document.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect();
    let listed: Vec<String> = (0..count).map(|i| format!("/tagrelay/_config-part/{i}:{}", i + 3)).collect();
    assert_eq!(value, json!({ "tagrelay_parts": { "sha256": sha256, "parts": listed } }), "tagrelay parts/1");
    assert!(value.to_string().len() <= 4096, "the head fits the Standard tier");
    // The functions name the head at its version.
    assert_eq!(string_of(&stored, "local.function_tagrelay_config"), "ssm:/tagrelay/_config:7");
    assert_eq!(string_of(&stored, "local.config_reference"), "ssm:/tagrelay/_config:7");
    // Read back the way the functions read it: the parts in order, checked, are a valid document.
    let config = tagrelay::config::Config::from_json(&parts.concat()).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(config.services().count(), 300);

    for resource in ["config", "config_part"] {
        let block = resource_in(config_tf, "aws_ssm_parameter", resource);
        for (argument, expected) in [("type", "\"String\""), ("tier", "\"Intelligent-Tiering\"")] {
            assert_eq!(
                config_tf.source_of(attribute_of(config_tf, block, argument)),
                expected,
                "{resource}.{argument}"
            );
        }
    }
    let part = resource_in(config_tf, "aws_ssm_parameter", "config_part");
    assert_eq!(
        config_tf.source_of(attribute_of(config_tf, part, "name")),
        "\"${local.config_parameter}-part/${count.index}\""
    );
    assert_eq!(string_of(&scope, "local.config_parameter"), "/tagrelay/_config");

    // A part of 4,000 characters must fit SSM's 8 KB: 2-byte characters do, 3-byte ones do not.
    let check = lifecycle_check(config_tf, part, "base64encode");
    for (filler, fits) in [("a", true), ("é", true), ("€", false)] {
        let document = json!({ "padding": filler.repeat(8000) });
        let scope = config_scope(&files, document, "ssm", None).bind("count", hcl_value(json!({ "index": 0 })));
        assert_eq!(scope.eval(attribute_of(config_tf, check, "condition")), Ok(HclValue::Bool(fits)), "{filler}");
    }
    // At most 100 parts.
    let check = lifecycle_check(config_tf, head, "config_part_count");
    for (parts, holds) in [(100, true), (101, false)] {
        let scope = stack_scope(&files).local("config_part_count", hcl_value(json!(parts)));
        assert_eq!(scope.eval(attribute_of(config_tf, check, "condition")), Ok(HclValue::Bool(holds)), "{parts}");
    }
}

#[test]
fn every_function_may_read_the_configuration_parameters_only_when_they_are_used() {
    let grants = |storage: &str| {
        let scope = config_scope(&stack_files(), json!({ "services": {} }), storage, None)
            .bind("each", hcl_value(json!({ "key": "promote", "value": "promote" })))
            .bind("aws_cloudwatch_log_group", hcl_value(json!({ "function": { "promote": { "arn": "arn:log" } } })))
            .bind("aws_sqs_queue", hcl_value(json!({ "dlq": { "promote": { "arn": "arn:queue" } } })))
            .bind("aws_kms_key", hcl_value(json!({ "this": { "arn": "arn:key" } })));
        rendered_statements("function_common", &scope)
            .into_iter()
            .filter(|(actions, _)| actions.iter().any(|a| a.starts_with("ssm:")))
            .collect::<Vec<_>>()
    };
    assert_eq!(grants("environment"), []);
    assert_eq!(
        grants("ssm"),
        [(
            vec!["ssm:GetParameter".to_owned(), "ssm:GetParameters".to_owned()],
            vec![
                "arn:aws:ssm:eu-west-1:123456789012:parameter/tagrelay/_config".to_owned(),
                "arn:aws:ssm:eu-west-1:123456789012:parameter/tagrelay/_config-part/*".to_owned(),
            ]
        )]
    );
    // The three functions share function_common.
    let files = stack_files();
    let iam = named(&files, "infra/iam.tf");
    for document in ["record_image_tag", "trigger_deploy", "promote"] {
        let (found, _) = declarations(iam);
        let block = found
            .iter()
            .find(|d| d.type_name == "aws_iam_policy_document" && d.name == document)
            .unwrap_or_else(|| panic!("{document}"));
        let sources = block.block.body.get_attribute("source_policy_documents").map(|a| iam.source_of(&a.value));
        assert!(sources.is_some_and(|s| s.contains("function_common")), "{document}: {sources:?}");
    }
}

#[test]
fn infra_and_the_code_agree_on_the_placeholder_the_release_records_and_ecs_names() {
    let files = stack_files();
    let defaults = stack_scope(&files);
    assert_eq!(
        eval_source(&defaults, "var.parameter_placeholder"),
        Ok(text(tagrelay::config::DEFAULT_PLACEHOLDER)),
        "infra/variables.tf parameter_placeholder's default"
    );

    // The release record trigger-deploy writes is the parameter its role may write.
    let environments = json!({ "dev": { "ecs_cluster": null }, "prod": { "ecs_cluster": "prod" } });
    let scope = ecs_scope(environments, json!({ "my-api": service(json!({ "deploy_on_push": ["dev"] })) }));
    let document = rendered_config(
        json!({
            "dev": { "codebuild_project": "tagrelay-dev", "ecs_cluster": null, "verify_timeout": null },
            "prod": { "codebuild_project": "tagrelay-prod", "ecs_cluster": "prod", "verify_timeout": null },
        }),
        json!({ "my-api": service(json!({ "deploy_on_push": ["dev"] })) }),
    );
    let config = tagrelay::config::Config::from_json(&document.to_string()).unwrap_or_else(|err| panic!("{err}"));
    let expected: Vec<String> = config
        .environments()
        .map(|env| format!("arn:aws:ssm:eu-west-1:123456789012:parameter{}", env.release_parameter()))
        .collect();
    assert_eq!(eval_source(&scope, "local.release_record_arns"), Ok(hcl_value(json!(expected))));

    // The ECS name validations accept what ECS does: 1-255 letters, digits, '-' and '_'.
    let variables = named(&files, "infra/variables.tf");
    let ecs_name_patterns: Vec<&str> = ["environments", "services"]
        .into_iter()
        .flat_map(|name| variable(variables, name).expect("the variable").body.get_blocks("validation"))
        .flat_map(|validation| regex_patterns(attribute_of(variables, validation, "condition")))
        .filter(|pattern| pattern.contains("{1,255}"))
        .collect();
    assert_eq!(
        ecs_name_patterns.len(),
        3,
        "ecs_cluster, ecs_service/container, the service name: {ecs_name_patterns:?}"
    );
    for pattern in ecs_name_patterns {
        let regex = Regex::new(pattern).expect("a valid regex");
        for good in ["default", "my-api", "Prod_2", &"a".repeat(255)] {
            assert!(regex.is_match(good), "{pattern} should accept {good}");
        }
        for bad in ["", "my.api", "arn:aws:ecs:eu-west-1:123456789012:cluster/prod", "a/b", &"a".repeat(256)] {
            assert!(!regex.is_match(bad), "{pattern} should refuse {bad}");
        }
    }
    let timeout: Vec<&str> = variable(variables, "environments")
        .expect("environments")
        .body
        .get_blocks("validation")
        .flat_map(|validation| regex_patterns(attribute_of(variables, validation, "condition")))
        .filter(|pattern| *pattern == "^[0-9]+[smhd]$")
        .collect();
    assert_eq!(timeout.len(), 1, "one format check of verify_timeout");
}

/// Every statement of `data.aws_iam_policy_document.<document>` as this configuration renders
/// it: (actions sorted, resources), a dynamic statement once per instance of its `for_each`.
fn rendered_statements(document: &str, scope: &Scope) -> Vec<(Vec<String>, Vec<String>)> {
    let policy = policy_document(document, scope);
    let statements = policy["Statement"].as_array().cloned().unwrap_or_default();
    statements
        .into_iter()
        .map(|statement| {
            let mut actions: Vec<String> = serde_json::from_value(statement["Action"].clone()).expect("actions");
            actions.sort();
            let resources: Vec<String> = serde_json::from_value(statement["Resource"].clone())
                .unwrap_or_else(|err| panic!("{}: resources {}: {err}", statement["Sid"], statement["Resource"]));
            (actions, resources)
        })
        .collect()
}

#[test]
fn trigger_deploy_may_verify_on_ecs_and_write_only_the_release_records() {
    let services = json!({
        "my-api": service(json!({ "deploy_on_push": ["dev"], "ecs_service": "api" })),
        "worker": service(json!({ "repository": "team/worker" })),
        "reports": service(json!({ "verify_on_ecs": false })),
    });
    let grants = |environments: Value| {
        // The projects' ARNs as the stack computes them for named projects.
        let scope = ecs_scope(environments.clone(), services.clone())
            .local("project_arns", hcl_value(json!(["arn:aws:codebuild:eu-west-1:123456789012:project/tagrelay-dev"])));
        let rendered = rendered_statements("trigger_deploy", &scope);
        let on = |action: &str| -> Vec<String> {
            let mut resources: Vec<String> = rendered
                .iter()
                .filter(|(actions, _)| actions.iter().any(|a| a == action))
                .flat_map(|(_, resources)| resources.iter().cloned())
                .collect();
            resources.sort();
            resources
        };
        let actions_of = |prefix: &str| -> Vec<String> {
            rendered.iter().flat_map(|(actions, _)| actions.iter().filter(|a| a.starts_with(prefix)).cloned()).collect()
        };
        assert_eq!(
            (on("ssm:GetParameterHistory"), on("ssm:AddTagsToResource")),
            (
                ["dev", "lab", "prod"]
                    .map(|env| format!("arn:aws:ssm:eu-west-1:123456789012:parameter/tagrelay/{env}/manifest"))
                    .to_vec(),
                vec![]
            ),
            "the history of the run manifests only; no tags on what it writes"
        );
        let mut reads: Vec<String> = ["dev", "lab", "prod"]
            .iter()
            .flat_map(|env| {
                ["verified", "verified-part/*", "manifest", "manifest-part/*"]
                    .map(|record| format!("arn:aws:ssm:eu-west-1:123456789012:parameter/tagrelay/{env}/{record}"))
            })
            .collect();
        reads.sort();
        let (records, image_tags): (Vec<String>, Vec<String>) =
            on("ssm:GetParameters").into_iter().partition(|arn| arn.contains(":parameter/tagrelay/"));
        assert_eq!(records, reads, "the release records and their parts, the manifests and their parts");
        assert!(image_tags.iter().all(|arn| arn.ends_with("/docker-image-tag")), "and the image tags: {image_tags:?}");
        (
            on("ecs:DescribeServices"),
            on("ecs:DescribeTaskDefinition"),
            on("ssm:PutParameter"),
            on("ecr:DescribeImages"),
            {
                let mut ecs = actions_of("ecs:");
                ecs.sort();
                ecs
            },
        )
    };

    // Each environment's release record and its parts, its run manifest and the manifest's parts.
    let mut records: Vec<String> = ["dev", "lab", "prod"]
        .iter()
        .flat_map(|env| {
            ["verified", "verified-part/*", "manifest", "manifest-part/*"]
                .map(|record| format!("arn:aws:ssm:eu-west-1:123456789012:parameter/tagrelay/{env}/{record}"))
        })
        .collect();
    records.sort();
    let repositories = [
        "arn:aws:ecr:eu-west-1:123456789012:repository/my-api",
        "arn:aws:ecr:eu-west-1:123456789012:repository/reports",
        "arn:aws:ecr:eu-west-1:123456789012:repository/team/worker",
    ];

    let (services_on, task_definitions, release, images, ecs) = grants(json!({
        "dev": { "ecs_cluster": "dev" }, "prod": { "ecs_cluster": "prod" }, "lab": { "ecs_cluster": null },
    }));
    assert_eq!(
        services_on,
        [
            "arn:aws:ecs:eu-west-1:123456789012:service/dev/api",
            "arn:aws:ecs:eu-west-1:123456789012:service/dev/worker",
            "arn:aws:ecs:eu-west-1:123456789012:service/prod/api",
            "arn:aws:ecs:eu-west-1:123456789012:service/prod/worker",
        ],
        "the ECS services of the environments with a cluster, by their ECS name; not `reports`"
    );
    assert_eq!(task_definitions, ["*"], "DescribeTaskDefinition has no resource-level permissions");
    assert_eq!(release, records, "PutParameter on the release records and run manifests (and their parts) only");
    assert_eq!(images, repositories);
    assert_eq!(ecs, ["ecs:DescribeServices", "ecs:DescribeTaskDefinition"], "ECS: read only");

    // No environment with a cluster: no ECS statement at all; release records stay (an
    // environment without ECS gets one when its build succeeds).
    let (services_on, task_definitions, release, images, ecs) = grants(
        json!({ "dev": { "ecs_cluster": null }, "prod": { "ecs_cluster": null }, "lab": { "ecs_cluster": null } }),
    );
    assert_eq!(
        (services_on.len(), task_definitions.len(), ecs.len()),
        (0, 0, 0),
        "no ECS permission without a cluster"
    );
    assert_eq!(release, records);
    assert_eq!(images, repositories);

    // The release records and the image tags never share a statement: trigger-deploy writes no
    // image-tag parameter.
    let files = stack_files();
    let iam = named(&files, "infra/iam.tf");
    for statement in policy::statements(iam, "trigger_deploy") {
        if statement.actions.contains(&"ssm:PutParameter") {
            let resources = statement.source(iam, "resources");
            assert!(
                matches!(resources, Some("local.release_record_write_arns" | "local.run_manifest_arns")),
                "{}: {resources:?}",
                statement.at
            );
        }
    }
}

/// `codebuild_base` of environment `env` as this configuration renders it: action → resources.
fn build_role_grants(scope: &Scope, env: &str) -> BTreeMap<String, BTreeSet<String>> {
    let scope = scope
        .clone()
        .var("state_bucket", text("acme-terraform-state"))
        .var("source_type", text("GITHUB"))
        .var("source_location", text("https://github.com/acme/platform-terraform.git"))
        .bind("each", hcl_value(json!({ "key": env, "value": { "state_key": format!("{env}/terraform.tfstate") } })))
        .bind("aws_cloudwatch_log_group", hcl_value(json!({ "build": { env: { "arn": "arn:log" } } })))
        .bind("aws_kms_key", hcl_value(json!({ "this": { "arn": "arn:key" } })));
    let mut grants: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (actions, resources) in rendered_statements("codebuild_base", &scope) {
        for action in actions {
            grants.entry(action).or_default().extend(resources.iter().cloned());
        }
    }
    grants
}

#[test]
fn the_build_role_finds_its_run_manifest_and_reads_its_own_environment_only() {
    let scope = ecs_scope(
        json!({ "dev": { "codebuild_project": "tagrelay-dev" }, "prod": { "codebuild_project": "tagrelay-prod" } }),
        json!({ "my-api": service(json!({ "deploy_on_push": ["dev"] })), "worker": service(json!({ "deploy_on_push": ["dev"] })) }),
    );
    let grants = build_role_grants(&scope, "prod");
    let arn = |name: &str| format!("arn:aws:ssm:eu-west-1:123456789012:parameter{name}");
    assert_eq!(grants["ssm:GetParameterHistory"], BTreeSet::from([arn("/tagrelay/prod/manifest")]));
    assert_eq!(
        grants["ssm:GetParameters"],
        BTreeSet::from([
            arn("/my-api/prod/docker-image-tag"),
            arn("/tagrelay/prod/manifest-part/*"),
            arn("/worker/prod/docker-image-tag"),
        ])
    );
    assert_eq!(
        grants["ssm:GetParameter"],
        BTreeSet::from([arn("/my-api/prod/docker-image-tag"), arn("/worker/prod/docker-image-tag")])
    );
    assert!(!grants.contains_key("ssm:PutParameter"), "a build writes no parameter");

    // Many services: the environment's image tags by the template's wildcard, still its own.
    let scope = ecs_scope(environment_names(2), many_services(100, "payments-api", "payments-api"));
    let grants = build_role_grants(&scope, "qa");
    assert_eq!(grants["ssm:GetParameter"], BTreeSet::from([arn("/*/qa/docker-image-tag")]));
    assert_eq!(grants["ssm:GetParameterHistory"], BTreeSet::from([arn("/tagrelay/qa/manifest")]));
}

#[test]
fn an_image_tag_wildcard_grant_never_covers_tagrelays_own_parameters() {
    let files = stack_files();
    let iam = named(&files, "infra/iam.tf");
    let policy = resource_in(iam, "aws_iam_role_policy", "function");
    let check = lifecycle_check(iam, policy, "image_tag_grants_cover_reserved");
    let outcome = |template: &str, environments: Value, services: usize| {
        let scope = configured(
            environments,
            many_services(services, "payments-api", "payments-api"),
            &[("parameter_template", json!(template))],
        );
        let holds = scope.eval(attribute_of(iam, check, "condition")).and_then(|v| boolean(&v)).expect("evaluates");
        (holds, strings(eval_source(&scope, "local.image_tag_grants_cover_reserved")))
    };
    let two = environment_names(2);
    // Few services: exact names, nothing to cover.
    assert_eq!(outcome("/{service}/{environment}/verified", two.clone(), 2), (true, vec![]));
    // Many: the default's wildcard /*/dev/docker-image-tag covers none of tagrelay's names...
    assert_eq!(outcome("/{service}/{environment}/docker-image-tag", two.clone(), 100), (true, vec![]));
    assert_eq!(outcome("/{environment}/{service}", two.clone(), 100), (true, vec![]));
    // ... one that ends like a record does, and is refused, naming them.
    let (holds, covered) = outcome("/{service}/{environment}/verified", two.clone(), 100);
    assert!(!holds);
    assert_eq!(covered, ["/tagrelay/dev/verified", "/tagrelay/qa/verified"]);
    let (holds, covered) = outcome(
        "/{service}/{environment}",
        json!({ "manifest": { "codebuild_project": "p" }, "dev": { "codebuild_project": "d" } }),
        100,
    );
    assert!(!holds && covered.contains(&"/tagrelay/dev/manifest".to_owned()), "{covered:?}");
}

#[test]
fn verification_holds_count_as_holds_and_page_once() {
    let files = stack_files();
    let monitoring = named(&files, "infra/monitoring.tf");
    let pattern_of = |name: &str| {
        let filter = resource_in(monitoring, "aws_cloudwatch_log_metric_filter", name);
        attribute_of(monitoring, filter, "pattern").as_str().expect("a string literal").to_owned()
    };
    // Every hold, whatever its reason, counts for deploy-held (the alarm that pages).
    assert_eq!(pattern_of("hold"), r#"{ $.fields.decision = "hold" }"#);
    // The verification holds, by their reasons (the names trigger-deploy logs).
    assert_eq!(
        pattern_of("verification_hold"),
        r#"{ $.fields.decision = "hold" && ($.fields.reason = "rollout_failed" || $.fields.reason = "verify_timed_out") }"#
    );
    // The reasons are the code's: HoldReason's names, all of them, and nothing else.
    let pattern = pattern_of("verification_hold");
    let reasons: Vec<&str> =
        pattern.split("$.fields.reason = \"").skip(1).filter_map(|r| r.split('"').next()).collect();
    assert_eq!(reasons, HoldReason::NAMES, "infra/monitoring.tf vs shared/src/deploy/verify.rs");
    let hold = Outcome::RolloutHeld { build: String::new(), hold: HoldReason::RolloutFailed, detail: String::new() };
    assert_eq!(hold.as_str(), "hold");
    // The saved query of releases filters on the decision the code logs for one.
    let verified = Outcome::Verified { build: String::new(), basis: VerifiedBy::RolloutCompleted, version: 1 };
    let query = resource_in(monitoring, "aws_cloudwatch_query_definition", "releases_by_environment");
    let text = monitoring.source_of(attribute_of(monitoring, query, "query_string"));
    assert!(text.contains(&format!("filter fields.decision = \"{}\"", verified.as_str())), "{text}");
    // Its alarm tells which kind of hold, without a second page for the same environment.
    let alarms = local(monitoring, "alarms").expect("local.alarms");
    let text = monitoring.source_of(&alarms.value);
    let verify = text.find("\"verify-failed:${name}\"").expect("a verify-failed alarm per environment");
    let entry =
        &text[verify..text[verify..].find("} if env.ecs_cluster != null },").map_or(text.len(), |end| verify + end)];
    assert!(entry.contains("notify      = false"), "the verify-failed alarm should not notify: {entry}");
    let alarm = resource_in(monitoring, "aws_cloudwatch_metric_alarm", "this");
    let actions = monitoring.source_of(attribute_of(monitoring, alarm, "alarm_actions"));
    assert_eq!(actions, "try(each.value.notify, true) ? [aws_sns_topic.alarms.arn] : []");
}

// ---------------------------------------------------------------------------------------------
// infra/buildspec.yml: a run deploys exactly what it was started for
// ---------------------------------------------------------------------------------------------

/// The pre_build commands up to `terraform init`, then what the team's Terraform would see.
fn resolution_script() -> String {
    let commands = buildspec::phase_commands(&buildspec_text(), "pre_build").unwrap_or_else(|err| panic!("{err}"));
    let resolve: Vec<&String> = commands.iter().filter(|c| c.contains("TF_VAR_tagrelay_image_tags")).collect();
    assert_eq!(resolve.len(), 1, "one pre_build command resolves the fingerprint: {commands:#?}");
    let before_init: String =
        commands.iter().take_while(|c| !c.contains("terraform init")).map(|c| format!("{c}\n")).collect();
    assert!(before_init.contains(resolve[0].as_str()), "the fingerprint is resolved before `terraform init`");
    format!("{before_init}status=$?\nprintenv TF_VAR_tagrelay_image_tags || echo '<not exported>'\nexit $status\n")
}

/// What SSM holds for these parameters (name, value, version).
fn stored_of(parameters: &[(&str, &str, i64)]) -> BTreeMap<String, tagrelay::ports::StoredParameter> {
    parameters
        .iter()
        .map(|(name, value, version)| {
            ((*name).to_owned(), tagrelay::ports::StoredParameter::string(*value, *version, None))
        })
        .collect()
}

/// The exported map, as the last line of stdout.
fn exported(stdout: &str) -> Value {
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|err| panic!("not a JSON object ({err}): {stdout}"))
}

/// SSM as trigger-deploy leaves it before a start: the manifest head's history (versions
/// `manifests`, oldest first, each with its description) and the part parameters, written with
/// the core's one format.
struct Ssm {
    histories: Vec<(&'static str, String)>,
    parts: Vec<(String, String)>,
}

fn ssm_with(manifests: &[(String, String)]) -> Ssm {
    use tagrelay::document::format::{head_value, needs_parts, part_name, split};
    let head = "/tagrelay/dev/manifest";
    let mut versions = Vec::new();
    let mut parts = Vec::new();
    for (index, (document, description)) in manifests.iter().enumerate() {
        let version = index as i64 + 1;
        let value = if needs_parts(document) {
            let pieces = split(head, document).expect("fits");
            let written: Vec<(String, i64)> = (0..pieces.len()).map(|i| (part_name(head, i), version)).collect();
            for ((name, v), piece) in written.iter().zip(&pieces) {
                parts.push((format!("{name}:{v}"), json!({ "Name": name, "Version": v, "Value": piece }).to_string()));
            }
            head_value(document, &written)
        } else {
            document.clone()
        };
        versions.push(json!({ "Name": head, "Version": version, "Value": value, "Description": description }));
    }
    Ssm { histories: vec![(head, json!({ "Parameters": versions }).to_string())], parts }
}

fn run_manifest(parameters: &[(&str, &str, i64)]) -> tagrelay::deploy::manifest::Manifest {
    tagrelay::deploy::manifest::Manifest::of("dev", &stored_of(parameters))
}

fn resolve_with(label: &str, fingerprint: &str, ssm: &Ssm) -> buildspec::Run {
    let env = [("TAGRELAY_ENVIRONMENT", "dev"), ("TAGRELAY_FINGERPRINT", fingerprint)];
    buildspec::run_with_stub_ssm(label, &resolution_script(), &env, &ssm.histories, &ssm.parts)
}

#[test]
fn a_tagrelay_run_deploys_the_values_of_its_run_manifest() {
    let manifest =
        run_manifest(&[("/my-api/dev/docker-image-tag", "42", 3), ("/worker/dev/docker-image-tag", "1.2.3", 1)]);
    assert_eq!(manifest.fingerprint.len(), 71, "sha256:<64 hex>");
    let later =
        run_manifest(&[("/my-api/dev/docker-image-tag", "43", 4), ("/worker/dev/docker-image-tag", "1.2.3", 1)]);
    // A later run's manifest was written since: this run still deploys its own.
    let ssm = ssm_with(&[(manifest.document(), manifest.description()), (later.document(), later.description())]);
    let run = resolve_with("manifest", &manifest.fingerprint, &ssm);
    assert!(run.success, "{run:#?}");
    assert_eq!(
        exported(&run.stdout),
        json!({ "/my-api/dev/docker-image-tag": "42", "/worker/dev/docker-image-tag": "1.2.3" }),
        "{run:#?}"
    );
    assert_eq!(run.aws_calls, ["ssm get-parameter-history --name /tagrelay/dev/manifest --output json"]);

    // A placeholder is passed on as Terraform reads it: JSON escapes, `${` and `%{` doubled.
    let odd = r#"no "tag" \ ${yet} %{x}"#;
    let manifest = run_manifest(&[("/my-api/dev/docker-image-tag", odd, 1)]);
    let run =
        resolve_with("placeholder", &manifest.fingerprint, &ssm_with(&[(manifest.document(), manifest.description())]));
    assert!(run.success, "{run:#?}");
    assert_eq!(exported(&run.stdout), json!({ "/my-api/dev/docker-image-tag": r#"no "tag" \ $${yet} %%{x}"# }));
}

#[test]
fn a_run_of_1000_services_reads_its_manifest_in_parts_with_a_few_calls() {
    let values: Vec<(String, String)> =
        (0..1_000).map(|n| (format!("/payments-api-{n:04}/dev/docker-image-tag"), format!("{}", 10_000 + n))).collect();
    let parameters: Vec<(&str, &str, i64)> = values.iter().map(|(n, v)| (n.as_str(), v.as_str(), 2)).collect();
    let manifest = run_manifest(&parameters);
    let ssm = ssm_with(&[(manifest.document(), manifest.description())]);
    let parts = ssm.parts.len();
    assert!(parts > 5, "{parts} parts");
    let run = resolve_with("parts", &manifest.fingerprint, &ssm);
    assert!(run.success, "{run:#?}");
    let exported = exported(&run.stdout);
    assert_eq!(exported.as_object().map(|o| o.len()), Some(1_000));
    assert_eq!(exported["/payments-api-0999/dev/docker-image-tag"], "10999");
    assert_eq!(
        run.aws_calls.len(),
        1 + parts.div_ceil(10),
        "the history, then ten parts per call: {:#?}",
        run.aws_calls
    );

    // A part edited by hand: its hash no longer holds, and nothing is deployed.
    let mut tampered = ssm_with(&[(manifest.document(), manifest.description())]);
    tampered.parts[2].1 = tampered.parts[2].1.replace("10", "99");
    let run = resolve_with("tampered", &manifest.fingerprint, &tampered);
    assert!(!run.success && run.stderr.contains("the parts do not add up"), "{run:#?}");
    assert!(run.stdout.contains("<not exported>"), "{run:#?}");

    // A part SSM no longer has.
    let mut gone = ssm_with(&[(manifest.document(), manifest.description())]);
    gone.parts.remove(1);
    let run = resolve_with("part-gone", &manifest.fingerprint, &gone);
    assert!(!run.success && run.stderr.contains("/tagrelay/dev/manifest-part/1:1 is missing"), "{run:#?}");
}

#[test]
fn a_run_without_its_manifest_or_with_an_edited_one_fails_before_terraform() {
    let manifest = run_manifest(&[("/my-api/dev/docker-image-tag", "42", 3)]);
    let other = run_manifest(&[("/my-api/dev/docker-image-tag", "41", 2)]);
    let run = resolve_with("no-manifest", &manifest.fingerprint, &ssm_with(&[(other.document(), other.description())]));
    assert!(!run.success && run.stderr.contains("nothing says what this run deploys"), "{run:#?}");
    assert!(run.stdout.contains("<not exported>"), "{run:#?}");

    // Described as this run's, but an entry was edited: it is not the fingerprint's state.
    let edited = manifest.document().replace(r#""value":"42""#, r#""value":"43""#);
    let run = resolve_with("edited", &manifest.fingerprint, &ssm_with(&[(edited, manifest.description())]));
    assert!(!run.success && run.stderr.contains("is not the state of"), "{run:#?}");
}

#[test]
fn a_run_started_by_an_older_tagrelay_reads_each_value_at_its_version() {
    let script = resolution_script();
    // Older builds carry the state itself: name=version@digest.
    let state = tagrelay::deploy::fingerprint::state(&stored_of(&[
        ("/my-api/dev/docker-image-tag", "42", 3),
        ("/worker/dev/docker-image-tag", "1.2.3", 1),
    ]));
    let env = [("TAGRELAY_ENVIRONMENT", "dev"), ("TAGRELAY_FINGERPRINT", state.as_str())];
    let parameters = [
        ("/my-api/dev/docker-image-tag:3", "42"),
        ("/my-api/dev/docker-image-tag:4", "43"),
        ("/worker/dev/docker-image-tag:1", "1.2.3"),
    ];
    let run = buildspec::run_with_stub_aws("resolve", &script, &env, &parameters);
    assert!(run.success, "{run:#?}");
    assert_eq!(
        exported(&run.stdout),
        json!({ "/my-api/dev/docker-image-tag": "42", "/worker/dev/docker-image-tag": "1.2.3" }),
        "{run:#?}"
    );
    assert_eq!(
        run.aws_calls,
        [
            "ssm get-parameter --name /my-api/dev/docker-image-tag:3 --query Parameter.Value --output text",
            "ssm get-parameter --name /worker/dev/docker-image-tag:1 --query Parameter.Value --output text",
        ]
    );

    // Older still: name=version, nothing to check the value against.
    let env = [("TAGRELAY_ENVIRONMENT", "dev"), ("TAGRELAY_FINGERPRINT", "/my-api/dev/docker-image-tag=4")];
    let run = buildspec::run_with_stub_aws("resolve-legacy", &script, &env, &parameters);
    assert!(run.success, "{run:#?}");
    assert_eq!(exported(&run.stdout), json!({ "/my-api/dev/docker-image-tag": "43" }));

    // Started for version 1 = "42"; the parameter was deleted and created again: version 1 is "7".
    let state = tagrelay::deploy::fingerprint::state(&stored_of(&[("/my-api/dev/docker-image-tag", "42", 1)]));
    let env = [("TAGRELAY_ENVIRONMENT", "dev"), ("TAGRELAY_FINGERPRINT", state.as_str())];
    let run = buildspec::run_with_stub_aws("re-created", &script, &env, &[("/my-api/dev/docker-image-tag:1", "7")]);
    assert!(!run.success, "the phase must fail: {run:#?}");
    assert!(run.stderr.contains("deleted and created again"), "{}", run.stderr);
    assert!(run.stdout.contains("<not exported>"), "{run:#?}");

    // A version that no longer exists (SSM keeps the newest 100): the CLI's error, then a failure.
    let run = buildspec::run_with_stub_aws("version-gone", &script, &env, &[]);
    assert!(!run.success && run.stderr.contains("ParameterVersionNotFound"), "{run:#?}");
}

#[test]
fn a_manual_run_exports_no_image_tags() {
    let script = resolution_script();
    let run = buildspec::run_with_stub_aws("manual", &script, &[("TAGRELAY_ENVIRONMENT", "dev")], &[]);
    assert!(run.success, "{run:#?}");
    assert!(run.aws_calls.is_empty(), "{run:#?}");
    assert!(run.stdout.contains("manual run") && run.stdout.contains("<not exported>"), "{run:#?}");
}

#[test]
fn the_image_tag_parameters_are_optional_and_the_functions_may_create_them() {
    let files = stack_files();
    let ssm = named(&files, "infra/ssm.tf");
    let parameters = resource_in(ssm, "aws_ssm_parameter", "image_tag");
    let keys = |manage: Option<bool>| {
        let mut scope = stack_scope(&files)
            .local("environments", hcl_value(with_optional_fields(environment_names(2))))
            .var("services", hcl_value(many_services(2, "payments-api", "payments-api")));
        if let Some(manage) = manage {
            scope = scope.var("manage_image_tag_parameters", HclValue::Bool(manage));
        }
        let scope = with_locals(scope, &files);
        let for_each = scope.eval(attribute_of(ssm, parameters, "for_each")).expect("for_each");
        let keys: Vec<String> = for_each.as_object().expect("a map").keys().cloned().collect();
        keys
    };
    assert_eq!(keys(None).len(), 4, "by default, as before: one per service and environment");
    assert_eq!(keys(Some(true)).len(), 4);
    assert_eq!(keys(Some(false)), Vec::<String>::new(), "none: the functions create them");

    // Whoever writes a tag may create its parameter with tags (PutParameter with Tags needs
    // AddTagsToResource), on every name it writes, exact or by wildcard.
    let iam = named(&files, "infra/iam.tf");
    for (document, grants) in [("record_image_tag", "local.image_tag_grant_arns"), ("promote", "statement.value")] {
        let statement = policy::statements(iam, document)
            .into_iter()
            .find(|s| s.actions.contains(&"ssm:PutParameter") && s.actions.contains(&"ssm:AddTagsToResource"))
            .unwrap_or_else(|| panic!("{document}: PutParameter with AddTagsToResource"));
        assert_eq!(statement.source(iam, "resources"), Some(grants), "{}", statement.at);
    }

    // No image-tag parameter under /tagrelay/, created or not: checked on the functions.
    let lambda = named(&files, "infra/lambda.tf");
    let function = resource_in(lambda, "aws_lambda_function", "this");
    let check = lifecycle_check(lambda, function, "/tagrelay/");
    for (name, holds) in [("my-api", true), ("tagrelay", false)] {
        let scope = configured(
            environment_names(1),
            json!({ name: service(json!({ "deploy_on_push": ["dev"] })) }),
            &[("parameter_template", json!("/{service}/{environment}/docker-image-tag"))],
        );
        assert_eq!(scope.eval(attribute_of(lambda, check, "condition")), Ok(HclValue::Bool(holds)), "{name}");
    }
}

#[test]
fn the_example_service_deploys_the_tag_its_run_was_started_for() {
    let files = example_files();
    let refs: Vec<&TfFile> = files.iter().collect();
    let main = named(&files, "infra/examples/ecs-service/main.tf");
    let (found, _) = declarations(main);
    let data_source = found
        .iter()
        .find(|d| d.kind == DeclarationKind::Data && d.type_name == "aws_ssm_parameter" && d.name == "image_tag")
        .map(|d| d.block)
        .expect("data.aws_ssm_parameter.image_tag");
    // (the image tag, how many times the run reads the parameter, the tasks it runs)
    let plan = |tagrelay_image_tags: Value| {
        let scope = Scope::with_defaults(&refs)
            .var("environment", text("dev"))
            .var("tagrelay_image_tags", hcl_value(tagrelay_image_tags));
        // local.tagrelay_run first: the data source's count reads it.
        let tagrelay_run = eval_source(&scope, "length(var.tagrelay_image_tags) > 0").expect("evaluates");
        let scope = scope.local("tagrelay_run", tagrelay_run);
        let reads = scope.eval(attribute_of(main, data_source, "count")).expect("count");
        let reads = reads.as_number().and_then(hcl::Number::as_u64).expect("a count");
        // What SSM answers the data source, as a list of `count` instances.
        let read: Vec<Value> = (0..reads).map(|_| json!({ "insecure_value": "43" })).collect();
        let scope =
            scope.bind("data", hcl_value(json!({ "aws_ssm_parameter": { "image_tag": read } }))).with_locals_of(&refs);
        let tasks = eval_source(&scope, "local.has_image ? var.desired_count : 0").expect("desired count");
        (eval_source(&scope, "local.image_tag").expect("the tag"), reads, tasks)
    };
    // A tagrelay run: the value at the fingerprint's version, though the parameter moved on;
    // nothing read from SSM.
    assert_eq!(
        plan(json!({ "/my-api/dev/docker-image-tag": "42", "/worker/dev/docker-image-tag": "7" })),
        (text("42"), 0, hcl_value(json!(2)))
    );
    // A tagrelay run that does not name this service's parameter: it does not exist yet (nobody
    // pushed the service, with manage_image_tag_parameters = false): planned like the
    // placeholder, no tasks, no failure.
    assert_eq!(plan(json!({ "/worker/dev/docker-image-tag": "7" })), (text("initial"), 0, hcl_value(json!(0))));
    // A manual run (nothing passed): the newest value, read.
    assert_eq!(plan(json!({})), (text("43"), 1, hcl_value(json!(2))));
    let service = resource_in(main, "aws_ecs_service", "this");
    assert_eq!(
        main.source_of(attribute_of(main, service, "desired_count")),
        "local.has_image ? var.desired_count : 0",
        "what the check above evaluates"
    );

    let defaults = Scope::with_defaults(&refs);
    assert_eq!(eval_source(&defaults, "var.tagrelay_image_tags"), Ok(hcl_value(json!({}))));
    // The circuit breaker with rollback stays: it is what turns a bad image into a FAILED
    // deployment that verification reports.
    let breaker = service.body.get_blocks("deployment_circuit_breaker").next().expect("a circuit breaker");
    for argument in ["enable", "rollback"] {
        assert_eq!(defaults.eval(attribute_of(main, breaker, argument)), Ok(HclValue::Bool(true)), "{argument}");
    }
}

#[test]
fn two_environments_on_one_cluster_are_refused_when_a_service_is_verified() {
    let files = stack_files();
    let variables = named(&files, "infra/variables.tf");
    let services = terraform::hcl_read::variable(variables, "services").expect("variable \"services\"");
    let check = services
        .body
        .get_blocks("validation")
        .find(|v| variables.source_of(attribute_of(variables, v, "error_message")).contains("the same ecs_cluster"))
        .expect("a validation of shared clusters");
    let condition = attribute_of(variables, check, "condition");
    let holds = |clusters: [Option<&str>; 3], verified: bool| {
        let environments: serde_json::Map<String, Value> = ["dev", "qa", "prod"]
            .iter()
            .zip(clusters)
            .map(|(name, cluster)| ((*name).to_owned(), json!({ "ecs_cluster": cluster })))
            .collect();
        let services = json!({ "my-api": { "verify_on_ecs": verified } });
        let scope = stack_scope(&files)
            .var("environments", hcl_value(Value::Object(environments)))
            .var("services", hcl_value(services));
        scope.eval(condition).and_then(|value| boolean(&value))
    };
    assert_eq!(holds([Some("dev"), Some("qa"), None], true), Ok(true));
    assert_eq!(holds([Some("main"), Some("main"), None], true), Ok(false), "the code refuses it at cold start");
    assert_eq!(holds([Some("main"), Some("main"), None], false), Ok(true), "nothing verified: nothing mixed up");
    assert_eq!(holds([None, None, None], true), Ok(true));
}

// ---------------------------------------------------------------------------------------------
// Promotion and rollback: the fields, the rules, promote's role, its alarms, the dashboard
// ---------------------------------------------------------------------------------------------

/// A `var.environments` entry as the validations see it: every attribute (Terraform fills in
/// optional() defaults; the evaluator does not), `fields` over the defaults.
fn var_environment(fields: Value) -> Value {
    let mut environment = json!({
        "codebuild_project": null, "state_key": null, "working_directory": ".", "var_file": null,
        "source_version": null, "policy_arns": [], "policy_json": null,
    });
    for (name, default) in &ENVIRONMENT_OPTIONALS {
        environment[*name] = default.clone();
    }
    for (key, value) in fields.as_object().expect("an object") {
        environment[key] = value.clone();
    }
    environment
}

/// `var.environments` from `name → fields`.
fn var_environments(environments: Value) -> Value {
    let entries = environments.as_object().expect("environments by name");
    Value::Object(entries.iter().map(|(name, fields)| (name.clone(), var_environment(fields.clone()))).collect())
}

/// The validation of `variable_name` whose message starts with `message_start`, evaluated:
/// (condition, message). The message is evaluated only when the condition fails, as Terraform
/// does.
fn validation_result(variable_name: &str, message_start: &str, scope: &Scope) -> (bool, String) {
    let files = stack_files();
    let variables = named(&files, "infra/variables.tf");
    let block = variable(variables, variable_name).expect("the variable");
    let found: Vec<&Block> = block
        .body
        .get_blocks("validation")
        .filter(|v| variables.source_of(attribute_of(variables, v, "error_message")).contains(message_start))
        .collect();
    let [validation] = found.as_slice() else {
        panic!("one validation of {variable_name} whose message has {message_start:?}, found {}", found.len())
    };
    let condition = scope
        .eval(attribute_of(variables, validation, "condition"))
        .and_then(|value| boolean(&value))
        .unwrap_or_else(|err| panic!("{}: the condition does not evaluate: {err}", variables.at(*validation)));
    if condition {
        return (true, String::new());
    }
    let message = scope
        .eval(attribute_of(variables, validation, "error_message"))
        .unwrap_or_else(|err| panic!("{}: the message does not evaluate: {err}", variables.at(*validation)));
    (false, message.as_str().expect("a string").trim().to_owned())
}

/// The Deploy example's chain: dev → staging → prod, prod with approval and rollback alarms.
fn chain_environments() -> Value {
    json!({
        "dev": {},
        "staging": { "promote_from": "dev", "soak": "15m", "gate_alarms": ["dev-api-5xx"] },
        "prod": {
            "promote_from": "staging", "soak": "1h", "approval": true, "gate_alarms": ["staging-api-5xx"],
            "rollback_alarms": ["prod-api-5xx"], "rollback_window": "30m",
        },
        "lab": {},
    })
}

/// Whether tagrelay accepts `environments` (name → the promotion fields) with one service
/// pushed into dev.
fn tagrelay_accepts(environments: &Value) -> Result<(), String> {
    let document = json!({ "environments": environments, "services": { "my-api": { "deploy_on_push": ["dev"] } } });
    tagrelay::config::Config::from_json(&document.to_string()).map(|_| ()).map_err(|err| err.to_string())
}

#[test]
fn the_promotion_fields_are_validated_as_tagrelay_validates_them() {
    let files = stack_files();
    let check = |environments: Value, message_start: &str| {
        let scope = stack_scope(&files).var("environments", hcl_value(var_environments(environments)));
        validation_result("environments", message_start, &scope)
    };

    // The chain of the Deploy example passes every new check, and tagrelay takes it.
    for start in ["promote_from must", "soak, gate_alarms", "soak must", "rollback_window must", "Alarm names"] {
        assert_eq!(check(chain_environments(), start), (true, String::new()), "{start}");
    }
    assert_eq!(tagrelay_accepts(&chain_environments()), Ok(()));

    // promote_from: another defined environment; the message names the field and the value.
    let (ok, message) = check(json!({ "dev": {}, "prod": { "promote_from": "stagin" } }), "promote_from must");
    assert!(!ok && message.ends_with("environments.prod.promote_from = stagin."), "{message}");
    let (ok, message) = check(json!({ "dev": { "promote_from": "dev" } }), "promote_from must");
    assert!(!ok && message.contains("environments.dev.promote_from = dev"), "{message}");
    assert!(tagrelay_accepts(&json!({ "dev": {}, "prod": { "promote_from": "stagin" } })).is_err());

    // Gates without a source gate nothing: refused, naming each; approval = false is no gate.
    let (ok, message) =
        check(json!({ "dev": { "soak": "5m", "approval": true }, "lab": { "gate_alarms": [] } }), "soak, gate_alarms");
    assert!(!ok, "{message}");
    assert!(
        message.ends_with(": environments.dev.soak, environments.dev.approval, environments.lab.gate_alarms."),
        "{message}"
    );
    assert_eq!(check(json!({ "dev": { "approval": false } }), "soak, gate_alarms"), (true, String::new()));
    for refused in [json!({ "dev": { "soak": "5m" } }), json!({ "dev": { "approval": true } })] {
        assert!(tagrelay_accepts(&refused).is_err(), "tagrelay refuses {refused} too");
    }
    assert_eq!(tagrelay_accepts(&json!({ "dev": { "approval": false } })), Ok(()));

    // Durations: the same accepted set as tagrelay's parser and ranges.
    for (soak, accepted) in [
        ("0s", true),
        ("15m", true),
        ("7d", true),
        ("168h", true),
        ("8d", false),
        ("604801s", false),
        ("1w", false),
        ("15", false),
        ("", false),
        ("1.5h", false),
        (" 5m", false),
        ("99999999999999999999d", false),
    ] {
        let environments = json!({ "dev": {}, "prod": { "promote_from": "dev", "soak": soak } });
        let (ok, message) = check(environments.clone(), "soak must");
        assert_eq!(ok, accepted, "soak = {soak:?}: {message}");
        if !ok {
            assert!(message.ends_with(&format!("environments.prod.soak = {soak}.")), "{message}");
        }
        assert_eq!(tagrelay_accepts(&environments).is_ok(), accepted, "tagrelay and infra on soak = {soak:?}");
    }
    for (window, accepted) in [
        ("1m", true),
        ("60s", true),
        ("30m", true),
        ("7d", true),
        ("59s", false),
        ("8d", false),
        ("0s", false),
        ("x", false),
    ] {
        let environments = json!({ "dev": { "rollback_alarms": ["a"], "rollback_window": window } });
        let (ok, message) = check(environments.clone(), "rollback_window must");
        assert_eq!(ok, accepted, "rollback_window = {window:?}: {message}");
        if !ok {
            assert!(message.ends_with(&format!("environments.dev.rollback_window = {window}.")), "{message}");
        }
        assert_eq!(
            tagrelay_accepts(&environments).is_ok(),
            accepted,
            "tagrelay and infra on rollback_window = {window:?}"
        );
    }

    // Alarm names: 1-255 characters, no control character (C0 or C1), once per list.
    let long = "a".repeat(255);
    let too_long = "a".repeat(256);
    for (alarms, accepted, named) in [
        (json!([long]), true, ""),
        (json!(["api-5xx", "Latency p99 > 2s"]), true, ""),
        (json!([""]), false, "[0]"),
        (json!(["ok", too_long]), false, "[1]"),
        (json!(["a\u{7}b"]), false, "[0]"),
        (json!(["a\u{85}b"]), false, "[0]"),
        (json!(["x", "y", "x"]), false, "[2]"),
    ] {
        let environments = json!({ "dev": {}, "prod": { "promote_from": "dev", "gate_alarms": alarms } });
        let (ok, message) = check(environments.clone(), "Alarm names");
        assert_eq!(ok, accepted, "gate_alarms = {alarms}: {message}");
        if !ok {
            assert!(message.ends_with(&format!(": environments.prod.gate_alarms{named}.")), "{message}");
        }
        assert_eq!(tagrelay_accepts(&environments).is_ok(), accepted, "tagrelay and infra on gate_alarms = {alarms}");
    }
    // The same alarm may gate one environment and roll back another (or the same one).
    let environments = json!({ "dev": { "rollback_alarms": ["x"] }, "prod": { "promote_from": "dev", "gate_alarms": ["x"], "rollback_alarms": ["x"] } });
    assert_eq!(check(environments.clone(), "Alarm names"), (true, String::new()));
    assert_eq!(tagrelay_accepts(&environments), Ok(()));
    let (ok, message) = check(json!({ "dev": { "rollback_alarms": ["x", "x"] } }), "Alarm names");
    assert!(!ok && message.ends_with(": environments.dev.rollback_alarms[1]."), "{message}");
}

#[test]
fn an_environment_promoted_from_another_takes_no_pushes() {
    let files = stack_files();
    let check = |deploy_on_push: Value| {
        let scope = stack_scope(&files)
            .var("environments", hcl_value(var_environments(chain_environments())))
            .var("services", hcl_value(json!({ "my-api": service(json!({ "deploy_on_push": deploy_on_push })) })));
        validation_result("services", "An environment with promote_from", &scope)
    };
    assert_eq!(check(json!(["dev", "lab"])), (true, String::new()));
    let (ok, message) = check(json!(["dev", "prod"]));
    assert!(!ok, "{message}");
    assert!(message.ends_with(": services.my-api.deploy_on_push[1] (prod is promoted from staging)."), "{message}");
    // tagrelay names the same field.
    let document = json!({ "environments": chain_environments(), "services": { "my-api": { "deploy_on_push": ["dev", "prod"] } } });
    let err = tagrelay::config::Config::from_json(&document.to_string()).expect_err("refused").to_string();
    assert!(err.contains("services.my-api.deploy_on_push[1]"), "{err}");
}

#[test]
fn a_promotion_loop_is_refused_before_apply() {
    let files = stack_files();
    let lambda = named(&files, "infra/lambda.tf");
    let function = resource_in(lambda, "aws_lambda_function", "this");
    let check = lifecycle_check(lambda, function, "promotion_up_64");
    let refused = |environments: Value| -> Option<String> {
        let scope = stack_scope(&files).var("environments", hcl_value(var_environments(environments)));
        let scope = with_locals(scope, &files);
        let condition = scope.eval(attribute_of(lambda, check, "condition")).and_then(|v| boolean(&v));
        match condition.unwrap_or_else(|err| panic!("{}: {err}", lambda.at(check))) {
            true => None,
            false => Some(scope.eval(attribute_of(lambda, check, "error_message")).expect("a message").to_string()),
        }
    };
    assert_eq!(refused(chain_environments()), None);
    // A loop, and an environment promoted from one in the loop (it never reaches a source).
    let message = refused(json!({
        "a": { "promote_from": "b" }, "b": { "promote_from": "a" }, "c": { "promote_from": "a" }, "d": {},
    }))
    .expect("a loop is refused");
    assert!(
        message.contains(
            "environments.a.promote_from, environments.b.promote_from, environments.c.promote_from never reach"
        ),
        "{message}"
    );
    // A chain of 40 environments ends; the same chain closed into a ring does not.
    let chain = |closed: bool| {
        let environments: serde_json::Map<String, Value> = (0..40)
            .map(|i| {
                let from = if i > 0 {
                    json!(format!("e{:02}", i - 1))
                } else if closed {
                    json!("e39")
                } else {
                    Value::Null
                };
                (format!("e{i:02}"), json!({ "promote_from": from }))
            })
            .collect();
        Value::Object(environments)
    };
    assert_eq!(refused(chain(false)), None, "a long chain without a loop");
    assert!(refused(chain(true)).is_some(), "a ring of 40");
    // tagrelay refuses the loop too, naming the field.
    let err = tagrelay_accepts(&json!({ "dev": {}, "a": { "promote_from": "b" }, "b": { "promote_from": "a" } }))
        .expect_err("a loop");
    assert!(err.contains("promote_from"), "{err}");
}

/// The `precondition` of a resource whose condition mentions `mentions`.
fn lifecycle_check<'a>(file: &TfFile, block: &'a Block, mentions: &str) -> &'a Block {
    block
        .body
        .get_blocks("lifecycle")
        .flat_map(|lifecycle| lifecycle.body.get_blocks("precondition"))
        .find(|check| file.source_of(attribute_of(file, check, "condition")).contains(mentions))
        .unwrap_or_else(|| panic!("{}: no precondition on {mentions}", file.at(block)))
}

#[test]
fn the_config_document_renders_the_promotion_fields_only_when_set_and_the_code_reads_them() {
    let environments = json!({
        "dev": { "codebuild_project": "tagrelay-dev" },
        "staging": { "codebuild_project": "tagrelay-staging", "promote_from": "dev", "soak": "15m", "gate_alarms": ["dev-api-5xx"] },
        "prod": {
            "codebuild_project": "tagrelay-prod", "promote_from": "staging", "soak": "1h", "approval": true,
            "gate_alarms": ["staging-api-5xx"], "rollback_alarms": ["prod-api-5xx"], "rollback_window": "45m",
        },
    });
    let document = rendered_config(environments, json!({ "my-api": service(json!({ "deploy_on_push": ["dev"] })) }));
    assert_eq!(
        document["environments"],
        json!({
            "dev": { "codebuild_project": "tagrelay-dev" },
            "staging": { "codebuild_project": "tagrelay-staging", "promote_from": "dev", "soak": "15m", "gate_alarms": ["dev-api-5xx"] },
            "prod": {
                "codebuild_project": "tagrelay-prod", "promote_from": "staging", "soak": "1h", "approval": true,
                "gate_alarms": ["staging-api-5xx"], "rollback_alarms": ["prod-api-5xx"], "rollback_window": "45m",
            },
        }),
        "unset fields are absent (the code's defaults apply), set ones rendered as given"
    );
    let config = tagrelay::config::Config::from_json(&document.to_string()).unwrap_or_else(|err| panic!("{err}"));
    let prod = config.environment("prod").expect("prod");
    assert_eq!(prod.promote_from.as_deref(), Some("staging"));
    assert_eq!(prod.soak, std::time::Duration::from_secs(3600));
    assert_eq!((prod.gate_alarms.as_slice(), prod.approval), (&["staging-api-5xx".to_owned()][..], true));
    assert_eq!(prod.rollback_alarms, ["prod-api-5xx"]);
    assert_eq!(prod.rollback_window, std::time::Duration::from_secs(45 * 60));
    let dev = config.environment("dev").expect("dev");
    assert_eq!((dev.promote_from.as_deref(), dev.soak, dev.approval), (None, std::time::Duration::ZERO, false));
    assert_eq!(dev.rollback_window, tagrelay::config::DEFAULT_ROLLBACK_WINDOW);
    let chain: Vec<&str> = config.chain().iter().map(|e| e.name.as_str()).collect();
    assert_eq!(chain, ["dev", "staging", "prod"]);
}

/// The stack's locals for the Deploy example's chain (and `lab`, outside it).
fn chain_scope() -> Scope {
    let environments = json!({
        "dev": { "codebuild_project": "tagrelay-dev" },
        "staging": { "codebuild_project": "tagrelay-staging", "promote_from": "dev", "gate_alarms": ["dev-api-5xx"] },
        "prod": {
            "codebuild_project": "tagrelay-prod", "promote_from": "staging", "approval": true,
            "gate_alarms": ["staging-api-5xx"], "rollback_alarms": ["prod-api-5xx"],
        },
        "lab": { "codebuild_project": "tagrelay-lab", "rollback_alarms": [] },
    });
    let services = json!({
        "my-api": service(json!({ "deploy_on_push": ["dev"] })),
        "worker": service(json!({ "repository": "team/worker", "deploy_on_push": ["dev"] })),
    });
    ecs_scope(environments, services)
}

/// The tagrelay configuration `chain_scope` renders.
fn chain_config(scope: &Scope) -> tagrelay::config::Config {
    let document =
        serde_json::to_value(eval_source(scope, "local.tagrelay_config").expect("the config")).expect("JSON");
    tagrelay::config::Config::from_json(&document.to_string()).unwrap_or_else(|err| panic!("{err}"))
}

fn strings(value: Result<HclValue, String>) -> Vec<String> {
    serde_json::from_value(serde_json::to_value(value.expect("evaluates")).expect("JSON")).expect("a list of strings")
}

#[test]
fn the_promote_rules_take_every_event_promote_acts_on_and_none_of_the_records_parts() {
    use tagrelay::event::promote::{parse_promote_event, PromoteEvent};
    use tagrelay::promote::trigger;

    let (_, rules) = event_rules();
    let rule = |key: &str| rules.rules.iter().find(|r| r.key == key).unwrap_or_else(|| panic!("no rule {key}"));
    let scope = chain_scope();
    let config = chain_config(&scope);
    let rendered = rendered_rules(&scope);

    // Parameter Store: by wildcard, the release records and the approval records of every
    // environment (two values whatever their number).
    let parameter = rule("promote-parameter-change");
    assert_eq!((parameter.function.as_str(), parameter.narrowed_field.as_str()), ("promote", "name"));
    assert_eq!(
        serde_json::to_value(eval_source(&scope, &parameter.narrowed_to).expect("evaluates")).expect("JSON"),
        json!([{ "wildcard": "/tagrelay/*/verified" }, { "wildcard": "/tagrelay/*/approval" }])
    );
    let change = |name: &str| {
        json!({
            "version": "0", "id": "1", "detail-type": "Parameter Store Change", "source": "aws.ssm",
            "account": "123456789012", "time": "2026-11-30T12:00:00Z", "region": "eu-west-1",
            "resources": [format!("arn:aws:ssm:eu-west-1:123456789012:parameter{name}")],
            "detail": { "name": name, "type": "String", "operation": "Update" },
        })
    };
    let takes = |name: &str| rules_taking(&rendered, &change(name)).contains(&"promote-parameter-change".to_owned());
    // ... every record promote acts on (wider: the records of environments nothing depends on,
    // which promote ignores), never a rollback record, a part or a manifest.
    for env in config.environments() {
        for name in [env.release_parameter(), env.approval_parameter(), env.rollback_parameter()] {
            let event = PromoteEvent::ParameterChange(tagrelay::event::ssm::ParameterChange {
                operation: tagrelay::event::ssm::Operation::Update,
                name: name.clone(),
                description: None,
            });
            if trigger::environments(&config, &event).is_ok() {
                assert!(takes(&name), "{name}: promote acts on it, the rule must take it");
            }
            assert_eq!(takes(&name), !name.ends_with("/rollback"), "{name}");
            for part in [format!("{name}-part/0"), format!("{name}-part/99")] {
                assert!(!takes(&part), "{part}: a record's part is read with the record, never heard");
            }
        }
        for name in ["manifest", "manifest-part/0"] {
            assert!(!takes(&format!("/tagrelay/{}/{name}", env.name)), "{name}");
        }
    }

    // CloudWatch: every gate and rollback alarm, once; the code's list.
    let alarm = rule("alarm-state-change");
    assert_eq!((alarm.function.as_str(), alarm.narrowed_field.as_str()), ("promote", "alarmName"));
    assert!(alarm.replaces_detail, "the alarm pattern has no detail to merge into");
    let alarms = strings(eval_source(&scope, &alarm.narrowed_to));
    assert_eq!(alarms, ["dev-api-5xx", "prod-api-5xx", "staging-api-5xx"]);
    assert_eq!(alarms, config.alarm_names());

    // The narrowed alarm rule takes a configured alarm's state change (the CloudWatch User
    // Guide's sample, "CloudWatch Alarm State Change" of a metric alarm) and no other alarm's.
    let event = |name: &str| {
        json!({
            "version": "0", "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
            "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
            "account": "123456789012", "time": "2019-10-02T17:04:40Z", "region": "eu-west-1",
            "resources": [format!("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{name}")],
            "detail": {
                "alarmName": name,
                "state": { "value": "ALARM", "reason": "Threshold Crossed", "timestamp": "2019-10-02T17:04:40.985+0000" },
                "previousState": { "value": "OK", "reason": "Threshold Crossed", "timestamp": "2019-10-02T17:03:40.985+0000" },
                "configuration": { "description": "5xx of the API" },
            },
        })
    };
    assert_eq!(rules_taking(&rendered, &event("prod-api-5xx")), ["alarm-state-change"]);
    assert!(rules_taking(&rendered, &event("someone-elses-alarm")).is_empty());
    let parsed = parse_promote_event(&event("prod-api-5xx")).unwrap_or_else(|err| panic!("{err}"));
    let concerned: Vec<String> =
        trigger::environments(&config, &parsed).expect("prod's alarm").iter().map(|e| e.name.clone()).collect();
    assert_eq!(concerned, ["prod"]);

    // Nothing promoted, rolled back or approved, no alarm: neither rule is created. Promoted
    // without approval: only the release records.
    let plain = ecs_scope(
        json!({ "dev": { "codebuild_project": "tagrelay-dev" }, "lab": { "codebuild_project": "tagrelay-lab" } }),
        json!({ "my-api": service(json!({ "deploy_on_push": ["dev"] })) }),
    );
    for key in ["promote-parameter-change", "alarm-state-change"] {
        let create = rule(key).create.as_deref().expect("conditional");
        assert_eq!(eval_source(&plain, create), Ok(HclValue::Bool(false)), "{key} without promotion");
        assert_eq!(eval_source(&scope, create), Ok(HclValue::Bool(true)), "{key} with the chain");
        assert_eq!(rendered_rules(&plain)[key], None, "{key}");
    }
    let promoted = ecs_scope(
        json!({ "dev": { "codebuild_project": "tagrelay-dev" }, "prod": { "codebuild_project": "tagrelay-prod", "promote_from": "dev" } }),
        json!({ "my-api": service(json!({ "deploy_on_push": ["dev"] })) }),
    );
    assert_eq!(
        serde_json::to_value(eval_source(&promoted, &parameter.narrowed_to).expect("evaluates")).expect("JSON"),
        json!([{ "wildcard": "/tagrelay/*/verified" }])
    );
}

#[test]
fn promote_may_write_only_the_environments_it_feeds_or_rolls_back() {
    let on = |scope: &Scope| {
        let rendered = rendered_statements("promote", scope);
        let mut grants: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (actions, resources) in rendered {
            for action in actions {
                grants.entry(action).or_default().extend(resources.iter().cloned());
            }
        }
        grants
    };
    let arn = |name: &str| format!("arn:aws:ssm:eu-west-1:123456789012:parameter{name}");
    let set = |names: &[&str]| -> BTreeSet<String> { names.iter().map(|n| arn(n)).collect() };

    let grants = on(&chain_scope());
    // Nothing beyond the contract: SSM reads and writes, ECR describe, the two alarm reads.
    let actions: Vec<&str> = grants.keys().map(String::as_str).collect();
    assert_eq!(
        actions,
        [
            "cloudwatch:DescribeAlarmHistory",
            "cloudwatch:DescribeAlarms",
            "ecr:DescribeImages",
            "ssm:AddTagsToResource",
            "ssm:GetParameterHistory",
            "ssm:GetParameters",
            "ssm:PutParameter",
        ]
    );
    let image_tags = set(&[
        "/my-api/prod/docker-image-tag",
        "/my-api/staging/docker-image-tag",
        "/worker/prod/docker-image-tag",
        "/worker/staging/docker-image-tag",
    ]);
    let mut writes = image_tags.clone();
    writes.insert(arn("/tagrelay/prod/rollback"));
    writes.insert(arn("/tagrelay/prod/rollback-part/*"));
    assert_eq!(
        grants["ssm:PutParameter"], writes,
        "staging's and prod's image tags, prod's rollback record and its parts; never dev, lab or a release record"
    );
    assert_eq!(grants["ssm:AddTagsToResource"], image_tags);
    let mut reads = image_tags.clone();
    let mut parts = image_tags.clone();
    for env in ["dev", "lab", "prod", "staging"] {
        for record in ["verified", "approval", "rollback"] {
            reads.insert(arn(&format!("/tagrelay/{env}/{record}")));
            parts.insert(arn(&format!("/tagrelay/{env}/{record}-part/*")));
        }
    }
    // The records are read as histories (and their parts, which a record names at their
    // versions); current values only of the image tags it decides. Never a manifest.
    assert_eq!(grants["ssm:GetParameters"], parts);
    assert_eq!(grants["ssm:GetParameterHistory"], reads);
    assert!(grants.values().flatten().all(|arn| !arn.contains("/manifest")), "{grants:?}");
    assert_eq!(
        grants["ecr:DescribeImages"],
        BTreeSet::from([
            "arn:aws:ecr:eu-west-1:123456789012:repository/my-api".to_owned(),
            "arn:aws:ecr:eu-west-1:123456789012:repository/team/worker".to_owned(),
        ])
    );
    // Composite alarms are answered only to a grant on "*" (CloudWatch API Reference).
    for action in ["cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarmHistory"] {
        assert_eq!(grants[action], BTreeSet::from(["*".to_owned()]), "{action}");
    }

    // Nothing promoted or rolled back: promote writes nothing and reads no alarm.
    let plain = ecs_scope(
        json!({ "dev": { "codebuild_project": "tagrelay-dev" } }),
        json!({ "my-api": service(json!({ "deploy_on_push": ["dev"] })) }),
    );
    let grants = on(&plain);
    let actions: Vec<&str> = grants.keys().map(String::as_str).collect();
    assert_eq!(actions, ["ecr:DescribeImages", "ssm:GetParameterHistory", "ssm:GetParameters"]);
    assert!(grants["ssm:GetParameters"].iter().all(|arn| arn.contains("-part/")), "the records' parts only");

    // Its common grants are its own log group, queue and the key; and the role runs promote.
    let files = stack_files();
    let iam = named(&files, "infra/iam.tf");
    let document = resource(iam, "aws_iam_policy_document", "promote");
    assert!(document.is_none(), "a data source, not a resource");
    let text = iam.source_of(&local(iam, "function_policies").expect("local.function_policies").value);
    assert!(text.contains("\"promote\"          = data.aws_iam_policy_document.promote.json"), "{text}");
    let (found, _) = declarations(iam);
    let promote =
        found.iter().find(|d| d.type_name == "aws_iam_policy_document" && d.name == "promote").expect("promote");
    assert_eq!(
        promote.block.body.get_attribute("source_policy_documents").map(|a| iam.source_of(&a.value)),
        Some("[data.aws_iam_policy_document.function_common[\"promote\"].json]")
    );
}

/// Every decision name promote logs (`fields.decision`), from the code.
fn promote_decisions() -> Vec<&'static str> {
    use tagrelay::promote::decision::Promotion;
    use tagrelay::promote::records::RollbackRecord;
    use tagrelay::promote::rollback::RollbackDecision;
    let record = RollbackRecord {
        from: BTreeMap::new(),
        to: BTreeMap::new(),
        alarm: None,
        at: String::new(),
        by: String::new(),
        reason: String::new(),
    };
    let promotions = [
        Promotion::UpToDate { release: None },
        Promotion::RolledBack { release: 1, service: String::new(), tag: String::new() },
        Promotion::BlockedUpstream { release: 1 },
        Promotion::Blocked { release: 1, alarm: String::new(), missing: false },
        Promotion::Soaking { release: 1, until: String::new() },
        Promotion::AwaitingApproval { release: 1, fingerprint: String::new() },
        Promotion::Promote {
            release: 1,
            fingerprint: String::new(),
            verified_at: String::new(),
            tags: BTreeMap::new(),
        },
    ];
    let rollbacks = [
        RollbackDecision::Healthy { missing: vec![] },
        RollbackDecision::OutsideWindow { alarm: String::new(), entered_at: String::new() },
        RollbackDecision::Done { alarm: String::new(), rollback: 1 },
        RollbackDecision::Resume { rollback: 1, record: record.clone() },
        RollbackDecision::NoPreviousRelease { alarm: String::new(), entered_at: String::new() },
        RollbackDecision::Rollback { release: 1, record },
    ];
    // And the writes a look leaves to the next one when its time-out is near (promote/handler.rs).
    let deferred = tagrelay::record::SkipReason::Deferred.as_str();
    promotions
        .iter()
        .map(Promotion::as_str)
        .chain(rollbacks.iter().map(RollbackDecision::as_str))
        .chain([deferred])
        .collect()
}

#[test]
fn promotion_alarms_count_the_decisions_promote_logs_and_page() {
    use tagrelay::promote::decision::Promotion;
    use tagrelay::promote::rollback::RollbackDecision;
    let files = stack_files();
    let monitoring = named(&files, "infra/monitoring.tf");
    let scope = with_locals(stack_scope(&files), &files);

    // One filter per decision, on promote's log group, counting per environment.
    let filter = resource_in(monitoring, "aws_cloudwatch_log_metric_filter", "promotion");
    assert_eq!(monitoring.source_of(attribute_of(monitoring, filter, "for_each")), "local.promotion_metric_filters");
    assert_eq!(
        monitoring.source_of(attribute_of(monitoring, filter, "log_group_name")),
        "aws_cloudwatch_log_group.function[\"promote\"].name"
    );
    let filters = eval_source(&scope, "local.promotion_metric_filters").expect("the filters");
    let filters: BTreeMap<String, BTreeMap<String, String>> =
        serde_json::from_value(serde_json::to_value(filters).expect("JSON")).expect("name → decision, metric");
    let pattern_of = |key: &str| {
        let each = hcl_value(json!({ "key": key, "value": filters[key] }));
        let pattern =
            scope.clone().bind("each", each).eval(attribute_of(monitoring, filter, "pattern")).expect("pattern");
        pattern.as_str().expect("a string").to_owned()
    };
    let awaiting = Promotion::AwaitingApproval { release: 1, fingerprint: String::new() };
    let no_previous = RollbackDecision::NoPreviousRelease { alarm: String::new(), entered_at: String::new() };
    for (key, decision) in [
        ("awaiting-approval", awaiting.as_str()),
        ("no-previous-release", no_previous.as_str()),
        ("rollback", "rollback"),
    ] {
        assert_eq!(pattern_of(key), format!("{{ $.fields.decision = \"{decision}\" }}"), "{key}");
        assert!(promote_decisions().contains(&decision), "{decision} is a decision promote logs");
    }
    let metric = filter.body.get_blocks("metric_transformation").next().expect("metric_transformation");
    assert_eq!(
        monitoring.source_of(attribute_of(monitoring, metric, "dimensions")),
        r#"{ Environment = "$.fields.environment" }"#
    );

    // Their alarms: one per environment that approves (awaiting-approval) or rolls back
    // (rolled-back, no-previous-release), each paging (no `notify = false`).
    let chain = chain_scope();
    assert_eq!(strings(eval_source(&chain, "local.approval_environments")), ["prod"]);
    assert_eq!(strings(eval_source(&chain, "local.rollback_environments")), ["prod"]);
    let alarms = monitoring.source_of(&local(monitoring, "alarms").expect("local.alarms").value);
    for (key, over, filter_key) in [
        ("awaiting-approval", "local.approval_environments", "awaiting-approval"),
        ("rolled-back", "local.rollback_environments", "rollback"),
        ("no-previous-release", "local.rollback_environments", "no-previous-release"),
    ] {
        let start = alarms
            .find(&format!("{{ for name in {over} : \"{key}:${{name}}\" => {{"))
            .unwrap_or_else(|| panic!("an alarm {key} per environment of {over}"));
        let entry = &alarms[start..start + alarms[start..].find("} },").expect("the entry's end")];
        assert!(!entry.contains("notify"), "{key} should page: {entry}");
        assert!(entry.contains(&format!("aws_cloudwatch_log_metric_filter.promotion[\"{filter_key}\"]")), "{entry}");
    }
}

#[test]
fn the_saved_promotions_query_lists_every_promote_decision() {
    let files = stack_files();
    let monitoring = named(&files, "infra/monitoring.tf");
    let query = resource_in(monitoring, "aws_cloudwatch_query_definition", "promotions");
    assert_eq!(
        monitoring.source_of(attribute_of(monitoring, query, "log_group_names")),
        "[aws_cloudwatch_log_group.function[\"promote\"].name]"
    );
    let text = monitoring.source_of(attribute_of(monitoring, query, "query_string"));
    let listed = Regex::new(r#"filter fields\.decision in \[([^\]]*)\]"#).expect("regex");
    let names: BTreeSet<&str> = listed
        .captures(text)
        .and_then(|c| c.get(1))
        .unwrap_or_else(|| panic!("the query filters on a list of decisions: {text}"))
        .as_str()
        .split(',')
        .map(|name| name.trim().trim_matches('"'))
        .collect();
    let decisions: BTreeSet<&str> = promote_decisions().into_iter().collect();
    assert_eq!(names, decisions, "infra/monitoring.tf vs shared/src/promote/{{decision,rollback}}.rs");
    assert!(text.contains("by fields.environment, fields.decision"), "per environment: {text}");
}

#[test]
fn the_dashboard_body_is_valid_and_shows_each_environment() {
    let files = stack_files();
    let scope = chain_scope();
    let body = serde_json::to_value(eval_source(&scope, "local.dashboard").expect("local.dashboard")).expect("JSON");
    // What jsonencode sends is JSON that reads back the same.
    let text = serde_json::to_string(&body).expect("JSON");
    assert_eq!(serde_json::from_str::<Value>(&text).expect("valid JSON"), body);
    let monitoring = named(&files, "infra/monitoring.tf");
    let dashboard = resource_in(monitoring, "aws_cloudwatch_dashboard", "this");
    assert_eq!(
        monitoring.source_of(attribute_of(monitoring, dashboard, "dashboard_body")),
        "jsonencode(local.dashboard)"
    );

    // Dashboard Body Structure and Syntax (CloudWatch API Reference): {"widgets": [...]}, 0 to
    // 100 widgets; type, x 0-23, y >= 0, width 1-24, height 1-1000, properties; a metric widget
    // needs metrics and region, a log widget query and region, a text widget markdown.
    let object = body.as_object().expect("an object");
    assert_eq!(object.keys().collect::<Vec<_>>(), ["widgets"]);
    let widgets = body["widgets"].as_array().expect("a list of widgets");
    assert!(!widgets.is_empty() && widgets.len() <= 100, "{} widgets", widgets.len());
    let mut cells = BTreeSet::new();
    for (index, widget) in widgets.iter().enumerate() {
        let at = format!("widget {index} ({})", widget["properties"]["title"]);
        let number = |key: &str| widget[key].as_u64().unwrap_or_else(|| panic!("{at}: {key} is not a whole number"));
        let (x, y, width, height) = (number("x"), number("y"), number("width"), number("height"));
        assert!(x <= 23 && (1..=24).contains(&width) && x + width <= 24 && (1..=1000).contains(&height), "{at}");
        for column in x..x + width {
            for row in y..y + height {
                assert!(cells.insert((column, row)), "{at} overlaps another widget at ({column}, {row})");
            }
        }
        let properties = widget["properties"].as_object().unwrap_or_else(|| panic!("{at}: no properties"));
        match widget["type"].as_str() {
            Some("text") => assert!(properties["markdown"].is_string(), "{at}"),
            Some("metric") => {
                assert_eq!(properties["region"], "eu-west-1", "{at}");
                let metrics = properties["metrics"].as_array().expect("metrics");
                assert!(!metrics.is_empty(), "{at}");
                for metric in metrics {
                    let parts = metric.as_array().expect("[namespace, metric, dimension, value, {options}]");
                    assert_eq!(parts.len(), 5, "{at}: {metric}");
                    assert!(parts[..4].iter().all(Value::is_string) && parts[4].is_object(), "{at}: {metric}");
                }
            }
            Some("log") => {
                assert_eq!(properties["region"], "eu-west-1", "{at}");
                assert!(properties["query"].as_str().is_some_and(|q| q.starts_with("SOURCE '")), "{at}");
            }
            other => panic!("{at}: type {other:?}"),
        }
    }

    let metrics_of = |title: &str| -> Vec<Value> {
        let widget =
            widgets.iter().find(|w| w["properties"]["title"] == title).unwrap_or_else(|| panic!("no widget {title}"));
        widget["properties"]["metrics"].as_array().expect("metrics").clone()
    };
    // The stack: errors of the three functions, depth of their queues.
    assert_eq!(
        metrics_of("Function errors (Lambda Errors, sum per 5 min)"),
        ["promote", "record-image-tag", "trigger-deploy"]
            .map(|fn_| json!(["AWS/Lambda", "Errors", "FunctionName", format!("tagrelay-{fn_}"), { "label": fn_ }]))
    );
    assert_eq!(
        metrics_of("Dead-letter queue depth (events to `tagrelay redrive`)"),
        ["promote", "record-image-tag", "trigger-deploy"].map(|fn_| {
            json!(["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", format!("tagrelay-{fn_}-dlq"), { "label": fn_ }])
        })
    );
    // Per environment: its decisions across the three log groups, its project's builds, its
    // failed rollouts and rollbacks (the metric filters' metrics).
    let hold = named(&files, "infra/monitoring.tf");
    let verification = resource_in(hold, "aws_cloudwatch_log_metric_filter", "verification_hold");
    let transformation = verification.body.get_blocks("metric_transformation").next().expect("metric_transformation");
    let verification_metric = attribute_of(hold, transformation, "name").as_str().expect("a literal").to_owned();
    for env in ["dev", "lab", "prod", "staging"] {
        let log = widgets
            .iter()
            .find(|w| w["properties"]["title"] == format!("{env}: last decisions"))
            .unwrap_or_else(|| panic!("no decisions of {env}"));
        let query = log["properties"]["query"].as_str().expect("a query");
        assert!(
            query.starts_with(
                "SOURCE '/aws/lambda/tagrelay-promote' | SOURCE '/aws/lambda/tagrelay-record-image-tag' | SOURCE '/aws/lambda/tagrelay-trigger-deploy' | "
            ),
            "{query}"
        );
        assert!(
            query.contains(&format!("filter fields.environment = \"{env}\" and ispresent(fields.decision)")),
            "{query}"
        );
        let project = format!("tagrelay-{env}");
        assert_eq!(
            metrics_of(&format!("{env}: Terraform runs")),
            [
                json!(["AWS/CodeBuild", "Builds", "ProjectName", project, { "label": "started" }]),
                json!(["AWS/CodeBuild", "FailedBuilds", "ProjectName", project, { "label": "failed" }]),
            ]
        );
        let names: Vec<String> = metrics_of(&format!("{env}: rollouts failed, rollbacks"))
            .iter()
            .map(|m| {
                assert_eq!(
                    (m[0].as_str(), m[2].as_str(), m[3].as_str()),
                    (Some("tagrelay"), Some("Environment"), Some(env))
                );
                m[1].as_str().expect("a metric").to_owned()
            })
            .collect();
        assert_eq!(
            names,
            [
                verification_metric.as_str(),
                "RollbackDecisions",
                "NoPreviousReleaseDecisions",
                "AwaitingApprovalDecisions"
            ]
        );
    }
    assert_eq!(widgets.len(), 3 + 3 * 4);

    // The 100-widget limit is a precondition: 3 + 3 per environment.
    let check = lifecycle_check(monitoring, dashboard, "widgets");
    assert_eq!(scope.eval(attribute_of(monitoring, check, "condition")), Ok(HclValue::Bool(true)));
}

// ---------------------------------------------------------------------------------------------
// At size: 1,000 services x 10 environments, rendered and measured against AWS's limits
// ---------------------------------------------------------------------------------------------

/// Ten environments in chains (dev → qa → int → uat → staging → preprod → prod → prod-eu, prod-us;
/// perf from int), each with its ECS cluster; the promoted ones gated by their upstream's alarm,
/// prod approved by hand, the prod ones rolled back by their own alarm.
fn scale_environments() -> Value {
    let upstream = [
        ("dev", None),
        ("qa", Some("dev")),
        ("int", Some("qa")),
        ("perf", Some("int")),
        ("uat", Some("int")),
        ("staging", Some("uat")),
        ("preprod", Some("staging")),
        ("prod", Some("preprod")),
        ("prod-eu", Some("prod")),
        ("prod-us", Some("prod")),
    ];
    let environments: serde_json::Map<String, Value> = upstream
        .iter()
        .map(|(name, from)| {
            let mut env =
                json!({ "codebuild_project": format!("tagrelay-{name}"), "ecs_cluster": format!("{name}-services") });
            if let Some(from) = from {
                env["promote_from"] = json!(from);
                env["soak"] = json!("30m");
                env["gate_alarms"] = json!([format!("{from}-api-5xx-rate"), format!("{from}-p99-latency")]);
            }
            if name.starts_with("prod") {
                env["rollback_alarms"] = json!([format!("{name}-api-5xx-rate")]);
                env["rollback_window"] = json!("1h");
            }
            if *name == "prod" {
                env["approval"] = json!(true);
            }
            ((*name).to_owned(), env)
        })
        .collect();
    Value::Object(environments)
}

/// 1,000 services of ten teams (`payments-api-0001`, `ledger-worker-0002`, …), each in its team's
/// ECR namespace (`payments/payments-api-0001`), pushed into dev; a tenth by another tag policy.
fn scale_services() -> Value {
    const TEAMS: [(&str, &str); 10] = [
        ("payments", "api"),
        ("ledger", "worker"),
        ("identity", "api"),
        ("search", "indexer"),
        ("catalog", "api"),
        ("checkout", "web"),
        ("fraud", "scorer"),
        ("notify", "sender"),
        ("reports", "batch"),
        ("shipping", "api"),
    ];
    let services: serde_json::Map<String, Value> = (1..=1000)
        .map(|i| {
            let (team, kind) = TEAMS[i % TEAMS.len()];
            let name = format!("{team}-{kind}-{i:04}");
            let mut fields = json!({ "repository": format!("{team}/{name}"), "deploy_on_push": ["dev"] });
            if i % 10 == 0 {
                fields["tag_pattern"] = json!("^v[0-9]+\\.[0-9]+\\.[0-9]+$");
                fields["order"] = json!("semver");
            }
            (name, service(fields))
        })
        .collect();
    Value::Object(services)
}

/// The policy document `document` as IAM receives it, compact (IAM counts a policy's characters
/// without whitespace): every statement this configuration renders, with its Sid.
fn policy_document(document: &str, scope: &Scope) -> Value {
    let files = stack_files();
    let iam = named(&files, "infra/iam.tf");
    let mut statements = Vec::new();
    for statement in policy::statements(iam, document) {
        let sid = statement.body.get_attribute("sid").and_then(|a| a.value.as_str().map(str::to_owned));
        let resources = &statement.body.get_attribute("resources").expect("resources").value;
        let instances = match statement.for_each {
            None => vec![None],
            Some(for_each) => match scope.eval(for_each) {
                Ok(HclValue::Array(items)) => items.into_iter().map(Some).collect(),
                other => panic!("{}: for_each should evaluate to a list, got {other:?}", statement.at),
            },
        };
        for instance in instances {
            let scope = match instance {
                Some(value) => scope.clone().bind("statement", hcl_value(json!({ "value": value }))),
                None => scope.clone(),
            };
            let value = scope.eval(resources).unwrap_or_else(|err| panic!("{}: {err}", statement.at));
            statements.push(json!({
                "Sid": sid, "Effect": "Allow", "Action": statement.actions,
                "Resource": serde_json::to_value(&value).expect("JSON"),
            }));
        }
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// A function's inline policy: its own statements and `function_common`'s, in one document.
fn function_policy(function: &str, document: &str, scope: &Scope) -> Value {
    let prefix = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/tagrelay-";
    let scope = scope
        .clone()
        .bind("each", hcl_value(json!({ "key": function, "value": function })))
        .bind("aws_cloudwatch_log_group", hcl_value(json!({ "function": { function: { "arn": format!("{prefix}{function}") } } })))
        .bind(
            "aws_sqs_queue",
            hcl_value(json!({ "dlq": { function: { "arn": format!("arn:aws:sqs:eu-west-1:123456789012:tagrelay-{function}-dlq") } } })),
        )
        .bind(
            "aws_kms_key",
            hcl_value(json!({ "this": { "arn": "arn:aws:kms:eu-west-1:123456789012:key/6f0c1a52-3b7e-4a4e-9d55-0d9c8a1f2b3c" } })),
        );
    let mut policy = policy_document("function_common", &scope);
    let own = policy_document(document, &scope);
    policy["Statement"]
        .as_array_mut()
        .expect("statements")
        .extend(own["Statement"].as_array().expect("statements").clone());
    policy
}

/// The stack at 1,000 services x 10 environments, rendered with the offline evaluator; what AWS
/// limits, measured against the limit. Before: the same configuration with the narrowing and
/// grants of before this change (every name listed), for comparison. `cargo test -p
/// tagrelay-tests --test infra_terraform at_size -- --nocapture` prints the figures.
#[test]
fn at_1000_services_and_10_environments_everything_stays_within_aws_limits() {
    let started = std::time::Instant::now();
    let scope = configured(scale_environments(), scale_services(), &[]);
    let rendered_in = started.elapsed();
    let mut report = vec![format!("1,000 services x 10 environments, rendered in {:.1?}", rendered_in)];
    let mut failures = Vec::new();
    let mut check = |what: String, size: usize, limit: usize| {
        report.push(format!("{what}: {size} (limit {limit})"));
        if size > limit {
            failures.push(format!("{what}: {size} > {limit}"));
        }
    };

    // The configuration is valid for tagrelay, as Terraform renders it.
    let document = string_of(&scope, "local.config_json");
    let config = tagrelay::config::Config::from_json(&document).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!((config.services().count(), config.environments().count()), (1000, 10));
    assert_eq!(config.parameter_names("prod").len(), 1000);

    // Rule patterns: 2,048 characters each (EventBridge quotas), as Terraform's jsonencode writes
    // them; at most two wildcard values (EventBridge caps a rule's wildcard complexity).
    let rules = rendered_rules(&scope);
    for (key, pattern) in &rules {
        let pattern = pattern.as_ref().unwrap_or_else(|| panic!("rule {key} is created at this size"));
        let length = number_of(&scope, &format!("length(jsonencode(local.rules[\"{key}\"].pattern))")) as usize;
        check(format!("pattern {key}, characters"), length, 2048);
        let wildcards = pattern.to_string().matches("\"wildcard\"").count();
        check(format!("pattern {key}, wildcard values"), wildcards, 2);
        EventPattern::parse(pattern).unwrap_or_else(|err| panic!("{key}: {err}"));
    }
    // ... and they route as they should at this size.
    let change = |name: &str| json!({ "source": "aws.ssm", "detail-type": "Parameter Store Change", "detail": { "name": name, "operation": "Update" } });
    assert_eq!(rules_taking(&rules, &change("/payments-api-0001/prod-eu/docker-image-tag")), ["parameter-change"]);
    assert_eq!(rules_taking(&rules, &change("/tagrelay/preprod/verified")), ["promote-parameter-change"]);
    for name in [
        "/tagrelay/prod/verified-part/7",
        "/tagrelay/prod/manifest",
        "/tagrelay/prod/manifest-part/3",
        "/tagrelay/_config-part/12",
    ] {
        assert!(rules_taking(&rules, &change(name)).is_empty(), "{name}");
    }

    // The variables trigger-deploy starts a build with (CodeBuild: 4,096 characters a value),
    // for the largest state of an environment: every parameter at a 128-character tag (ECR's
    // longest) and a seven-digit version. Before, the fingerprint was that state itself.
    let worst: std::collections::BTreeMap<String, tagrelay::ports::StoredParameter> = config
        .parameter_names("prod")
        .into_iter()
        .map(|name| (name, tagrelay::ports::StoredParameter::string("t".repeat(128), 9_999_999, None)))
        .collect();
    let fingerprint = tagrelay::deploy::fingerprint::fingerprint(&worst);
    let before = tagrelay::deploy::fingerprint::state(&worst).len();
    check(format!("build variable TAGRELAY_FINGERPRINT, characters (before: {before})"), fingerprint.len(), 4096);
    let longest_name = config.environments().map(|e| e.name.len()).max().unwrap_or(0);
    check("build variable TAGRELAY_ENVIRONMENT, characters".to_owned(), longest_name, 4096);

    // Every function's variables together: 4 KB, as Lambda measures them (the JSON object).
    let tagrelay_config = string_of(&scope, "local.function_tagrelay_config");
    let measured = lambda_measures(&json!({ "TAGRELAY_CONFIG": tagrelay_config }));
    check("function environment (each of 3), bytes".to_owned(), measured[0].max(measured[1]), 4096);
    assert!(flag_of(&scope, "local.config_in_ssm"), "the document goes to SSM at this size");

    // The configuration's parts: 8 KB each (SSM Advanced), at most 100; the head in 4 KB.
    let parts = strings(eval_source(&scope, "local.config_parts"));
    check("config parts".to_owned(), parts.len(), 100);
    check("config part, largest, bytes".to_owned(), parts.iter().map(String::len).max().unwrap_or(0), 8192);
    assert_eq!(parts.concat(), document);
    let head = json!({ "tagrelay_parts": {
        "sha256": "0".repeat(64),
        "parts": (0..parts.len()).map(|i| format!("/tagrelay/_config-part/{i}:100")).collect::<Vec<_>>(),
    } });
    check("config head, bytes".to_owned(), head.to_string().len(), 4096);

    // SSM names: 1,011 characters with the ARN before them, 15 levels.
    let mut names: Vec<String> = strings(eval_source(&scope, "local.parameter_names"));
    for env in config.environments() {
        for record in ["verified", "approval", "rollback", "manifest"] {
            names.push(format!("/tagrelay/{}/{record}", env.name));
            names.push(format!("/tagrelay/{}/{record}-part/99", env.name));
        }
    }
    names.push(format!("/tagrelay/_config-part/{}", parts.len() - 1));
    let arn_prefix = "arn:aws:ssm:eu-west-1:123456789012:parameter";
    let checked = names.len();
    check(
        "SSM name with its ARN, longest, characters".to_owned(),
        names.iter().map(|n| arn_prefix.len() + n.len()).max().unwrap_or(0),
        1011,
    );
    check("SSM name, deepest, levels".to_owned(), names.iter().map(|n| n.matches('/').count()).max().unwrap_or(0), 15);

    check("SSM names checked (no limit: a count)".to_owned(), checked, checked);

    // IAM: a role's inline policies together, 10,240 characters without whitespace.
    for (function, document) in
        [("record-image-tag", "record_image_tag"), ("trigger-deploy", "trigger_deploy"), ("promote", "promote")]
    {
        let policy = function_policy(function, document, &scope);
        check(format!("IAM policy of {function}, characters"), policy.to_string().len(), 10240);
    }
    let largest_build = config
        .environments()
        .map(|env| build_role_grants(&scope, &env.name).values().flatten().map(String::len).sum::<usize>())
        .max()
        .unwrap_or(0);
    check("IAM base policy of a build role, resources' characters, largest".to_owned(), largest_build, 10240);

    // The dashboard: 100 widgets.
    let dashboard = serde_json::to_value(eval_source(&scope, "local.dashboard").expect("the dashboard")).expect("JSON");
    check("dashboard widgets".to_owned(), dashboard["widgets"].as_array().map_or(0, Vec::len), 100);

    // Before: every name listed, the document inline, every ARN granted.
    let before = |expression: &str| number_of(&scope, expression) as usize;
    report.push("before (every name listed, the document inline):".to_owned());
    for (what, expression) in [
        ("pattern parameter-change", "length(jsonencode(merge(local.base_patterns.parameter, { detail = merge(local.base_patterns.parameter.detail, { name = local.parameter_names }) })))"),
        ("pattern promote-parameter-change", "length(jsonencode(merge(local.base_patterns.parameter, { detail = merge(local.base_patterns.parameter.detail, { name = concat([for name in sort(distinct(concat(local.promotion_sources, local.rollback_environments))) : \"/tagrelay/${name}/verified\"], [for name in local.approval_environments : \"/tagrelay/${name}/approval\"]) }) })))"),
        ("pattern ecr-push", "length(jsonencode(local.ecr_exact_pattern))"),
        ("pattern alarm-state-change", "length(jsonencode(local.alarm_exact_pattern))"),
        ("pattern ecs-deployment", "length(jsonencode(merge(local.base_patterns.ecs, { resources = local.ecs_cluster_service_arn_prefixes })))"),
        ("function environment, bytes", "local.config_inline_bytes"),
        ("image-tag ARNs of record-image-tag's policy, characters", "length(jsonencode(local.parameter_arns))"),
        ("ECS service ARNs of trigger-deploy's policy, characters", "length(jsonencode(local.ecs_service_arns))"),
        ("repository ARNs of each function's policy, characters", "length(jsonencode(local.repository_arns))"),
    ] {
        report.push(format!("  {what}: {}", before(expression)));
    }
    report.push(format!(
        "  aws_ssm_parameter.image_tag resources: {}",
        strings(eval_source(&scope, "local.parameter_names")).len()
    ));
    report.push(format!("measured in {:.1?}", started.elapsed()));
    eprintln!("{}", report.join("\n"));
    assert!(failures.is_empty(), "over AWS's limits at 1,000 x 10:\n{}", failures.join("\n"));
}
