//! Injected AWS faults through the real SDK clients (aws-smithy-mocks): the handler returns an
//! error that names the call, after the SDK's own retries, and writes nothing it should not.

mod support;

use std::time::Duration;

use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
use aws_sdk_ecr::types::ImageDetail;
use aws_sdk_ssm::operation::get_parameters::GetParametersOutput;
use aws_sdk_ssm::operation::put_parameter::PutParameterOutput;
use aws_sdk_ssm::types::{Parameter, ParameterType};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use serde_json::json;
use support::{config, push_event};
use tagrelay::aws::ecr::EcrImageRegistry;
use tagrelay::aws::ssm::SsmParameterStore;
use tagrelay::handler::Handler;
use tagrelay::record::Outcome;
use tagrelay::record::{RecordError, Recorder, SkipReason};

const ATTEMPTS: u32 = 3;
const DIGEST: &str = "sha256:aaa";

fn aws_error(code: &str) -> String {
    json!({ "__type": code, "message": format!("{code} injected by the test") }).to_string()
}

fn retry() -> aws_sdk_ssm::config::retry::RetryConfig {
    aws_sdk_ssm::config::retry::RetryConfig::standard()
        .with_max_attempts(ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(5))
}

fn ssm(rules: &[&Rule]) -> SsmParameterStore {
    let client = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, rules.iter().copied(), |c| c.retry_config(retry()));
    SsmParameterStore::new(client)
}

fn ecr(rules: &[&Rule]) -> EcrImageRegistry {
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, rules.iter().copied(), |c| c.retry_config(retry()));
    EcrImageRegistry::new(client)
}

fn recorder(ssm: SsmParameterStore, ecr: EcrImageRegistry) -> Recorder<SsmParameterStore, EcrImageRegistry> {
    let config = config(json!({
        "environments": { "dev": { "codebuild_project": "tagrelay-dev" } },
        "services": { "my-api": { "deploy_on_push": ["dev"] } }
    }));
    Recorder::new(config, ssm, ecr)
}

fn current(value: &str) -> Rule {
    let value = value.to_owned();
    mock!(aws_sdk_ssm::Client::get_parameters).then_output(move || {
        GetParametersOutput::builder()
            .parameters(
                Parameter::builder()
                    .name("/my-api/dev/docker-image-tag")
                    .value(&value)
                    .version(4)
                    .r#type(ParameterType::String)
                    .build(),
            )
            .build()
    })
}

fn image_present() -> Rule {
    mock!(aws_sdk_ecr::Client::describe_images).then_output(|| {
        DescribeImagesOutput::builder()
            .image_details(ImageDetail::builder().image_digest(DIGEST).image_tags("1043").build())
            .build()
    })
}

fn put_ok() -> Rule {
    mock!(aws_sdk_ssm::Client::put_parameter).then_output(|| PutParameterOutput::builder().version(5).build())
}

