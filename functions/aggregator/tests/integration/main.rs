//! The package's integration tests as one test binary: each file here was its own binary,
//! linked against every dependency (a few seconds each on two cores).

mod http;
mod moto_pipeline;
mod python_delta;
mod queries;
mod support;
mod template_env;
