//! Cross-function tests (in `tests/`) and the local stack (`src/bin/local-stack.rs`).

pub mod local;
