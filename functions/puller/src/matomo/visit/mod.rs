//! One Matomo visit on its way to the lake: anonymised, custom dimensions and goals named, turned
//! into a `matomo_visits` row and, when the visitor is known, a `matomo.visit` summary.
//!
//! A visit is about 5 KB of JSON of which the puller reads a dozen fields and changes a few. It is
//! read in one scan that notes the fields it needs and where the changes go (byte ranges of the
//! original text and their replacements); the row's text is the original with those edits applied.
//! Nothing else is decoded or re-encoded: a `serde_json::Value` tree per visit, serialised back,
//! cost more than all the rest of the work (README, "The puller").
//!
//! - `anonymiser`: the keyed hash of configured values (and always the IP address);
//! - `page`: the one-scan reader of a page of visits, with the site's dimension and goal names;
//! - `row`: the `matomo_visits` row a visit becomes, and its bus summary.

mod anonymiser;
mod page;
mod row;

pub use anonymiser::{ALWAYS_ANONYMISED, Anonymiser};
pub use page::{PreparedPage, SiteMetadata, VisitContext, prepare_page};
pub use row::{VisitError, VisitRow};
