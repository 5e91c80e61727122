//! The adapters verification uses, against the local AWS (moto plus the launcher's ECS
//! deployments): real HTTP, the real SDK. DescribeServices in chunks of 10 with missing services
//! named, the PRIMARY deployment's rollout state and task definition image; the release record
//! written in the Intelligent-Tiering tier and read back with its history.

use std::time::Duration;

use tagrelay::aws::ecs::EcsServiceReader;
use tagrelay::aws::ssm::SsmParameterStore;
use tagrelay::deploy::release::{releases, Release};
use tagrelay::ports::{EcsServices, ParameterHistory, ParameterStore, RecordStore, RolloutState, ServiceState};
use tagrelay_testbed::local_aws::LocalAws;
use tagrelay_testbed::local_ecs::{ecr_repository_uri, EcsService};

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
    assert_eq!(
        store.put_record(parameter, &first.document().expect("small"), "tagrelay: releases").await.expect("created"),
        1
    );
    assert_eq!(
        store.put_record(parameter, &second.document().expect("small"), "tagrelay: releases").await.expect("written"),
        2
    );
    // A racing writer's copy of the same record.
    assert_eq!(
        store.put_record(parameter, &second.document().expect("small"), "tagrelay: releases").await.expect("written"),
        3
    );

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
