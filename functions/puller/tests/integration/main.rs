//! The package's integration tests as one test binary: each file here was its own binary,
//! linked against every dependency (a few seconds each on two cores).

mod matomo;
mod moto_puller;
mod notion;
mod support;
mod template_and_events;
