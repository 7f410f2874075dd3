//! The webhook receiver: authenticates deliveries from Stripe, Make, Standard Webhooks senders and
//! the personnage contract, turns them into canonical events and publishes each one exactly once.
//!
//! `main.rs` wires the AWS adapters; tests and benches call [`handler::handle`] with in-memory or
//! moto-backed adapters.

pub mod config;
pub mod handler;
pub mod sources;
