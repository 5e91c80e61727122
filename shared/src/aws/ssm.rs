//! SSM Parameter Store adapter.

use std::collections::BTreeMap;

use aws_sdk_ssm::types::{ParameterTier, ParameterType, Tag};
use aws_sdk_ssm::Client;

use crate::ports::{
    AwsError, ParameterHistory, ParameterKind, ParameterStore, ParameterVersion, ParameterWrite, RecordStore,
    StoredParameter,
};

/// GetParameters takes at most 10 names per call.
const GET_PARAMETERS_MAX: usize = 10;

#[derive(Debug, Clone)]
pub struct SsmParameterStore {
    client: Client,
}

impl SsmParameterStore {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Self {
        Self::new(Client::new(sdk))
    }
}

impl ParameterStore for SsmParameterStore {
    async fn get_parameters(&self, names: &[String]) -> Result<BTreeMap<String, StoredParameter>, AwsError> {
        let mut found = BTreeMap::new();
        for chunk in names.chunks(GET_PARAMETERS_MAX) {
            let output = self
                .client
                .get_parameters()
                .set_names(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|err| AwsError::from_sdk("GetParameters", chunk.join(","), err))?;
            for parameter in output.parameters() {
                if let (Some(name), Some(value)) = (parameter.name(), parameter.value()) {
                    let stored = StoredParameter {
                        value: value.to_owned(),
                        version: parameter.version(),
                        last_modified: parameter.last_modified_date().copied(),
                        kind: parameter.r#type().map_or(ParameterKind::Other, kind),
                    };
                    found.insert(name.to_owned(), stored);
                }
            }
        }
        Ok(found)
    }

    async fn put_parameter(&self, write: &ParameterWrite) -> Result<i64, AwsError> {
        let mut request = self
            .client
            .put_parameter()
            .name(&write.name)
            .value(&write.value)
            .description(&write.description)
            .r#type(ParameterType::String)
            // Standard while the account has Standard parameters left (10,000 per region, which
            // 1,000 services x 10 environments use up alone), Advanced beyond: never refused for
            // the quota.
            .tier(ParameterTier::IntelligentTiering);
        // SSM refuses tags together with Overwrite, so tags go only on the creating write.
        request = match &write.create_with_tags {
            Some(tags) => {
                let mut request = request.overwrite(false);
                for (key, value) in tags {
                    let tag = Tag::builder()
                        .key(key)
                        .value(value)
                        .build()
                        .map_err(|err| AwsError::request("PutParameter", &write.name, err))?;
                    request = request.tags(tag);
                }
                request
            }
            None => request.overwrite(true),
        };
        let output = request.send().await.map_err(|err| AwsError::from_sdk("PutParameter", &write.name, err))?;
        Ok(output.version())
    }
}

fn kind(kind: &ParameterType) -> ParameterKind {
    match kind {
        ParameterType::String => ParameterKind::String,
        ParameterType::StringList => ParameterKind::StringList,
        ParameterType::SecureString => ParameterKind::SecureString,
        _ => ParameterKind::Other,
    }
}

impl ParameterHistory for SsmParameterStore {
    async fn parameter_history(&self, name: &str) -> Result<Vec<ParameterVersion>, AwsError> {
        let mut versions = Vec::new();
        let mut pages = self.client.get_parameter_history().name(name).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                Err(err) if err.as_service_error().is_some_and(|e| e.is_parameter_not_found()) => return Ok(Vec::new()),
                Err(err) => return Err(AwsError::from_sdk("GetParameterHistory", name, err)),
            };
            for entry in page.parameters() {
                versions.push(ParameterVersion {
                    version: entry.version(),
                    value: entry.value().unwrap_or_default().to_owned(),
                    modified_at: entry.last_modified_date().copied(),
                    modified_by: entry.last_modified_user().map(str::to_owned),
                    description: entry.description().map(str::to_owned),
                });
            }
        }
        Ok(versions)
    }
}

impl RecordStore for SsmParameterStore {
    async fn put_record(&self, parameter: &str, document: &str, description: &str) -> Result<i64, AwsError> {
        // Overwrite creates the parameter when it is missing, and takes no tags: the records
        // are tagrelay's own, found by their path.
        let output = self
            .client
            .put_parameter()
            .name(parameter)
            .value(document)
            .description(description)
            .r#type(ParameterType::String)
            .tier(ParameterTier::IntelligentTiering)
            .overwrite(true)
            .send()
            .await
            .map_err(|err| AwsError::from_sdk("PutParameter", parameter, err))?;
        Ok(output.version())
    }
}
