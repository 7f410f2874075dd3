//! The raw-delivery archive bucket.

use super::describe;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use tributary_domain::ports::{ArchivedDelivery, PortError, RawArchive};

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
}
