//! The integrator: `customer.updated` from the `updates` topic becomes pushes of the customer
//! record to the external REST APIs configured as integrations.

pub mod config;
pub mod guard;
pub mod handler;
pub mod push;
