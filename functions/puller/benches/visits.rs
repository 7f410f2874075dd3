//! Visits per second through the puller's CPU path on one core: read a page of realistic visits
//! (fixture-shaped, five actions each, dimensions and a goal) while naming dimensions and goals
//! and anonymising, build the Arrow batch, encode it as Parquet with the table's writer properties.
//! The puller's allocator (mimalloc, declared in its library) is this benchmark's too.
//!
//! `cargo bench -p puller --bench visits` (or `make bench`).

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiff::Timestamp;
use jiff::civil::Date;
use puller::matomo::batch::visits_batch;
use puller::matomo::visit::{Anonymiser, SiteMetadata, VisitContext, prepare_page};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use tributary_shared::deltalake::arrow::datatypes::Schema;
use tributary_shared::deltalake::kernel::StructType;
use tributary_shared::deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use tributary_shared::deltalake::parquet::arrow::ArrowWriter;
use tributary_shared::lake::schema::MATOMO_VISITS;

const PAGE: usize = 1000;

fn page_json(day: Date) -> Vec<u8> {
    let data = support::MatomoData::generate(1, day, &[PAGE]);
    serde_json::to_vec(&data.visits[&(1, day)]).unwrap()
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

    let mut group = c.benchmark_group("matomo_visits");
    group.throughput(Throughput::Elements(PAGE as u64));
    group.bench_function("parse_name_anonymise_arrow_parquet", |b| {
        b.iter(|| {
            let page = prepare_page(std::str::from_utf8(black_box(&body)).unwrap(), context).unwrap();
            assert_eq!(page.rows.len(), PAGE);
            let batch = visits_batch(&schema, &page.rows, Timestamp::UNIX_EPOCH).unwrap();
            let mut parquet = Vec::with_capacity(body.len() / 4);
            let mut writer = ArrowWriter::try_new(&mut parquet, schema.clone(), Some(properties.clone())).unwrap();
            writer.write(&batch).unwrap();
            writer.close().unwrap();
            black_box(parquet.len())
        })
    });
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
