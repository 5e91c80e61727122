//! CodeBuild adapter: the builds of an environment's project (a page of ids, builds by id), and
//! starting one.

use std::collections::HashMap;

use aws_sdk_codebuild::error::ProvideErrorMetadata;
use aws_sdk_codebuild::types::{Build, EnvironmentVariable, EnvironmentVariableType, SortOrderType, StatusType};
use aws_sdk_codebuild::Client;

use crate::ports::{AwsError, BuildIdPage, BuildRunner, StartBuild, StartOutcome};
use crate::ports::{BuildRecord, BuildStatus, FINGERPRINT_VARIABLE};

#[derive(Debug, Clone)]
pub struct CodeBuildRunner {
    client: Client,
}

impl CodeBuildRunner {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Self {
        Self::new(Client::new(sdk))
    }
}

impl BuildRunner for CodeBuildRunner {
    async fn list_build_ids(&self, project: &str, next: Option<&str>) -> Result<BuildIdPage, AwsError> {
        let listed = self
            .client
            .list_builds_for_project()
            .project_name(project)
            .sort_order(SortOrderType::Descending)
            .set_next_token(next.map(str::to_owned))
            .send()
            .await
            .map_err(|err| AwsError::from_sdk("ListBuildsForProject", project, err))?;
        Ok(BuildIdPage { ids: listed.ids().to_vec(), next: listed.next_token().map(str::to_owned) })
    }

    async fn get_builds(&self, project: &str, ids: &[String]) -> Result<Vec<BuildRecord>, AwsError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let fetched = self
            .client
            .batch_get_builds()
            .set_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(|err| AwsError::from_sdk("BatchGetBuilds", project, err))?;
        // BatchGetBuilds does not promise the order it was asked in; keep the list's order.
        let mut by_id: HashMap<&str, &Build> =
            fetched.builds().iter().filter_map(|build| build.id().map(|id| (id, build))).collect();
        Ok(ids.iter().filter_map(|id| by_id.remove(id.as_str())).map(record).collect())
    }

    async fn start_build(&self, request: &StartBuild) -> Result<StartOutcome, AwsError> {
        let mut call =
            self.client.start_build().project_name(&request.project).idempotency_token(&request.idempotency_token);
        for (name, value) in &request.environment {
            let variable = EnvironmentVariable::builder()
                .name(name)
                .value(value)
                .r#type(EnvironmentVariableType::Plaintext)
                .build()
                .map_err(|err| AwsError::request("StartBuild", &request.project, err))?;
            call = call.environment_variables_override(variable);
        }
        match call.send().await {
            Ok(output) => {
                let build_id = output.build_value().and_then(Build::id).unwrap_or_default().to_owned();
                Ok(StartOutcome::Started { build_id })
            }
            // The project's concurrent build limit or the account's quota: which one, the
            // handler finds out (a build of the project running, or not).
            Err(err) if err.as_service_error().is_some_and(|e| e.is_account_limit_exceeded_exception()) => {
                let message = err.as_service_error().and_then(|e| e.message()).unwrap_or_default().to_owned();
                Ok(StartOutcome::LimitReached { message })
            }
            Err(err) => Err(AwsError::from_sdk("StartBuild", &request.project, err)),
        }
    }
}

fn record(build: &Build) -> BuildRecord {
    let fingerprint = build
        .environment()
        .map(|environment| environment.environment_variables())
        .unwrap_or_default()
        .iter()
        .find(|variable| variable.name() == FINGERPRINT_VARIABLE)
        .map(|variable| variable.value().to_owned());
    BuildRecord {
        id: build.id().unwrap_or_default().to_owned(),
        status: build.build_status().map_or(BuildStatus::Other, status),
        fingerprint,
        started: build.start_time().copied(),
        ended: build.end_time().copied(),
    }
}

fn status(status: &StatusType) -> BuildStatus {
    match status {
        StatusType::InProgress => BuildStatus::InProgress,
        StatusType::Succeeded => BuildStatus::Succeeded,
        StatusType::Failed => BuildStatus::Failed,
        StatusType::Fault => BuildStatus::Fault,
        StatusType::TimedOut => BuildStatus::TimedOut,
        StatusType::Stopped => BuildStatus::Stopped,
        _ => BuildStatus::Other,
    }
}
