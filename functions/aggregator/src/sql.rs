//! Every statement the aggregator runs. Only our own values are ever written into SQL text (file
//! paths from the Delta log, quoted as literals, and fixed column names); everything a request
//! carries (dates, months, the time zone) is bound as a `$n` parameter.

use std::path::{Path, PathBuf};
use tributary_lake::schema::{ColumnType, LEADS};

/// The lead dates ([`tributary_domain::lead::LEAD_DATE_FIELDS`]) in the order of the statistics'
/// JSON keys, the order of the seed contract's example; a test keeps them the same set.
pub const DATE_COLUMNS: [&str; 5] =
    ["date_prise_contact", "date_reponse_prospect", "date_appel_booke", "date_appel_propose", "date_relance"];

/// A SQL string literal.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Set-up run once per connection: the day a lead date falls on in a zone. A date (`2025-01-31`)
/// is a calendar day and stays as it is; a date-time is an instant, whose day depends on the zone
/// (`2025-01-05T23:30:00Z` is Monday the 6th in Paris). Unparseable text gives NULL (not counted).
pub const MACROS: &str = "CREATE OR REPLACE TEMP MACRO lead_day(text_value, zone) AS \
    CASE WHEN length(text_value) = 10 THEN TRY_CAST(text_value AS DATE) \
    ELSE CAST(timezone(zone, TRY_CAST(text_value AS TIMESTAMPTZ)) AS DATE) END;";

/// `lead_versions`: every row of the `leads` snapshot (one row per lead version, duplicates
/// included). `union_by_name` reads files written before an additive schema change (the new
/// column is NULL there). An empty table is an empty relation with the declared columns.
pub fn lead_versions_view(files: &[PathBuf]) -> String {
    let source = if files.is_empty() {
        let columns: Vec<String> = LEADS
            .columns
            .iter()
            .map(|column| format!("NULL::{} AS {}", duckdb_type(column.column_type), column.name))
            .collect();
        format!("(SELECT {} WHERE false)", columns.join(", "))
    } else {
        let list: Vec<String> = files.iter().map(|path| quote_literal(&path.to_string_lossy())).collect();
        format!("read_parquet([{}], union_by_name = true)", list.join(", "))
    };
    format!("CREATE OR REPLACE TEMP VIEW lead_versions AS SELECT * FROM {source};")
}

fn duckdb_type(column_type: ColumnType) -> &'static str {
    match column_type {
        ColumnType::Integer => "INTEGER",
        ColumnType::Long => "BIGINT",
        ColumnType::String => "VARCHAR",
        ColumnType::Date => "DATE",
        ColumnType::Timestamp => "TIMESTAMPTZ",
    }
}

/// What makes a lead version the latest: the greatest `_occurred_at`, then `_event_id`, so that
/// ties resolve the same way on every run. Redelivered copies of one event are identical rows, so
/// they collapse too. Both [`latest_leads_view`] and `latest_dates` ([`build_latest_dates`],
/// [`merge_latest_dates`]) order by it.
const LATEST_VERSION_KEY: &str = "(_occurred_at, _event_id)";

/// `latest_leads`: the latest version of each lead, whole rows (report and alerts).
pub fn latest_leads_view() -> String {
    format!(
        "CREATE OR REPLACE TEMP VIEW latest_leads AS SELECT * FROM lead_versions \
         QUALIFY row_number() OVER (PARTITION BY id ORDER BY {LATEST_VERSION_KEY} DESC) = 1;"
    )
}

/// A statistics bucket: its JSON key and how a day maps to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// ISO 8601 week, `2025-W01` (the ISO year: 2024-12-30 is in 2025-W01).
    Week,
    /// Calendar month, `2025-01`.
    Month,
}

impl Bucket {
    pub fn key(self) -> &'static str {
        match self {
            Bucket::Week => "semaine",
            Bucket::Month => "mois",
        }
    }

    fn format(self) -> &'static str {
        match self {
            Bucket::Week => "%G-W%V",
            Bucket::Month => "%Y-%m",
        }
    }
}

