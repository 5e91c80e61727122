//! ECR adapter.

use aws_sdk_ecr::types::{DescribeImagesFilter, ImageIdentifier, TagStatus};
use aws_sdk_ecr::Client;

use crate::ports::{AwsError, ImageFacts, ImagePage, ImageRegistry, ListedImage};

/// DescribeImages' largest page.
const PAGE_SIZE: i32 = 1000;

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

    async fn tagged_images(&self, repository: &str, next_token: Option<String>) -> Result<ImagePage, AwsError> {
        let result = self
            .client
            .describe_images()
            .repository_name(repository)
            .filter(DescribeImagesFilter::builder().tag_status(TagStatus::Tagged).build())
            .max_results(PAGE_SIZE)
            .set_next_token(next_token)
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_repository_not_found_exception()) => {
                return Ok(ImagePage::default())
            }
            Err(err) => return Err(AwsError::from_sdk("DescribeImages", repository, err)),
        };
        let images = output
            .image_details()
            .iter()
            .filter_map(|detail| {
                Some(ListedImage {
                    digest: detail.image_digest()?.to_owned(),
                    tags: detail.image_tags().to_vec(),
                    pushed_at: detail.image_pushed_at().copied(),
                })
            })
            .collect();
        Ok(ImagePage { images, next_token: output.next_token().map(str::to_owned) })
    }
}
