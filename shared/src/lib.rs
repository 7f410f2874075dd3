//! Tributary's shared library: what more than one function needs.
//!
//! - [`event`]: the canonical event envelope published on the bus.
//! - [`customer`]: the unified customer record, its rules and audit trail; [`lead`]: the lead fields.
//! - [`config`]: typed configuration parsed once at start-up.
//! - [`ports`]: storage and bus interfaces the domain code is written against;
//!   [`aws`] and [`memory`] implement them.
//! - [`telemetry`]: JSON logs; [`api_key`]: the API keys of `/api/v1`.
//! - `problem` (feature `http`): problem+json answers.
//! - `testing` (feature `test-support`): moto and the template-driven provisioner.

pub mod api_key;
pub mod aws;
pub mod config;
pub mod customer;
pub mod event;
pub mod lead;
pub mod memory;
pub mod ports;
pub mod telemetry;

#[cfg(feature = "http")]
pub mod problem;

#[cfg(feature = "test-support")]
pub mod testing;