/// The columns of `latest_dates` from `source`: the lead, its latest version's key, the five dates.
/// In two steps, which give the same answer as one `arg_max` over [`LATEST_VERSION_KEY`] at about
/// two thirds of the time and memory (DuckDB's aggregates over a plain timestamp are far cheaper
/// than over a row): each lead's greatest `_occurred_at`, then among its versions at that instant
/// the one with the greatest `_event_id` (two rows with the same event id are copies of one event).
fn latest_dates_select(source: &str) -> String {
    let dates = DATE_COLUMNS.iter().map(|c| format!("v.{c}")).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT id, lead.* FROM ( \
            SELECT v.id, arg_max(struct_pack(v._occurred_at, v._event_id, {dates}), v._event_id) AS lead \
            FROM {source} AS v \
            JOIN (SELECT id, max(_occurred_at) AS latest_at FROM {source} GROUP BY id) AS m \
              ON v.id = m.id AND v._occurred_at = m.latest_at \
            GROUP BY v.id \
         )"
    )
}

/// `latest_dates`: a table (not a view) holding, per lead, the five dates of its latest version.
/// Computing it is most of the work of a count (grouping millions of versions by lead), so the
/// engine keeps it between requests and only merges the files a new snapshot adds
/// ([`merge_latest_dates`]). Only the five dates are kept, which reads far less than whole rows.
pub fn build_latest_dates() -> String {
    format!("CREATE OR REPLACE TEMP TABLE latest_dates AS {};", latest_dates_select("lead_versions"))
}

/// Brings `latest_dates` up to date with `files`, the data files a snapshot added to the one the
/// table was built from: their latest version of each lead replaces the kept one when it is newer
/// (by [`LATEST_VERSION_KEY`]); leads seen for the first time are added.
pub fn merge_latest_dates(files: &[PathBuf]) -> String {
    let list: Vec<String> = files.iter().map(|path| quote_literal(&path.to_string_lossy())).collect();
    let source = format!("read_parquet([{}], union_by_name = true)", list.join(", "));
    format!(
        "CREATE OR REPLACE TEMP TABLE latest_dates_added AS {added}; \
         DELETE FROM latest_dates USING latest_dates_added AS added \
            WHERE latest_dates.id = added.id \
            AND (added._occurred_at > latest_dates._occurred_at \
                 OR (added._occurred_at = latest_dates._occurred_at AND added._event_id > latest_dates._event_id)); \
         INSERT INTO latest_dates SELECT * FROM latest_dates_added AS added \
            WHERE NOT EXISTS (SELECT 1 FROM latest_dates WHERE latest_dates.id = added.id); \
         DROP TABLE latest_dates_added;",
        added = latest_dates_select(&source),
    )
}

/// `latest_dates` from a kept file (the columns named, so that a file of another shape fails here
/// rather than later). One statement, committed on its own: the files added since the kept file
/// are merged afterwards ([`merge_latest_dates`]), in a transaction of their own (loading and merging
/// in one transaction made its commit cost a second at 2.5M leads).
pub fn load_latest_dates(kept: &Path) -> String {
    format!(
        "CREATE OR REPLACE TEMP TABLE latest_dates AS SELECT {columns} FROM read_parquet({kept});",
        columns = latest_dates_columns(),
        kept = quote_literal(&kept.to_string_lossy()),
    )
}

/// `latest_dates` written to `target` as Parquet (zstd; `covers`, a JSON text, in the file's
/// metadata under [`crate::snapshot::COVERS_KEY`]).
pub fn export_latest_dates(target: &Path, covers: &str) -> String {
    format!(
        "COPY (SELECT {columns} FROM latest_dates) TO {target} \
         (FORMAT parquet, COMPRESSION zstd, KV_METADATA {{{key}: {covers}}})",
        columns = latest_dates_columns(),
        target = quote_literal(&target.to_string_lossy()),
        key = quote_literal(crate::snapshot::COVERS_KEY),
        covers = quote_literal(covers),
    )
}

