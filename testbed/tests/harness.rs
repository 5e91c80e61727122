//! Tests of the test bed itself: moto, the Runtime API emulator, and function processes.
//!
//! The moto tests need `make tools`; the emulator tests run the `echo` example of this crate,
//! which `cargo test -p tagrelay-testbed` builds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_ssm::types::ParameterType;
use serde_json::{json, Value};
use tagrelay_testbed::http_client;
use tagrelay_testbed::{
    create_repository, lambda_binary, push_image, Diagnostic, FunctionProcess, HarnessError, LocalAws, Outcome,
    RuntimeApi,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(20);

fn echo_binary() -> PathBuf {
    tagrelay_testbed::runtime_api::example_binary("echo").expect("the echo example")
}

async fn start_echo(env: &[(String, String)]) -> (RuntimeApi, FunctionProcess) {
    let api = RuntimeApi::start().await.expect("Runtime API starts");
    let function = FunctionProcess::spawn(&echo_binary(), &api, env).expect("echo spawns");
    (api, function)
}

/// One raw HTTP/1.1 request; returns the status code and body.
async fn raw_request(address: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    http_client::request(address, method, path, body).await.expect("an HTTP answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_answers_an_ssm_round_trip() {
    let started = Instant::now();
    let aws = LocalAws::start().await.expect("moto starts");
    eprintln!(
        "moto_server answered after {:?} (LocalAws::start returned after {:?})",
        aws.startup_time(),
        started.elapsed()
    );
    assert!(aws.endpoint().starts_with("http://127.0.0.1:"));
    assert_eq!(aws.endpoint(), format!("http://127.0.0.1:{}", aws.port()));

    let ssm = aws_sdk_ssm::Client::new(&aws.sdk_config().await);
    let first_call = Instant::now();
    ssm.put_parameter()
        .name("/tagrelay/dev/app/image-tag")
        .value("1.2.3")
        .r#type(ParameterType::String)
        .send()
        .await
        .expect("PutParameter");
    eprintln!("moto's first SSM call took {:?}", first_call.elapsed());
    let got = ssm.get_parameter().name("/tagrelay/dev/app/image-tag").send().await.expect("GetParameter");
    let parameter = got.parameter().expect("a parameter");
    assert_eq!(parameter.value(), Some("1.2.3"));
    assert_eq!(parameter.version(), 1);

    let missing = ssm.get_parameter().name("/tagrelay/none").send().await;
    let err = missing.expect_err("a missing parameter is an error");
    assert!(err.as_service_error().is_some_and(|e| e.is_parameter_not_found()), "{err:?}");

    let env = aws.env();
    let get = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    assert_eq!(get("AWS_ENDPOINT_URL"), Some(aws.endpoint()));
    assert_eq!(get("AWS_REGION"), Some("us-east-1"));
    assert_eq!(get("AWS_DEFAULT_REGION"), Some("us-east-1"));
    assert!(get("AWS_ACCESS_KEY_ID").is_some() && get("AWS_SECRET_ACCESS_KEY").is_some());
    assert_eq!(get("AWS_EC2_METADATA_DISABLED"), Some("true"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_ecr_push_and_describe() {
    let aws = LocalAws::start().await.expect("moto starts");
    let warm_up = Instant::now();
    aws.warm_up().await.expect("moto loads SSM and ECR");
    eprintln!("moto warm-up took {:?}", warm_up.elapsed());
    let ecr = aws_sdk_ecr::Client::new(&aws.sdk_config().await);
    create_repository(&ecr, "team/app").await.expect("a repository name may contain '/'");

    let first = push_image(&ecr, "team/app", "1.0.0").await.expect("push");
    let second = push_image(&ecr, "team/app", "1.1.0").await.expect("push");
    for digest in [&first, &second] {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        assert_eq!(hex.len(), 64, "{digest}");
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{digest}");
    }
    assert_ne!(first, second, "each push is a new image");

    let described = ecr
        .describe_images()
        .repository_name("team/app")
        .image_ids(aws_sdk_ecr::types::ImageIdentifier::builder().image_tag("1.1.0").build())
        .send()
        .await
        .expect("DescribeImages");
    let details = described.image_details();
    assert_eq!(details.len(), 1);
    assert_eq!(details[0].image_digest(), Some(second.as_str()));
    assert_eq!(details[0].image_tags(), ["1.1.0".to_string()]);
    assert!(details[0].image_pushed_at().is_some());

    // Pushing a tag again moves it to the new image.
    let third = push_image(&ecr, "team/app", "1.0.0").await.expect("push");
    assert_ne!(third, first);
    let listed = ecr.list_images().repository_name("team/app").send().await.expect("ListImages");
    let tagged_1_0_0: Vec<_> = listed
        .image_ids()
        .iter()
        .filter(|id| id.image_tag() == Some("1.0.0"))
        .map(|id| id.image_digest().unwrap_or_default().to_string())
        .collect();
    assert_eq!(tagged_1_0_0, vec![third]);

    let missing = ecr
        .describe_images()
        .repository_name("team/app")
        .image_ids(aws_sdk_ecr::types::ImageIdentifier::builder().image_tag("9.9.9").build())
        .send()
        .await
        .expect_err("an unknown tag is an error");
    assert!(missing.as_service_error().is_some_and(|e| e.is_image_not_found_exception()), "{missing:?}");

    // moto answers this with a 500 (AWS: RepositoryNotFoundException), which the SDK retries.
    let no_repo = push_image(&ecr, "team/none", "1.0.0").await;
    assert!(no_repo.is_err(), "pushing to a missing repository fails");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_process_is_gone_after_drop() {
    let aws = LocalAws::start().await.expect("moto starts");
    let pid = aws.pid().expect("moto is running");
    let proc_entry = PathBuf::from(format!("/proc/{pid}"));
    assert!(proc_entry.exists(), "moto runs as {pid}");
    let port = aws.port();
    drop(aws);
    assert!(!proc_entry.exists(), "moto ({pid}) is killed and reaped by Drop");
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err(), "nothing listens on {port} any more");
}

#[tokio::test]
async fn missing_moto_says_how_to_get_it() {
    let path = Path::new("/nonexistent/.venv/bin/moto_server");
    let err = LocalAws::start_at(path).await.err().expect("no moto_server there");
    assert!(matches!(err, HarnessError::MotoNotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "moto_server not found at /nonexistent/.venv/bin/moto_server: run `make tools` (make test does it)"
    );
}

#[test]
fn missing_lambda_binary_says_how_to_build_it() {
    let err = lambda_binary("no-such-function").expect_err("not built");
    let message = err.to_string();
    assert!(message.contains("no-such-function/bootstrap") && message.contains("make lambdas-local"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_delivers_events_and_returns_responses() {
    let (api, function) = start_echo(&[]).await;
    let started = Instant::now();
    api.wait_first_poll(TIMEOUT).await.expect("echo polls /next");
    eprintln!("echo's first poll after {:?}", started.elapsed());
    assert!(api.has_polled());
    assert_eq!(api.function_name(), "echo");

    let mut request_ids = Vec::new();
    let mut traces = Vec::new();
    for n in 0..3 {
        let before_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
        let outcome = api.invoke(json!({"echo": {"n": n, "text": "héllo"}}), TIMEOUT).await.expect("an answer");
        let Outcome::Response(body) = outcome else {
            panic!("expected a response, got {outcome:?}");
        };
        assert_eq!(body["echo"], json!({"n": n, "text": "héllo"}));
        assert_eq!(body["functionArn"], json!(api.function_arn()));
        assert_eq!(api.function_arn(), "arn:aws:lambda:us-east-1:123456789012:function:echo");
        let deadline = body["deadlineMs"].as_u64().expect("a deadline");
        assert!(deadline >= before_ms + TIMEOUT.as_millis() as u64);
        assert!(body["traceId"].as_str().is_some_and(|t| t.starts_with("Root=1-")));
        let request_id = body["requestId"].as_str().expect("an id").to_string();
        assert_eq!(request_id.len(), 36, "{request_id}");
        traces.push((request_id.clone(), body["traceId"].as_str().unwrap_or_default().to_owned()));
        request_ids.push(request_id);
    }
    // The log of invocations: the ids and trace headers the function got, in order, with times.
    let invocations = api.invocations();
    let logged: Vec<(String, String)> =
        invocations.iter().map(|i| (i.request_id.clone(), i.trace_id.clone())).collect();
    assert_eq!(logged, traces);
    for invocation in &invocations {
        assert!(invocation.succeeded, "{invocation:?}");
        assert!(invocation.queued_at <= invocation.started_at, "{invocation:?}");
        assert!(invocation.duration().is_some_and(|d| d < TIMEOUT), "{invocation:?}");
    }
    request_ids.sort();
    request_ids.dedup();
    assert_eq!(request_ids.len(), 3, "every invocation has its own id");

    let line = function.wait_for_log_line(&request_ids[0], TIMEOUT).await.expect("the handler's log line is captured");
    let line: Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(line["message"], "echo invoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_errors_come_back_as_outcome_error() {
    let (api, _function) = start_echo(&[]).await;
    let outcome = api.invoke(json!({"fail": "no such repository"}), TIMEOUT).await.expect("an answer");
    assert_eq!(
        outcome,
        Outcome::Error { error_type: "EchoFailure".into(), error_message: "no such repository".into() }
    );
    // The runtime goes on polling after an error.
    let outcome = api.invoke(json!({"echo": 1, "detail-type": "Scheduled Event"}), TIMEOUT).await.expect("an answer");
    assert!(matches!(&outcome, Outcome::Response(body) if body["echo"] == json!(1)), "{outcome:?}");
    let answered: Vec<(bool, bool, Option<String>)> =
        api.invocations().iter().map(|i| (i.succeeded, i.ended_at.is_some(), i.detail_type.clone())).collect();
    assert_eq!(
        answered,
        [(false, true, None), (true, true, Some("Scheduled Event".into()))],
        "the error is logged as answered, not succeeded; an event's detail-type is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_errors_are_captured() {
    let env = [("ECHO_INIT_ERROR".to_string(), "bad config".to_string())];
    let (api, mut function) = start_echo(&env).await;
    let expected = Diagnostic { error_type: "EchoInitError".into(), error_message: "bad config".into() };
    assert_eq!(api.init_error(TIMEOUT).await, Some(expected.clone()));
    let status = function.wait_exit(TIMEOUT).await.expect("echo exits");
    assert_eq!(status.code(), Some(1));
    assert!(function.log_lines().iter().any(|line| line.contains("init failed: bad config")));

    match api.wait_first_poll(TIMEOUT).await {
        Err(HarnessError::FunctionInitFailed(diagnostic)) => assert_eq!(diagnostic, expected),
        other => panic!("expected FunctionInitFailed, got {other:?}"),
    }
    let started = Instant::now();
    match api.invoke(json!({}), TIMEOUT).await {
        Err(HarnessError::FunctionInitFailed(diagnostic)) => assert_eq!(diagnostic, expected),
        other => panic!("expected FunctionInitFailed, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1), "no waiting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_init_error_and_no_poll_time_out() {
    let api = RuntimeApi::start().await.expect("Runtime API starts");
    assert_eq!(api.init_error(Duration::from_millis(100)).await, None);
    assert!(matches!(api.wait_first_poll(Duration::from_millis(100)).await, Err(HarnessError::Timeout { .. })));
    match api.invoke(json!({"a": 1}), Duration::from_millis(200)).await {
        Err(HarnessError::Timeout { after, .. }) => assert_eq!(after, Duration::from_millis(200)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The timed-out invocation was withdrawn: a poll now gets nothing.
    let late_poll = tokio::time::timeout(
        Duration::from_millis(300),
        raw_request(&api.address(), "GET", "/2018-06-01/runtime/invocation/next", ""),
    )
    .await;
    assert!(late_poll.is_err(), "got {late_poll:?}");
    let (status, _) =
        raw_request(&api.address(), "POST", "/2018-06-01/runtime/invocation/unknown-id/response", "{}").await;
    assert_eq!(status, 400, "an unknown request id is refused");
    let (status, body) = raw_request(&api.address(), "GET", "/2018-06-01/nothing", "").await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_speaks_the_protocol_to_a_plain_client() {
    let api = RuntimeApi::start().await.expect("Runtime API starts");
    let address = api.address();
    let poll = tokio::spawn({
        let address = address.clone();
        async move {
            let mut stream = TcpStream::connect(&address).await.expect("connect");
            let request = format!(
                "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: {address}\r\n\
                 Connection: close\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.expect("write");
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.expect("read");
            answer
        }
    });
    api.wait_first_poll(TIMEOUT).await.expect("polled");
    let invoke = api.invoke(json!({"detail": {"image-tag": "1.2.3"}}), TIMEOUT);
    let answer_later = async {
        let answer = poll.await.expect("the poll finishes");
        let (head, body) = answer.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let header = |name: &str| {
            head.lines()
                .find_map(|line| {
                    let (key, value) = line.split_once(':')?;
                    key.eq_ignore_ascii_case(name).then(|| value.trim().to_string())
                })
                .unwrap_or_else(|| panic!("no {name} in {head}"))
        };
        let request_id = header("Lambda-Runtime-Aws-Request-Id");
        header("Lambda-Runtime-Deadline-Ms").parse::<u64>().expect("a deadline in ms");
        assert_eq!(header("Lambda-Runtime-Invoked-Function-Arn"), api.function_arn());
        assert!(header("Lambda-Runtime-Trace-Id").starts_with("Root=1-"));
        let event: Value = serde_json::from_str(body).expect("the event as JSON");
        assert_eq!(event, json!({"detail": {"image-tag": "1.2.3"}}));

        let (status, _) = raw_request(
            &address,
            "POST",
            &format!("/2018-06-01/runtime/invocation/{request_id}/error"),
            r#"{"errorType":"Boom","errorMessage":"it broke"}"#,
        )
        .await;
        assert_eq!(status, 202);
        let (status, _) =
            raw_request(&address, "POST", &format!("/2018-06-01/runtime/invocation/{request_id}/response"), "{}").await;
        assert_eq!(status, 400, "an invocation is answered once");
    };
    let (outcome, ()) = tokio::join!(invoke, answer_later);
    assert_eq!(
        outcome.expect("an answer"),
        Outcome::Error { error_type: "Boom".into(), error_message: "it broke".into() }
    );
}
