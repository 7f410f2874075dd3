//! The aggregator's questions over a lake written by the real lake writer, checked against a
//! reference computed independently in plain Rust (`support`).

use super::support;

use aggregator::alerts::{AlertRules, alerts};
use aggregator::config::LakeQueryConfig;
use aggregator::engine::{EngineLimits, LatestDatesStart};
use aggregator::reader::{KeptOutcome, LakeReader};
use aggregator::report::{Month, monthly_report};
use aggregator::sql::Bucket;
use aggregator::stats::{CountQuery, count_dates};
use aggregator::xlsx::{alerts_workbook, report_workbook};
use calamine::{Data, Reader, Xlsx};
use jiff::civil::{Date, date};
use jiff::tz::TimeZone;
use support::*;
use tributary_domain::lead::Lead;
use tributary_lake::schema::LEADS;
use tributary_lake::{CompactionPolicy, LakeTable};

fn reader_for(location: &tributary_lake::LakeLocation, dir: &std::path::Path) -> LakeReader {
    LakeReader::open(&LakeQueryConfig {
        lake: location.clone(),
        cache_dir: dir.join("cache"),
        limits: EngineLimits { threads: 2, memory_limit_mb: 512 },
        alert_rules: AlertRules::default(),
    })
    .unwrap()
}

