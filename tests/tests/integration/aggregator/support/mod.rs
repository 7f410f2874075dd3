//! Generated leads written through the real lake writer, and an independent reference: the same
//! questions answered in plain Rust over the same leads.
#![allow(dead_code)]

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use lake_writer::{Tables, write_batch};
use std::collections::{BTreeMap, HashMap};
use tributary_domain::lead::Lead;
use tributary_lake::LakeLocation;
use tributary_testing::sqs_event;

pub use aggregator::sql::DATE_COLUMNS;

/// One `lead.upserted` event as the bus carries it.
#[derive(Debug, Clone)]
pub struct Version {
    pub lead: Lead,
    pub event_id: String,
    pub occurred_at: Timestamp,
}

impl Version {
    pub fn body(&self) -> String {
        self.lead
            .upserted_event(self.event_id.clone(), "ingestion", self.occurred_at, self.occurred_at)
            .unwrap()
            .to_message()
            .unwrap()
    }
}

pub fn temp_lake() -> (LakeLocation, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("tributary-aggregator-{}", uuid::Uuid::new_v4()));
    (LakeLocation::local_dir(&dir.join("lake")).unwrap(), dir)
}

/// Appends the versions through the lake writer, `per_batch` events per SQS batch.
pub async fn write(location: &LakeLocation, versions: &[Version], per_batch: usize) {
    let tables = Tables::open(location).await.unwrap();
    for chunk in versions.chunks(per_batch) {
        let bodies: Vec<String> = chunk.iter().map(Version::body).collect();
        let (response, _) = write_batch(&tables, sqs_event(&bodies), Timestamp::now()).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
}

fn text_date(rng: &mut fastrand::Rng, day: Date) -> String {
    match rng.u8(0..4) {
        0 => format!("{day}T{:02}:{:02}:00Z", rng.u8(0..24), rng.u8(0..60)),
        1 => format!("{day}T23:{:02}:00Z", rng.u8(0..60)),
        2 => format!("{day}T00:{:02}:00+02:00", rng.u8(0..60)),
        _ => day.to_string(),
    }
}

/// `leads` leads over about two years around new year 2021 and 2026 (ISO weeks 53), each with 1 to
/// 4 versions (later versions fill more dates), some versions delivered twice, in shuffled order.
pub fn generate(seed: u64, leads: usize) -> Vec<Version> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let statuts = ["nouveau", "contacte", "reponse_recue", "appel_propose", "appel_booke", "relance", "gagne", "perdu"];
    let mut versions = Vec::new();
    for n in 0..leads {
        let base = if rng.bool() { jiff::civil::date(2020, 12, 1) } else { jiff::civil::date(2025, 12, 1) };
        let contact = base.checked_add(jiff::Span::new().days(rng.i64(0..70))).unwrap();
        let mut lead = Lead { id: format!("lead-{n:05}"), nom: format!("Nom {n}"), ..Lead::default() };
        let mut at: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        for v in 0..rng.usize(1..=4) {
            let later = |rng: &mut fastrand::Rng| contact.checked_add(jiff::Span::new().days(rng.i64(-3..30))).unwrap();
            lead.date_prise_contact = Some(text_date(&mut rng, contact));
            for field in 1..5 {
                if rng.u8(0..3) == 0 {
                    let day = later(&mut rng);
                    let value = Some(text_date(&mut rng, day));
                    match field {
                        1 => lead.date_reponse_prospect = value,
                        2 => lead.date_appel_booke = value,
                        3 => lead.date_appel_propose = value,
                        _ => lead.date_relance = value,
                    }
                }
            }
            lead.statut = Some(statuts[rng.usize(0..statuts.len())].to_string());
            at = at.checked_add(jiff::SignedDuration::from_secs(rng.i64(1..86_400))).unwrap();
            let version = Version { lead: lead.clone(), event_id: format!("ev-{n}-{v}"), occurred_at: at };
            if rng.u8(0..5) == 0 {
                versions.push(version.clone());
            }
            versions.push(version);
        }
    }
    rng.shuffle(&mut versions);
    versions
}

/// The latest version of each lead: greatest `occurred_at`, then event id.
pub fn latest(versions: &[Version]) -> Vec<Lead> {
    let mut by_id: HashMap<&str, &Version> = HashMap::new();
    for version in versions {
        let entry = by_id.entry(&version.lead.id).or_insert(version);
        if (version.occurred_at, &version.event_id) > (entry.occurred_at, &entry.event_id) {
            *entry = version;
        }
    }
    by_id.into_values().map(|v| v.lead.clone()).collect()
}

/// The day a lead date falls on in `zone` (a plain date stays as it is).
pub fn day_in(text: &str, zone: &TimeZone) -> Date {
    if text.len() == 10 {
        text.parse().unwrap()
    } else {
        text.parse::<Timestamp>().unwrap().to_zoned(zone.clone()).date()
    }
}

pub fn lead_dates(lead: &Lead) -> [(&'static str, Option<&str>); 5] {
    [
        ("date_prise_contact", lead.date_prise_contact.as_deref()),
        ("date_reponse_prospect", lead.date_reponse_prospect.as_deref()),
        ("date_appel_booke", lead.date_appel_booke.as_deref()),
        ("date_appel_propose", lead.date_appel_propose.as_deref()),
        ("date_relance", lead.date_relance.as_deref()),
    ]
}

pub fn iso_week(day: Date) -> String {
    let week = day.iso_week_date();
    format!("{:04}-W{:02}", week.year(), week.week())
}

pub fn month_of(day: Date) -> String {
    format!("{:04}-{:02}", day.year(), day.month())
}

/// Counts per bucket and column, the reference for `count_date_by_*`.
pub fn reference_counts(
    leads: &[Lead],
    zone: &TimeZone,
    bucket: fn(Date) -> String,
    range: Option<(Date, Date)>,
) -> Vec<(String, [i64; 5])> {
    let mut counts: BTreeMap<String, [i64; 5]> = BTreeMap::new();
    for lead in leads {
        for (i, (_, value)) in lead_dates(lead).into_iter().enumerate() {
            let Some(text) = value else { continue };
            let day = day_in(text, zone);
            if range.is_some_and(|(from, to)| day < from || day > to) {
                continue;
            }
            counts.entry(bucket(day)).or_default()[i] += 1;
        }
    }
    counts.into_iter().collect()
}
