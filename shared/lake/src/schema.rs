//! The lake's tables, declared once. The README's "Lake tables" section documents the same columns.
//!
//! A schema change is additive: new columns are nullable and appended at the end, so files written
//! before the change stay readable (the missing column reads as null).

use deltalake::kernel::{DataType, StructField};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::parquet::schema::types::ColumnPath;

/// A Delta table of the lake: its name (the prefix under the lake root), columns and partitioning.
#[derive(Debug)]
pub struct TableSpec {
    pub name: &'static str,
    pub columns: &'static [Column],
    /// Partition columns; delta-rs keeps their values in the log, not in the Parquet files.
    pub partition_columns: &'static [&'static str],
    /// Text columns that hold a whole JSON document per row (see [`TableSpec::writer_properties`]).
    pub documents: &'static [&'static str],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Integer,
    Long,
    String,
    Date,
    /// UTC, microseconds.
    Timestamp,
}

#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub column_type: ColumnType,
    pub nullable: bool,
}

const fn required(name: &'static str, column_type: ColumnType) -> Column {
    Column { name, column_type, nullable: false }
}

const fn optional(name: &'static str, column_type: ColumnType) -> Column {
    Column { name, column_type, nullable: true }
}

use ColumnType::{Date, Integer, Long, String as Text, Timestamp};

/// One row per Matomo visit pulled, anonymised. Written by the puller.
pub const MATOMO_VISITS: TableSpec = TableSpec {
    name: "matomo_visits",
    columns: &[
        required("site_id", Integer),
        // The site-local day the visit was pulled for (Matomo files a visit under the day of its
        // last action).
        required("day", Date),
        required("id_visit", Long),
        optional("visitor_id", Text),
        optional("user_id", Text),
        optional("first_action_at", Timestamp),
        optional("last_action_at", Timestamp),
        optional("actions", Integer),
        optional("visit_duration_s", Integer),
        optional("goal_conversions", Integer),
        // The whole visit as Matomo returned it, with `dimensionN` renamed to the configured
        // dimension names, goal names added and the configured columns replaced by their HMAC.
        required("visit", Text),
        required("pulled_at", Timestamp),
    ],
    partition_columns: &["day"],
    documents: &["visit"],
};

/// Every canonical event published on the bus. Written by the lake writer.
pub const EVENTS: TableSpec = TableSpec {
    name: "events",
    columns: &[
        required("id", Text),
        required("source", Text),
        required("type", Text),
        optional("subject", Text),
        required("occurred_at", Timestamp),
        required("received_at", Timestamp),
        required("payload", Text),
        required("event_date", Date),
    ],
    partition_columns: &["event_date"],
    // The payload is small and its types repeat; left to the writer's defaults.
    documents: &[],
};

/// One row per lead version (`lead.upserted` event). Written by the lake writer.
pub const LEADS: TableSpec = TableSpec {
    name: "leads",
    columns: &[
        required("id", Text),
        required("nom", Text),
        optional("email", Text),
        optional("telephone", Text),
        optional("date_prise_contact", Text),
        optional("date_appel_booke", Text),
        optional("date_appel_propose", Text),
        optional("date_relance", Text),
        optional("date_reponse_prospect", Text),
        optional("statut", Text),
        required("_event_id", Text),
        required("_occurred_at", Timestamp),
        required("_ingested_at", Timestamp),
    ],
    partition_columns: &[],
    documents: &[],
};

impl TableSpec {
    /// How the table's Parquet files are written: Snappy, as delta-rs does by default, and the
    /// document columns without a dictionary. A visit's JSON never repeats, so the writer would
    /// hash every value into a dictionary only to drop it at the first page (a quarter of the
    /// encoding time of a page of visits, README "The puller").
    pub fn writer_properties(&self) -> WriterProperties {
        self.documents
            .iter()
            .fold(WriterProperties::builder().set_compression(Compression::SNAPPY), |builder, column| {
                builder.set_column_dictionary_enabled(ColumnPath::from(*column), false)
            })
            .build()
    }

    /// The Delta columns of the table.
    pub fn delta_fields(&self) -> Vec<StructField> {
        self.columns
            .iter()
            .map(|column| {
                let data_type = match column.column_type {
                    Integer => DataType::INTEGER,
                    Long => DataType::LONG,
                    Text => DataType::STRING,
                    Date => DataType::DATE,
                    Timestamp => DataType::TIMESTAMP,
                };
                StructField::new(column.name, data_type, column.nullable)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_columns_are_declared_columns() {
        for spec in [&MATOMO_VISITS, &EVENTS, &LEADS] {
            for partition in spec.partition_columns {
                assert!(spec.columns.iter().any(|c| c.name == *partition), "{} {partition}", spec.name);
            }
            assert_eq!(spec.delta_fields().len(), spec.columns.len());
            for document in spec.documents {
                assert!(spec.columns.iter().any(|c| c.name == *document && c.column_type == Text), "{document}");
                let properties = spec.writer_properties();
                assert!(!properties.dictionary_enabled(&ColumnPath::from(*document)));
            }
        }
    }

    #[test]
    fn the_leads_table_is_the_lead_fields_in_their_order_then_the_bookkeeping() {
        let names: Vec<&str> = LEADS.columns.iter().map(|c| c.name).collect();
        let fields = tributary_domain::lead::LEAD_FIELDS;
        assert_eq!(names[..fields.len()], fields[..]);
        for column in &LEADS.columns[..fields.len()] {
            let required = tributary_domain::lead::LEAD_REQUIRED_FIELDS.contains(&column.name);
            assert_eq!(column.nullable, !required, "{}", column.name);
        }
        assert!(names[fields.len()..].iter().all(|n| n.starts_with('_')), "{names:?}");
    }
}
