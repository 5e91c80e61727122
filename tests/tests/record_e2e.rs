//! End to end: the release `record-image-tag` binary behind a Lambda Runtime API on loopback,
//! against moto server. Events go in; state is read back from moto.

use std::time::Duration;

use serde_json::{json, Value};
use tagrelay_testbed::local_aws::{create_repository, push_image, LocalAws};
use tagrelay_testbed::runtime_api::{lambda_binary, FunctionProcess, Outcome, RuntimeApi};
use tagrelay_tests::events::{ecr_image_action, ecr_push};

const WAIT: Duration = Duration::from_secs(30);

fn config() -> Value {
    json!({
        "environments": {
            "dev": { "codebuild_project": "tagrelay-dev" },
            "staging": { "codebuild_project": "tagrelay-staging" },
            "prod": { "codebuild_project": "tagrelay-prod" }
        },
        "services": {
            "my-api": { "deploy_on_push": ["dev", "staging"] },
            "worker": { "repository": "team/worker", "deploy_on_push": ["dev"], "order": "pushed-at", "tag_pattern": "^[a-z0-9-]+$" }
        }
    })
}

struct Pipeline {
    aws: LocalAws,
    api: RuntimeApi,
    function: FunctionProcess,
    ssm: aws_sdk_ssm::Client,
    ecr: aws_sdk_ecr::Client,
}

impl Pipeline {
    async fn start(config: &Value) -> Pipeline {
        let aws = LocalAws::start().await.expect("local AWS");
        let api = RuntimeApi::start().await.expect("runtime API");
        let mut env = aws.env();
        env.push(("TAGRELAY_CONFIG".into(), config.to_string()));
        let binary = lambda_binary("record-image-tag").expect("release binary (make lambdas-local)");
        let function = FunctionProcess::spawn(&binary, &api, &env).expect("function starts");
        let sdk = aws.sdk_config().await;
        Pipeline { ssm: aws_sdk_ssm::Client::new(&sdk), ecr: aws_sdk_ecr::Client::new(&sdk), aws, api, function }
    }

    async fn invoke(&self, event: Value) -> Outcome {
        self.api.invoke(event, WAIT).await.expect("invocation completes")
    }

    async fn respond(&self, event: Value) -> Value {
        match self.invoke(event).await {
            Outcome::Response(body) => body,
            Outcome::Error { error_type, error_message } => panic!("{error_type}: {error_message}"),
        }
    }

