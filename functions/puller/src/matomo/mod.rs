pub mod api;
pub mod batch;
pub mod position;
pub mod pull;
pub mod visit;
