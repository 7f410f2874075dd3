//! Tributary's domain: what the functions decide, written against ports, with no AWS SDK, no
//! Delta and no HTTP client (the crate's dependencies make that impossible, and a test of the
//! workspace's graph keeps it so).
//!
//! - [`event`]: the canonical event envelope published on the bus.
//! - [`customer`]: the unified customer record, its rules and audit trail; [`lead`]: the lead fields.
//! - [`config`]: typed configuration parsed once at start-up; [`secrets`]: SSM-backed values that
//!   refresh; [`api_key`]: the API keys of `/api/v1`.
//! - [`ports`]: the storage and bus interfaces the domain is written against. `tributary-aws`
//!   implements them over AWS, `tributary-testing` in memory.
//! - [`failures`]: the failure queues as an operator reads and re-drives them; [`archive`]: the
//!   raw-delivery archive's layout and what a replay of it selects.
//! - [`sync`]: a pull's run and lease; [`retry`]: backoff; [`runtime`]: invocation deadlines;
//!   [`metrics`]: CloudWatch embedded metrics; [`telemetry`]: JSON logs; [`signing`]: the webhook
//!   senders' signature schemes.

pub mod api_key;
pub mod archive;
pub mod config;
pub mod customer;
pub mod event;
pub mod failures;
pub mod lead;
pub mod metrics;
pub mod ports;
pub mod retry;
pub mod runtime;
pub mod secrets;
pub mod signing;
pub mod sync;
pub mod telemetry;
