//! The SSM and ECR adapters against moto server: real HTTP, the real SDK.

use std::time::Duration;

use tagrelay::aws::ecr::EcrImageRegistry;
use tagrelay::aws::ssm::SsmParameterStore;
use tagrelay::ports::{ImageRegistry, ParameterStore, ParameterWrite};
use tagrelay_testbed::local_aws::{create_repository, push_image, LocalAws};

fn write(name: &str, value: &str, create: bool) -> ParameterWrite {
    ParameterWrite {
        name: name.to_owned(),
        value: value.to_owned(),
        description: "written by the adapter test".to_owned(),
        create_with_tags: create.then(|| vec![("service".to_owned(), "my-api".to_owned())]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssm_reads_many_names_creates_with_tags_and_overwrites() {
    let aws = LocalAws::start().await.expect("local AWS");
    let sdk = aws.sdk_config().await;
    let store = SsmParameterStore::from_sdk_config(&sdk);

    // More names than one GetParameters call takes; every other one exists.
    let names: Vec<String> = (0..23).map(|i| format!("/svc{i}/dev/docker-image-tag")).collect();
    for name in names.iter().step_by(2) {
        assert_eq!(store.put_parameter(&write(name, "1", true)).await.expect("created"), 1);
    }
    let found = store.get_parameters(&names).await.expect("read");
    assert_eq!(found.len(), 12);
    assert!(names.iter().step_by(2).all(|name| found.contains_key(name)));
    assert!(!found.contains_key(&names[1]), "missing names are left out");

    let name = &names[0];
    assert_eq!(store.put_parameter(&write(name, "2", false)).await.expect("overwritten"), 2);
    let found = store.get_parameters(std::slice::from_ref(name)).await.expect("read");
    assert_eq!(found[name].value, "2");
    assert_eq!(found[name].version, 2);

    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let tags = ssm
        .list_tags_for_resource()
        .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
        .resource_id(name)
        .send()
        .await
        .expect("tags");
    assert_eq!(tags.tag_list().iter().map(|t| (t.key(), t.value())).collect::<Vec<_>>(), vec![("service", "my-api")]);
    let described = ssm.get_parameter().name(name).send().await.expect("get");
    assert_eq!(described.parameter().and_then(|p| p.r#type()), Some(&aws_sdk_ssm::types::ParameterType::String));

    // Creating over an existing parameter is refused, not silently overwritten.
    let err = store.put_parameter(&write(name, "3", true)).await.expect_err("already exists");
    assert_eq!(err.operation, "PutParameter");
    assert_eq!(err.resource, *name);
    assert_eq!(err.code.as_deref(), Some("ParameterAlreadyExists"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_reports_digest_and_push_time_and_none_for_what_is_gone() {
    let aws = LocalAws::start().await.expect("local AWS");
    let sdk = aws.sdk_config().await;
    let ecr = aws_sdk_ecr::Client::new(&sdk);
    let registry = EcrImageRegistry::from_sdk_config(&sdk);
    create_repository(&ecr, "team/worker").await.expect("repository");

    let first = push_image(&ecr, "team/worker", "abc").await.expect("push");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = push_image(&ecr, "team/worker", "def").await.expect("push");

    let abc = registry.image_by_tag("team/worker", "abc").await.expect("describe").expect("present");
    let def = registry.image_by_tag("team/worker", "def").await.expect("describe").expect("present");
    assert_eq!(abc.digest, first);
    assert_eq!(def.digest, second);
    assert!(def.pushed_at > abc.pushed_at, "{:?} then {:?}", abc.pushed_at, def.pushed_at);

    assert_eq!(registry.image_by_tag("team/worker", "nope").await.expect("describe"), None);
    assert_eq!(registry.image_by_tag("no/such-repo", "abc").await.expect("describe"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codebuild_lists_newest_first_with_fingerprints_and_reports_the_limit() {
    use tagrelay::aws::codebuild::CodeBuildRunner;
    use tagrelay::deploy::history::newest_builds;
    use tagrelay::ports::BuildStatus;
    use tagrelay::ports::{BuildRunner, StartBuild, StartOutcome};
    use tagrelay_testbed::local_aws::create_codebuild_project;

    let aws = LocalAws::start().await.expect("local AWS");
    let sdk = aws.sdk_config().await;
    create_codebuild_project(&aws_sdk_codebuild::Client::new(&sdk), "tagrelay-dev", Some(1)).await.expect("project");
    aws.set_build_behaviour("tagrelay-dev", Duration::from_millis(800), "SUCCEEDED").await.expect("behaviour");
    let runner = CodeBuildRunner::from_sdk_config(&sdk);
    let request = |fingerprint: &str, token: &str| StartBuild {
        project: "tagrelay-dev".into(),
        environment: vec![("TAGRELAY_FINGERPRINT".into(), fingerprint.into())],
        idempotency_token: token.into(),
    };

    assert!(newest_builds(&runner, "tagrelay-dev", 10).await.expect("list").is_empty());
    let StartOutcome::Started { build_id: first } = runner.start_build(&request("/a=1", "t1")).await.expect("start")
    else {
        panic!("the first build starts");
    };
    // The same token is the same build; another start over the limit is refused, not an error.
    assert_eq!(
        runner.start_build(&request("/a=1", "t1")).await.expect("start"),
        StartOutcome::Started { build_id: first.clone() }
    );
    assert_eq!(
        runner.start_build(&request("/a=2", "t2")).await.expect("start"),
        StartOutcome::LimitReached { message: "Cannot have more than 1 builds in queue for the account".into() }
    );

    let running = newest_builds(&runner, "tagrelay-dev", 10).await.expect("list");
    assert_eq!(running.len(), 1);
    assert_eq!((running[0].id.as_str(), running[0].status), (first.as_str(), BuildStatus::InProgress));
    assert_eq!(running[0].fingerprint.as_deref(), Some("/a=1"));

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let StartOutcome::Started { build_id: second } = runner.start_build(&request("/a=2", "t2")).await.expect("start")
    else {
        panic!("the limit is free again");
    };
    let builds = newest_builds(&runner, "tagrelay-dev", 10).await.expect("list");
    let seen: Vec<(&str, BuildStatus, Option<&str>)> =
        builds.iter().map(|b| (b.id.as_str(), b.status, b.fingerprint.as_deref())).collect();
    assert_eq!(
        seen,
        vec![
            (second.as_str(), BuildStatus::InProgress, Some("/a=2")),
            (first.as_str(), BuildStatus::Succeeded, Some("/a=1"))
        ]
    );
    assert_eq!(newest_builds(&runner, "tagrelay-dev", 1).await.expect("list").len(), 1, "at most `limit`");

    // The ports themselves: a page of ids, newest first; builds by id in the order asked.
    let page = runner.list_build_ids("tagrelay-dev", None).await.expect("list");
    assert_eq!((page.ids.clone(), page.next), (vec![second.clone(), first.clone()], None));
    let reversed = runner.get_builds("tagrelay-dev", &[first.clone(), second.clone()]).await.expect("get");
    assert_eq!(reversed.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), [first.as_str(), second.as_str()]);
    let unknown = runner.get_builds("tagrelay-dev", &["tagrelay-dev:nope".to_owned()]).await.expect("get");
    assert!(unknown.is_empty(), "unknown ids are left out");
}