fn counts(
    reader_engine: &aggregator::engine::Engine,
    bucket: Bucket,
    zone: &str,
    range: Option<(Date, Date)>,
) -> Vec<(String, [i64; 5])> {
    let query = CountQuery { bucket, zone: zone.into(), from: range.map(|r| r.0), to: range.map(|r| r.1) };
    count_dates(reader_engine, &query).unwrap().into_iter().map(|row| (row.bucket, row.counts)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_equal_the_reference_with_duplicates_versions_zones_and_ranges() {
    let (location, dir) = temp_lake();
    let versions = generate(7, 400);
    write(&location, &versions, 97).await;
    let latest = latest(&versions);
    let mut reader = reader_for(&location, &dir);
    let engine = reader.latest().await.unwrap();
    for zone in ["UTC", "Europe/Paris", "America/New_York"] {
        let tz = TimeZone::get(zone).unwrap();
        assert_eq!(
            counts(engine, Bucket::Week, zone, None),
            reference_counts(&latest, &tz, iso_week, None),
            "weeks {zone}"
        );
        assert_eq!(
            counts(engine, Bucket::Month, zone, None),
            reference_counts(&latest, &tz, month_of, None),
            "months {zone}"
        );
    }
    let range = (date(2020, 12, 28), date(2021, 1, 10));
    assert_eq!(
        counts(engine, Bucket::Week, "UTC", Some(range)),
        reference_counts(&latest, &TimeZone::UTC, iso_week, Some(range))
    );
    // The ISO edge cases are in the data: 2021-01-01 is in 2020-W53, 2026-01-01 in 2026-W01.
    let weeks: Vec<String> = counts(engine, Bucket::Week, "UTC", None).into_iter().map(|(w, _)| w).collect();
    assert!(weeks.contains(&"2020-W53".to_string()) && weeks.contains(&"2026-W01".to_string()), "{weeks:?}");
    assert!(!weeks.contains(&"2021-W53".to_string()));
}

/// One warm reader across snapshots: each append is merged into the kept latest dates (versions
/// arrive shuffled, so an appended file often holds an older version than the one kept), and the
/// compaction that removes every file makes it rebuild; the counts always equal the reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_stay_right_as_appends_are_merged_and_after_a_compaction() {
    let (location, dir) = temp_lake();
    let versions = generate(11, 300);
    let mut reader = reader_for(&location, &dir);
    let quarter = versions.len() / 4;
    let mut start = 0;
    for end in [quarter, 2 * quarter, 3 * quarter, versions.len()] {
        write(&location, &versions[start..end], 41).await;
        assert_reference_counts(reader.latest().await.unwrap(), &versions[..end], &format!("{end} versions"));
        start = end;
    }
    let mut table = LakeTable::open_existing(&location, &LEADS).await.unwrap().unwrap();
    let files_before = table.files().unwrap().len();
    let compaction = table.compact(CompactionPolicy::default(), jiff::Timestamp::MAX).await.unwrap();
    assert_eq!((compaction.files_removed, compaction.files_added), (files_before, 1));
    assert_reference_counts(reader.latest().await.unwrap(), &versions, "the compaction");
}

/// The counts of a reader against the reference over `written`, in two zones and both buckets.
fn assert_reference_counts(engine: &aggregator::engine::Engine, written: &[support::Version], moment: &str) {
    let latest = latest(written);
    let paris = TimeZone::get("Europe/Paris").unwrap();
    assert_eq!(
        counts(engine, Bucket::Week, "Europe/Paris", None),
        reference_counts(&latest, &paris, iso_week, None),
        "weeks after {moment}"
    );
    assert_eq!(
        counts(engine, Bucket::Month, "UTC", None),
        reference_counts(&latest, &TimeZone::UTC, month_of, None),
        "months after {moment}"
    );
}

/// A cold reader (its own cache, as a new Lambda instance) at the lake's current snapshot.
async fn cold_reader(location: &tributary_lake::LakeLocation, dir: &std::path::Path, name: &str) -> LakeReader {
    let mut reader = reader_for(location, &dir.join(name));
    reader.latest_dates().await.unwrap();
    reader
}

/// The kept latest dates (the hourly `latest-dates` job) give a cold reader exactly the answer of
/// every version grouped: with appends on top of them (versions arrive shuffled, so an appended
/// file often holds older versions than the kept ones), after a compaction (which they no longer
/// cover until the job runs again), when the newest kept file is broken (a writer cut off), and
/// with two writers, one of them late with an older snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_latest_dates_give_a_cold_reader_the_reference_counts() {
    let (location, dir) = temp_lake();
    let versions = generate(13, 300);
    let part = versions.len() / 4;
    write(&location, &versions[..part], 37).await;

    let mut job = reader_for(&location, &dir.join("job"));
    let KeptOutcome::Written { version: first, leads, .. } = job.keep_latest_dates().await.unwrap() else {
        panic!("nothing kept on the first run")
    };
    assert_eq!(leads as usize, latest(&versions[..part]).len());
    assert_eq!(job.keep_latest_dates().await.unwrap(), KeptOutcome::UpToDate { version: first });

    // Appends since the kept file: it is loaded and only the new files are merged.
    write(&location, &versions[part..2 * part], 37).await;
    let mut cold = cold_reader(&location, &dir, "cold-appends").await;
    let engine = cold.latest_dates().await.unwrap();
    let Some(LatestDatesStart::Kept { version, added_files }) = engine.latest_dates_start() else {
        panic!("the kept latest dates were not taken: {:?}", engine.latest_dates_start())
    };
    assert_eq!(version, first);
    assert!(added_files > 0);
    assert_reference_counts(engine, &versions[..2 * part], "appends on top of the kept dates");

    // A compaction replaces the files the kept dates cover: a cold reader groups every version,
    // until the job keeps them again.
    let mut table = LakeTable::open_existing(&location, &LEADS).await.unwrap().unwrap();
    table.compact(CompactionPolicy::default(), jiff::Timestamp::MAX).await.unwrap();
    let mut cold = cold_reader(&location, &dir, "cold-compacted").await;
    let engine = cold.latest_dates().await.unwrap();
    assert_eq!(engine.latest_dates_start(), Some(LatestDatesStart::EveryVersion));
    assert_reference_counts(engine, &versions[..2 * part], "a compaction");
    let KeptOutcome::Written { version: compacted, .. } = job.keep_latest_dates().await.unwrap() else {
        panic!("the compacted snapshot was not kept")
    };
    let mut cold = cold_reader(&location, &dir, "cold-after-job").await;
    let engine = cold.latest_dates().await.unwrap();
    assert_eq!(engine.latest_dates_start(), Some(LatestDatesStart::Kept { version: compacted, added_files: 0 }));
    assert_reference_counts(engine, &versions[..2 * part], "the job after the compaction");

    // Two writers: a late one, which computed its file from the compacted snapshot, writes it
    // after a newer one was written from a later snapshot. Each file is right for its own
    // snapshot; readers take the newest.
    let late = table.derived_files("latest_dates").await.unwrap().pop().unwrap();
    assert_eq!(late.version, compacted);
    let late_bytes = table.read_derived(&late).await.unwrap();
    write(&location, &versions[2 * part..3 * part], 37).await;
    let KeptOutcome::Written { version: newer, .. } = job.keep_latest_dates().await.unwrap() else {
        panic!("the newer snapshot was not kept")
    };
    table.put_derived("latest_dates", compacted, late_bytes).await.unwrap();
    table.prune_derived("latest_dates", 2).await.unwrap();
    let kept = table.derived_files("latest_dates").await.unwrap();
    assert!(kept.len() <= 2 && kept.last().unwrap().version == newer, "{kept:?}");
    let mut cold = cold_reader(&location, &dir, "cold-two-writers").await;
    let engine = cold.latest_dates().await.unwrap();
    assert_eq!(engine.latest_dates_start(), Some(LatestDatesStart::Kept { version: newer, added_files: 0 }));
    assert_reference_counts(engine, &versions[..3 * part], "two writers");

    // A writer cut off: the newest kept file is broken (here, half of a good one). Readers fall
    // back to every version, and the next run of the job writes a good one.
    write(&location, &versions[3 * part..], 37).await;
    table.refresh().await.unwrap();
    let current = table.version().unwrap();
    let good = table.derived_files("latest_dates").await.unwrap().pop().unwrap();
    let bytes = table.read_derived(&good).await.unwrap();
    table.put_derived("latest_dates", current, bytes.slice(..bytes.len() / 2)).await.unwrap();
    let mut cold = cold_reader(&location, &dir, "cold-broken").await;
    let engine = cold.latest_dates().await.unwrap();
    assert_eq!(engine.latest_dates_start(), Some(LatestDatesStart::EveryVersion));
    assert_reference_counts(engine, &versions, "a broken kept file");
    table.put_derived("latest_dates", current, b"not parquet".to_vec().into()).await.unwrap();
    let mut cold = cold_reader(&location, &dir, "cold-garbage").await;
    assert_reference_counts(cold.latest_dates().await.unwrap(), &versions, "a kept file that is not Parquet");
    assert!(
        matches!(job.keep_latest_dates().await.unwrap(), KeptOutcome::Written { version, .. } if version == current)
    );
    let mut cold = cold_reader(&location, &dir, "cold-repaired").await;
    let engine = cold.latest_dates().await.unwrap();
    assert_eq!(engine.latest_dates_start(), Some(LatestDatesStart::Kept { version: current, added_files: 0 }));
    assert_reference_counts(engine, &versions, "the job after a broken file");

    // Vacuum leaves the kept files alone (they are under `_derived/`, hidden from Delta).
    let after_retention = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 30);
    table.vacuum(after_retention).await.unwrap();
    assert_eq!(table.derived_files("latest_dates").await.unwrap().last().unwrap().version, current);
}

