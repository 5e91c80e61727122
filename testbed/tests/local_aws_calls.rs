//! The local AWS counts every AWS request (testbed/local_aws/call_counts.py): by service and
//! operation in each protocol the SDKs speak to it, by the invocation's trace header, with a reset;
//! and it creates parameters in bulk without counting them. Real HTTP, the real SDK.

use std::collections::BTreeMap;

use aws_sdk_ssm::types::ParameterType;
use tagrelay_testbed::http_client;
use tagrelay_testbed::local_aws::{CallCounts, LocalAws};

const TRACE: &str = "Root=1-5f84c7a1-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=0";

fn calls(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(operation, n)| ((*operation).to_owned(), *n)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_counted_by_service_operation_and_trace() {
    let aws = LocalAws::start().await.expect("the local AWS starts");
    aws.warm_up().await.expect("warm-up");
    let before = aws.reset_call_counts().await.expect("reset");
    // warm_up's three calls, in three protocols' worth of services.
    assert_eq!(
        before.calls,
        calls(&[("codebuild:ListProjects", 1), ("ecr:DescribeRepositories", 1), ("ssm:DescribeParameters", 1)])
    );
    assert!(before.by_trace.is_empty(), "no SDK call of the test bed carries a trace header");

    let sdk = aws.sdk_config().await;
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    // JSON protocol (X-Amz-Target), a refused call included: it costs a transaction too.
    ssm.put_parameter().name("/a/dev/tag").value("1").r#type(ParameterType::String).send().await.expect("put");
    ssm.get_parameters().names("/a/dev/tag").send().await.expect("get");
    ssm.get_parameter().name("/no/such").send().await.expect_err("no such parameter");
    // A function's call: the SDK in a Lambda function sends the invocation's trace header.
    ssm.get_parameters()
        .names("/a/dev/tag")
        .customize()
        .mutate_request(|request| {
            request.headers_mut().insert("x-amzn-trace-id", TRACE);
        })
        .send()
        .await
        .expect("get, traced");
    // Query protocol (Action in a form body), as moto's CloudWatch speaks it.
    aws.create_alarm("dev-5xx").await.expect("PutMetricAlarm");
    aws.set_alarm_state("dev-5xx", "ALARM", "test").await.expect("SetAlarmState");
    // RPC v2 CBOR (the operation in the path), as the Rust SDK speaks to CloudWatch: counted
    // before the CloudWatch front refuses this unsigned, empty request.
    let address = format!("127.0.0.1:{}", aws.port());
    let path = "/service/GraniteServiceVersion20100801/operation/DescribeAlarms";
    let (status, _) = http_client::request(&address, "POST", path, "").await.expect("an answer");
    assert_ne!(status, 200);
    // Neither moto's own API nor the control endpoints are AWS requests.
    http_client::request(&address, "GET", "/moto-api/data.json", "").await.expect("moto's API");

    let counted = aws.call_counts().await.expect("counts");
    assert_eq!(
        counted.calls,
        calls(&[
            ("monitoring:PutMetricAlarm", 1),
            ("monitoring:SetAlarmState", 1),
            ("ssm:GetParameter", 1),
            ("ssm:GetParameters", 2),
            ("ssm:PutParameter", 1),
            ("unsigned:DescribeAlarms", 1),
        ])
    );
    assert_eq!(counted.total(), 7);
    assert_eq!(counted.get("ssm", "GetParameters"), 2);
    assert_eq!(counted.by_trace.keys().collect::<Vec<_>>(), [TRACE]);
    assert_eq!(counted.of_trace(TRACE), calls(&[("ssm:GetParameters", 1)]));
    assert_eq!(counted.untraced().get("ssm:GetParameters"), Some(&1), "the other GetParameters had no trace");

    // Reset answers what it cleared, and counting starts again at zero.
    assert_eq!(aws.reset_call_counts().await.expect("reset"), counted);
    assert_eq!(aws.call_counts().await.expect("counts"), CallCounts::default());
    // The query protocol's body reached moto intact.
    let alarm = aws.cloudwatch("DescribeAlarms", &[("AlarmNames.member.1", "dev-5xx")]).await.expect("describe");
    assert!(alarm.contains("<StateValue>ALARM</StateValue>"), "{alarm}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_in_bulk_are_created_inside_moto_and_not_counted() {
    let aws = LocalAws::start().await.expect("the local AWS starts");
    aws.warm_up().await.expect("warm-up");
    // More than one control request's worth.
    let parameters: Vec<(String, String)> =
        (0..2_500).map(|i| (format!("/service-{i}/dev/docker-image-tag"), "initial".to_owned())).collect();
    aws.reset_call_counts().await.expect("reset");
    aws.put_parameters(&parameters).await.expect("bulk put");
    assert_eq!(aws.call_counts().await.expect("counts"), CallCounts::default());

    let ssm = aws_sdk_ssm::Client::new(&aws.sdk_config().await);
    let names = ["/service-0/dev/docker-image-tag", "/service-2499/dev/docker-image-tag"];
    let got = ssm.get_parameters().set_names(Some(names.map(String::from).to_vec())).send().await.expect("get");
    assert!(got.invalid_parameters().is_empty(), "{:?}", got.invalid_parameters());
    for parameter in got.parameters() {
        assert_eq!((parameter.value(), parameter.version()), (Some("initial"), 1), "{parameter:?}");
    }
    // Again: overwritten, as Terraform would.
    aws.put_parameters(&parameters[..1]).await.expect("bulk put again");
    let again = ssm.get_parameter().name(names[0]).send().await.expect("get");
    assert_eq!(again.parameter().map(|p| p.version()), Some(2));

    let refused = aws.put_parameters(&[("/x".to_owned(), String::new())]).await.expect_err("an empty value");
    assert!(refused.to_string().contains("non-empty"), "{refused}");
}
