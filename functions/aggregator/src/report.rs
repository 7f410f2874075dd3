//! The monthly report: the month's date counts, and the leads first contacted that month (the
//! cohort) by `statut`, through the funnel contact → proposed call → booked call → answer, with
//! conversion rates and the median days between steps.

use crate::AggregatorError;
use crate::engine::Engine;
use crate::sql::{self, Bucket};
use crate::stats::{CountQuery, count_dates};
use jiff::civil::Date;
use serde::Serialize;
use tributary_domain::lead::STATUTS;

/// A calendar month, `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    pub first_day: Date,
}

impl Month {
    pub fn parse(text: &str) -> Option<Self> {
        let (year, month) = text.split_once('-')?;
        if year.len() != 4 || month.len() != 2 {
            return None;
        }
        let first_day = Date::new(year.parse().ok()?, month.parse().ok()?, 1).ok()?;
        Some(Self { first_day })
    }

    pub fn containing(day: Date) -> Self {
        Self { first_day: day.first_of_month() }
    }

    pub fn previous(self) -> Self {
        Self::containing(self.first_day.yesterday().unwrap_or(self.first_day))
    }

    pub fn last_day(self) -> Date {
        self.first_day.last_of_month()
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.first_day.year(), self.first_day.month())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnCount {
    pub column: &'static str,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatutCount {
    /// `null` for leads without a `statut`.
    pub statut: Option<String>,
    pub leads: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunnelStep {
    pub step: &'static str,
    pub leads: i64,
    /// Share of the previous step's leads that reached this one (`null` for the first step or
    /// when the previous step had none).
    pub rate_from_previous: Option<f64>,
    /// Share of the contacted leads.
    pub rate_from_contact: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepDelay {
    pub from: &'static str,
    pub to: &'static str,
    /// Leads with both dates.
    pub leads: i64,
    pub median_days: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthlyReport {
    pub month: String,
    pub time_zone: String,
    /// How many of each lead date fall in the month (the month's `count_date_by_month` row).
    pub dates: Vec<ColumnCount>,
    pub by_statut: Vec<StatutCount>,
    pub funnel: Vec<FunnelStep>,
    pub delays: Vec<StepDelay>,
}

pub const FUNNEL_STEPS: [&str; 4] = ["contact", "proposed_call", "booked_call", "answer"];

fn rate(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

pub fn monthly_report(engine: &Engine, month: Month, zone: &str) -> Result<MonthlyReport, AggregatorError> {
    let query = CountQuery {
        bucket: Bucket::Month,
        zone: zone.to_string(),
        from: Some(month.first_day),
        to: Some(month.last_day()),
    };
    let month_counts = count_dates(engine, &query)?.into_iter().next().map(|row| row.counts).unwrap_or_default();
    let dates =
        sql::DATE_COLUMNS.iter().zip(month_counts).map(|(column, count)| ColumnCount { column, count }).collect();

    let params = duckdb::params![month.first_day.to_string(), month.last_day().to_string(), zone];
    let connection = engine.connection();
    let mut statement = connection.prepare_cached(&sql::monthly_by_statut())?;
    let mut by_statut: Vec<StatutCount> = statement
        .query_map(params, |row| Ok(StatutCount { statut: row.get(0)?, leads: row.get(1)? }))?
        .collect::<Result<_, _>>()?;
    // Funnel order, then unknown values by name, then leads without a statut.
    let rank = |statut: &Option<String>| match statut {
        Some(s) => (STATUTS.iter().position(|known| known == s).unwrap_or(STATUTS.len()), s.clone()),
        None => (STATUTS.len() + 1, String::new()),
    };
    by_statut.sort_by_key(|entry| rank(&entry.statut));

    let mut statement = connection.prepare_cached(&sql::monthly_funnel())?;
    let (steps, delays) = statement.query_row(params, |row| {
        let steps: [i64; 4] = [row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?];
        let delay = |i: usize, from, to| -> duckdb::Result<StepDelay> {
            Ok(StepDelay { from, to, median_days: row.get(4 + 2 * i)?, leads: row.get(5 + 2 * i)? })
        };
        let delays = vec![
            delay(0, "contact", "proposed_call")?,
            delay(1, "proposed_call", "booked_call")?,
            delay(2, "booked_call", "answer")?,
        ];
        Ok((steps, delays))
    })?;
    let funnel = FUNNEL_STEPS
        .iter()
        .enumerate()
        .map(|(i, step)| FunnelStep {
            step,
            leads: steps[i],
            rate_from_previous: if i == 0 { None } else { rate(steps[i], steps[i - 1]) },
            rate_from_contact: rate(steps[i], steps[0]),
        })
        .collect();
    Ok(MonthlyReport { month: month.to_string(), time_zone: zone.to_string(), dates, by_statut, funnel, delays })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_strictly() {
        let month = Month::parse("2025-02").unwrap();
        assert_eq!(month.to_string(), "2025-02");
        assert_eq!(month.last_day(), jiff::civil::date(2025, 2, 28));
        assert_eq!(Month::parse("2025-01").unwrap().previous().to_string(), "2024-12");
        for bad in ["2025-13", "2025-1", "25-01", "2025-01-01", "janvier", ""] {
            assert!(Month::parse(bad).is_none(), "{bad}");
        }
    }
}
