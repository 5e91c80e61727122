//! The local EventBridge: its pattern matcher (AWS's documented examples of the grammar `infra/`
//! uses, and the loud refusal of the rest), and its delivery to local Lambdas with Lambda's
//! asynchronous-invocation semantics. The rule patterns of `infra/event-patterns/` against the
//! real events of `tests/fixtures/events/`: `tests/tests/event_patterns.rs`.
//!
//! The delivery tests run the `echo` example of this crate as the target function (built by
//! `cargo test -p tagrelay-testbed`, or `cargo build -p tagrelay-testbed --example echo`); the ones
//! that dead-letter use moto's SQS (`make tools`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{Message, MessageAttributeValue};
use serde_json::{json, Value};
use tagrelay_testbed::event_pattern::{EventPattern, PatternError};
use tagrelay_testbed::event_router::{
    AsyncInvokeConfig, DeadLetterReason, Delivery, DeliveryOutcome, LocalEventBridge, RejectedEvent, Route,
    EVENT_SIZE_LIMIT,
};
use tagrelay_testbed::{http_client, workspace_root, FunctionProcess, LocalAws, RuntimeApi};

const TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Pattern matching
// ---------------------------------------------------------------------------------------------

fn pattern(json: Value) -> EventPattern {
    EventPattern::parse(&json).unwrap_or_else(|err| panic!("{json} should parse: {err}"))
}

/// The sample event of AWS's pattern documentation (and of `aws/event-ruler`'s README).
fn ec2_event() -> Value {
    json!({
        "version": "0",
        "id": "ddddd4-aaaa-7777-4444-345dd43cc333",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": "012345679012",
        "time": "2017-10-02T16:24:49Z",
        "region": "us-east-1",
        "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
        "detail": {
            "c-count": 5,
            "d-count": 3,
            "x-limit": 301.8,
            "source-ip": "10.0.0.33",
            "instance-id": "i-000000aaaaaa00000",
            "state": "running"
        }
    })
}

/// `event` with the value at `pointer` (like `/detail/state`) replaced, or removed with `None`.
fn with(mut event: Value, pointer: &str, value: Option<Value>) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    let object = event.pointer_mut(parent).and_then(Value::as_object_mut).expect("the parent is an object");
    match value {
        Some(value) => object.insert(key.to_string(), value),
        None => object.remove(key),
    };
    event
}

fn ec2_with(pointer: &str, value: Value) -> Value {
    with(ec2_event(), pointer, Some(value))
}

fn ec2_without(pointer: &str) -> Value {
    with(ec2_event(), pointer, None)
}

fn detail_event(detail: Value) -> Value {
    ec2_with("/detail", detail)
}

