//! Concurrent writers against the local AWS, with the real SDK adapters and real HTTP: no
//! reserved concurrency, no lock. Two pushes of one service — or a push and an operator's
//! promotion — read the same value and write one after the other; whatever the interleaving,
//! the parameter never ends on the older tag.

use std::time::Duration;

use serde_json::json;
use tagrelay::aws::ecr::EcrImageRegistry;
use tagrelay::aws::ssm::SsmParameterStore;
use tagrelay::config::Config;
use tagrelay::handler::Handler;
use tagrelay::record::{Change, Outcome, Recorder, TagChange};
use tagrelay_testbed::local_aws::{create_repository, push_image, LocalAws};
use tagrelay_tests::events::ecr_push;

const ROUNDS: u64 = 30;

type SsmRecorder = Recorder<SsmParameterStore, EcrImageRegistry>;

async fn setup() -> (LocalAws, aws_sdk_ssm::Client, aws_sdk_ecr::Client, Config) {
    let aws = LocalAws::start().await.expect("local AWS");
    let sdk = aws.sdk_config().await;
    let (ssm, ecr) = (aws_sdk_ssm::Client::new(&sdk), aws_sdk_ecr::Client::new(&sdk));
    create_repository(&ecr, "my-api").await.expect("repository");
    let doc = json!({
        "environments": { "dev": {}, "staging": {} },
        "services": { "my-api": { "deploy_on_push": ["dev", "staging"] } }
    });
    let config = Config::from_json(&doc.to_string()).expect("valid");
    (aws, ssm, ecr, config)
}

async fn recorder(aws: &LocalAws, config: &Config) -> SsmRecorder {
    let sdk = aws.sdk_config().await;
    Recorder::new(config.clone(), SsmParameterStore::from_sdk_config(&sdk), EcrImageRegistry::from_sdk_config(&sdk))
}

async fn value(ssm: &aws_sdk_ssm::Client, name: &str) -> String {
    let out = ssm.get_parameter().name(name).send().await.expect("GetParameter");
    out.parameter().and_then(|p| p.value()).unwrap_or_default().to_owned()
}

/// Whether the outcome says a race was seen (and, for the older writer, repaired).
fn raced(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Write { race: Some(_), .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_pushes_of_one_service_never_end_on_the_older_tag() {
    let (aws, ssm, ecr, config) = setup().await;
    // Two function instances, as Lambda runs them without reserved concurrency.
    let (first, second) = (recorder(&aws, &config).await, recorder(&aws, &config).await);
    let mut races = 0;
    for round in 0..ROUNDS {
        let (older, newer) = ((100 + 2 * round).to_string(), (101 + 2 * round).to_string());
        let older_digest = push_image(&ecr, "my-api", &older).await.expect("push");
        let newer_digest = push_image(&ecr, "my-api", &newer).await.expect("push");
        // Stagger the older one by a little, differently each round, so both orders occur.
        let lag = Duration::from_millis(round % 4);
        let (older_event, newer_event) =
            (ecr_push("my-api", &older, &older_digest), ecr_push("my-api", &newer, &newer_digest));
        let (a, b) = tokio::join!(
            async {
                tokio::time::sleep(lag).await;
                first.handle(&older_event).await
            },
            second.handle(&newer_event),
        );
        let (a, b) = (a.expect("older push handled"), b.expect("newer push handled"));
        for summary in [a.push().expect("push"), b.push().expect("push")] {
            races += summary.decisions.iter().filter(|d| raced(&d.outcome)).count();
        }
        for environment in ["dev", "staging"] {
            let name = format!("/my-api/{environment}/docker-image-tag");
            assert_eq!(value(&ssm, &name).await, newer, "round {round}: {environment} ended on the older tag");
        }
    }
    eprintln!("{races} of {} writes raced another writer and were checked", ROUNDS * 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_promotion_racing_a_push_never_ends_on_the_older_tag() {
    let (aws, ssm, ecr, config) = setup().await;
    let (pipeline, operator) = (recorder(&aws, &config).await, recorder(&aws, &config).await);
    let service = config.service("my-api").expect("configured");
    for round in 0..ROUNDS {
        let (promoted, pushed) = ((500 + 2 * round).to_string(), (501 + 2 * round).to_string());
        push_image(&ecr, "my-api", &promoted).await.expect("push");
        let pushed_digest = push_image(&ecr, "my-api", &pushed).await.expect("push");
        let promotion = TagChange {
            service,
            environment: "staging",
            tag: &promoted,
            change: Change::Promote { from: "dev" },
            dry_run: false,
        };
        let lag = Duration::from_millis(round % 3);
        let push = ecr_push("my-api", &pushed, &pushed_digest);
        let (a, b) = tokio::join!(
            async {
                tokio::time::sleep(lag).await;
                operator.change_tag(promotion).await
            },
            pipeline.handle(&push),
        );
        a.expect("promotion handled");
        b.expect("push handled");
        assert_eq!(value(&ssm, "/my-api/staging/docker-image-tag").await, pushed, "round {round}");
    }
}
