//! `--output json` when a command fails: stdout is a JSON error object a script can parse, while
//! the exit code and stderr stay what they are without it. No AWS is needed (the one AWS failure
//! is a refused connection).

mod support;

use serde_json::{json, Value};
use support::{tagrelay, Run};

fn config() -> String {
    json!({
        "environments": { "dev": {}, "prod": {} },
        "services": { "my-api": { "deploy_on_push": ["dev"], "order": "numeric" } }
    })
    .to_string()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn configured() -> Vec<(String, String)> {
    env(&[("TAGRELAY_CONFIG", &config()), ("AWS_REGION", "us-east-1")])
}

/// Runs `args` with `--output table` and with `--output json` appended: the same exit code and
/// stderr (clap's usage line names the arguments given, so both give one), nothing on stdout
/// for the table; returns the JSON run.
fn failing_in_json(env: &[(String, String)], args: &[&str]) -> (Run, Value) {
    let with_output = |output| args.iter().copied().chain(["--output", output]).collect::<Vec<&str>>();
    let table = tagrelay(env, &with_output("table"));
    let run = tagrelay(env, &with_output("json"));
    assert_ne!(run.code, 0, "{args:?} fails");
    assert_eq!(run.code, table.code, "{args:?}: the exit code does not depend on --output");
    assert_eq!(run.stderr, table.stderr, "{args:?}: stderr does not depend on --output");
    assert_eq!(table.stdout, "", "{args:?}: a table prints nothing when the command fails");
    let value = run.json();
    assert_eq!(value["exit_code"], run.code, "{args:?}: {value}");
    let mut keys: Vec<&String> = value["error"].as_object().expect("an error object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["field", "kind", "message"], "{args:?}: the shape is stable");
    (run, value)
}

#[test]
fn usage_errors_are_json_objects_naming_the_argument() {
    // tagrelay's own checks.
    let (run, value) =
        failing_in_json(&configured(), &["pin", "my-api", "--env", "dev", "--tag", "1", "--reason", " "]);
    assert_eq!(
        value,
        json!({
            "error": {
                "kind": "usage",
                "message": "--reason: must say why the tag is pinned; it is recorded in the parameter",
                "field": "--reason"
            },
            "exit_code": 2
        })
    );
    assert_eq!(run.stderr, format!("tagrelay: {}\n", value["error"]["message"].as_str().unwrap_or_default()));
    let (_, value) = failing_in_json(&configured(), &["history", "nope", "--env", "dev"]);
    assert_eq!((&value["error"]["kind"], &value["error"]["field"]), (&json!("usage"), &json!("SERVICE")));
    let (_, value) = failing_in_json(&configured(), &["releases", "--env", "qa"]);
    assert_eq!((&value["error"]["kind"], &value["error"]["field"]), (&json!("usage"), &json!("--env")));

    // Command lines clap refuses: (arguments, field, what the message says).
    let cases: [(&[&str], Value, &str); 6] = [
        (&["pin", "my-api", "--env", "dev", "--tag", "1"], json!("--reason"), "required arguments were not provided"),
        (&["status", "--stale-after", "soon"], json!("--stale-after"), "`soon` is not a duration"),
        (&["status", "--bogus"], json!("--bogus"), "unexpected argument '--bogus' found"),
        (&["redrive", "--function", "nope"], json!("--function"), "invalid value 'nope'"),
        (&["releases"], json!("--env"), "required arguments were not provided"),
        (&["bogus"], Value::Null, "unrecognized subcommand 'bogus'"),
    ];
    for (args, field, message) in cases {
        let (run, value) = failing_in_json(&configured(), args);
        assert_eq!(run.code, 2, "{args:?}");
        assert_eq!((&value["error"]["kind"], &value["error"]["field"]), (&json!("usage"), &field), "{args:?}: {value}");
        let text = value["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(message) && !text.contains('\n'), "{args:?}: {text:?}");
        assert!(!text.starts_with("error:") && !text.contains("Usage:"), "{args:?}: {text:?}");
    }

    // No command, and the `--output=json` form.
    let run = tagrelay(&configured(), &["--output=json"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("Usage:"), "{}", run.stderr);
    let message = run.json()["error"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("requires a subcommand") && message.contains("status, history"), "{message}");

    // --help is not a failure: its text is the output, JSON or not.
    let help = tagrelay(&configured(), &["status", "--help", "--output", "json"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.starts_with("Per environment"), "{}", help.stdout);
}

#[test]
fn configuration_errors_are_json_objects_naming_the_field() {
    let (_, value) = failing_in_json(&env(&[("AWS_REGION", "us-east-1")]), &["status"]);
    assert_eq!(
        value["error"],
        json!({
            "kind": "config",
            "message": "no configuration: set TAGRELAY_CONFIG or pass --config FILE",
            "field": "TAGRELAY_CONFIG"
        })
    );
    assert_eq!(value["exit_code"], 2);

    let invalid = r#"{"environments":{"dev":{}},"services":{"api":{"deploy_on_push":["dev"],"order":"fifo"}}}"#;
    let (_, value) = failing_in_json(&env(&[("TAGRELAY_CONFIG", invalid)]), &["status"]);
    assert_eq!(value["error"]["kind"], "config");
    assert_eq!(value["error"]["field"], "services.api.order", "{value}");
    let message = value["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("TAGRELAY_CONFIG is not valid: services.api.order") && message.contains("fifo"),
        "{message}"
    );

    let (_, value) = failing_in_json(&[], &["status", "--config", "/nonexistent/tagrelay.json"]);
    assert_eq!((&value["error"]["kind"], &value["error"]["field"]), (&json!("config"), &json!("--config")));
    assert_eq!(value["exit_code"], 2);
}

#[test]
fn a_failing_aws_call_is_a_json_object_with_exit_code_1() {
    // Nothing listens on port 9.
    let env = env(&[
        ("TAGRELAY_CONFIG", &config()),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ]);
    let (run, value) = failing_in_json(&env, &["history", "my-api", "--env", "dev"]);
    assert_eq!(run.code, 1);
    assert_eq!((&value["error"]["kind"], &value["error"]["field"]), (&json!("aws"), &Value::Null));
    assert!(
        value["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("GetParameterHistory /my-api/dev/docker-image-tag failed")),
        "{value}"
    );
    assert_eq!(run.stderr, format!("tagrelay: {}\n", value["error"]["message"].as_str().unwrap_or_default()));
}