fn lead(id: &str, dates: [Option<&str>; 5], statut: Option<&str>) -> Lead {
    let text = |i: usize| dates[i].map(str::to_string);
    Lead {
        id: id.into(),
        nom: format!("Nom {id}"),
        date_prise_contact: text(0),
        date_reponse_prospect: text(1),
        date_appel_booke: text(2),
        date_appel_propose: text(3),
        date_relance: text(4),
        statut: statut.map(str::to_string),
        ..Lead::default()
    }
}

fn version(lead: Lead, event: &str, at: &str) -> Version {
    Version { lead, event_id: event.into(), occurred_at: at.parse().unwrap() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iso_week_edges_time_zones_and_an_empty_table() {
    let (location, dir) = temp_lake();
    let mut reader = reader_for(&location, &dir);
    // Nothing written yet: no table at all.
    let engine = reader.latest().await.unwrap();
    assert!(counts(engine, Bucket::Week, "UTC", None).is_empty());
    assert!(counts(engine, Bucket::Month, "UTC", None).is_empty());
    let versions = vec![
        // 1 January 2021 is a Friday of 2020-W53; 3 January 2027 a Sunday of 2026-W53.
        version(lead("a", [Some("2021-01-01"), None, None, None, None], None), "e1", "2025-01-01T00:00:00Z"),
        version(lead("b", [Some("2027-01-03"), None, None, None, None], None), "e2", "2025-01-01T00:00:00Z"),
        // Sunday 23:30 UTC is Monday in Paris: week 1 in UTC, week 2 in Paris.
        version(lead("c", [Some("2025-01-05T23:30:00Z"), None, None, None, None], None), "e3", "2025-01-01T00:00:00Z"),
        // An older version of c, delivered later, loses; so does a duplicate of it.
        version(lead("c", [Some("2024-06-01"), None, None, None, None], None), "e0", "2024-12-01T00:00:00Z"),
        version(lead("c", [Some("2024-06-01"), None, None, None, None], None), "e0", "2024-12-01T00:00:00Z"),
    ];
    write(&location, &versions, 10).await;
    let engine = reader.latest().await.unwrap();
    let weeks =
        |zone| -> Vec<String> { counts(engine, Bucket::Week, zone, None).into_iter().map(|(w, _)| w).collect() };
    assert_eq!(weeks("UTC"), ["2020-W53", "2025-W01", "2026-W53"]);
    assert_eq!(weeks("Europe/Paris"), ["2020-W53", "2025-W02", "2026-W53"]);
    let months: Vec<String> = counts(engine, Bucket::Month, "UTC", None).into_iter().map(|(m, _)| m).collect();
    assert_eq!(months, ["2021-01", "2025-01", "2027-01"]);
}

/// The monthly report's numbers, from a reference over the same leads; the workbook holds the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monthly_report_matches_the_reference_and_its_workbook() {
    let (location, dir) = temp_lake();
    let versions = generate(11, 300);
    write(&location, &versions, 50).await;
    let latest = latest(&versions);
    let mut reader = reader_for(&location, &dir);
    let engine = reader.latest().await.unwrap();
    let month = Month::parse("2021-01").unwrap();
    let report = monthly_report(engine, month, "UTC").unwrap();

    let utc = TimeZone::UTC;
    let day = |text: &Option<String>| text.as_deref().map(|t| day_in(t, &utc));
    let cohort: Vec<&Lead> = latest
        .iter()
        .filter(|l| day(&l.date_prise_contact).is_some_and(|d| d >= month.first_day && d <= month.last_day()))
        .collect();
    assert!(cohort.len() > 20, "the generator puts leads in January 2021");
    let funnel: Vec<i64> = report.funnel.iter().map(|s| s.leads).collect();
    let reached = |get: fn(&Lead) -> &Option<String>| cohort.iter().filter(|l| get(l).is_some()).count() as i64;
    assert_eq!(
        funnel,
        [
            cohort.len() as i64,
            reached(|l| &l.date_appel_propose),
            reached(|l| &l.date_appel_booke),
            reached(|l| &l.date_reponse_prospect)
        ]
    );
    let rate = report.funnel[1].rate_from_previous.unwrap();
    assert!((rate - funnel[1] as f64 / funnel[0] as f64).abs() < 1e-12);
    let statut_total: i64 = report.by_statut.iter().map(|s| s.leads).sum();
    assert_eq!(statut_total, cohort.len() as i64);
    // Median days contact → proposed call.
    let mut gaps: Vec<f64> = cohort
        .iter()
        .filter_map(|l| Some((day(&l.date_prise_contact)?, day(&l.date_appel_propose)?)))
        .map(|(a, b)| (b - a).get_days() as f64)
        .collect();
    gaps.sort_by(f64::total_cmp);
    let median = if gaps.is_empty() {
        None
    } else if gaps.len() % 2 == 1 {
        Some(gaps[gaps.len() / 2])
    } else {
        Some((gaps[gaps.len() / 2 - 1] + gaps[gaps.len() / 2]) / 2.0)
    };
    assert_eq!(report.delays[0].median_days, median);
    assert_eq!(report.delays[0].leads, gaps.len() as i64);
    // The month's date counts are the month's row of count_date_by_month.
    let reference = reference_counts(&latest, &utc, month_of, None);
    let (_, row) = reference.iter().find(|(m, _)| m == "2021-01").unwrap();
    let dates: Vec<i64> = report.dates.iter().map(|c| c.count).collect();
    assert_eq!(dates, row.to_vec());

    let bytes = report_workbook(&report, month.first_day).unwrap();
    let mut workbook: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let funnel_sheet = workbook.worksheet_range("Funnel").unwrap();
    let header: Vec<String> = funnel_sheet.rows().next().unwrap().iter().map(|c| c.to_string()).collect();
    assert_eq!(header, ["step", "leads", "rate_from_previous", "rate_from_contact"]);
    for (row, step) in funnel_sheet.rows().skip(1).zip(&report.funnel) {
        assert_eq!(row[0].to_string(), step.step);
        assert_eq!(row[1], Data::Float(step.leads as f64));
    }
    let dates_sheet = workbook.worksheet_range("Dates").unwrap();
    for (row, count) in dates_sheet.rows().skip(1).zip(&report.dates) {
        assert!(matches!(row[0], Data::DateTime(_)), "typed date cell, got {:?}", row[0]);
        assert_eq!(row[1].to_string(), count.column);
        assert_eq!(row[2], Data::Float(count.count as f64));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_alert_rule_names_the_lead_the_rule_and_the_dates() {
    let (location, dir) = temp_lake();
    let at = "2025-03-01T00:00:00Z";
    // [contact, answer, booked, proposed, relance]
    let leads = vec![
        lead("no-answer", [Some("2025-02-01"), None, None, None, None], Some("contacte")),
        lead("answered", [Some("2025-02-01"), Some("2025-02-03"), None, None, None], Some("reponse_recue")),
        lead("recent", [Some("2025-02-25"), None, None, None, None], Some("contacte")),
        lead(
            "unbooked",
            [Some("2025-02-01"), Some("2025-02-02"), None, Some("2025-02-10"), None],
            Some("appel_propose"),
        ),
        lead(
            "no-follow-up",
            [Some("2025-02-01"), Some("2025-02-02"), Some("2025-02-20"), Some("2025-02-15"), None],
            Some("appel_booke"),
        ),
        lead("missing", [Some("2025-02-20"), Some("2025-02-21"), None, None, None], Some("appel_booke")),
        lead(
            "inverted",
            [Some("2025-02-10"), Some("2025-02-11"), Some("2025-02-05"), Some("2025-02-06"), None],
            Some("perdu"),
        ),
        lead("won", [Some("2025-01-01"), None, None, None, None], Some("gagne")),
    ];
    let versions: Vec<Version> = leads.into_iter().enumerate().map(|(i, l)| version(l, &format!("e{i}"), at)).collect();
    write(&location, &versions, 10).await;
    let mut reader = reader_for(&location, &dir);
    let engine = reader.latest().await.unwrap();
    let found = alerts(engine, AlertRules::default(), date(2025, 3, 1)).unwrap();
    let pairs: Vec<(&str, &str)> = found.iter().map(|a| (a.rule.as_str(), a.lead_id.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("booked_call_without_follow_up", "no-follow-up"),
            ("inverted_dates", "inverted"),
            ("missing_date_for_statut", "missing"),
            ("no_answer_after_contact", "no-answer"),
            ("proposed_call_not_booked", "unbooked"),
        ]
    );
    let inverted = &found[1];
    assert_eq!(inverted.dates.date_appel_booke, Some(date(2025, 2, 5)));
    assert!(
        inverted.detail.contains("date_appel_booke 2025-02-05 before date_prise_contact 2025-02-10"),
        "{}",
        inverted.detail
    );
    assert_eq!(found[3].detail, "contacted on 2025-02-01, no answer after 28 days (threshold 7)");
    assert_eq!(found[2].detail, "statut appel_booke but no date_appel_booke");

    let bytes = alerts_workbook(&found).unwrap();
    let mut workbook: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let sheet = workbook.worksheet_range("Alerts").unwrap();
    let rows: Vec<_> = sheet.rows().collect();
    assert_eq!(rows.len(), found.len() + 1);
    assert_eq!(rows[0][0].to_string(), "lead_id");
    for (row, alert) in rows[1..].iter().zip(&found) {
        assert_eq!(row[0].to_string(), alert.lead_id);
        assert_eq!(row[3].to_string(), alert.rule);
        assert_eq!(row[4].to_string(), alert.detail);
        assert!(matches!(row[5], Data::DateTime(_)), "date_prise_contact is a typed date: {:?}", row[5]);
    }
}

/// A table that needs deletion vectors or column mapping from its readers is refused, never read
/// as plain Parquet files (which would show deleted rows or wrong columns).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_needing_reader_features_we_do_not_honour_are_refused() {
    for feature in ["deletionVectors", "columnMapping"] {
        let (location, dir) = temp_lake();
        write(&location, &generate(3, 5), 10).await;
        let log = location.table_url("leads").unwrap().to_file_path().unwrap().join("_delta_log");
        let protocol = serde_json::json!({"protocol": {"minReaderVersion": 3, "minWriterVersion": 7,
            "readerFeatures": [feature], "writerFeatures": [feature]}});
        let next = std::fs::read_dir(&log)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "json"))
            .count();
        std::fs::write(log.join(format!("{next:020}.json")), format!("{protocol}\n")).unwrap();
        let mut reader = reader_for(&location, &dir);
        let error = reader.latest().await.err().expect("refused").to_string();
        assert!(error.contains(feature), "{feature}: {error}");
    }
}
