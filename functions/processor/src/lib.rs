//! The processor: canonical events from the `events` topic become changes to the unified customer
//! record, each with its audit entry, in one DynamoDB transaction; changes are announced as
//! `customer.updated` on the `updates` topic.

pub mod config;
pub mod handler;
pub mod process;
