//! The package's integration tests as one test binary: each file here was its own binary,
//! linked against every dependency (a few seconds each on two cores).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test or bench fails loudly on what it did not expect"
)]

mod common;
mod moto_pipeline;
mod moto_replay;
mod samples;
mod template_env;
