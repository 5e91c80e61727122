//! SQS adapter: a function's dead-letter queue, for `tagrelay redrive`. Behind the `sqs`
//! feature: the functions never read a queue, so they do not carry the SQS client.

use aws_sdk_sqs::types::MessageSystemAttributeName;
use aws_sdk_sqs::Client;
use aws_smithy_types::DateTime;

use crate::ports::{AwsError, DeadLetter, DeadLetterQueue};

/// The message attribute Lambda puts the last error's message in.
const ERROR_MESSAGE_ATTRIBUTE: &str = "ErrorMessage";
/// ReceiveMessage returns at most 10 messages per call.
const RECEIVE_MAX: usize = 10;

#[derive(Debug, Clone)]
pub struct SqsDeadLetterQueue {
    client: Client,
    queue_url: String,
}

impl SqsDeadLetterQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into() }
    }

    /// The queue named `name` (GetQueueUrl); a value that is already a URL is used as it is.
    pub async fn locate(client: Client, name_or_url: &str) -> Result<Self, AwsError> {
        if name_or_url.starts_with("https://") || name_or_url.starts_with("http://") {
            return Ok(Self::new(client, name_or_url));
        }
        let output = client
            .get_queue_url()
            .queue_name(name_or_url)
            .send()
            .await
            .map_err(|err| AwsError::from_sdk("GetQueueUrl", name_or_url, err))?;
        let url = output.queue_url().unwrap_or_default().to_owned();
        Ok(Self::new(client, url))
    }

    pub fn url(&self) -> &str {
        &self.queue_url
    }
}

impl DeadLetterQueue for SqsDeadLetterQueue {
    async fn receive(&self, max: usize, hide_for_seconds: i32) -> Result<Vec<DeadLetter>, AwsError> {
        let batch = i32::try_from(max.clamp(1, RECEIVE_MAX)).unwrap_or(1);
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(batch)
            .visibility_timeout(hide_for_seconds)
            // A short long-poll: an empty answer then means the queue is empty, not that the
            // sampled servers had nothing.
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|err| AwsError::from_sdk("ReceiveMessage", &self.queue_url, err))?;
        let letters = output
            .messages()
            .iter()
            .filter_map(|message| {
                let (id, receipt) = (message.message_id()?, message.receipt_handle()?);
                let error_message = message
                    .message_attributes()
                    .and_then(|attributes| attributes.get(ERROR_MESSAGE_ATTRIBUTE))
                    .and_then(|value| value.string_value())
                    .map(str::to_owned);
                let sent_at = message
                    .attributes()
                    .and_then(|attributes| attributes.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|millis| millis.parse::<i64>().ok())
                    .map(DateTime::from_millis);
                Some(DeadLetter {
                    message_id: id.to_owned(),
                    receipt_handle: receipt.to_owned(),
                    body: message.body().unwrap_or_default().to_owned(),
                    error_message,
                    sent_at,
                })
            })
            .collect();
        Ok(letters)
    }

    async fn delete(&self, message: &DeadLetter) -> Result<(), AwsError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(&message.receipt_handle)
            .send()
            .await
            .map_err(|err| AwsError::from_sdk("DeleteMessage", &message.message_id, err))?;
        Ok(())
    }

    async fn release(&self, message: &DeadLetter) -> Result<(), AwsError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(&message.receipt_handle)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|err| AwsError::from_sdk("ChangeMessageVisibility", &message.message_id, err))?;
        Ok(())
    }
}