/// The columns of `latest_dates` (and of a kept latest-dates file), in order.
pub fn latest_dates_column_names() -> Vec<&'static str> {
    let mut columns = vec!["id", "_occurred_at", "_event_id"];
    columns.extend(DATE_COLUMNS);
    columns
}

fn latest_dates_columns() -> String {
    latest_dates_column_names().join(", ")
}

/// Counts of each lead date per bucket, over the latest version of each lead (`latest_dates`).
/// Parameters: `$1` time zone, `$2` first day or NULL, `$3` last day or NULL (inclusive).
/// Unpivot the five dates into (column, text) rows, count per distinct text first (far fewer than
/// the rows: the zone conversion then runs once per text, not once per lead), count per day,
/// bucket the days, then pivot back to one column per date.
pub fn count_dates(bucket: Bucket) -> String {
    let dates = DATE_COLUMNS.join(", ");
    let quoted: Vec<String> = DATE_COLUMNS.iter().map(|c| quote_literal(c)).collect();
    format!(
        "WITH dates AS ( \
            UNPIVOT (SELECT {dates} FROM latest_dates) ON {dates} INTO NAME field VALUE text_value \
         ), texts AS ( \
            SELECT field, text_value, count(*) AS n FROM dates GROUP BY ALL \
         ), days AS ( \
            SELECT field, lead_day(text_value, $1) AS day, sum(n) AS n FROM texts GROUP BY ALL \
         ), buckets AS ( \
            SELECT field, strftime(day, '{format}') AS bucket, n FROM days \
            WHERE day IS NOT NULL AND ($2::DATE IS NULL OR day >= $2::DATE) AND ($3::DATE IS NULL OR day <= $3::DATE) \
         ) \
         PIVOT buckets ON field IN ({quoted}) USING sum(n) GROUP BY bucket ORDER BY bucket",
        format = bucket.format(),
        quoted = quoted.join(", "),
    )
}

/// The leads first contacted in a month (the report's cohort), one row each with its step days.
/// Parameters: `$1` first day, `$2` last day, `$3` time zone.
const COHORT: &str = "SELECT statut, \
        lead_day(date_prise_contact, $3) AS contact, lead_day(date_appel_propose, $3) AS proposed, \
        lead_day(date_appel_booke, $3) AS booked, lead_day(date_reponse_prospect, $3) AS answered \
    FROM latest_leads WHERE lead_day(date_prise_contact, $3) BETWEEN $1::DATE AND $2::DATE";

/// The cohort's funnel: how many reached each step, and the median days between steps (over the
/// leads that have both dates). Parameters as [`COHORT`].
pub fn monthly_funnel() -> String {
    let median = |from: &str, to: &str| {
        format!(
            "CAST(median(date_diff('day', {from}, {to})) AS DOUBLE), count(*) FILTER ({from} IS NOT NULL AND {to} IS NOT NULL)"
        )
    };
    format!(
        "WITH cohort AS ({COHORT}) SELECT count(*), count(proposed), count(booked), count(answered), {}, {}, {} FROM cohort",
        median("contact", "proposed"),
        median("proposed", "booked"),
        median("booked", "answered"),
    )
}

/// The cohort by `statut` (NULL for a lead without one). Parameters as [`COHORT`].
pub fn monthly_by_statut() -> String {
    format!("WITH cohort AS ({COHORT}) SELECT statut, count(*) FROM cohort GROUP BY statut")
}

