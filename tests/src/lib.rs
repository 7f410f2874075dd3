//! Cross-function tests (in `tests/`) and the local demo of the whole pipeline (`src/bin/demo.rs`).

pub mod coldstart;
pub mod demo;
pub mod dispatch;
pub mod functions;
pub mod gateway;
pub mod load;
pub mod local_lambda;
