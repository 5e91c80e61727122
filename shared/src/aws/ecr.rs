//! ECR adapter.

use aws_sdk_ecr::types::ImageIdentifier;
use aws_sdk_ecr::Client;

use super::{AwsError, ImageFacts, ImageRegistry};

#[derive(Debug, Clone)]
pub struct EcrImageRegistry {
    client: Client,
}

impl EcrImageRegistry {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Self {
        Self::new(Client::new(sdk))
    }
}

impl ImageRegistry for EcrImageRegistry {
    async fn image_by_tag(&self, repository: &str, tag: &str) -> Result<Option<ImageFacts>, AwsError> {
        let resource = format!("{repository}:{tag}");
        let result = self
            .client
            .describe_images()
            .repository_name(repository)
            .image_ids(ImageIdentifier::builder().image_tag(tag).build())
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(err) => {
                let gone = err
                    .as_service_error()
                    .is_some_and(|e| e.is_image_not_found_exception() || e.is_repository_not_found_exception());
                return if gone { Ok(None) } else { Err(AwsError::from_sdk("DescribeImages", resource, err)) };
            }
        };
        let facts = output.image_details().first().and_then(|detail| {
            detail
                .image_digest()
                .map(|digest| ImageFacts { digest: digest.to_owned(), pushed_at: detail.image_pushed_at().copied() })
        });
        Ok(facts)
    }
}