    /// (value, version) of a parameter, `None` when it does not exist.
    async fn parameter(&self, name: &str) -> Option<(String, i64)> {
        match self.ssm.get_parameter().name(name).send().await {
            Ok(out) => out.parameter().map(|p| (p.value().unwrap_or_default().to_owned(), p.version())),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_parameter_not_found()) => None,
            Err(err) => panic!("GetParameter {name}: {err:?}"),
        }
    }

    async fn push(&self, repository: &str, tag: &str) -> String {
        push_image(&self.ecr, repository, tag).await.expect("push")
    }

    /// The decision lines logged so far, after waiting up to a few seconds for `expected` of
    /// them: the function's stdout is read by another thread and may lag behind its response.
    async fn decision_lines(&self, expected: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let lines: Vec<Value> = self
                .function
                .log_lines()
                .iter()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .filter(|line| line["fields"]["decision"].is_string())
                .collect();
            if lines.len() >= expected || std::time::Instant::now() >= deadline {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn decisions(summary: &Value) -> Vec<(String, String, String)> {
    summary["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .map(|d| {
            let field = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
            (field("environment"), field("decision"), field("reason"))
        })
        .collect()
}

fn strs(items: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    items.iter().map(|(a, b, c)| ((*a).into(), (*b).into(), (*c).into())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_late_and_duplicate_events_leave_the_newest_tag() {
    let p = Pipeline::start(&config()).await;
    create_repository(&p.ecr, "my-api").await.expect("repository");
    let d1041 = p.push("my-api", "1041").await;
    let d1042 = p.push("my-api", "1042").await;
    let d1043 = p.push("my-api", "1043").await;

    let first = p.respond(ecr_push("my-api", "1041", &d1041)).await;
    assert_eq!(decisions(&first), strs(&[("dev", "write", "new_parameter"), ("staging", "write", "new_parameter")]));
    let newest = p.respond(ecr_push("my-api", "1043", &d1043)).await;
    assert_eq!(decisions(&newest), strs(&[("dev", "write", "newer"), ("staging", "write", "newer")]));

    // 1042's event arrives late, and 1043's is delivered twice.
    let late = p.respond(ecr_push("my-api", "1042", &d1042)).await;
    assert_eq!(decisions(&late), strs(&[("dev", "skip", "not_newer"), ("staging", "skip", "not_newer")]));
    let duplicate = p.respond(ecr_push("my-api", "1043", &d1043)).await;
    assert_eq!(decisions(&duplicate), strs(&[("dev", "skip", "unchanged"), ("staging", "skip", "unchanged")]));

    // Two writes each: neither the late nor the duplicate event bumped the version.
    assert_eq!(p.parameter("/my-api/dev/docker-image-tag").await, Some(("1043".into(), 2)));
    assert_eq!(p.parameter("/my-api/staging/docker-image-tag").await, Some(("1043".into(), 2)));
    assert_eq!(p.parameter("/my-api/prod/docker-image-tag").await, None, "prod is not deployed on push");

    let tags = p
        .ssm
        .list_tags_for_resource()
        .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
        .resource_id("/my-api/dev/docker-image-tag")
        .send()
        .await
        .expect("tags");
    let tags: Vec<(&str, &str)> = tags.tag_list().iter().map(|t| (t.key(), t.value())).collect();
    for tag in [("service", "my-api"), ("environment", "dev"), ("managed-by", "tagrelay")] {
        assert!(tags.contains(&tag), "{tag:?} in {tags:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_at_order_in_a_repository_with_a_slash() {
    let p = Pipeline::start(&config()).await;
    create_repository(&p.ecr, "team/worker").await.expect("repository");
    let older = p.push("team/worker", "abc-1").await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // push times must differ
    let newer = p.push("team/worker", "abc-0").await;

    let first = p.respond(ecr_push("team/worker", "abc-0", &newer)).await;
    assert_eq!(decisions(&first), strs(&[("dev", "write", "new_parameter")]));
    let late = p.respond(ecr_push("team/worker", "abc-1", &older)).await;
    assert_eq!(decisions(&late), strs(&[("dev", "skip", "not_newer")]));
    assert_eq!(p.parameter("/worker/dev/docker-image-tag").await, Some(("abc-0".into(), 1)));

    // A later push advances, although its tag sorts before the current one as text.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let latest = p.push("team/worker", "aaa-9").await;
    let advanced = p.respond(ecr_push("team/worker", "aaa-9", &latest)).await;
    assert_eq!(decisions(&advanced), strs(&[("dev", "write", "newer")]));
    assert_eq!(p.parameter("/worker/dev/docker-image-tag").await, Some(("aaa-9".into(), 2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semver_and_none_order_policies() {
    let config = json!({
        "environments": { "dev": {} },
        "services": {
            "lib": { "deploy_on_push": ["dev"], "order": "semver", "tag_pattern": "^v?[0-9.]+(-[a-z0-9.]+)?$" },
            "edge": { "deploy_on_push": ["dev"], "order": "none", "tag_pattern": "^[a-z]+$" }
        }
    });
    let p = Pipeline::start(&config).await;
    create_repository(&p.ecr, "lib").await.expect("repository");
    create_repository(&p.ecr, "edge").await.expect("repository");

    let mut last = None;
    for (tag, expected) in
        [("1.0.0-rc.1", "write"), ("1.0.0", "write"), ("1.0.0-rc.2", "skip"), ("v1.10.0", "write"), ("1.9.0", "skip")]
    {
        let digest = p.push("lib", tag).await;
        let summary = p.respond(ecr_push("lib", tag, &digest)).await;
        assert_eq!(decisions(&summary)[0].1, expected, "lib:{tag}: {summary}");
        if expected == "write" {
            last = Some(tag);
        }
    }
    assert_eq!(p.parameter("/lib/dev/docker-image-tag").await.map(|(v, _)| v).as_deref(), last);

    for tag in ["zulu", "alpha"] {
        let digest = p.push("edge", tag).await;
        p.respond(ecr_push("edge", tag, &digest)).await;
    }
    assert_eq!(p.parameter("/edge/dev/docker-image-tag").await, Some(("alpha".into(), 2)), "the last event wins");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_deleted_or_retagged_before_its_event_is_not_recorded() {
    let p = Pipeline::start(&config()).await;
    create_repository(&p.ecr, "my-api").await.expect("repository");
    let gone = p.push("my-api", "7").await;
    p.ecr
        .batch_delete_image()
        .repository_name("my-api")
        .image_ids(aws_sdk_ecr::types::ImageIdentifier::builder().image_tag("7").build())
        .send()
        .await
        .expect("delete");
    let summary = p.respond(ecr_push("my-api", "7", &gone)).await;
    assert_eq!(summary["skipped"], "image_gone", "{summary}");

    let first = p.push("my-api", "8").await;
    let _moved = p.push("my-api", "8").await;
    let summary = p.respond(ecr_push("my-api", "8", &first)).await;
    assert_eq!(summary["skipped"], "tag_moved", "{summary}");
    assert_eq!(p.parameter("/my-api/dev/docker-image-tag").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_not_acted_on_return_ok_with_the_reason() {
    let p = Pipeline::start(&config()).await;
    create_repository(&p.ecr, "my-api").await.expect("repository");
    let digest = p.push("my-api", "9").await;
    let cases = [
        (ecr_image_action("DELETE", "my-api", "9", &digest), "not_a_push"),
        (ecr_push("my-api", "", &digest), "empty_tag"),
        (ecr_push("my-api", "latest", &digest), "tag_pattern_mismatch"),
        (ecr_push("someone-elses", "9", &digest), "repository_not_configured"),
        (
            {
                let mut e = ecr_push("my-api", "9", &digest);
                e["detail"]["result"] = json!("FAILURE");
                e
            },
            "not_successful",
        ),
    ];
    for (event, reason) in cases {
        let summary = p.respond(event).await;
        assert_eq!(summary["skipped"], reason, "{summary}");
    }
    assert_eq!(p.parameter("/my-api/dev/docker-image-tag").await, None);

    // One INFO line per ignored event, saying why.
    let lines = p.decision_lines(5).await;
    assert_eq!(lines.len(), 5, "{lines:?}");
    for (line, reason) in lines.iter().zip([
        "not_a_push",
        "empty_tag",
        "tag_pattern_mismatch",
        "repository_not_configured",
        "not_successful",
    ]) {
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["decision"], "skip");
        assert_eq!(line["fields"]["reason"], reason);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_log_lines_are_json_with_the_documented_fields() {
    let p = Pipeline::start(&config()).await;
    create_repository(&p.ecr, "my-api").await.expect("repository");
    let digest = p.push("my-api", "100").await;
    p.respond(ecr_push("my-api", "100", &digest)).await;

    let lines = p.decision_lines(2).await;
    let dev = lines
        .iter()
        .find(|l| l["fields"]["environment"] == "dev")
        .unwrap_or_else(|| panic!("a line for dev in {lines:?}"));
    let fields = &dev["fields"];
    assert_eq!(fields["service"], "my-api");
    assert_eq!(fields["parameter"], "/my-api/dev/docker-image-tag");
    assert_eq!(fields["tag"], "100");
    assert_eq!(fields["decision"], "write");
    assert_eq!(fields["reason"], "new_parameter");
    assert_eq!(fields["previous"], "", "a new parameter has no previous value: {dev}");
    assert_eq!(lines.len(), 2, "one line per decision: {lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_event_is_an_invocation_error_naming_the_field_and_writes_nothing() {
    let p = Pipeline::start(&config()).await;
    create_repository(&p.ecr, "my-api").await.expect("repository");
    let digest = p.push("my-api", "5").await;
    let mut event = ecr_push("my-api", "5", &digest);
    event["detail"].as_object_mut().expect("object").remove("repository-name");
    match p.invoke(event).await {
        Outcome::Error { error_type, error_message } => {
            assert_eq!(error_type, "InvalidEvent");
            assert!(error_message.contains("repository-name"), "{error_message}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    match p.invoke(json!([1, 2, 3])).await {
        Outcome::Error { error_message, .. } => {
            assert!(error_message.contains("invalid event"), "{error_message}")
        }
        other => panic!("expected an error, got {other:?}"),
    }
    match p.api.invoke_raw(b"push my-api:5 please".to_vec(), WAIT).await.expect("completes") {
        Outcome::Error { error_message, .. } => assert!(error_message.contains("expected"), "{error_message}"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(p.parameter("/my-api/dev/docker-image-tag").await, None);

    // The function keeps serving after an error.
    let summary = p.respond(ecr_push("my-api", "5", &digest)).await;
    assert_eq!(decisions(&summary)[0].1, "write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_unreachable_is_an_invocation_error() {
    let p = Pipeline::start(&config()).await;
    drop(p.aws); // the local AWS goes away under the running function
    match p.api.invoke(ecr_push("my-api", "5", "sha256:x"), Duration::from_secs(120)).await.expect("completes") {
        Outcome::Error { error_type, error_message } => {
            assert_eq!(error_type, "AwsError");
            assert!(error_message.contains("DescribeImages"), "{error_message}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_stops_the_function_at_init() {
    let cases = [
        (
            json!({ "environments": {}, "services": { "api": { "deploy_on_push": ["dev"] } } }),
            "services.api.deploy_on_push[0]",
        ),
        (
            {
                let mut c = config();
                c["services"]["my-api"]["order"] = json!("fifo");
                c
            },
            "services.my-api.order",
        ),
        (
            {
                let mut c = config();
                c["parameter_template"] = json!("/{service}/image-tag");
                c
            },
            "parameter_template",
        ),
        (
            {
                let mut c = config();
                c["services"]["my-api"]["tag_pattern"] = json!("(");
                c
            },
            "services.my-api.tag_pattern",
        ),
    ];
    let binary = lambda_binary("record-image-tag").expect("release binary (make lambdas-local)");
    for (config, field) in cases {
        let api = RuntimeApi::start().await.expect("runtime API");
        let env = vec![("TAGRELAY_CONFIG".to_owned(), config.to_string()), ("AWS_REGION".into(), "us-east-1".into())];
        let mut function = FunctionProcess::spawn(&binary, &api, &env).expect("spawn");
        let diagnostic = api.init_error(WAIT).await.unwrap_or_else(|| panic!("{field}: no init error reported"));
        assert_eq!(diagnostic.error_type, "InvalidConfig");
        assert!(diagnostic.error_message.contains(field), "{field}: {}", diagnostic.error_message);
        let status = function.wait_exit(WAIT).await.expect("the process exits");
        assert!(!status.success(), "{field}: exits with an error");
        assert!(!api.has_polled(), "{field}: never asked for an event");
    }

    // Not set at all.
    let api = RuntimeApi::start().await.expect("runtime API");
    let _function = FunctionProcess::spawn(&binary, &api, &[]).expect("spawn");
    let diagnostic = api.init_error(WAIT).await.expect("init error");
    assert!(diagnostic.error_message.contains("TAGRELAY_CONFIG is not set"), "{}", diagnostic.error_message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_is_read_from_the_ssm_parameter_it_references_in_parts() {
    use tagrelay::aws::ssm::SsmParameterStore;

    let aws = LocalAws::start().await.expect("local AWS");
    let sdk = aws.sdk_config().await;
    // 400 services: far beyond a Lambda's 4 KB of variables, and beyond one parameter.
    let mut document = config();
    for n in 0..400 {
        document["services"][format!("payments-api-{n:04}")] = json!({ "deploy_on_push": ["dev"] });
    }
    let text = document.to_string();
    assert!(text.len() > 16_000, "{} bytes", text.len());
    let store = SsmParameterStore::from_sdk_config(&sdk);
    let version = tagrelay::document::write(&store, "/tagrelay/_config", &text, "tagrelay configuration")
        .await
        .expect("written in parts");

    let binary = lambda_binary("record-image-tag").expect("release binary (make lambdas-local)");
    let api = RuntimeApi::start().await.expect("runtime API");
    let mut env = aws.env();
    env.push(("TAGRELAY_CONFIG".into(), format!("ssm:/tagrelay/_config:{version}")));
    let function = FunctionProcess::spawn(&binary, &api, &env).expect("function starts");
    let ecr = aws_sdk_ecr::Client::new(&sdk);
    create_repository(&ecr, "my-api").await.expect("repository");
    let digest = push_image(&ecr, "my-api", "100").await.expect("push");
    match api.invoke(ecr_push("my-api", "100", &digest), WAIT).await.expect("invocation completes") {
        Outcome::Response(body) => {
            let written = decisions(&body);
            assert!(written.iter().any(|(e, d, _)| e == "dev" && d == "write"), "{body}");
        }
        Outcome::Error { error_type, error_message } => panic!("{error_type}: {error_message}"),
    }
    let line = function.wait_for_log_line("configuration loaded", WAIT).await.expect("the cold start's line");
    let line: Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(line["fields"]["source"], format!("ssm:/tagrelay/_config:{version}"), "{line}");
    assert_eq!(line["fields"]["services"], 402, "{line}");
    assert_eq!(line["fields"]["bytes"], text.len(), "{line}");

    // A version that does not exist: the function does not start, and says which reference.
    let api = RuntimeApi::start().await.expect("runtime API");
    let mut env = aws.env();
    env.push(("TAGRELAY_CONFIG".into(), "ssm:/tagrelay/_config:99".into()));
    let _function = FunctionProcess::spawn(&binary, &api, &env).expect("spawn");
    let diagnostic = api.init_error(WAIT).await.expect("init error");
    assert_eq!(diagnostic.error_type, "InvalidConfig");
    assert!(
        diagnostic.error_message.starts_with("TAGRELAY_CONFIG = ssm:/tagrelay/_config:99:"),
        "{}",
        diagnostic.error_message
    );
    assert!(!api.has_polled(), "never asked for an event");
}
