//! `make demo`: record-image-tag on a local AWS. Starts moto server and the release function
//! behind a local Lambda Runtime API, pushes images (one of them out of order, one event
//! delivered twice), delivers their ECR events, and prints the decisions, the parameters and
//! the function's decision log lines. Everything it starts stops when it ends.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};
use tagrelay_tests::events::ecr_push;
use tagrelay_tests::local_aws::{create_repository, push_image, LocalAws};
use tagrelay_tests::runtime_api::{lambda_binary, FunctionProcess, Outcome, RuntimeApi};
use tagrelay_tests::HarnessError;

const WAIT: Duration = Duration::from_secs(30);

fn config() -> Value {
    json!({
        "environments": {
            "dev": { "codebuild_project": "tagrelay-dev" },
            "staging": { "codebuild_project": "tagrelay-staging" },
            "prod": { "codebuild_project": "tagrelay-prod" }
        },
        "services": {
            "my-api": { "deploy_on_push": ["dev", "staging"], "order": "numeric" },
            "worker": { "repository": "team/worker", "deploy_on_push": ["dev"], "order": "pushed-at", "tag_pattern": "^[0-9a-f]{7}$" }
        }
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("demo failed: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), HarnessError> {
    let aws = LocalAws::start().await?;
    println!("local AWS (moto server) at {}", aws.endpoint());
    let api = RuntimeApi::start().await?;
    let mut env = aws.env();
    env.push(("TAGRELAY_CONFIG".into(), config().to_string()));
    let function = FunctionProcess::spawn(&lambda_binary("record-image-tag")?, &api, &env)?;
    api.wait_first_poll(WAIT).await?;
    println!("record-image-tag running behind a Lambda Runtime API at {}\n", api.address());

    let sdk = aws.sdk_config().await;
    let ecr = aws_sdk_ecr::Client::new(&sdk);
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    create_repository(&ecr, "my-api").await?;
    create_repository(&ecr, "team/worker").await?;

    println!("CI pushes my-api:1041, my-api:1043, then a slow build's my-api:1042; team/worker:3f2a9c1, then 9be41d0");
    let mut deliveries = Vec::new();
    for (repository, tag) in [("my-api", "1041"), ("my-api", "1043"), ("my-api", "1042")] {
        deliveries.push((repository, tag, push_image(&ecr, repository, tag).await?));
    }
    let first_worker = push_image(&ecr, "team/worker", "3f2a9c1").await?;
    tokio::time::sleep(Duration::from_millis(1100)).await; // distinct ECR push times
    let second_worker = push_image(&ecr, "team/worker", "9be41d0").await?;
    // EventBridge delivers at least once and in no guaranteed order.
    deliveries.push(("my-api", "1043", deliveries[1].2.clone()));
    deliveries.push(("team/worker", "9be41d0", second_worker));
    deliveries.push(("team/worker", "3f2a9c1", first_worker));

    println!("\n{:<26} {:<9} {:<8} {:<20}", "event", "env", "decision", "reason");
    for (repository, tag, digest) in &deliveries {
        let label = format!("{repository}:{tag}");
        match api.invoke(ecr_push(repository, tag, digest), WAIT).await? {
            Outcome::Response(summary) => print_summary(&label, &summary),
            Outcome::Error { error_type, error_message } => {
                println!("{label:<26} error     {error_type}: {error_message}")
            }
        }
    }

    println!("\nparameters now");
    for (service, environment) in [("my-api", "dev"), ("my-api", "staging"), ("my-api", "prod"), ("worker", "dev")] {
        let name = format!("/{service}/{environment}/docker-image-tag");
        let shown = match ssm.get_parameter().name(&name).send().await {
            Ok(out) => out
                .parameter()
                .map(|p| format!("{} (version {})", p.value().unwrap_or_default(), p.version()))
                .unwrap_or_default(),
            Err(_) => "(not set: not deployed on push)".to_owned(),
        };
        println!("  {name:<34} {shown}");
    }

    println!("\ndecision log lines (CloudWatch JSON)");
    for line in function.log_lines().iter().filter(|l| l.contains("\"decision\"")) {
        println!("  {line}");
    }
    println!("\nstopping the function, the Runtime API and moto server");
    Ok(())
}

fn print_summary(label: &str, summary: &Value) {
    if let Some(reason) = summary["skipped"].as_str() {
        println!("{label:<26} {:<9} {:<8} {reason}", "-", "skip");
        return;
    }
    for decision in summary["decisions"].as_array().into_iter().flatten() {
        let text = |key: &str| decision[key].as_str().unwrap_or("").to_owned();
        let detail = match (text("decision").as_str(), decision["previous"].as_str()) {
            ("write", Some(previous)) => {
                format!("{} ({previous} -> {})", text("reason"), text("to"))
            }
            ("write", None) => format!("{} (-> {})", text("reason"), text("to")),
            _ => text("reason"),
        };
        println!("{label:<26} {:<9} {:<8} {detail}", text("environment"), text("decision"));
    }
}
