//! The adapters verification uses, against the local AWS (moto plus the launcher's ECS
//! deployments): real HTTP, the real SDK. DescribeServices in chunks of 10 with missing services
//! named, the PRIMARY deployment's rollout state and task definition image; the release record
//! written in the Intelligent-Tiering tier and read back with its history; CloudWatch alarms
//! (the launcher's RPC v2 CBOR front, the SDK promote uses): metric and composite alarms in
//! chunks of 100, their transitions and history, one "CloudWatch Alarm State Change" per state
//! value change.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_cloudwatch::error::ProvideErrorMetadata;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::StateValue;
use serde_json::Value;
use tagrelay::aws::cloudwatch::CloudWatchAlarms;
use tagrelay::aws::ecs::EcsServiceReader;
use tagrelay::aws::ssm::SsmParameterStore;
use tagrelay::deploy::release::{releases, Release};
use tagrelay::event::cloudwatch::parse_alarm_state_change;
use tagrelay::ports::{
    AlarmState, AlarmTransition, Alarms, EcsServices, ParameterHistory, ParameterStore, RecordStore, RolloutState,
    ServiceState,
};
use tagrelay_testbed::local_aws::{LocalAws, LocalAwsOptions};
use tagrelay_testbed::local_ecs::{ecr_repository_uri, EcsService};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLUSTER: &str = "dev";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_describes_services_in_chunks_and_names_what_is_missing() {
    let aws = LocalAws::start().await.expect("local AWS");
    aws.set_ecs_behaviour(Duration::from_millis(200), Duration::from_millis(200)).await.expect("behaviour");
    aws.create_ecs_cluster(CLUSTER).await.expect("cluster");
    let image = format!("{}:41", ecr_repository_uri("my-api"));
    let service = EcsService { container: "app".into(), ..EcsService::new(CLUSTER, "api", &image) };
    aws.create_ecs_service(&service, Duration::from_secs(20)).await.expect("service");
    let reader = EcsServiceReader::from_sdk_config(&aws.sdk_config().await);

    // 12 names: more than one DescribeServices call may take (the local ECS refuses 11, as ECS does).
    let mut names: Vec<String> = (0..11).map(|n| format!("gone-{n:02}")).collect();
    names.push("api".into());
    let states = reader.describe_services(CLUSTER, &names).await.expect("described");
    assert_eq!(states.len(), 12);
    assert!(
        matches!(&states["gone-00"], ServiceState::Missing { reason } if reason.starts_with("MISSING")),
        "{states:?}"
    );
    let ServiceState::Found { deployments } = &states["api"] else { panic!("api: {:?}", states["api"]) };
    let primary = deployments.iter().find(|d| d.is_primary()).expect("a PRIMARY deployment");
    assert_eq!(primary.rollout_state, Some(RolloutState::Completed));
    assert!(primary.id.starts_with("ecs-svc/"), "{primary:?}");
    assert!(primary.updated_at.is_some());

    assert_eq!(reader.container_image(&primary.task_definition, "app").await.expect("read"), Some(image));
    assert_eq!(reader.container_image(&primary.task_definition, "sidecar").await.expect("read"), None);
    let err = reader.container_image("nope:1", "app").await.expect_err("no such task definition");
    assert_eq!(err.operation, "DescribeTaskDefinition");
    let err = reader.describe_services("no-such-cluster", &["api".into()]).await.expect_err("no such cluster");
    assert_eq!(err.code.as_deref(), Some("ClusterNotFoundException"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_records_are_written_and_read_back_with_their_history() {
    let aws = LocalAws::start().await.expect("local AWS");
    let store = SsmParameterStore::from_sdk_config(&aws.sdk_config().await);
    let parameter = "/tagrelay/dev/verified";
    let release = |fingerprint: &str, build: &str| Release {
        fingerprint: fingerprint.into(),
        tags: [("my-api".to_owned(), "42".to_owned())].into(),
        digests: [("my-api".to_owned(), "sha256:aaa".to_owned())].into(),
        build: build.into(),
        verified_at: "2026-11-30T12:40:31Z".into(),
    };
    let first = release("/my-api/dev/docker-image-tag=2@73475cb4", "tagrelay-dev:1");
    let second = release("/my-api/dev/docker-image-tag=3@73475cb4", "tagrelay-dev:2");
    assert_eq!(store.put_record(parameter, &first.document(), "tagrelay: releases").await.expect("created"), 1);
    assert_eq!(store.put_record(parameter, &second.document(), "tagrelay: releases").await.expect("written"), 2);
    // A racing writer's copy of the same record.
    assert_eq!(store.put_record(parameter, &second.document(), "tagrelay: releases").await.expect("written"), 3);

    // Written in the Intelligent-Tiering tier: a record may outgrow a Standard parameter's 4 KB.
    let ssm = aws_sdk_ssm::Client::new(&aws.sdk_config().await);
    let history = ssm.get_parameter_history().name(parameter).send().await.expect("history");
    let tiers: Vec<String> =
        history.parameters().iter().map(|v| v.tier().map(|t| t.as_str().to_owned()).unwrap_or_default()).collect();
    assert_eq!(tiers, ["Intelligent-Tiering"; 3], "as requested (AWS answers the tier it chose)");

    let read = store.get_parameters(&[parameter.to_owned()]).await.expect("read");
    assert_eq!(Release::parse(&read[parameter].value), Some(second.clone()));
    let listed = releases(&store.parameter_history(parameter).await.expect("history"));
    let listed: Vec<(i64, &str)> = listed.iter().map(|s| (s.version, s.release.build.as_str())).collect();
    assert_eq!(listed, [(3, "tagrelay-dev:2"), (1, "tagrelay-dev:1")]);
}

/// Keeps every event the local AWS POSTs (one connection per event, as the launcher sends them).
struct EventSink {
    url: String,
    events: Arc<Mutex<Vec<Value>>>,
    server: tokio::task::JoinHandle<()>,
}

impl EventSink {
    async fn start() -> EventSink {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind the sink");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let events = Arc::new(Mutex::new(Vec::new()));
        let kept = events.clone();
        let server = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buffer = [0u8; 8192];
                // Headers, then Content-Length bytes of body.
                let body = loop {
                    let Ok(read) = stream.read(&mut buffer).await else { break None };
                    if read == 0 {
                        break None;
                    }
                    request.extend_from_slice(&buffer[..read]);
                    let text = String::from_utf8_lossy(&request).into_owned();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
                    let length = head
                        .lines()
                        .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned))
                        .and_then(|value| value.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() >= length {
                        break Some(body.to_owned());
                    }
                };
                if let Some(event) = body.and_then(|body| serde_json::from_str::<Value>(&body).ok()) {
                    kept.lock().expect("events").push(event);
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
            }
        });
        EventSink { url, events, server }
    }

    /// The alarm events received once `count` of them have arrived (they arrive in order).
    async fn alarm_events(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let events: Vec<Value> = self
                .events
                .lock()
                .expect("events")
                .iter()
                .filter(|e| e["detail-type"] == "CloudWatch Alarm State Change")
                .cloned()
                .collect();
            if events.len() >= count || Instant::now() >= deadline {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for EventSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudwatch_alarms_are_described_in_chunks_with_their_transitions_history_and_events() {
    let sink = EventSink::start().await;
    let aws = LocalAws::start_with(LocalAwsOptions { event_sink: Some(sink.url.clone()), ..Default::default() })
        .await
        .expect("local AWS");
    let config = aws.sdk_config().await;
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
    let alarms = CloudWatchAlarms::from_sdk_config(&config);
    let before = DateTime::from(SystemTime::now() - Duration::from_secs(5));

    // 101 metric alarms (created through moto's query protocol, as a person's CLI would) and a
    // composite alarm (through the SDK: moto has no PutCompositeAlarm).
    let mut names: Vec<String> = (0..101).map(|n| format!("dev-api-{n:03}")).collect();
    for name in &names {
        aws.create_alarm(name).await.expect("metric alarm");
    }
    cloudwatch
        .put_composite_alarm()
        .alarm_name("dev-any")
        .alarm_rule("ALARM(\"dev-api-000\") OR ALARM(\"dev-api-001\")")
        .send()
        .await
        .expect("composite alarm");
    names.extend(["dev-any".to_owned(), "no-such-alarm".to_owned()]);

    // 103 names: two DescribeAlarms calls (the local CloudWatch refuses 101 names, as CloudWatch
    // does); the missing one is left out; new alarms are unevaluated and never transitioned.
    let described = alarms.describe_alarms(&names).await.expect("described");
    assert_eq!(described.len(), 102, "{described:?}");
    assert!(described.iter().all(|a| a.state == AlarmState::InsufficientData && a.transitioned_at.is_none()));
    assert!(described.iter().any(|a| a.name == "dev-any") && !described.iter().any(|a| a.name == "no-such-alarm"));
    let err = cloudwatch
        .describe_alarms()
        .set_alarm_names(Some(names[..101].to_vec()))
        .send()
        .await
        .expect_err("more than 100 names");
    assert_eq!(err.code(), Some("ValidationError"), "{err:?}");

    // Transitions through both protocols: the same value again changes nothing but the reason.
    aws.set_alarm_state("dev-api-000", "ALARM", "5xx above 1").await.expect("query SetAlarmState");
    let first = DateTime::from(SystemTime::now());
    let set = |name: &'static str, state: StateValue| {
        cloudwatch.set_alarm_state().alarm_name(name).state_value(state).state_reason("test").send()
    };
    set("dev-api-000", StateValue::Alarm).await.expect("same value");
    set("dev-api-000", StateValue::Ok).await.expect("CBOR SetAlarmState");
    set("dev-any", StateValue::Alarm).await.expect("composite SetAlarmState");
    let err = set("no-such-alarm", StateValue::Ok).await.expect_err("no such alarm");
    assert_eq!(err.code(), Some("ResourceNotFound"), "{err:?}");
    let err = aws.set_alarm_state("no-such-alarm", "OK", "x").await.expect_err("no such alarm");
    assert!(err.to_string().contains("ResourceNotFound"), "{err}");

    let now = alarms.describe_alarms(&["dev-api-000".into(), "dev-any".into()]).await.expect("described");
    let state = |name: &str| now.iter().find(|a| a.name == name).map(|a| (a.state, a.transitioned_at.is_some()));
    assert_eq!(
        (state("dev-api-000"), state("dev-any")),
        (Some((AlarmState::Ok, true)), Some((AlarmState::Alarm, true)))
    );

    let changes = alarms.state_changes("dev-api-000", before).await.expect("history");
    let moves: Vec<(AlarmState, AlarmState)> = changes.iter().map(|c| (c.from, c.to)).collect();
    assert_eq!(moves, [(AlarmState::InsufficientData, AlarmState::Alarm), (AlarmState::Alarm, AlarmState::Ok)]);
    assert!(changes[0].at < changes[1].at, "oldest first: {changes:?}");
    let later: Vec<AlarmTransition> = alarms.state_changes("dev-api-000", first).await.expect("history");
    assert_eq!(later.iter().map(|c| c.to).collect::<Vec<_>>(), [AlarmState::Ok], "since the second change");
    let composite = alarms.state_changes("dev-any", before).await.expect("composite history");
    assert_eq!(
        composite.iter().map(|c| (c.from, c.to)).collect::<Vec<_>>(),
        [(AlarmState::InsufficientData, AlarmState::Alarm)]
    );
    assert_eq!(alarms.state_changes("no-such-alarm", before).await.expect("no history"), []);

    // One event per state value change, in order, none for the repeated ALARM; tagrelay parses each.
    let events = sink.alarm_events(3).await;
    let seen: Vec<(String, AlarmState, Option<AlarmState>)> = events
        .iter()
        .map(|event| {
            let change = parse_alarm_state_change(event).unwrap_or_else(|err| panic!("{err}: {event}"));
            (change.alarm_name, change.state, change.previous_state)
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("dev-api-000".to_owned(), AlarmState::Alarm, Some(AlarmState::InsufficientData)),
            ("dev-api-000".to_owned(), AlarmState::Ok, Some(AlarmState::Alarm)),
            ("dev-any".to_owned(), AlarmState::Alarm, Some(AlarmState::InsufficientData)),
        ]
    );
    let metric = &events[0];
    assert_eq!(metric["source"], "aws.cloudwatch");
    assert_eq!(metric["resources"], serde_json::json!(["arn:aws:cloudwatch:us-east-1:123456789012:alarm:dev-api-000"]));
    assert_eq!(metric["detail"]["state"]["reason"], "5xx above 1");
    assert_eq!(metric["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["name"], "5xx");
    let timestamp = metric["detail"]["state"]["timestamp"].as_str().unwrap_or_default();
    assert!(timestamp.len() == 28 && timestamp.ends_with("+0000"), "CloudWatch's format: {timestamp}");
    assert_eq!(events[2]["detail"]["configuration"]["alarmRule"], "ALARM(\"dev-api-000\") OR ALARM(\"dev-api-001\")");

    // What the local CloudWatch does not emulate is refused, naming it.
    let err = cloudwatch.list_dashboards().send().await.expect_err("not emulated");
    assert_eq!(err.code(), Some("NotEmulated"), "{err:?}");
    assert!(err.message().unwrap_or_default().contains("ListDashboards"), "{err:?}");
}
