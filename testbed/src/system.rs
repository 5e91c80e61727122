//! The whole system on the local AWS: the three release functions behind their Runtime APIs, the
//! local EventBridge routing the events the local AWS emits through `infra/event-patterns/`
//! (narrowed to what is ours as `infra/events.tf` narrows them, see [`rules`]),
//! Lambda's async retries and dead-letter queues, and a CodeBuild project per environment with
//! `concurrent_build_limit = 1`. Environments with an `ecs_cluster` also get the cluster, their
//! ECS services (first deployment completed) and the project's ECS mapping, so a build deploys to
//! ECS as the team's Terraform would, and "ECS Deployment State Change" events reach
//! trigger-deploy. The configured gate and rollback alarms exist in OK. After `start`, only AWS
//! calls are made; the rest happens by itself, as in an account.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tagrelay::config::Config;
use tagrelay::naming::{ENVIRONMENT_PLACEHOLDER, SERVICE_PLACEHOLDER};
use tagrelay::ports::{BuildRecord, BuildStatus};

use crate::ecs_config::{ecs_environments, parameter_placeholder, EcsEnvironment};
use crate::event_pattern::EventPattern;
use crate::event_router::{AsyncInvokeConfig, LocalEventBridge, Route};
use crate::local_aws::{
    create_codebuild_project, create_repository, put_parameter, LocalAws, LocalAwsOptions, ACCOUNT_ID, REGION,
};
use crate::runtime_api::{lambda_binary, FunctionProcess, RuntimeApi};
use crate::{workspace_root, HarnessError};

const WAIT: Duration = Duration::from_secs(30);
// Named as infra/ names them with the default prefix, so `tagrelay redrive` finds them.
pub const RECORD_DLQ: &str = "tagrelay-record-image-tag-dlq";
pub const DEPLOY_DLQ: &str = "tagrelay-trigger-deploy-dlq";
pub const PROMOTE_DLQ: &str = "tagrelay-promote-dlq";

/// How [`LocalSystem::start_on`] runs the functions.
#[derive(Debug, Clone, Default)]
pub struct FunctionOptions {
    /// Added to the functions' environment last, so it wins: e.g.
    /// `TAGRELAY_CONFIG=ssm:<name>:<version>` for a configuration the caller stored in SSM.
    pub env: Vec<(String, String)>,
    /// Lambda's asynchronous invocation settings, as the local EventBridge applies them.
    pub invoke: AsyncInvokeConfig,
}

/// A running local system; everything stops when it is dropped.
pub struct LocalSystem {
    pub config: Config,
    pub ssm: aws_sdk_ssm::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub codebuild: aws_sdk_codebuild::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub bridge: LocalEventBridge,
    pub record: FunctionProcess,
    pub deploy: FunctionProcess,
    pub promote: FunctionProcess,
    /// (name, URL) of record-image-tag's, trigger-deploy's and promote's.
    pub dead_letter_queues: [(String, String); 3],
    /// The environments with an ECS cluster, as set up.
    pub ecs: Vec<EcsEnvironment>,
    // Dropped last: the functions and the bridge talk to it.
    pub aws: LocalAws,
}

impl LocalSystem {
    /// `config` is the tagrelay document; every environment gets its CodeBuild project (runs
    /// take `build_duration`, then SUCCEED unless a test says otherwise) and every service its
    /// ECR repository. An environment with an `ecs_cluster` gets it set up by [`set_up_ecs`].
    pub async fn start(config: &Value, build_duration: Duration) -> Result<LocalSystem, HarnessError> {
        let aws = LocalAws::start_with(LocalAwsOptions::default()).await?;
        aws.warm_up().await?;
        LocalSystem::start_on(aws, config, build_duration, FunctionOptions::default()).await
    }

