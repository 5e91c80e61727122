//! The SSM and ECR adapters against moto server: real HTTP, the real SDK.

use std::time::Duration;

use tagrelay::aws::ecr::EcrImageRegistry;
use tagrelay::aws::ssm::SsmParameterStore;
use tagrelay::aws::{ImageRegistry, ParameterStore, ParameterWrite};
use tagrelay_tests::local_aws::{create_repository, push_image, LocalAws};

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
