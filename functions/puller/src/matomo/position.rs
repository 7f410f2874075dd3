//! Where a site's pull stands: the next (day, offset) to fetch. It is stored as the Delta
//! application-transaction version of the site's writer, committed with the rows it covers.

use jiff::civil::Date;
use std::fmt;

/// Offsets within a day stay below this (ten million visits of one site in one day), so that
/// (day, offset) orders like the single integer Delta keeps.
pub const MAX_OFFSET: u64 = 10_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub day: Date,
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the committed Matomo position {0} is not one this puller writes")]
pub struct BadPosition(pub i64);

const EPOCH: Date = Date::constant(1970, 1, 1);

impl Position {
    pub fn start_of(day: Date) -> Self {
        Self { day, offset: 0 }
    }

    /// Days since 1970-01-01 × [`MAX_OFFSET`] + offset: increases with every page.
    pub fn version(&self) -> i64 {
        let days = i64::from(tributary_lake::date32(self.day));
        days * MAX_OFFSET as i64 + self.offset as i64
    }

    pub fn from_version(version: i64) -> Result<Self, BadPosition> {
        let days = version.div_euclid(MAX_OFFSET as i64);
        let offset = version.rem_euclid(MAX_OFFSET as i64) as u64;
        let day = EPOCH.checked_add(jiff::Span::new().days(days)).map_err(|_| BadPosition(version))?;
        Ok(Self { day, offset })
    }

    pub fn app_id(site: u32) -> String {
        format!("tributary-puller-matomo-site-{site}")
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}", self.day, self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_order_like_their_versions() {
        let a = Position { day: Date::constant(2025, 1, 31), offset: 2000 };
        let b = Position::start_of(Date::constant(2025, 2, 1));
        assert_eq!(Position::from_version(a.version()).unwrap(), a);
        assert_eq!(Position::from_version(b.version()).unwrap(), b);
        assert!(a.version() < b.version());
        assert_eq!(a.to_string(), "2025-01-31+2000");
    }
}
