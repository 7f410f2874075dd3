//! The aggregator over a lake the lake writer wrote (and, in `moto_pipeline`, leads the API took
//! in): tests across functions, so they live here and no function depends on another.

mod http;
mod moto_pipeline;
mod queries;
mod support;
