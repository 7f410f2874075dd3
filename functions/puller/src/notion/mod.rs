pub mod api;
pub mod mapping;
pub mod pull;
