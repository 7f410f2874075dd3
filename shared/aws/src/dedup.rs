//! The dedup marker table: one item per (source, event id).

use super::{describe, number_attribute as number};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use std::collections::HashMap;
use tributary_domain::ports::{ClaimOutcome, DedupClaim, DedupStore, PortError};

/// Partition key of the dedup table (`template.yaml` declares the same; a test checks it).
pub const DEDUP_KEY_ATTRIBUTE: &str = "pk";
/// TTL attribute of the dedup table, epoch seconds.
pub const DEDUP_TTL_ATTRIBUTE: &str = "expires_at";

const STATUS_IN_PROGRESS: &str = "IN_PROGRESS";
const STATUS_COMPLETED: &str = "COMPLETED";

pub struct DynamoDbDedup {
    client: Client,
    table: String,
}

impl DynamoDbDedup {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    fn key(claim: &DedupClaim) -> HashMap<String, AttributeValue> {
        HashMap::from([(DEDUP_KEY_ATTRIBUTE.to_string(), AttributeValue::S(claim.key.clone()))])
    }

    /// What an existing marker means for a new attempt. DynamoDB's TTL deletes lazily (up to days
    /// late), so an expired marker is treated as absent by the claim condition, not here. A marker
    /// written before digests were kept has none and is taken as the same content.
    fn outcome_of(item: &HashMap<String, AttributeValue>, claim: &DedupClaim) -> ClaimOutcome {
        if item.get("digest").and_then(|v| v.as_s().ok()).is_some_and(|digest| *digest != claim.digest) {
            return ClaimOutcome::Reused;
        }
        match item.get("status").and_then(|v| v.as_s().ok()).map(String::as_str) {
            Some(STATUS_COMPLETED) => ClaimOutcome::AlreadyCompleted,
            _ => ClaimOutcome::InProgress,
        }
    }
}

impl DedupStore for DynamoDbDedup {
    async fn claim(&self, claim: &DedupClaim) -> Result<ClaimOutcome, PortError> {
        let mut item = Self::key(claim);
        item.insert("status".into(), AttributeValue::S(STATUS_IN_PROGRESS.into()));
        item.insert("claim_token".into(), AttributeValue::S(claim.token.clone()));
        item.insert("event_type".into(), AttributeValue::S(claim.event_type.clone()));
        item.insert("digest".into(), AttributeValue::S(claim.digest.clone()));
        item.insert("claimed_at".into(), AttributeValue::S(claim.now.to_string()));
        item.insert("in_progress_until".into(), number(claim.in_progress_until.as_millisecond()));
        item.insert(DEDUP_TTL_ATTRIBUTE.into(), number(claim.expires_at.as_second()));

        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                // An abandoned claim is taken over only for the same content (or a marker written
                // before digests were kept): other content under its id is a reuse of the id.
                "attribute_not_exists(#pk) OR #ttl < :now_s OR (#status = :in_progress AND in_progress_until < :now_ms \
                 AND (attribute_not_exists(digest) OR digest = :digest))",
            )
            .expression_attribute_names("#pk", DEDUP_KEY_ATTRIBUTE)
            .expression_attribute_names("#ttl", DEDUP_TTL_ATTRIBUTE)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now_s", number(claim.now.as_second()))
            .expression_attribute_values(":now_ms", number(claim.now.as_millisecond()))
            .expression_attribute_values(":in_progress", AttributeValue::S(STATUS_IN_PROGRESS.into()))
            .expression_attribute_values(":digest", AttributeValue::S(claim.digest.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;

        let error = match result {
            Ok(_) => return Ok(ClaimOutcome::Claimed),
            Err(error) => error,
        };
        let existing = match error.as_service_error() {
            Some(PutItemError::ConditionalCheckFailedException(failed)) => failed.item().cloned(),
            _ => return Err(PortError::new("claim dedup marker", describe(&error))),
        };
        let existing = match existing {
            Some(item) => item,
            // Not every implementation returns the old item with the failure: read it.
            None => self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(Self::key(claim)))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| PortError::new("read dedup marker", describe(&e)))?
                .item
                .unwrap_or_default(),
        };
        Ok(Self::outcome_of(&existing, claim))
    }

    async fn complete(&self, claim: &DedupClaim) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(claim)))
            .update_expression("SET #status = :completed REMOVE in_progress_until")
            .condition_expression("claim_token = :token")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":completed", AttributeValue::S(STATUS_COMPLETED.into()))
            .expression_attribute_values(":token", AttributeValue::S(claim.token.clone()))
            .send()
            .await
            .map_err(|e| PortError::new("complete dedup marker", describe(&e)))?;
        Ok(())
    }

    async fn release(&self, claim: &DedupClaim) -> Result<(), PortError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(claim)))
            .condition_expression("claim_token = :token AND #status = :in_progress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":token", AttributeValue::S(claim.token.clone()))
            .expression_attribute_values(":in_progress", AttributeValue::S(STATUS_IN_PROGRESS.into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Someone else took the marker over after ours expired: theirs is not ours to delete.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(PortError::new("release dedup marker", describe(&e))),
        }
    }
}
