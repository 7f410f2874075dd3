//! The rebuild job: customer records recomputed from their events in the lake's `events` table with
//! today's rules ([`tributary_domain::customer::rebuild`]), written as a new version when they
//! differ, and announced like any change so that pushes follow for the changed fields only.
//!
//! Invoked with a [`job::RebuildRequest`] (directly, or from the rebuild queue the API's routes and
//! the job's own continuations write to).

pub mod config;
pub mod job;
