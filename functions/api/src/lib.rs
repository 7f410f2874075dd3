//! The authenticated REST API under `/api/v1` (bearer API keys): customer records and their audit
//! trails, the lead ingestion endpoint, the failure queues with their re-drive, the rebuild and
//! replay requests, the run history, and the operators' web console (`/console`). Webhook senders use the webhook function instead; the two
//! differ in who calls them, how callers authenticate and what they may touch, so each has its own
//! IAM role.

pub mod config;
pub mod console;
pub mod failures;
pub mod handler;
pub mod jobs;
pub mod runs;