#[test]
fn documented_examples_match_and_refuse() {
    // (what, pattern, an event it matches, an event it refuses)
    let cases: Vec<(&str, Value, Value, Value)> = vec![
        (
            "exact values, AND across fields, OR within a field",
            json!({
                "source": ["aws.ec2"],
                "detail-type": ["EC2 Instance State-change Notification"],
                "detail": {"state": ["initializing", "running"]}
            }),
            ec2_event(),
            ec2_with("/detail/state", json!("stopped")),
        ),
        (
            "an event array matches when it shares a value with the pattern",
            json!({"resources": [
                "arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f",
                "arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"
            ]}),
            ec2_with(
                "/resources",
                json!(["arn:aws:autoscaling:x", "arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"]),
            ),
            ec2_with("/resources", json!(["arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f"])),
        ),
        (
            "a missing field does not match",
            json!({"detail": {"state": ["running"]}}),
            ec2_event(),
            ec2_without("/detail/state"),
        ),
        (
            "the empty string matches the empty string, not null",
            json!({"detail": {"eventVersion": [""]}}),
            detail_event(json!({"eventVersion": "", "responseElements": null})),
            detail_event(json!({"eventVersion": null})),
        ),
        (
            "objects in an array are matched one element at a time",
            json!({"employees": {"firstName": ["Anna"], "lastName": ["Smith"]}}),
            json!({"employees": [
                {"firstName": "John", "lastName": "Doe"},
                {"firstName": "Anna", "lastName": "Smith"},
                {"firstName": "Peter", "lastName": "Jones"}
            ]}),
            json!({"employees": [
                {"firstName": "John", "lastName": "Doe"},
                {"firstName": "Anna", "lastName": "Jones"},
                {"firstName": "Peter", "lastName": "Smith"}
            ]}),
        ),
        (
            "a string matches a string only, not the number of the same text",
            json!({"detail": {"c-count": ["5"]}}),
            ec2_with("/detail/c-count", json!("5")),
            ec2_event(),
        ),
    ];
    let mut failures = Vec::new();
    for (what, json, matching, refused) in &cases {
        let pattern = pattern(json.clone());
        if !pattern.matches(matching) {
            failures.push(format!("{what}: {json} should match {matching}"));
        }
        if pattern.matches(refused) {
            failures.push(format!("{what}: {json} should not match {refused}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn invalid_patterns_are_refused_naming_the_place() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!(["aws.ecr"]), "", "JSON object"),
        (json!({}), "", "empty"),
        (json!({"source": "aws.ecr"}), "source", "array"),
        (json!({"detail": {}}), "detail", "empty"),
        (json!({"detail": {"state": []}}), "detail.state", "empty arrays"),
        (json!({"detail": {"state": [["a"]]}}), "detail.state[0]", "nested"),
        (json!({"detail": {"state": [{}]}}), "detail.state[0]", "empty objects"),
        (json!({"detail": {"state": [{"prefix": "a", "suffix": "b"}]}}), "detail.state[0]", "exactly one operator"),
        (json!({"detail": {"state": [{"begins-with": "a"}]}}), "detail.state[0]", "unknown operator"),
        (json!({"detail": {"state": [{"prefix": 5}]}}), "detail.state[0].prefix", "takes a string, not a number"),
        (json!({"detail": {"state": [{"prefix": ["a"]}]}}), "detail.state[0].prefix", "takes a string, not an array"),
        (json!({"detail": {"state": [{"suffix": 5}]}}), "detail.state[0].suffix", "takes a string, not a number"),
        (
            json!({"detail": {"state": [{"wildcard": ["a*"]}]}}),
            "detail.state[0].wildcard",
            "takes a string, not an array",
        ),
        // EventBridge's wildcard syntax: no two stars in a row, a backslash escapes only * and \.
        (json!({"detail": {"state": [{"wildcard": "a**b"}]}}), "detail.state[0].wildcard", "consecutive wildcard"),
        (json!({"detail": {"state": [{"wildcard": "**"}]}}), "detail.state[0].wildcard", "consecutive wildcard"),
        (json!({"detail": {"state": [{"wildcard": "a\\b"}]}}), "detail.state[0].wildcard", "invalid escape"),
        (json!({"detail": {"state": [{"wildcard": "a\\"}]}}), "detail.state[0].wildcard", "invalid escape"),
        (json!({"detail": {"state": [{"exists": "yes"}]}}), "detail.state[0].exists", "takes true or false"),
    ];
    for (json, path, message) in cases {
        match EventPattern::parse(&json) {
            Ok(_) => panic!("{json} should be refused"),
            Err(err) => {
                assert_eq!(err.path(), Some(path), "{json}: {err}");
                let text = err.to_string();
                assert!(text.contains(message), "{json}: {text:?} should say {message:?}");
                let place = if path.is_empty() { "the top level" } else { path };
                assert!(text.contains(&format!("at {place}:")), "{json}: {text:?} should name {place}");
            }
        }
    }
}

/// Prefix matching (EventBridge User Guide, "Content filtering in Amazon EventBridge event
/// patterns", prefix matching): a string value that starts with the prefix, case sensitive; on an
/// array field any element. `infra/events.tf` narrows the ECS rule by the service ARN prefixes of
/// the configured clusters in `resources`.
#[test]
fn prefix_matches_the_start_of_a_string_in_any_element() {
    let event = ec2_event();
    let cases: Vec<(Value, bool)> = vec![
        // The documentation's example.
        (json!({"time": [{"prefix": "2017-10-02"}]}), true),
        (json!({"time": [{"prefix": "2017-10-03"}]}), false),
        (json!({"time": [{"prefix": "2017-10-02T16:24:49Z"}]}), true),
        (json!({"time": [{"prefix": "2017-10-02T16:24:49Z!"}]}), false),
        // Case sensitive.
        (json!({"detail": {"state": [{"prefix": "Run"}]}}), false),
        (json!({"detail": {"state": [{"prefix": "run"}]}}), true),
        // With exact values in the same list: any may match.
        (json!({"detail": {"state": ["pending", {"prefix": "run"}]}}), true),
        (json!({"detail": {"state": ["running", {"prefix": "stop"}]}}), true),
        (json!({"detail": {"state": ["pending", {"prefix": "stop"}]}}), false),
        // Only strings: a number's digits are no prefix.
        (json!({"detail": {"c-count": [{"prefix": "5"}]}}), false),
        // A missing field matches nothing.
        (json!({"detail": {"missing": [{"prefix": "a"}]}}), false),
        // An array field (resources): any element.
        (json!({"resources": [{"prefix": "arn:aws:ec2:us-east-1:123456789012:instance/"}]}), true),
        (json!({"resources": [{"prefix": "arn:aws:ec2:us-east-1:999999999999:"}, {"prefix": "arn:aws:ec2:"}]}), true),
        (json!({"resources": [{"prefix": "arn:aws:ecs:"}]}), false),
    ];
    for (json, expected) in cases {
        assert_eq!(pattern(json.clone()).matches(&event), expected, "{json}");
    }

    // The ECS rule's narrowing: the service ARNs of the configured clusters, by prefix.
    let ecs = json!({
        "source": ["aws.ecs"],
        "resources": [
            {"prefix": "arn:aws:ecs:us-west-2:111122223333:service/default/"},
            {"prefix": "arn:aws:ecs:us-west-2:111122223333:service/prod/"},
        ],
    });
    let deployment = |arns: Value| json!({"source": "aws.ecs", "resources": arns, "detail": {}});
    let rule = pattern(ecs);
    let service = |path: &str| format!("arn:aws:ecs:us-west-2:111122223333:service/{path}");
    assert!(rule.matches(&deployment(json!([service("default/servicetest")]))));
    assert!(rule.matches(&deployment(json!([service("other/x"), service("prod/api")]))), "any element");
    assert!(!rule.matches(&deployment(json!([service("defaults/servicetest")]))), "the trailing / ends the name");
    assert!(!rule.matches(&deployment(json!([service("servicetest")]))), "the short ARN names no cluster");
    assert!(!rule.matches(&deployment(json!([]))));
}

/// Suffix matching (EventBridge User Guide, "Content filtering in Amazon EventBridge event
/// patterns", suffix matching): a string value that ends with the suffix, case sensitive; on an
/// array field any element. `infra/events.tf` narrows the image-tag parameters by the part of
/// `parameter_template` after `{service}` (`/dev/docker-image-tag`) when the environment is there.
#[test]
fn suffix_matches_the_end_of_a_string_in_any_element() {
    let event = ec2_event();
    let cases: Vec<(Value, bool)> = vec![
        (json!({"detail": {"state": [{"suffix": "ning"}]}}), true),
        (json!({"detail": {"state": [{"suffix": "running"}]}}), true),
        (json!({"detail": {"state": [{"suffix": "Ning"}]}}), false),
        (json!({"detail": {"state": [{"suffix": "xrunning"}]}}), false),
        (json!({"detail": {"state": ["pending", {"suffix": "ing"}]}}), true),
        // Only strings.
        (json!({"detail": {"c-count": [{"suffix": "5"}]}}), false),
        (json!({"detail": {"missing": [{"suffix": "a"}]}}), false),
        (json!({"resources": [{"suffix": "/i-000000aaaaaa00000"}]}), true),
        (json!({"resources": [{"suffix": "/i-1"}]}), false),
    ];
    for (json, expected) in cases {
        assert_eq!(pattern(json.clone()).matches(&event), expected, "{json}");
    }
    // The parameter rule of one environment: its parameters, not another's, not the records.
    let rule = pattern(json!({"detail": {"name": [{"suffix": "/dev/docker-image-tag"}]}}));
    let change = |name: &str| json!({"detail": {"name": name}});
    assert!(rule.matches(&change("/my-api/dev/docker-image-tag")));
    assert!(rule.matches(&change("/team/my-api/dev/docker-image-tag")), "a service name with a /");
    assert!(!rule.matches(&change("/my-api/qa/docker-image-tag")));
    assert!(!rule.matches(&change("/my-api/predev/docker-image-tag")), "the leading / ends the environment");
    assert!(!rule.matches(&change("/tagrelay/dev/verified")));
    assert!(!rule.matches(&change("/tagrelay/dev/manifest-part/0")));
}

/// Wildcard matching (aws/event-ruler README, "Wildcard matching", which EventBridge runs; the
/// EventBridge User Guide's examples): `*` matches zero or more characters, `/` included; the
/// whole value must match; `\*` is a literal star and `\\` a literal backslash; only strings.
#[test]
fn wildcard_matches_the_whole_string_as_eventbridge_does() {
    let file = |name: &str| json!({"detail": {"FileName": name, "FilePath": name}});
    let cases: Vec<(&str, &str, bool)> = vec![
        // The User Guide's: "dir/*.png" for a .png file located within the folder "dir".
        ("dir/*.png", "dir/a.png", true),
        ("dir/*.png", "dir/sub/a.png", true),
        ("dir/*.png", "dir/a.jpg", false),
        ("dir/*.png", "xdir/a.png", false),
        ("dir/*.png", "dir/.png", true),
        // event-ruler's: a star at either end, several stars, none.
        ("*Title*", "A Title here", true),
        ("*Title*", "Title", true),
        ("*Title*", "title", false),
        ("Simple*Service", "SimpleNotificationService", true),
        ("Simple*Service", "SimpleService", true),
        ("Simple*Service", "Simple Queue Service!", false),
        ("exact", "exact", true),
        ("exact", "exactly", false),
        ("*", "", true),
        ("*", "anything/at/all", true),
        ("", "", true),
        ("", "x", false),
        // Runs around a star may not overlap.
        ("a*a", "a", false),
        ("a*a", "aa", true),
        ("ab*ba", "aba", false),
        // Several runs, each found in order: backtracking is never needed.
        ("*a*b*c", "xxaxxbxxbxxc", true),
        ("*a*b*c", "xxcxxbxxa", false),
        ("a*b*a", "abba", true),
        ("a*b*a", "abab", false),
        // Escapes: a literal star, a literal backslash.
        ("a\\*b", "a*b", true),
        ("a\\*b", "aXb", false),
        ("a\\**", "a*anything", true),
        ("a\\**", "aXanything", false),
        ("C:\\\\*", "C:\\dir", true),
        ("C:\\\\*", "C:dir", false),
        // The release and approval records promote listens to: not their parts, not the manifest.
        ("/tagrelay/*/verified", "/tagrelay/dev/verified", true),
        ("/tagrelay/*/verified", "/tagrelay/dev/verified-part/0", false),
        ("/tagrelay/*/verified", "/tagrelay/dev/manifest", false),
        ("/tagrelay/*/verified", "/my-api/dev/verified", false),
        ("/tagrelay/*/verified", "/tagrelay/a/b/verified", true),
    ];
    for (operand, name, expected) in cases {
        let rule = pattern(json!({"detail": {"FileName": [{"wildcard": operand}]}}));
        assert_eq!(rule.matches(&file(name)), expected, "wildcard {operand:?} on {name:?}");
    }
    // Only strings; any element of an array.
    assert!(!pattern(json!({"detail": {"c-count": [{"wildcard": "*"}]}})).matches(&ec2_event()));
    assert!(pattern(json!({"resources": [{"wildcard": "arn:aws:ec2:*:instance/*"}]})).matches(&ec2_event()));
}

/// `exists: true` (EventBridge User Guide, exists matching; event-ruler README: "only works on
/// the leaf nodes"): the field is there with a leaf value, whatever it is. `infra/events.tf` uses
/// it where a list of our names would not fit in a pattern (every push, every alarm).
#[test]
fn exists_true_matches_any_leaf_value_that_is_there() {
    let event = ec2_event();
    for (json, expected) in [
        (json!({"detail": {"state": [{"exists": true}]}}), true),
        (json!({"detail": {"c-count": [{"exists": true}]}}), true),
        (json!({"resources": [{"exists": true}]}), true),
        (json!({"detail": {"missing": [{"exists": true}]}}), false),
    ] {
        assert_eq!(pattern(json.clone()).matches(&event), expected, "{json}");
    }
    // A null value is there; an object is no leaf; an empty array holds nothing.
    let rule = pattern(json!({"detail": {"x": [{"exists": true}]}}));
    assert!(rule.matches(&json!({"detail": {"x": null}})));
    assert!(!rule.matches(&json!({"detail": {"x": {"y": 1}}})));
    assert!(!rule.matches(&json!({"detail": {"x": []}})));
}

/// What EventBridge takes but `infra/` does not use is refused when the rule is made, naming
/// what and where, so a local rule never matches differently from the one in AWS.
#[test]
fn grammar_infra_does_not_use_is_refused_naming_what_and_where() {
    let or = json!([{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}]);
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"source": [{"prefix": {"equals-ignore-case": "AWS."}}]}),
            "source[0].prefix.equals-ignore-case",
            "the \"equals-ignore-case\" operator inside \"prefix\"",
        ),
        (
            json!({"detail": {"FileName": [{"suffix": {"equals-ignore-case": ".PNG"}}]}}),
            "detail.FileName[0].suffix.equals-ignore-case",
            "the \"equals-ignore-case\" operator inside \"suffix\"",
        ),
        (json!({"source": [{"prefix": ""}]}), "source[0].prefix", "an empty \"prefix\""),
        (json!({"source": [{"suffix": ""}]}), "source[0].suffix", "an empty \"suffix\""),
        (
            json!({"source": [{"equals-ignore-case": "AWS.EC2"}]}),
            "source[0].equals-ignore-case",
            "\"equals-ignore-case\"",
        ),
        (
            json!({"detail": {"state": [{"anything-but": "initializing"}]}}),
            "detail.state[0].anything-but",
            "\"anything-but\"",
        ),
        (json!({"detail": {"c-count": [{"exists": false}]}}), "detail.c-count[0].exists", "\"exists\": false"),
        (json!({"detail": {"c-count": [{"numeric": [">", 0]}]}}), "detail.c-count[0].numeric", "\"numeric\""),
        (json!({"detail": {"source-ip": [{"cidr": "10.0.0.0/24"}]}}), "detail.source-ip[0].cidr", "\"cidr\""),
        (
            json!({"detail": {"state": ["pending", {"anything-but": {"wildcard": "*ing"}}]}}),
            "detail.state[1].anything-but",
            "\"anything-but\"",
        ),
        (json!({"source": ["aws.cloudwatch"], "$or": or}), "$or", "the \"$or\" operator"),
        (json!({"detail": {"$or": or}}), "detail.$or", "\"$or\""),
        (json!({"detail": {"c-count": [5]}}), "detail.c-count[0]", "matching a number"),
        (json!({"detail": {"enabled": [true]}}), "detail.enabled[0]", "matching a boolean"),
        (json!({"detail": {"responseElements": [null]}}), "detail.responseElements[0]", "matching null"),
    ];
    for (json, path, feature) in cases {
        let err = EventPattern::parse(&json).expect_err(&format!("{json} should be refused"));
        assert!(matches!(err, PatternError::Unsupported { .. }), "{json}: {err:?}");
        assert_eq!(err.path(), Some(path), "{json}: {err}");
        let text = err.to_string();
        for needle in [feature, "not emulated", &format!("at {path}:")] {
            assert!(text.contains(needle), "{json}: {text:?} should say {needle:?}");
        }
    }
}

