//! Tributary's shared library: what more than one function needs.
//!
//! - [`event`]: the canonical event envelope published on the bus.
//! - [`customer`]: the unified customer record, its rules and audit trail; [`lead`]: the lead fields.
//! - [`config`]: typed configuration parsed once at start-up.
//! - [`ports`]: storage and bus interfaces the domain code is written against;
//!   [`aws`] and [`memory`] implement them.
//! - [`telemetry`]: JSON logs; [`api_key`]: the API keys of `/api/v1`.
//! - `problem` (feature `http`): problem+json answers.
//! - `lake` (feature `lake`): the Delta tables on S3.
//! - `testing` (feature `test-support`): moto and the template-driven provisioner.

pub mod api_key;
pub mod aws;
pub mod config;
pub mod customer;
pub mod event;
pub mod lead;
pub mod memory;
pub mod metrics;
pub mod ports;
pub mod retry;
pub mod runtime;
pub mod secrets;
pub mod sync;
pub mod telemetry;

#[cfg(feature = "http")]
pub mod problem;

#[cfg(feature = "lake")]
pub mod lake;
/// delta-rs and its Arrow, for the crates that build batches (one version in the workspace).
#[cfg(feature = "lake")]
pub use deltalake;

#[cfg(feature = "test-support")]
pub mod testing;
