//! The package's integration tests as one test binary: each file here was its own binary,
//! linked against every dependency (a few seconds each on two cores).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test or bench fails loudly on what it did not expect"
)]

mod aggregator;
mod customer_pipeline;
mod layers;
mod lead_versions;
mod local_lambda;
mod moto_server;
mod rebuild;
mod repair;
mod template;
