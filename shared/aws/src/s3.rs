//! The raw-delivery archive bucket.

use super::describe;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use tributary_domain::ports::{ArchiveListing, ArchivedDelivery, PortError, RawArchive};

pub struct S3Archive {
    client: Client,
    bucket: String,
}

impl S3Archive {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }
}

impl RawArchive for S3Archive {
    async fn put(&self, delivery: &ArchivedDelivery) -> Result<(), PortError> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&delivery.key)
            .content_type(&delivery.content_type)
            .body(ByteStream::from(delivery.body.clone()));
        for (name, value) in &delivery.metadata {
            request = request.metadata(name, value);
        }
        request.send().await.map_err(|e| PortError::new("archive put", describe(&e)))?;
        Ok(())
    }

    async fn list(&self, prefix: &str, start_after: &str, max: usize) -> Result<ArchiveListing, PortError> {
        let output = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .start_after(start_after)
            .max_keys(i32::try_from(max).unwrap_or(1000))
            .send()
            .await
            .map_err(|e| PortError::new("archive list", describe(&e)))?;
        let keys = output.contents().iter().filter_map(|object| object.key().map(str::to_string)).collect();
        Ok(ArchiveListing { keys, more: output.is_truncated().unwrap_or(false) })
    }

    async fn get(&self, key: &str) -> Result<Option<ArchivedDelivery>, PortError> {
        let output = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(output) => output,
            Err(error) if error.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(error) => return Err(PortError::new("archive get", describe(&error))),
        };
        let content_type = output.content_type().unwrap_or("application/json").to_string();
        let mut metadata: Vec<(String, String)> = output
            .metadata()
            .map(|m| m.iter().map(|(name, value)| (name.to_ascii_lowercase(), value.clone())).collect())
            .unwrap_or_default();
        metadata.sort();
        let body = output.body.collect().await.map_err(|e| PortError::new("archive get", e))?.into_bytes().to_vec();
        Ok(Some(ArchivedDelivery { key: key.to_string(), body, content_type, metadata }))
    }
}