    /// [`LocalSystem::start`] on a local AWS the caller started (warmed up) and set up as it
    /// needs, with the functions run as `functions` says.
    pub async fn start_on(
        aws: LocalAws,
        config: &Value,
        build_duration: Duration,
        functions: FunctionOptions,
    ) -> Result<LocalSystem, HarnessError> {
        let parsed =
            Config::from_json(&config.to_string()).map_err(|err| HarnessError::setup("the tagrelay config", err))?;
        let sdk = aws.sdk_config().await;
        let (ssm, ecr) = (aws_sdk_ssm::Client::new(&sdk), aws_sdk_ecr::Client::new(&sdk));
        let (codebuild, sqs) = (aws_sdk_codebuild::Client::new(&sdk), aws_sdk_sqs::Client::new(&sdk));

        for environment in parsed.environments() {
            create_codebuild_project(&codebuild, &environment.codebuild_project, Some(1)).await?;
            aws.set_build_behaviour(&environment.codebuild_project, build_duration, "SUCCEEDED").await?;
        }
        for service in parsed.services() {
            create_repository(&ecr, &service.repository).await?;
        }
        let ecs = ecs_environments(config, &parsed)?;
        set_up_ecs(&aws, &ssm, &ecs, &parameter_placeholder(config)?).await?;
        // The team's alarms exist (their Terraform made them), in OK, before any event sink is
        // connected: nothing fires until a test says so.
        for alarm in parsed.alarm_names() {
            aws.create_alarm(&alarm).await?;
            aws.set_alarm_state(&alarm, "OK", "set up by the test bed").await?;
        }
        let mut queues = Vec::new();
        for name in [RECORD_DLQ, DEPLOY_DLQ, PROMOTE_DLQ] {
            let created = sqs.create_queue().queue_name(name).send().await.map_err(|err| HarnessError::Aws {
                operation: "sqs:CreateQueue",
                message: aws_sdk_sqs::error::DisplayErrorContext(&err).to_string(),
            })?;
            queues.push((name.to_owned(), created.queue_url().unwrap_or_default().to_owned()));
        }

        let mut env = aws.env();
        env.push(("TAGRELAY_CONFIG".into(), config.to_string()));
        env.extend(functions.env);
        let record_api = Arc::new(RuntimeApi::start().await?);
        let record = FunctionProcess::spawn(&lambda_binary("record-image-tag")?, &record_api, &env)?;
        let deploy_api = Arc::new(RuntimeApi::start().await?);
        let deploy = FunctionProcess::spawn(&lambda_binary("trigger-deploy")?, &deploy_api, &env)?;
        let promote_api = Arc::new(RuntimeApi::start().await?);
        let promote = FunctionProcess::spawn(&lambda_binary("promote")?, &promote_api, &env)?;
        record_api.wait_first_poll(WAIT).await?;
        deploy_api.wait_first_poll(WAIT).await?;
        promote_api.wait_first_poll(WAIT).await?;

        let rules = rules(&parsed, &ecs)?;
        let route = |name: &str, pattern: &EventPattern, target: &Arc<RuntimeApi>, queue: &str| Route {
            name: name.to_owned(),
            pattern: pattern.clone(),
            target: target.clone(),
            dead_letter_queue_url: queue.to_owned(),
        };
        let mut routes = Vec::new();
        for (name, pattern) in &rules {
            let (target, queue) = match *name {
                "ecr-image-action" => (&record_api, &queues[0].1),
                "promote-parameter-change" | "alarm-state-change" => (&promote_api, &queues[2].1),
                _ => (&deploy_api, &queues[1].1),
            };
            routes.push(route(name, pattern, target, queue));
        }
        // One schedule rule, three targets, as infra/events.tf has it: every sweep.
        let schedule = EventPattern::parse(&json!({ "source": ["aws.events"], "detail-type": ["Scheduled Event"] }))
            .map_err(|err| HarnessError::setup("the local sweep schedule rule", err))?;
        routes.push(route("schedule", &schedule, &deploy_api, &queues[1].1));
        routes.push(route("schedule-record", &schedule, &record_api, &queues[0].1));
        routes.push(route("schedule-promote", &schedule, &promote_api, &queues[2].1));
        let bridge = LocalEventBridge::start(routes, sqs.clone(), functions.invoke).await?;
        aws.set_event_sink(&bridge.sink_url()).await?;
        let dead_letter_queues = [queues[0].clone(), queues[1].clone(), queues[2].clone()];
        Ok(LocalSystem {
            config: parsed,
            ssm,
            ecr,
            codebuild,
            sqs,
            bridge,
            record,
            deploy,
            promote,
            dead_letter_queues,
            ecs,
            aws,
        })
    }

