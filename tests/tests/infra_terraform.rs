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

/// Which rule of events.tf each fixture event must reach (`None`: no pattern rule; the
/// scheduled event reaches every function through the sweep's schedule, not a pattern). A rule
/// from the same pattern file takes it too when its own narrowing lists the event's name
/// (Parameter Store changes: `parameter-change` for image tags, `promote-parameter-change` for
/// release and approval records; which names each lists is checked on its own).
/// Every file in tests/fixtures/events/ must be listed.
const FIXTURE_RULES: [(&str, Option<&str>); 16] = [
    ("ecr-push.json", Some("ecr-push")),
    ("ecr-push-media-types.json", Some("ecr-push")),
    // Delivered; record-image-tag then skips it (no tag) with an INFO line.
    ("ecr-push-empty-tag.json", Some("ecr-push")),
    ("ecr-delete.json", None),
    ("ssm-parameter-create.json", Some("parameter-change")),
    ("ssm-parameter-update-no-description.json", Some("parameter-change")),
    ("codebuild-succeeded.json", Some("build-finished")),
    ("codebuild-in-progress.json", None),
    ("scheduled-event.json", None),
    // In cluster `default`, which the check narrows the ECS rule to.
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

/// The rule's pattern as Terraform renders it when the environments' ECS clusters are exactly
/// `clusters`, in the fixtures' region and account: the base pattern with `resources` set to
/// what the rule's narrowing (`local.ecs_service_arn_prefixes`) evaluates to.
fn narrowed_by_prefix(base: &Value, narrowed_to: &str, clusters: &[&str]) -> EventPattern {
    let files = stack_files();
    let environments: serde_json::Map<String, Value> = clusters
        .iter()
        .enumerate()
        .map(|(index, cluster)| (format!("env{index}"), json!({ "ecs_cluster": cluster })))
        .collect();
    let scope = stack_scope(&files)
        .local("region", text("us-west-2"))
        .local("account_id", text("111122223333"))
        .local("environments", hcl_value(Value::Object(environments)));
    let scope = with_locals(scope, &files);
    let probe = snippet(&format!("probe = {narrowed_to}\n"));
    let prefixes = scope
        .eval(&probe.body.get_attribute("probe").expect("probe").value)
        .unwrap_or_else(|err| panic!("{narrowed_to} does not evaluate: {err}"));
    let mut pattern = base.clone();
    pattern["resources"] = serde_json::to_value(&prefixes).expect("JSON");
    EventPattern::parse(&pattern).unwrap_or_else(|err| panic!("the narrowed pattern {pattern} is invalid: {err}"))
}

/// The rule's pattern as Terraform renders it when the configured names (`local.repositories`,
/// …) are exactly `names`: the base pattern's `detail` with the narrowed field set to them.
fn narrowed(base: &Value, field: &str, names: &[&str]) -> EventPattern {
    let mut pattern = base.clone();
    // A base without a detail gets one (the rule's `detail = { field = names }`).
    let object = pattern.as_object_mut().expect("a pattern is an object");
    let detail = object.entry("detail").or_insert_with(|| json!({}));
    let detail = detail.as_object_mut().expect("a base pattern's detail is an object");
    detail.insert(field.to_owned(), json!(names));
    EventPattern::parse(&pattern).unwrap_or_else(|err| panic!("the narrowed pattern {pattern} is invalid: {err}"))
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

    let bases: BTreeMap<&str, Value> = rules
        .base_patterns
        .iter()
        .map(|(key, name)| (key.as_str(), read_json(&root.join("infra/event-patterns").join(name))))
        .collect();
    for (name, expected) in FIXTURE_RULES {
        if let Some(rule) = expected {
            assert!(
                rules.rules.iter().any(|r| r.key == rule),
                "FIXTURE_RULES names rule {rule}, which events.tf does not define"
            );
        }
        let event = read_json(&fixtures_dir.join(name));
        for rule in &rules.rules {
            let base = &bases[rule.base.as_str()];
            let field = rule.narrowed_field.as_str();
            // The narrowing lists our names: when the event's name is one of them, the rule takes
            // the event iff it is of the rule's kind; when it is not, the rule never takes it.
            let own_name = if rule.top_level { Some("default") } else { event["detail"][field].as_str() };
            let (ours, not_ours) = if rule.top_level {
                (
                    narrowed_by_prefix(base, &rule.narrowed_to, &["default", "another"]),
                    narrowed_by_prefix(base, &rule.narrowed_to, &["not-configured"]),
                )
            } else {
                (
                    narrowed(base, field, &[own_name.unwrap_or("ours"), "another"]),
                    narrowed(base, field, &["not-configured"]),
                )
            };
            let expected_base = expected.and_then(|key| rules.rules.iter().find(|r| r.key == key)).map(|r| &r.base);
            let wanted = expected_base == Some(&rule.base);
            assert_eq!(
                ours.matches(&event),
                wanted,
                "{name}: rule {} ({}: {} narrowed by detail.{field} = {}) should {}match it{}",
                rule.key,
                rule.at,
                rules.base_patterns[&rule.base],
                rule.narrowed_to,
                if wanted { "" } else { "not " },
                if wanted && own_name.is_none() {
                    format!(" (the event has no string detail.{field})")
                } else {
                    String::new()
                },
            );
            assert!(
                !not_ours.matches(&event),
                "{name}: rule {} takes it although its detail.{field} is not configured",
                rule.key
            );
        }
    }
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

/// The stack's variables at their defaults, in a known partition, region and account.
fn stack_scope(files: &[TfFile]) -> Scope {
    let refs: Vec<&TfFile> = files.iter().collect();
    Scope::with_defaults(&refs)
        .local("partition", text("aws"))
        .local("region", text("eu-west-1"))
        .local("account_id", text("123456789012"))
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
    assert_eq!(granted_on("ssm:GetParameterHistory"), ["local.parameter_arns"]);
    // The push time of a pushed tag, and the record sweep's pages of each repository.
    assert_eq!(granted_on("ecr:DescribeImages"), ["local.repository_arns"]);
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
    let files = stack_files();
    let iam = named(&files, "infra/iam.tf");
    let mut rendered = Vec::new();
    for statement in policy::statements(iam, document) {
        let mut actions: Vec<String> = statement.actions.iter().map(|a| (*a).to_owned()).collect();
        actions.sort();
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
            let resources: Vec<String> = serde_json::from_value(serde_json::to_value(&value).expect("JSON"))
                .unwrap_or_else(|err| panic!("{}: resources {value}: {err}", statement.at));
            rendered.push((actions.clone(), resources));
        }
    }
    rendered
}

#[test]
fn trigger_deploy_may_verify_on_ecs_and_write_only_the_release_records() {
    let services = json!({
        "my-api": service(json!({ "deploy_on_push": ["dev"], "ecs_service": "api" })),
        "worker": service(json!({ "repository": "team/worker" })),
        "reports": service(json!({ "verify_on_ecs": false })),
    });
    let grants = |environments: Value| {
        let mut scope = ecs_scope(environments.clone(), services.clone());
        // The role's other resources, computed from the same configuration.
        for (name, value) in [
            ("parameter_arns", json!(["arn:aws:ssm:eu-west-1:123456789012:parameter/p"])),
            ("project_arns", json!(["arn:aws:codebuild:eu-west-1:123456789012:project/tagrelay-dev"])),
        ] {
            scope = scope.local(name, hcl_value(value));
        }
        let rendered = rendered_statements("trigger_deploy", &scope);
        let on = |action: &str| -> Vec<String> {
            let found: Vec<&(Vec<String>, Vec<String>)> =
                rendered.iter().filter(|(actions, _)| actions.iter().any(|a| a == action)).collect();
            assert!(found.len() <= 1, "{action} is granted by {} statements", found.len());
            found.first().map(|(_, resources)| resources.clone()).unwrap_or_default()
        };
        let actions_of = |prefix: &str| -> Vec<String> {
            rendered.iter().flat_map(|(actions, _)| actions.iter().filter(|a| a.starts_with(prefix)).cloned()).collect()
        };
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

    let records = [
        "arn:aws:ssm:eu-west-1:123456789012:parameter/tagrelay/dev/verified",
        "arn:aws:ssm:eu-west-1:123456789012:parameter/tagrelay/lab/verified",
        "arn:aws:ssm:eu-west-1:123456789012:parameter/tagrelay/prod/verified",
    ];
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
    assert_eq!(release, records, "PutParameter on the release records only, one per environment");
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
            assert_eq!(statement.source(iam, "resources"), Some("local.release_record_arns"), "{}", statement.at);
        }
    }
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
fn the_example_service_deploys_the_tag_its_run_was_started_for() {
    let files = example_files();
    let refs: Vec<&TfFile> = files.iter().collect();
    let data = json!({ "aws_ssm_parameter": { "image_tag": { "insecure_value": "43" } } });
    let image_tag = |tagrelay_image_tags: Value| {
        let scope = Scope::with_defaults(&refs)
            .var("environment", text("dev"))
            .var("tagrelay_image_tags", hcl_value(tagrelay_image_tags))
            .bind("data", hcl_value(data.clone()));
        let scope = scope.with_locals_of(&refs);
        eval_source(&scope, "local.image_tag")
    };
    // A tagrelay run: the value at the fingerprint's version, though the parameter moved on.
    assert_eq!(
        image_tag(json!({ "/my-api/dev/docker-image-tag": "42", "/worker/dev/docker-image-tag": "7" })),
        Ok(text("42"))
    );
    // A manual run (nothing passed), or a run that does not name this service's parameter.
    assert_eq!(image_tag(json!({})), Ok(text("43")));
    assert_eq!(image_tag(json!({ "/my-api/prod/docker-image-tag": "40" })), Ok(text("43")));

    let defaults = Scope::with_defaults(&refs);
    assert_eq!(eval_source(&defaults, "var.tagrelay_image_tags"), Ok(hcl_value(json!({}))));
    // The circuit breaker with rollback stays: it is what turns a bad image into a FAILED
    // deployment that verification reports.
    let main = named(&files, "infra/examples/ecs-service/main.tf");
    let service = resource_in(main, "aws_ecs_service", "this");
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
fn the_promote_rules_take_exactly_the_events_promote_acts_on() {
    use tagrelay::event::promote::{parse_promote_event, PromoteEvent};
    use tagrelay::promote::trigger;

    let (_, rules) = event_rules();
    let rule = |key: &str| rules.rules.iter().find(|r| r.key == key).unwrap_or_else(|| panic!("no rule {key}"));
    let scope = chain_scope();
    let config = chain_config(&scope);

    // Parameter Store: the release records of dev and staging (promoted from) and prod
    // (rollback_alarms), the approval record of prod; not lab's, no rollback record.
    let parameter = rule("promote-parameter-change");
    assert_eq!((parameter.function.as_str(), parameter.narrowed_field.as_str()), ("promote", "name"));
    let names = strings(eval_source(&scope, &parameter.narrowed_to));
    assert_eq!(
        names,
        ["/tagrelay/dev/verified", "/tagrelay/prod/verified", "/tagrelay/staging/verified", "/tagrelay/prod/approval"]
    );
    // ... which is every record promote acts on, and nothing it ignores.
    for env in config.environments() {
        for name in [env.release_parameter(), env.approval_parameter(), env.rollback_parameter()] {
            let event = PromoteEvent::ParameterChange(tagrelay::event::ssm::ParameterChange {
                operation: tagrelay::event::ssm::Operation::Update,
                name: name.clone(),
                description: None,
            });
            assert_eq!(
                names.contains(&name),
                trigger::environments(&config, &event).is_ok(),
                "{name}: the rule and promote's trigger selection disagree"
            );
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
    let base = read_json(&workspace_root().join("infra/event-patterns").join(&rules.base_patterns[&alarm.base]));
    let names: Vec<&str> = alarms.iter().map(String::as_str).collect();
    let pattern = narrowed(&base, &alarm.narrowed_field, &names);
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
    assert!(pattern.matches(&event("prod-api-5xx")));
    assert!(!pattern.matches(&event("someone-elses-alarm")));
    let parsed = parse_promote_event(&event("prod-api-5xx")).unwrap_or_else(|err| panic!("{err}"));
    let concerned: Vec<String> =
        trigger::environments(&config, &parsed).expect("prod's alarm").iter().map(|e| e.name.clone()).collect();
    assert_eq!(concerned, ["prod"]);

    // Nothing promoted, rolled back or approved, no alarm: neither rule is created.
    let plain = ecs_scope(
        json!({ "dev": { "codebuild_project": "tagrelay-dev" }, "lab": { "codebuild_project": "tagrelay-lab" } }),
        json!({ "my-api": service(json!({ "deploy_on_push": ["dev"] })) }),
    );
    for key in ["promote-parameter-change", "alarm-state-change"] {
        let create = rule(key).create.as_deref().expect("conditional");
        assert_eq!(eval_source(&plain, create), Ok(HclValue::Bool(false)), "{key} without promotion");
        assert_eq!(eval_source(&scope, create), Ok(HclValue::Bool(true)), "{key} with the chain");
    }
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
    assert_eq!(
        grants["ssm:PutParameter"], writes,
        "staging's and prod's image tags, prod's rollback record; never dev, lab or a release record"
    );
    assert_eq!(grants["ssm:AddTagsToResource"], image_tags);
    let mut reads = image_tags.clone();
    for env in ["dev", "lab", "prod", "staging"] {
        for record in ["verified", "approval", "rollback"] {
            reads.insert(arn(&format!("/tagrelay/{env}/{record}")));
        }
    }
    // The records are read as histories only; current values only of the image tags it decides.
    assert_eq!(grants["ssm:GetParameters"], image_tags);
    assert_eq!(grants["ssm:GetParameterHistory"], reads);
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
    assert_eq!(actions, ["ecr:DescribeImages", "ssm:GetParameterHistory"]);

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
    promotions.iter().map(Promotion::as_str).chain(rollbacks.iter().map(RollbackDecision::as_str)).collect()
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