#[tokio::test]
async fn throttling_that_outlasts_the_retries_is_an_error_and_nothing_is_written() {
    let throttled = mock!(aws_sdk_ssm::Client::get_parameters)
        .sequence()
        .http_status(400, Some(aws_error("ThrottlingException")))
        .times(ATTEMPTS as usize + 5)
        .build();
    let put = put_ok();
    let describe = image_present();
    let recorder = recorder(ssm(&[&throttled, &put]), ecr(&[&describe]));

    let err = recorder.handle(&push_event("my-api", "1043", DIGEST)).await.expect_err("must fail");

    match &err {
        RecordError::Aws(aws) => {
            assert_eq!(aws.operation, "GetParameters");
            assert_eq!(aws.code.as_deref(), Some("ThrottlingException"));
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(throttled.num_calls(), ATTEMPTS as usize, "the SDK retried throttling up to its limit");
    assert_eq!(put.num_calls(), 0, "nothing written");
}

#[tokio::test]
async fn throttling_within_the_retries_is_absorbed() {
    let flaky = mock!(aws_sdk_ssm::Client::get_parameters)
        .sequence()
        .http_status(400, Some(aws_error("ThrottlingException")))
        .times(ATTEMPTS as usize - 1)
        .output(|| {
            GetParametersOutput::builder()
                .parameters(
                    Parameter::builder()
                        .name("/my-api/dev/docker-image-tag")
                        .value("1042")
                        .version(4)
                        .r#type(ParameterType::String)
                        .build(),
                )
                .build()
        })
        .build();
    let put = put_ok();
    let describe = image_present();
    let recorder = recorder(ssm(&[&flaky, &put]), ecr(&[&describe]));

    let summary = recorder
        .handle(&push_event("my-api", "1043", DIGEST))
        .await
        .expect("retried to success")
        .push()
        .expect("a push summary");
    assert!(matches!(summary.decisions[0].outcome, Outcome::Write { version: 5, .. }));
    assert_eq!(put.num_calls(), 1);
}

#[tokio::test]
async fn access_denied_on_write_is_an_error_naming_call_and_parameter() {
    let get = current("1042");
    let denied = mock!(aws_sdk_ssm::Client::put_parameter)
        .sequence()
        .http_status(400, Some(aws_error("AccessDeniedException")))
        .repeatedly()
        .build();
    let describe = image_present();
    let recorder = recorder(ssm(&[&get, &denied]), ecr(&[&describe]));

    let err = recorder.handle(&push_event("my-api", "1043", DIGEST)).await.expect_err("must fail");

    let message = err.to_string();
    assert!(matches!(err, RecordError::Writes { .. }), "{message}");
    assert!(message.contains("PutParameter /my-api/dev/docker-image-tag"), "{message}");
    assert!(message.contains("AccessDeniedException"), "{message}");
    assert_eq!(denied.num_calls(), 1, "access denied is not retried");
}

#[tokio::test]
async fn access_denied_on_ecr_is_an_error_and_nothing_is_written() {
    let get = current("1042");
    let put = put_ok();
    let denied = mock!(aws_sdk_ecr::Client::describe_images)
        .sequence()
        .http_status(400, Some(aws_error("AccessDeniedException")))
        .repeatedly()
        .build();
    let recorder = recorder(ssm(&[&get, &put]), ecr(&[&denied]));

    let err = recorder.handle(&push_event("my-api", "1043", DIGEST)).await.expect_err("must fail");
    assert!(err.to_string().contains("DescribeImages my-api:1043"), "{err}");
    assert_eq!(put.num_calls(), 0);
}

#[tokio::test]
async fn an_image_ecr_no_longer_has_is_skipped_not_an_error() {
    let get = current("1042");
    let put = put_ok();
    let not_found = mock!(aws_sdk_ecr::Client::describe_images)
        .sequence()
        .http_status(400, Some(aws_error("ImageNotFoundException")))
        .build();
    let recorder = recorder(ssm(&[&get, &put]), ecr(&[&not_found]));

    let summary =
        recorder.handle(&push_event("my-api", "1043", DIGEST)).await.expect("skipped").push().expect("a push summary");
    assert_eq!(summary.skipped, Some(SkipReason::ImageGone));
    assert_eq!(get.num_calls(), 0, "no parameter read for a stale event");
    assert_eq!(put.num_calls(), 0);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_an_error_after_retries() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .credentials_provider(aws_sdk_ssm::config::SharedCredentialsProvider::new(
            aws_sdk_ssm::config::Credentials::new("testing", "testing", None, None, "test"),
        ))
        .retry_config(retry())
        .sleep_impl(aws_smithy_async::rt::sleep::default_async_sleep().expect("tokio sleep"))
        .build();
    let recorder = recorder(SsmParameterStore::from_sdk_config(&sdk), EcrImageRegistry::from_sdk_config(&sdk));

    let err = recorder.handle(&push_event("my-api", "1043", DIGEST)).await.expect_err("must fail");
    assert!(matches!(err, RecordError::Aws(ref e) if e.operation == "DescribeImages"), "{err}");
    assert!(err.to_string().to_lowercase().contains("connect"), "{err}");
}
