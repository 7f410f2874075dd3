//! The package's integration tests as one test binary: each file here was its own binary,
//! linked against every dependency (a few seconds each on two cores).

mod moto_lake;
mod support;
mod writer;