    /// Waits until nothing moves: no event in flight, no build running and no ECS deployment
    /// about to change, twice in a row a little apart (a build's end event needs a moment to
    /// arrive). A crashing deployment without the circuit breaker stays IN_PROGRESS and does not
    /// count: it never changes by itself, as in ECS.
    pub async fn wait_settled(&self, timeout: Duration) -> Result<(), HarnessError> {
        let deadline = Instant::now() + timeout;
        let mut quiet = 0;
        while quiet < 2 {
            if Instant::now() >= deadline {
                return Err(HarnessError::Timeout { what: "the local system to settle".into(), after: timeout });
            }
            self.bridge.wait_idle(deadline.saturating_duration_since(Instant::now())).await?;
            let mut running = false;
            for environment in self.config.environments() {
                running |= self
                    .builds(&environment.codebuild_project)
                    .await?
                    .iter()
                    .any(|b| b.status == BuildStatus::InProgress);
            }
            running |= !self.ecs.is_empty() && self.aws.ecs_pending().await? > 0;
            quiet = if running { 0 } else { quiet + 1 };
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        Ok(())
    }

    /// The project's builds, newest first (the newest 1,000).
    pub async fn builds(&self, project: &str) -> Result<Vec<BuildRecord>, HarnessError> {
        let runner = tagrelay::aws::codebuild::CodeBuildRunner::new(self.codebuild.clone());
        tagrelay::deploy::history::newest_builds(&runner, project, 1_000)
            .await
            .map_err(|err| HarnessError::Aws { operation: "codebuild:ListBuildsForProject", message: err.to_string() })
    }

    /// The environment's fingerprint now, by tagrelay's one definition.
    pub async fn fingerprint(&self, environment: &str) -> Result<String, HarnessError> {
        use tagrelay::ports::ParameterStore;
        let names = self.config.parameter_names(environment);
        let stored = tagrelay::aws::ssm::SsmParameterStore::new(self.ssm.clone())
            .get_parameters(&names)
            .await
            .map_err(|err| HarnessError::Aws { operation: "ssm:GetParameters", message: err.to_string() })?;
        Ok(tagrelay::deploy::fingerprint::fingerprint(&stored))
    }
}

/// The local EventBridge's rules: each pattern of `infra/event-patterns/` narrowed to what is
/// ours as `infra/events.tf` narrows it, by route name. Image-tag parameter changes by one
/// `suffix` (or `prefix`) entry per environment made from `parameter_template` (so the release
/// records' own changes, their parts and the run manifests reach no function, as in AWS), builds
/// by the environments' projects, ECS deployments by the service ARN prefix of each environment's
/// cluster (the rule exists only when an environment has an `ecs_cluster`); promote's: the release
/// records by the wildcard `/tagrelay/*/verified` while some environment feeds a promotion or
/// decides its own rollback, the approvals by `/tagrelay/*/approval` while one requires them
/// (`promote-parameter-change`), and the configured alarms (`alarm-state-change`), each only when
/// it lists something. ECR pushes are not narrowed by repository here (as `infra/` does once the
/// names no longer fit a pattern and no `repository_prefixes` are set): the rule's
/// `action-type`/`result` are kept, and events of repositories no service has are the function's
/// to skip (the tests send it such events). The size fallbacks of `infra/` (a prefix or `exists`
/// for a list that would not fit) are not needed at the test bed's sizes.
pub fn rules(config: &Config, ecs: &[EcsEnvironment]) -> Result<Vec<(&'static str, EventPattern)>, HarnessError> {
    let directory = workspace_root().join("infra/event-patterns");
    let base = |file: &str| {
        EventPattern::from_file(directory.join(file))
            .map(|pattern| pattern.as_json().clone())
            .map_err(|err| HarnessError::setup("a local EventBridge rule", err))
    };
    let projects: Vec<&str> = config.environments().map(|e| e.codebuild_project.as_str()).collect();
    let mut clusters: Vec<&str> = ecs.iter().map(|e| e.cluster.as_str()).collect();
    clusters.sort_unstable();
    clusters.dedup();

    let mut parameter = base("parameter-store-change.json")?;
    parameter["detail"]["name"] = json!(parameter_rule_names(config));
    let mut build = base("codebuild-build-state-change.json")?;
    build["detail"]["project-name"] = json!(projects);
    let mut patterns = vec![
        ("ecr-image-action", base("ecr-image-action.json")?),
        ("parameter-store-change", parameter),
        ("codebuild-build-state-change", build),
    ];
    if !clusters.is_empty() {
        let mut deployment = base("ecs-deployment-state-change.json")?;
        let prefixes: Vec<Value> = clusters
            .iter()
            .map(|cluster| json!({ "prefix": format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:service/{cluster}/") }))
            .collect();
        deployment["resources"] = json!(prefixes);
        patterns.push(("ecs-deployment-state-change", deployment));
    }
    let promote_parameters = promote_parameters(config);
    if !promote_parameters.is_empty() {
        let mut records = base("parameter-store-change.json")?;
        records["detail"]["name"] = json!(promote_parameters);
        patterns.push(("promote-parameter-change", records));
    }
    let alarms = config.alarm_names();
    if !alarms.is_empty() {
        let mut alarm = base("cloudwatch-alarm-state-change.json")?;
        alarm["detail"]["alarmName"] = json!(alarms);
        patterns.push(("alarm-state-change", alarm));
    }
    patterns
        .into_iter()
        .map(|(name, pattern)| {
            EventPattern::parse(&pattern)
                .map(|parsed| (name, parsed))
                .map_err(|err| HarnessError::setup("a local EventBridge rule", err))
        })
        .collect()
}

/// The parameter rule's `detail.name` entries, as `infra/events.tf` makes them: per environment
/// the side of `{service}` in `parameter_template` that holds `{environment}`, with the
/// environment's name in it: `{"suffix": "/dev/docker-image-tag"}` for the default template,
/// `{"prefix": "/dev/"}` for `/{environment}/{service}`; the same entry once.
fn parameter_rule_names(config: &Config) -> Vec<Value> {
    let template = config.parameter_template().as_str();
    let parts: Vec<&str> = template.split(SERVICE_PLACEHOLDER).collect();
    let (before, after) = (parts[0], parts[parts.len() - 1]);
    let (operator, operand) =
        if after.contains(ENVIRONMENT_PLACEHOLDER) { ("suffix", after) } else { ("prefix", before) };
    let mut entries: Vec<Value> = Vec::new();
    for environment in config.environments() {
        let entry = json!({ operator: operand.replace(ENVIRONMENT_PLACEHOLDER, &environment.name) });
        if !entries.contains(&entry) {
            entries.push(entry);
        }
    }
    entries
}

/// The record parameters promote listens to, as `infra/` writes them: every environment's release
/// record (`/tagrelay/*/verified`) while some environment feeds a promotion or decides its own
/// rollback, every approval record (`/tagrelay/*/approval`) while one requires approval. Neither
/// wildcard matches a record's parts (`…/verified-part/0`) or a run manifest.
fn promote_parameters(config: &Config) -> Vec<Value> {
    let mut names = Vec::new();
    if config.environments().any(|environment| {
        !config.downstream_of(&environment.name).is_empty() || !environment.rollback_alarms.is_empty()
    }) {
        names.push(json!({ "wildcard": "/tagrelay/*/verified" }));
    }
    if config.environments().any(|environment| environment.approval) {
        names.push(json!({ "wildcard": "/tagrelay/*/approval" }));
    }
    names
}

/// What infra/ and the team's Terraform have made of each ECS environment before tagrelay's first
/// run: the cluster, each service running the placeholder tag (first deployment completed, so a
/// rollback has somewhere to go), the image-tag parameters holding the placeholder (created
/// before any event sink is connected, as infra/ssm.tf created them long before), and the
/// project's mapping, so its builds deploy to ECS.
pub async fn set_up_ecs(
    aws: &LocalAws,
    ssm: &aws_sdk_ssm::Client,
    environments: &[EcsEnvironment],
    placeholder: &str,
) -> Result<(), HarnessError> {
    let mut started = Vec::new();
    for environment in environments {
        aws.create_ecs_cluster(&environment.cluster).await?;
        for service in environment.services(placeholder) {
            aws.start_ecs_service(&service).await?;
            started.push(service);
        }
        for parameter in &environment.parameters {
            put_parameter(ssm, parameter, placeholder).await?;
        }
        aws.set_ecs_terraform(&environment.project, &environment.cluster, &environment.targets).await?;
    }
    // Their first deployments run side by side: wait once for all.
    for service in &started {
        aws.wait_first_rollout(service, WAIT).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs_config::ecs_environments;

    fn document(with_cluster: bool) -> Value {
        let mut dev = json!({});
        if with_cluster {
            dev = json!({ "ecs_cluster": "dev-cluster", "verify_timeout": "1m" });
        }
        json!({
            "environments": { "dev": dev, "prod": {} },
            "services": { "my-api": { "deploy_on_push": ["dev"] } }
        })
    }

    fn rules_of(document: &Value) -> Vec<(&'static str, EventPattern)> {
        let config = Config::from_json(&document.to_string()).expect("a valid config");
        let ecs = ecs_environments(document, &config).expect("ECS part");
        rules(&config, &ecs).expect("rules")
    }

    fn matches(rules: &[(&str, EventPattern)], event: &Value) -> Vec<String> {
        rules.iter().filter(|(_, p)| p.matches(event)).map(|(name, _)| (*name).to_owned()).collect()
    }

    fn parameter_change(name: &str) -> Value {
        json!({ "source": "aws.ssm", "detail-type": "Parameter Store Change",
                "resources": [format!("arn:aws:ssm:us-east-1:123456789012:parameter{name}")],
                "detail": { "operation": "Update", "name": name, "type": "String" } })
    }

    fn build_change(project: &str) -> Value {
        json!({ "source": "aws.codebuild", "detail-type": "CodeBuild Build State Change",
                "detail": { "build-status": "SUCCEEDED", "project-name": project } })
    }

    fn deployment(cluster: &str) -> Value {
        json!({ "source": "aws.ecs", "detail-type": "ECS Deployment State Change",
                "resources": [format!("arn:aws:ecs:us-east-1:123456789012:service/{cluster}/my-api")],
                "detail": { "eventName": "SERVICE_DEPLOYMENT_COMPLETED" } })
    }

    #[test]
    fn routes_are_narrowed_to_our_parameters_projects_and_clusters_as_infra_narrows_them() {
        let rules = rules_of(&document(true));
        assert_eq!(matches(&rules, &parameter_change("/my-api/dev/docker-image-tag")), ["parameter-store-change"]);
        assert_eq!(matches(&rules, &parameter_change("/my-api/prod/docker-image-tag")), ["parameter-store-change"]);
        // One entry per environment, not per parameter: a service added later is heard at once.
        assert_eq!(matches(&rules, &parameter_change("/new-api/dev/docker-image-tag")), ["parameter-store-change"]);
        assert!(matches(&rules, &parameter_change("/my-api/qa/docker-image-tag")).is_empty(), "no environment qa");
        // trigger-deploy's own release records, their parts and the run manifests are not
        // image-tag parameters: no route; nor the configuration.
        for name in [
            "/tagrelay/dev/verified",
            "/tagrelay/dev/verified-part/0",
            "/tagrelay/dev/manifest",
            "/tagrelay/dev/manifest-part/3",
            "/tagrelay/_config",
            "/tagrelay/_config-part/0",
            "/other/setting",
        ] {
            assert!(matches(&rules, &parameter_change(name)).is_empty(), "{name}");
        }
        assert_eq!(matches(&rules, &build_change("tagrelay-prod")), ["codebuild-build-state-change"]);
        assert!(matches(&rules, &build_change("someone-elses")).is_empty());
        assert_eq!(matches(&rules, &deployment("dev-cluster")), ["ecs-deployment-state-change"]);
        assert!(matches(&rules, &deployment("dev-cluster-2")).is_empty(), "the prefix ends with the cluster's /");
        assert!(matches(&rules, &deployment("other")).is_empty());
    }

    #[test]
    fn promote_hears_the_records_and_alarms_of_its_chain_only() {
        let document = json!({
            "environments": {
                "dev": {},
                "staging": { "promote_from": "dev", "gate_alarms": ["dev-5xx"] },
                "prod": { "promote_from": "staging", "approval": true, "rollback_alarms": ["prod-5xx"] }
            },
            "services": { "my-api": { "deploy_on_push": ["dev"] } }
        });
        let rules = rules_of(&document);
        for name in [
            "/tagrelay/dev/verified",
            "/tagrelay/staging/verified",
            "/tagrelay/prod/verified",
            "/tagrelay/prod/approval",
        ] {
            assert_eq!(matches(&rules, &parameter_change(name)), ["promote-parameter-change"], "{name}");
        }
        // Its own rollback records reach nothing; nor the records' parts, or the run manifests.
        for name in [
            "/tagrelay/prod/rollback",
            "/tagrelay/prod/rollback-part/0",
            "/tagrelay/dev/verified-part/0",
            "/tagrelay/prod/approval-part/1",
            "/tagrelay/dev/manifest",
            "/tagrelay/dev/manifest-part/0",
        ] {
            assert!(matches(&rules, &parameter_change(name)).is_empty(), "{name}");
        }
        // By wildcard, as infra/ has it: the approval record of an environment that needs none
        // reaches promote too, which ignores it.
        assert_eq!(matches(&rules, &parameter_change("/tagrelay/staging/approval")), ["promote-parameter-change"]);
        let alarm = |name: &str| {
            json!({ "source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change",
                                          "detail": { "alarmName": name, "state": { "value": "ALARM" } } })
        };
        assert_eq!(matches(&rules, &alarm("prod-5xx")), ["alarm-state-change"]);
        assert_eq!(matches(&rules, &alarm("dev-5xx")), ["alarm-state-change"]);
        assert!(matches(&rules, &alarm("someone-elses")).is_empty());
    }

    #[test]
    fn a_template_with_the_environment_first_narrows_by_prefix() {
        let document = json!({
            "parameter_template": "/{environment}/{service}/image-tag",
            "environments": { "dev": {}, "prod": {} },
            "services": { "my-api": { "deploy_on_push": ["dev"] } }
        });
        let config = Config::from_json(&document.to_string()).expect("a valid config");
        assert_eq!(
            parameter_rule_names(&config),
            [json!({ "prefix": "/dev/" }), json!({ "prefix": "/prod/" })],
            "the environment is before {{service}}"
        );
        let rules = rules_of(&document);
        assert_eq!(matches(&rules, &parameter_change("/dev/my-api/image-tag")), ["parameter-store-change"]);
        assert!(matches(&rules, &parameter_change("/qa/my-api/image-tag")).is_empty());
        assert!(matches(&rules, &parameter_change("/tagrelay/dev/verified")).is_empty());
    }

    #[test]
    fn without_an_ecs_cluster_there_is_no_ecs_rule() {
        let names: Vec<&str> = rules_of(&document(false)).iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["ecr-image-action", "parameter-store-change", "codebuild-build-state-change"]);
        let with: Vec<&str> = rules_of(&document(true)).iter().map(|(name, _)| *name).collect();
        assert_eq!(with.last(), Some(&"ecs-deployment-state-change"));
    }
}
