//! Visits per second through the puller's CPU path on one core: read a page of realistic visits
//! (fixture-shaped, five actions each, dimensions and a goal, each visit with its own pages,
//! place, browser, referrer and durations) while naming dimensions and goals
//! and anonymising, build the Arrow batch, encode it as Parquet with the table's writer properties.
//! The puller's allocator (mimalloc, declared in its library) is this benchmark's too.
//!
//! `cargo bench -p puller --bench visits` (or `make bench`). With `BENCH_COMPARE_DIR` set, the page
//! is also written there (`matomo-page.json`) for `make bench-compare`'s Python side.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test or bench fails loudly on what it did not expect"
)]

#[path = "../tests/integration/support/mod.rs"]
mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiff::Timestamp;
use jiff::civil::Date;
use puller::matomo::batch::visits_batch;
use puller::matomo::visit::{Anonymiser, SiteMetadata, VisitContext, prepare_page};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use tributary_lake::deltalake::arrow::datatypes::Schema;
use tributary_lake::deltalake::kernel::StructType;
use tributary_lake::deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use tributary_lake::deltalake::parquet::arrow::ArrowWriter;
use tributary_lake::schema::MATOMO_VISITS;

const PAGE: usize = 1000;

fn page_json(day: Date) -> Vec<u8> {
    let data = support::MatomoData::generate(1, day, &[PAGE]);
    let mut visits = data.visits[&(1, day)].clone();
    let mut rng = fastrand::Rng::with_seed(42);
    for visit in &mut visits {
        vary(visit, &mut rng);
    }
    serde_json::to_vec(&visits).unwrap()
}

/// Gives each visit its own pages, titles, place, browser, referrer and durations, so that the
/// text (and what Parquet's compression makes of it) is as varied as a real site's, not 1 000
/// copies of one visit.
fn vary(visit: &mut serde_json::Value, rng: &mut fastrand::Rng) {
    const PAGES: [&str; 12] = [
        "pricing",
        "features",
        "blog/delta-lake-on-s3",
        "blog/duckdb-weekly-stats",
        "docs/getting-started",
        "docs/webhooks",
        "customers",
        "about",
        "careers",
        "signup",
        "contact",
        "changelog",
    ];
    const CITIES: [(&str, &str); 6] =
        [("Paris", "fr"), ("Lyon", "fr"), ("Berlin", "de"), ("Madrid", "es"), ("Montréal", "ca"), ("Bruxelles", "be")];
    const BROWSERS: [&str; 4] = ["Chrome", "Firefox", "Safari", "Edge"];
    const REFERRERS: [&str; 5] = ["Google", "newsletter", "LinkedIn", "duckduckgo.com", "news.ycombinator.com"];
    if let Some(actions) = visit["actionDetails"].as_array_mut() {
        for action in actions {
            if action.get("url").is_some_and(|u| u.is_string()) {
                let page = PAGES[rng.usize(..PAGES.len())];
                let url = format!("https://shop.example.com/{page}?utm_campaign=c{}&v={}", rng.u32(..500), rng.u64(..));
                action["url"] = url.clone().into();
                if action.get("subtitle").is_some_and(|s| s.as_str().is_some_and(|s| s.starts_with("http"))) {
                    action["subtitle"] = url.into();
                }
                if action.get("pageTitle").is_some_and(|t| t.is_string()) {
                    action["pageTitle"] = format!("{} | Shop", page.replace(['/', '-'], " ")).into();
                }
            }
            if action.get("timeSpent").is_some() {
                action["timeSpent"] = rng.u32(1..900).to_string().into();
            }
        }
    }
    let (city, country) = CITIES[rng.usize(..CITIES.len())];
    visit["city"] = city.into();
    visit["countryCode"] = country.into();
    visit["browserName"] = BROWSERS[rng.usize(..BROWSERS.len())].into();
    visit["referrerName"] = REFERRERS[rng.usize(..REFERRERS.len())].into();
    visit["visitDuration"] = rng.u32(5..3600).to_string().into();
    visit["latitude"] = format!("{:.6}", rng.f64() * 10.0 + 43.0).into();
    visit["longitude"] = format!("{:.6}", rng.f64() * 10.0 - 2.0).into();
}

fn bench(c: &mut Criterion) {
    let day = Date::constant(2025, 3, 3);
    let body = page_json(day);
    let metadata = SiteMetadata {
        dimensions: HashMap::from([
            ("1".into(), "plan".into()),
            ("2".into(), "cohort".into()),
            ("3".into(), "page_kind".into()),
        ]),
        goals: HashMap::from([("2".into(), "Trial started".into())]),
    };
    let anonymiser =
        Anonymiser::new(b"bench-key", &["userId".into(), "actionDetails.url".into(), "actionDetails.subtitle".into()]);
    let context = VisitContext { site_id: 1, day, metadata: &metadata, anonymiser: &anonymiser };
    let schema: Schema = (&StructType::try_new(MATOMO_VISITS.delta_fields()).unwrap()).try_into_arrow().unwrap();
    let schema = Arc::new(schema);
    // The table's own writer properties, as `LakeTable::append` uses them.
    let properties = MATOMO_VISITS.writer_properties();
    println!("page: {PAGE} visits, {} bytes of JSON ({} bytes per visit)", body.len(), body.len() / PAGE);
    // `make bench-compare` times the Python way on these same bytes.
    if let Some(dir) = std::env::var_os("BENCH_COMPARE_DIR") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(std::path::Path::new(&dir).join("matomo-page.json"), &body).unwrap();
    }
    let encode = |body: &[u8]| {
        let page = prepare_page(std::str::from_utf8(body).unwrap(), context).unwrap();
        assert_eq!(page.rows.len(), PAGE);
        let batch = visits_batch(&schema, &page.rows, Timestamp::UNIX_EPOCH).unwrap();
        let mut parquet = Vec::with_capacity(body.len() / 4);
        let mut writer = ArrowWriter::try_new(&mut parquet, schema.clone(), Some(properties.clone())).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        parquet.len()
    };
    let parquet = encode(&body);
    println!("parquet: {parquet} bytes ({} bytes per visit)", parquet / PAGE);

    let mut group = c.benchmark_group("matomo_visits");
    group.throughput(Throughput::Elements(PAGE as u64));
    group.bench_function("parse_name_anonymise_arrow_parquet", |b| b.iter(|| black_box(encode(black_box(&body)))));
    group.bench_function("prepare_only", |b| {
        b.iter(|| black_box(prepare_page(std::str::from_utf8(black_box(&body)).unwrap(), context).unwrap().rows.len()))
    });
    group.bench_function("serde_json_value_parse_for_comparison", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Vec<serde_json::Value>>(black_box(&body)).unwrap().len()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
