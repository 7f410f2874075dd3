//! The webhook receiver: authenticates deliveries from Stripe, Make, Standard Webhooks senders and
//! the personnage contract, turns them into canonical events and publishes each one exactly once.
//!
//! [`replay`] publishes archived deliveries again, normalised with today's code (the
//! `webhook-replay` function, `src/bin/replay.rs`).
//!
//! `main.rs` wires the AWS adapters; tests and benches call [`handler::handle`] with in-memory or
//! moto-backed adapters.

pub mod config;
pub mod handler;
pub mod replay;
pub mod sources;
