//! SSM Parameter Store adapter.

use std::collections::BTreeMap;

use aws_sdk_ssm::types::{ParameterType, Tag};
use aws_sdk_ssm::Client;

use super::{AwsError, ParameterStore, ParameterWrite, StoredParameter};

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
                    let stored = StoredParameter { value: value.to_owned(), version: parameter.version() };
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
            .r#type(ParameterType::String);
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