/// Every lead that breaks an alert rule, one row per (lead, rule), with its five days (UTC).
/// Parameters: `$1` today, `$2` days without an answer after contact, `$3` days a proposed call
/// may stay unbooked, `$4` days after a booked call without a follow-up. `required_dates` pairs a
/// `statut` with the date column it implies (our constant table, not request text).
pub fn alerts(required_dates: &[(&str, &str)]) -> String {
    let missing: Vec<String> = required_dates
        .iter()
        .map(|(statut, column)| format!("(statut = {} AND {column} IS NULL)", quote_literal(statut)))
        .collect();
    let missing = if missing.is_empty() { "false".to_string() } else { missing.join(" OR ") };
    format!(
        "WITH leads AS ( \
            SELECT id, nom, statut, \
                lead_day(date_prise_contact, 'UTC') AS date_prise_contact, \
                lead_day(date_reponse_prospect, 'UTC') AS date_reponse_prospect, \
                lead_day(date_appel_propose, 'UTC') AS date_appel_propose, \
                lead_day(date_appel_booke, 'UTC') AS date_appel_booke, \
                lead_day(date_relance, 'UTC') AS date_relance, \
                coalesce(statut, '') IN ('gagne', 'perdu') AS closed \
            FROM latest_leads \
        ), flagged AS ( \
            SELECT 'no_answer_after_contact' AS rule, * FROM leads \
                WHERE NOT closed AND date_reponse_prospect IS NULL AND date_prise_contact <= $1::DATE - $2::INTEGER \
            UNION ALL SELECT 'proposed_call_not_booked', * FROM leads \
                WHERE NOT closed AND date_appel_booke IS NULL AND date_appel_propose <= $1::DATE - $3::INTEGER \
            UNION ALL SELECT 'booked_call_without_follow_up', * FROM leads \
                WHERE NOT closed AND date_appel_booke <= $1::DATE - $4::INTEGER \
                AND (date_relance IS NULL OR date_relance < date_appel_booke) \
            UNION ALL SELECT 'missing_date_for_statut', * FROM leads WHERE {missing} \
            UNION ALL SELECT 'inverted_dates', * FROM leads \
                WHERE date_reponse_prospect < date_prise_contact OR date_appel_propose < date_prise_contact \
                OR date_appel_booke < date_prise_contact OR date_relance < date_prise_contact \
                OR date_appel_booke < date_appel_propose \
        ) \
        SELECT rule, id, nom, statut, \
            CAST(date_prise_contact AS VARCHAR), CAST(date_reponse_prospect AS VARCHAR), \
            CAST(date_appel_propose AS VARCHAR), CAST(date_appel_booke AS VARCHAR), CAST(date_relance AS VARCHAR) \
        FROM flagged ORDER BY rule, id"
    )
}

/// Whether `$1` names a time zone DuckDB knows (ICU's database, built into the library).
pub const TIME_ZONE_EXISTS: &str = "SELECT count(*) FROM pg_timezone_names() WHERE name = $1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statistics_columns_are_the_lead_dates() {
        let mut columns = DATE_COLUMNS.to_vec();
        let mut dates = tributary_domain::lead::LEAD_DATE_FIELDS.to_vec();
        columns.sort_unstable();
        dates.sort_unstable();
        assert_eq!(columns, dates);
    }

    #[test]
    fn literals_are_quoted() {
        assert_eq!(quote_literal("/tmp/it's.parquet"), "'/tmp/it''s.parquet'");
    }

    #[test]
    fn an_empty_table_is_a_typed_empty_view() {
        let sql = lead_versions_view(&[]);
        assert!(sql.contains("NULL::VARCHAR AS id"), "{sql}");
        assert!(sql.contains("NULL::TIMESTAMPTZ AS _occurred_at"), "{sql}");
        assert!(sql.ends_with("WHERE false);"), "{sql}");
    }

    #[test]
    fn counts_bind_every_request_value() {
        for bucket in [Bucket::Week, Bucket::Month] {
            let sql = count_dates(bucket);
            for parameter in ["$1", "$2", "$3"] {
                assert!(sql.contains(parameter), "{parameter} in {sql}");
            }
        }
    }
}
