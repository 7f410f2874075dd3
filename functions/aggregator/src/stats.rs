//! `count_date_by_week` and `count_date_by_month`: how many lead dates fall in each bucket.

use crate::AggregatorError;
use crate::engine::Engine;
use crate::sql::{self, Bucket, DATE_COLUMNS};
use jiff::civil::Date;
use serde::ser::{Serialize, SerializeMap, Serializer};

/// What to count: bucket size, the zone the buckets are computed in, an optional day range
/// (inclusive, in that zone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountQuery {
    pub bucket: Bucket,
    pub zone: String,
    pub from: Option<Date>,
    pub to: Option<Date>,
}

/// One bucket: its label (`2025-W01`, `2025-01`) and the count of each date column, in
/// [`DATE_COLUMNS`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateCounts {
    pub bucket: String,
    pub counts: [i64; 5],
}

impl DateCounts {
    pub fn count(&self, column: &str) -> Option<i64> {
        DATE_COLUMNS.iter().position(|c| *c == column).map(|i| self.counts[i])
    }
}

/// Every bucket holding at least one date, ascending.
pub fn count_dates(engine: &Engine, query: &CountQuery) -> Result<Vec<DateCounts>, AggregatorError> {
    let mut statement = engine.connection().prepare_cached(&sql::count_dates(query.bucket))?;
    let day = |d: Option<Date>| d.map(|d| d.to_string());
    let rows = statement.query_map(duckdb::params![query.zone, day(query.from), day(query.to)], |row| {
        let mut counts = [0i64; 5];
        for (i, count) in counts.iter_mut().enumerate() {
            *count = row.get::<_, Option<i64>>(i + 1)?.unwrap_or(0);
        }
        Ok(DateCounts { bucket: row.get(0)?, counts })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The JSON rows of the contract: the bucket key first (`semaine` or `mois`), then all five
/// date columns, always present.
pub struct CountsJson<'a> {
    pub bucket: Bucket,
    pub rows: &'a [DateCounts],
}

struct Row<'a>(Bucket, &'a DateCounts);

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1 + DATE_COLUMNS.len()))?;
        map.serialize_entry(self.0.key(), &self.1.bucket)?;
        for (column, count) in DATE_COLUMNS.iter().zip(self.1.counts) {
            map.serialize_entry(column, &count)?;
        }
        map.end()
    }
}

impl Serialize for CountsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.rows.iter().map(|row| Row(self.bucket, row)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_serialise_with_the_bucket_key_first_and_every_column() {
        let rows = [DateCounts { bucket: "2025-W01".into(), counts: [45, 32, 28, 35, 40] }];
        let text = serde_json::to_string(&CountsJson { bucket: Bucket::Week, rows: &rows }).unwrap();
        assert_eq!(
            text,
            r#"[{"semaine":"2025-W01","date_prise_contact":45,"date_reponse_prospect":32,"date_appel_booke":28,"date_appel_propose":35,"date_relance":40}]"#
        );
        let text = serde_json::to_string(&CountsJson { bucket: Bucket::Month, rows: &[] }).unwrap();
        assert_eq!(text, "[]");
    }
}