#[test]
fn pattern_files_report_the_file() {
    let dir = std::env::temp_dir().join(format!("tagrelay-event-pattern-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let not_json = dir.join("not-json.json");
    std::fs::write(&not_json, "{\"source\": [").expect("write");
    let invalid = dir.join("invalid.json");
    std::fs::write(&invalid, r#"{"detail": {"state": "running"}}"#).expect("write");
    let unsupported = dir.join("unsupported.json");
    std::fs::write(&unsupported, r#"{"detail": {"state": [{"anything-but": "ing"}]}}"#).expect("write");

    let err = EventPattern::from_file(dir.join("missing.json")).expect_err("a missing file");
    assert!(matches!(err, PatternError::Read { .. }), "{err:?}");
    let err = EventPattern::from_file(&not_json).expect_err("not JSON");
    assert!(matches!(&err, PatternError::Json { file, .. } if file == &not_json), "{err:?}");
    let err = EventPattern::from_file(&invalid).expect_err("invalid");
    assert!(matches!(&err, PatternError::Invalid { file: Some(file), .. } if file == &invalid), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("invalid.json") && text.contains("at detail.state:"), "{text}");
    let err = EventPattern::from_file(&unsupported).expect_err("unsupported");
    assert!(matches!(&err, PatternError::Unsupported { file: Some(file), .. } if file == &unsupported), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("unsupported.json") && text.contains("at detail.state[0].anything-but:"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Delivery
// ---------------------------------------------------------------------------------------------

fn echo_binary() -> PathBuf {
    tagrelay_testbed::runtime_api::example_binary("echo").expect("the echo example")
}

/// The echo example behind its own Runtime API.
struct Echo {
    api: Arc<RuntimeApi>,
    process: Option<FunctionProcess>,
}

impl Echo {
    async fn start(name: &str) -> Echo {
        let mut echo = Echo::stopped().await;
        echo.spawn(name);
        echo
    }

    /// A Runtime API whose function is not running yet: invocations wait for it.
    async fn stopped() -> Echo {
        Echo { api: Arc::new(RuntimeApi::start().await.expect("the Runtime API starts")), process: None }
    }

    fn spawn(&mut self, name: &str) {
        let env = [("AWS_LAMBDA_FUNCTION_NAME".to_string(), name.to_string())];
        self.process = Some(FunctionProcess::spawn(&echo_binary(), &self.api, &env).expect("echo spawns"));
    }

    /// How many invocations the function logged, once `expected` arrived or 2 s passed (its
    /// output is read asynchronously).
    async fn invocations(&self, expected: usize) -> usize {
        let count = || {
            self.process
                .as_ref()
                .map_or(0, |p| p.log_lines().iter().filter(|line| line.contains("echo invoked")).count())
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while count() < expected && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A little longer, so that one too many has the time to show.
        tokio::time::sleep(Duration::from_millis(100)).await;
        count()
    }
}

fn route(name: &str, pattern: Value, target: &Echo, dead_letter_queue_url: &str) -> Route {
    Route {
        name: name.to_string(),
        pattern: self::pattern(pattern),
        target: target.api.clone(),
        dead_letter_queue_url: dead_letter_queue_url.to_string(),
    }
}

/// An SQS client that reaches nothing, for bridges that must not dead-letter: a dead letter would
/// show in the delivery log as `DeadLetterFailed`.
fn unreachable_sqs() -> aws_sdk_sqs::Client {
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .endpoint_url("http://127.0.0.1:9")
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// moto with one queue: (moto, client, queue URL).
async fn moto_with_queue(name: &str) -> (LocalAws, aws_sdk_sqs::Client, String) {
    let aws = LocalAws::start().await.expect("moto starts (make tools)");
    let sqs = aws_sdk_sqs::Client::new(&aws.sdk_config().await);
    let created = sqs.create_queue().queue_name(name).send().await.expect("CreateQueue");
    let url = created.queue_url().expect("a queue URL").to_string();
    (aws, sqs, url)
}

/// Every message in the queue (received, not deleted).
async fn receive_all(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<Message> {
    let mut messages = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(60)
            .message_attribute_names("All")
            .send()
            .await
            .expect("ReceiveMessage");
        let batch = received.messages();
        if batch.is_empty() {
            return messages;
        }
        messages.extend(batch.iter().cloned());
    }
}

fn attribute<'a>(message: &'a Message, name: &str) -> &'a MessageAttributeValue {
    message
        .message_attributes()
        .and_then(|attributes| attributes.get(name))
        .unwrap_or_else(|| panic!("no {name} attribute on {message:?}"))
}

/// A custom event of source `tagrelay.test`; `extra` is merged into the top level (the echo
/// function reads `echo` and `fail` there).
fn test_event(id: &str, detail_type: &str, extra: Value) -> Value {
    let mut event = json!({
        "version": "0",
        "id": id,
        "detail-type": detail_type,
        "source": "tagrelay.test",
        "account": "123456789012",
        "time": "2026-11-28T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {}
    });
    if let (Some(event), Value::Object(extra)) = (event.as_object_mut(), extra) {
        event.extend(extra);
    }
    event
}

fn test_pattern() -> Value {
    json!({"source": ["tagrelay.test"]})
}

/// One HTTP/1.1 request to the sink; returns the status code and body.
async fn post(sink_url: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    http_client::request(sink_url, method, path, body).await.expect("an answer from the sink")
}

/// A bridge with one rule, every test event to `function`, that must not dead-letter.
async fn bridge_to(function: &Echo) -> LocalEventBridge {
    let routes = vec![route("to-echo", test_pattern(), function, "http://127.0.0.1:9/123456789012/unused")];
    LocalEventBridge::start(routes, unreachable_sqs(), AsyncInvokeConfig::default()).await.expect("the bridge starts")
}

fn of_event<'a>(deliveries: &'a [Delivery], id: &str) -> Vec<&'a Delivery> {
    deliveries.iter().filter(|d| d.event_id.as_deref() == Some(id)).collect()
}

fn summary(deliveries: &[Delivery]) -> String {
    deliveries
        .iter()
        .map(|d| format!("{:?} {} #{} {:?}", d.event_id, d.route, d.attempt, d.outcome))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matching_event_is_delivered_once_and_a_non_matching_one_never() {
    let function = Echo::start("record-image-tag").await;
    let ecr_rule = EventPattern::from_file(workspace_root().join("infra/event-patterns/ecr-image-action.json"))
        .expect("the ECR rule's pattern");
    let routes = vec![Route {
        name: "record-image-tag".to_string(),
        pattern: ecr_rule,
        target: function.api.clone(),
        dead_letter_queue_url: "http://127.0.0.1:9/123456789012/unused".to_string(),
    }];
    let bridge = LocalEventBridge::start(routes, unreachable_sqs(), AsyncInvokeConfig::default())
        .await
        .expect("the bridge starts");
    let sink = bridge.sink_url();
    assert!(sink.starts_with("http://127.0.0.1:"), "{sink}");

    let fixtures = workspace_root().join("tests/fixtures/events");
    let push = std::fs::read_to_string(fixtures.join("ecr-push.json")).expect("ecr-push.json");
    let delete = std::fs::read_to_string(fixtures.join("ecr-delete.json")).expect("ecr-delete.json");
    let (status, body) = post(&sink, "POST", "/events", &push).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("a JSON answer");
    assert_eq!(answer["routes"], json!(["record-image-tag"]));
    assert_eq!(answer["id"], "13cde686-328b-6117-af20-0e5566167482");
    let (status, body) = post(&sink, "POST", "/events", &delete).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).expect("a JSON answer")["routes"], json!([]));

    bridge.wait_idle(TIMEOUT).await.expect("idle");
    let deliveries = bridge.deliveries();
    assert_eq!(deliveries.len(), 1, "{}", summary(&deliveries));
    let delivery = &deliveries[0];
    assert_eq!(delivery.event_id.as_deref(), Some("13cde686-328b-6117-af20-0e5566167482"));
    assert_eq!(delivery.detail_type.as_deref(), Some("ECR Image Action"));
    assert_eq!(delivery.route, "record-image-tag");
    assert_eq!(delivery.attempt, 1);
    let DeliveryOutcome::Ok { response } = &delivery.outcome else { panic!("{delivery:?}") };
    assert_eq!(response["functionArn"], "arn:aws:lambda:us-east-1:123456789012:function:record-image-tag");
    assert_eq!(bridge.events().len(), 2, "both events were accepted");
    assert_eq!(function.invocations(1).await, 1, "the push is invoked once, the delete never");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_matching_route_gets_its_own_copy() {
    let first = Echo::start("first").await;
    let second = Echo::start("second").await;
    let dlq = "http://127.0.0.1:9/123456789012/unused";
    let routes = vec![
        route("all-to-first", test_pattern(), &first, dlq),
        route("both-to-second", json!({"source": ["tagrelay.test"], "detail-type": ["Both"]}), &second, dlq),
        // A second rule to the same function: a copy of its own, through the same queue.
        route("both-to-first-again", json!({"detail-type": ["Both"]}), &first, dlq),
    ];
    let bridge = LocalEventBridge::start(routes, unreachable_sqs(), AsyncInvokeConfig::default())
        .await
        .expect("the bridge starts");

    let matched = bridge.put_events(test_event("both", "Both", json!({"echo": "both"}))).await.expect("accepted");
    assert_eq!(matched, ["all-to-first", "both-to-second", "both-to-first-again"]);
    let matched = bridge.put_events(test_event("one", "One", json!({"echo": "one"}))).await.expect("accepted");
    assert_eq!(matched, ["all-to-first"]);
    bridge.wait_idle(TIMEOUT).await.expect("idle");

    let deliveries = bridge.deliveries();
    let routes_of = |id: &str| {
        let mut routes: Vec<String> = of_event(&deliveries, id).iter().map(|d| d.route.clone()).collect();
        routes.sort();
        routes
    };
    assert_eq!(
        routes_of("both"),
        ["all-to-first", "both-to-first-again", "both-to-second"],
        "{}",
        summary(&deliveries)
    );
    assert_eq!(routes_of("one"), ["all-to-first"], "{}", summary(&deliveries));
    assert!(deliveries.iter().all(|d| d.attempt == 1 && d.outcome.is_ok()), "{}", summary(&deliveries));
    let mut request_ids: Vec<&str> = deliveries.iter().map(|d| d.request_id.as_str()).collect();
    request_ids.sort();
    request_ids.dedup();
    assert_eq!(request_ids.len(), 4, "each copy is a request of its own");
    for delivery in &deliveries {
        let DeliveryOutcome::Ok { response } = &delivery.outcome else { unreachable!() };
        let function = if delivery.route == "both-to-second" { "second" } else { "first" };
        assert!(response["functionArn"].as_str().is_some_and(|arn| arn.ends_with(&format!(":function:{function}"))));
    }
    assert_eq!(first.invocations(3).await, 3);
    assert_eq!(second.invocations(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_event_is_tried_three_times_then_dead_lettered_as_lambda_does() {
    let (_aws, sqs, dlq) = moto_with_queue("echo-dlq").await;
    let function = Echo::start("echo").await;
    let config = AsyncInvokeConfig::default();
    let delays = config.retry_delays.clone();
    let bridge = LocalEventBridge::start(vec![route("to-echo", test_pattern(), &function, &dlq)], sqs.clone(), config)
        .await
        .expect("the bridge starts");

    // Sent as text with its own layout: the dead letter must carry it unchanged.
    let event = test_event("failing", "Failing", json!({"fail": "boom: the tag is ünparseable"}));
    let raw = serde_json::to_string_pretty(&event).expect("serialize");
    let (status, body) = post(&bridge.sink_url(), "POST", "/events", &raw).await;
    assert_eq!(status, 200, "{body}");
    bridge.wait_idle(TIMEOUT).await.expect("idle");

    let deliveries = bridge.deliveries();
    assert_eq!(deliveries.len(), 4, "{}", summary(&deliveries));
    for (index, delivery) in deliveries[..3].iter().enumerate() {
        assert_eq!(delivery.attempt, index as u32 + 1);
        assert_eq!(
            delivery.outcome,
            DeliveryOutcome::Error {
                error_type: "EchoFailure".to_string(),
                error_message: "boom: the tag is ünparseable".to_string()
            }
        );
    }
    let request_id = deliveries[0].request_id.clone();
    assert!(deliveries.iter().all(|d| d.request_id == request_id), "one request id for all attempts");
    let first_gap = deliveries[1].at - deliveries[0].at;
    let second_gap = deliveries[2].at - deliveries[1].at;
    assert!(first_gap >= delays[0], "the first retry came after {first_gap:?}, before {:?}", delays[0]);
    assert!(second_gap >= delays[1], "the second retry came after {second_gap:?}, before {:?}", delays[1]);
    let last = &deliveries[3];
    assert_eq!(last.attempt, 3, "the dead letter counts the attempts made");
    assert!(
        matches!(&last.outcome, DeliveryOutcome::DeadLettered { reason: DeadLetterReason::RetriesExhausted, queue_url, .. } if *queue_url == dlq),
        "{last:?}"
    );
    assert_eq!(function.invocations(3).await, 3);

    let messages = receive_all(&sqs, &dlq).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    assert_eq!(message.body(), Some(raw.as_str()), "the body is the event as it was sent");
    let DeliveryOutcome::DeadLettered { message_id, .. } = &last.outcome else { unreachable!() };
    assert_eq!(message.message_id(), Some(message_id.as_str()));
    let request = attribute(message, "RequestID");
    assert_eq!((request.data_type(), request.string_value()), ("String", Some(request_id.as_str())));
    let code = attribute(message, "ErrorCode");
    assert_eq!((code.data_type(), code.string_value()), ("Number", Some("200")));
    let error = attribute(message, "ErrorMessage");
    assert_eq!((error.data_type(), error.string_value()), ("String", Some("boom: the tag is ünparseable")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_to_one_target_keep_their_order() {
    let function = Echo::start("echo").await;
    let bridge = bridge_to(&function).await;

    let sink = bridge.sink_url();
    for n in 0..20 {
        let event = test_event(&format!("event-{n}"), "Numbered", json!({"echo": n}));
        let (status, body) = post(&sink, "POST", "/events", &event.to_string()).await;
        assert_eq!(status, 200, "{body}");
    }
    bridge.wait_idle(TIMEOUT).await.expect("idle");

    let deliveries = bridge.deliveries();
    let echoed: Vec<Value> = deliveries
        .iter()
        .map(|d| match &d.outcome {
            DeliveryOutcome::Ok { response } => response["echo"].clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(echoed, (0..20).map(|n| json!(n)).collect::<Vec<_>>());
    let ids: Vec<String> = deliveries.iter().filter_map(|d| d.event_id.clone()).collect();
    assert_eq!(ids, (0..20).map(|n| format!("event-{n}")).collect::<Vec<_>>());
    assert_eq!(function.invocations(20).await, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_events_retries_do_not_block_later_events() {
    let (_aws, sqs, dlq) = moto_with_queue("echo-dlq").await;
    let function = Echo::start("echo").await;
    let config = AsyncInvokeConfig {
        retry_delays: vec![Duration::from_secs(1), Duration::from_secs(1)],
        ..AsyncInvokeConfig::default()
    };
    let bridge = LocalEventBridge::start(vec![route("to-echo", test_pattern(), &function, &dlq)], sqs.clone(), config)
        .await
        .expect("the bridge starts");

    bridge.put_events(test_event("failing", "Failing", json!({"fail": "boom"}))).await.expect("accepted");
    for n in 1..=3 {
        bridge.put_events(test_event(&format!("ok-{n}"), "Fine", json!({"echo": n}))).await.expect("accepted");
    }
    bridge.wait_idle(TIMEOUT).await.expect("idle");

    let deliveries = bridge.deliveries();
    let order: Vec<(String, u32)> =
        deliveries.iter().map(|d| (d.event_id.clone().unwrap_or_default(), d.attempt)).collect();
    let expected: Vec<(String, u32)> =
        [("failing", 1), ("ok-1", 1), ("ok-2", 1), ("ok-3", 1), ("failing", 2), ("failing", 3), ("failing", 3)]
            .into_iter()
            .map(|(id, attempt)| (id.to_string(), attempt))
            .collect();
    assert_eq!(order, expected, "{}", summary(&deliveries));
    let first_failure = deliveries[0].at;
    for delivery in &deliveries[1..4] {
        assert!(delivery.outcome.is_ok(), "{delivery:?}");
        assert!(
            delivery.at - first_failure < Duration::from_secs(1),
            "{:?} waited {:?} behind the failing event",
            delivery.event_id,
            delivery.at - first_failure
        );
    }
    assert!(deliveries[6].outcome.is_dead_lettered(), "{:?}", deliveries[6]);
    let messages = receive_all(&sqs, &dlq).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let body: Value = serde_json::from_str(messages[0].body().unwrap_or_default()).expect("JSON");
    assert_eq!(body["id"], "failing");
    assert_eq!(function.invocations(6).await, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_too_old_when_its_turn_comes_is_dead_lettered_without_invoking() {
    let (_aws, sqs, dlq) = moto_with_queue("echo-dlq").await;
    // The function is not running yet: the first event waits for it in the Runtime API, the
    // second one in the bridge's queue, and grows old there.
    let mut function = Echo::stopped().await;
    let config = AsyncInvokeConfig { max_event_age: Duration::from_millis(500), ..AsyncInvokeConfig::default() };
    let bridge = LocalEventBridge::start(vec![route("to-echo", test_pattern(), &function, &dlq)], sqs.clone(), config)
        .await
        .expect("the bridge starts");

    let stale = test_event("second", "Numbered", json!({"echo": 2}));
    bridge.put_events(test_event("first", "Numbered", json!({"echo": 1}))).await.expect("accepted");
    bridge.put_events(stale.clone()).await.expect("accepted");
    tokio::time::sleep(Duration::from_secs(1)).await;
    function.spawn("echo");
    bridge.wait_idle(TIMEOUT).await.expect("idle");

    let deliveries = bridge.deliveries();
    assert_eq!(deliveries.len(), 2, "{}", summary(&deliveries));
    let first = of_event(&deliveries, "first");
    assert!(
        matches!(&first[..], [d] if d.attempt == 1 && matches!(&d.outcome, DeliveryOutcome::Ok { response } if response["echo"] == 1)),
        "{first:?}"
    );
    let second = of_event(&deliveries, "second");
    assert!(
        matches!(&second[..], [d] if d.attempt == 0
            && matches!(&d.outcome, DeliveryOutcome::DeadLettered { reason: DeadLetterReason::EventAgeExceeded, .. })),
        "{second:?}"
    );
    assert_eq!(function.invocations(1).await, 1, "the stale event is never invoked");

    let messages = receive_all(&sqs, &dlq).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    let body: Value = serde_json::from_str(message.body().unwrap_or_default()).expect("JSON");
    assert_eq!(body, stale);
    assert_eq!(attribute(message, "RequestID").string_value(), Some(second[0].request_id.as_str()));
    assert_eq!(attribute(message, "ErrorCode").string_value(), Some("200"));
    let error = attribute(message, "ErrorMessage").string_value().unwrap_or_default();
    assert!(error.contains("EventAgeExceeded"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_due_after_the_maximum_event_age_is_not_made() {
    let (_aws, sqs, dlq) = moto_with_queue("echo-dlq").await;
    let function = Echo::start("echo").await;
    let config = AsyncInvokeConfig {
        retry_delays: vec![Duration::from_millis(100), Duration::from_millis(1500)],
        max_event_age: Duration::from_secs(1),
        ..AsyncInvokeConfig::default()
    };
    let bridge = LocalEventBridge::start(vec![route("to-echo", test_pattern(), &function, &dlq)], sqs.clone(), config)
        .await
        .expect("the bridge starts");

    bridge.put_events(test_event("failing", "Failing", json!({"fail": "boom"}))).await.expect("accepted");
    bridge.wait_idle(TIMEOUT).await.expect("idle");

    let deliveries = bridge.deliveries();
    let attempts: Vec<u32> = deliveries.iter().map(|d| d.attempt).collect();
    assert_eq!(attempts, [1, 2, 2], "{}", summary(&deliveries));
    assert!(deliveries[..2].iter().all(|d| d.outcome.is_error()), "{}", summary(&deliveries));
    assert!(
        matches!(
            deliveries[2].outcome,
            DeliveryOutcome::DeadLettered { reason: DeadLetterReason::EventAgeExceeded, .. }
        ),
        "{:?}",
        deliveries[2]
    );
    assert_eq!(function.invocations(2).await, 2);
    assert_eq!(receive_all(&sqs, &dlq).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_refuses_what_it_cannot_take() {
    let function = Echo::start("echo").await;
    let bridge = bridge_to(&function).await;
    let sink = bridge.sink_url();

    let (status, body) = post(&sink, "POST", "/events", "this is not JSON").await;
    assert_eq!(status, 400, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("a JSON error");
    assert_eq!(answer["errorType"], "InvalidEvent");
    assert!(answer["errorMessage"].as_str().is_some_and(|m| m.contains("not JSON")), "{answer}");
    let (status, body) = post(&sink, "POST", "/events", r#"{"source": "tagrelay.test""#).await;
    assert_eq!(status, 400, "truncated JSON: {body}");
    let (status, body) = post(&sink, "POST", "/events", r#"[{"source": "tagrelay.test"}]"#).await;
    assert_eq!(status, 400, "an array is not an event: {body}");
    let (status, body) = post(&sink, "POST", "/events", "").await;
    assert_eq!(status, 400, "an empty body: {body}");
    let too_big = test_event("big", "Big", json!({"echo": "x".repeat(EVENT_SIZE_LIMIT)})).to_string();
    let (status, body) = post(&sink, "POST", "/events", &too_big).await;
    assert_eq!(status, 413, "{body}");
    let (status, _) = post(&sink, "GET", "/events", "").await;
    assert_eq!(status, 405);
    let (status, _) = post(&sink, "POST", "/2015-03-31/functions", "{}").await;
    assert_eq!(status, 404);
    assert_eq!(
        bridge.put_events(json!("an event")).await,
        Err(RejectedEvent("an event is a JSON object, not a string".to_string()))
    );

    bridge.wait_idle(TIMEOUT).await.expect("idle");
    assert!(bridge.events().is_empty(), "nothing was accepted: {:?}", bridge.events());
    assert!(bridge.deliveries().is_empty(), "{}", summary(&bridge.deliveries()));
    assert_eq!(function.invocations(0).await, 0);

    // And the sink still takes a good event afterwards.
    let (status, body) =
        post(&sink, "POST", "/events", &test_event("good", "Good", json!({"echo": 1})).to_string()).await;
    assert_eq!(status, 200, "{body}");
    bridge.wait_idle(TIMEOUT).await.expect("idle");
    assert_eq!(bridge.deliveries().len(), 1, "{}", summary(&bridge.deliveries()));
}
