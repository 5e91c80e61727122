//! `make bench` (`cargo run -p xtask -- bench`): what a deploy of record-image-tag costs. Sizes of the release binary and the
//! arm64 zip, cold start (process start to the first `/next` poll, the end of Lambda's init
//! phase) and warm invocation time against the local AWS. Numbers are measured, never asserted:
//! speed targets belong here, not in tests.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use tagrelay_testbed::local_aws::{create_repository, push_image, LocalAws};
use tagrelay_testbed::runtime_api::{lambda_binary, FunctionProcess, Outcome, RuntimeApi};
use tagrelay_testbed::workspace_root;
use tagrelay_tests::events::ecr_push;

use crate::error::TaskError;

const COLD_STARTS: usize = 20;
const WARM_INVOCATIONS: usize = 30;
const WAIT: Duration = Duration::from_secs(30);

fn config() -> String {
    json!({
        "environments": { "dev": { "codebuild_project": "tagrelay-dev" }, "staging": { "codebuild_project": "tagrelay-staging" } },
        "services": { "my-api": { "deploy_on_push": ["dev", "staging"] } }
    })
    .to_string()
}

pub async fn run() -> Result<(), TaskError> {
    let binary = lambda_binary("record-image-tag")?;
    let zip = workspace_root().join("target/lambda/arm64/record-image-tag/bootstrap.zip");
    println!("record-image-tag");
    println!("  {:<40} {}", "release binary (host)", size(&binary));
    println!("  {:<40} {}", "deployable zip (arm64)", size(&zip));

    let aws = LocalAws::start().await?;
    aws.warm_up().await?;
    let mut env = aws.env();
    env.push(("TAGRELAY_CONFIG".into(), config()));

    let mut cold = Vec::with_capacity(COLD_STARTS);
    for _ in 0..COLD_STARTS {
        let api = RuntimeApi::start().await?;
        let started = Instant::now();
        let _function = FunctionProcess::spawn(&binary, &api, &env)?;
        api.wait_first_poll(WAIT).await?;
        cold.push(started.elapsed());
    }
    report(&format!("cold start to first /next ({COLD_STARTS} runs)"), &mut cold);

    let sdk = aws.sdk_config().await;
    let ecr = aws_sdk_ecr::Client::new(&sdk);
    create_repository(&ecr, "my-api").await?;
    let api = RuntimeApi::start().await?;
    let _function = FunctionProcess::spawn(&binary, &api, &env)?;
    api.wait_first_poll(WAIT).await?;
    let mut warm = Vec::with_capacity(WARM_INVOCATIONS);
    for build in 1..=WARM_INVOCATIONS {
        let tag = build.to_string();
        let digest = push_image(&ecr, "my-api", &tag).await?;
        let started = Instant::now();
        let outcome = api.invoke(ecr_push("my-api", &tag, &digest), WAIT).await?;
        warm.push(started.elapsed());
        if let Outcome::Error { error_type, error_message } = outcome {
            eprintln!("invocation {build} failed: {error_type}: {error_message}");
        }
    }
    report(&format!("warm push, 2 environments ({WARM_INVOCATIONS} runs; moto included)"), &mut warm);
    Ok(())
}

fn size(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(meta) => format!("{:.2} MiB ({} bytes)", meta.len() as f64 / 1_048_576.0, meta.len()),
        Err(_) => format!("{} missing (make build)", path.display()),
    }
}

fn report(label: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "  {label:<40} min {:>7.1} ms   median {:>7.1} ms   p90 {:>7.1} ms",
        ms(samples[0]),
        ms(at(0.5)),
        ms(at(0.9))
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
