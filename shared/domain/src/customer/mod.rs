//! The unified customer record: one per customer, built from events of every source by rules.
//!
//! - [`record`]: the record, its field schema and the per-field merge policies (order independence);
//! - [`rules`]: one module per event family, found through [`rules::Registry`] by event type;
//! - [`rebuild`]: a record recomputed from all its events with today's rules;
//! - [`store`]: the storage port's types (commit, audit entry, applied-event marker).
//!
//! Plain domain code: no AWS type in here; the processor wires it to DynamoDB.

pub mod announce;
pub mod rebuild;
pub mod record;
pub mod rules;
pub mod store;

pub use record::{
    ApplyError, Change, CustomerId, CustomerRecord, FieldDiff, FieldState, Merge, SCHEMA, Stamp, SubSchema,
    field_policy,
};
