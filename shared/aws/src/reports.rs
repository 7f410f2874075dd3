//! The aggregator's report sink: S3 for the files (presigned GET links), SNS for the notification.

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use tributary_domain::ports::{PortError, ReportSink};

pub struct S3SnsReportSink {
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    pub bucket: String,
    pub topic_arn: String,
    pub link_validity: std::time::Duration,
}

impl ReportSink for S3SnsReportSink {
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<String, PortError> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| PortError::new("report put", aws_sdk_s3::error::DisplayErrorContext(e).to_string()))?;
        let presigning = PresigningConfig::expires_in(self.link_validity)
            .map_err(|e| PortError::new("report link", e.to_string()))?;
        let link = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning)
            .await
            .map_err(|e| PortError::new("report link", aws_sdk_s3::error::DisplayErrorContext(e).to_string()))?;
        Ok(link.uri().to_string())
    }

    async fn notify(&self, subject: &str, message: &str) -> Result<(), PortError> {
        self.sns
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject)
            .message(message)
            .send()
            .await
            .map_err(|e| PortError::new("report notify", aws_sdk_sns::error::DisplayErrorContext(e).to_string()))?;
        Ok(())
    }
}
