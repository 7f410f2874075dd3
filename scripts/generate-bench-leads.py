#!/usr/bin/env python3
"""Writes a synthetic `leads` Delta table for benchmarking the aggregator.

    .venv/bin/python scripts/generate-bench-leads.py --rows 1000000
    .venv/bin/python scripts/generate-bench-leads.py --rows 10000000 [--out DIR] [--batch-rows 250000]

The table goes to `<out>/leads` (default out: /var/tmp/tributary-bench/leads-<rows>), written with
python deltalake's `write_deltalake` in appends of `--batch-rows` rows (one commit each, one Parquet
file each: delta-rs's default writer properties, as the lake writer's `RecordBatchWriter`), with
the exact LEADS schema of shared/lake/src/schema.rs (same column order; `id`, `nom`, `_event_id`
utf8 not null, the other texts nullable, `_occurred_at` and `_ingested_at` timestamp[us, UTC] not
null) and the lake's checkpoint interval (20).

What the rows look like (all derived from seeded hashes, so a run is reproducible):
- `rows` lead versions in all, ~1 % of them exact duplicates of an earlier row (redeliveries),
  written in a later commit than the original;
- leads have ~4 versions on average (geometric, 1 to 30), so 10M rows are ~2.5M distinct ids
  (UUID text, 36 chars); event ids as the ingestion API makes them (`lead-` + 32 hex digits);
- a lead's versions fill its dates progressively: version 0 the contact date, then the proposed
  call, the booked call (an appointment 1 to 10 days ahead), the prospect's answer, then relances
  (every later version moves `date_relance`); ~3 % of contacts and ~8 % of each later step are
  never filled, and ~2 % of versions after the first leave the booked call (and ~1 % the proposed
  call) empty although an earlier version had it (a date cleared, then set again later), so the
  latest version is not simply the one with the most dates; `statut` follows the steps (nouveau/contacte, appel_propose, appel_booke,
  reponse_recue, relance, and gagne/perdu for many last versions; ~1 % null);
- versions are days apart (steps ~6 days on average, relances every 3 to 21 days), leads are
  created uniformly over `--years` years from `--start`, rows are appended in ingestion order, so
  in a 10M table (40 files of ~26 MB, one row group each) 44 % of the leads have versions in two
  files or more (2.2 files on average for a lead with several versions);
- ~0.5 % of versions share `_occurred_at` with the lead's previous version (the tie the
  aggregator breaks by `_event_id`); half the leads come from a source with minute-rounded
  `_occurred_at` (as Notion's last_edited_time);
- ~10 % of date values (per lead and step) are RFC 3339 date-times, half `...Z`, half with a
  `+01:00`/`+02:00` offset (some with milliseconds); the rest `YYYY-MM-DD`;
- French names, lower-case e-mails (~5 % null), E.164 French mobile numbers (~10 % null).

The columns are computed by DuckDB's vectorised engine (numpy is not part of the project's
venv): a narrow table of (seq, lead, version, event) in ingestion order is built once (~30 bytes a
row), then each commit's rows are computed from it and handed to `write_deltalake` as Arrow, so
memory stays bounded by one batch plus that narrow table.

Prints rows, distinct leads, files, bytes on disk and the time taken.
"""

import argparse
import math
import os
import pathlib
import shutil
import sys
import time

import duckdb
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from lead_fields import LEAD_FIELDS, LEAD_REQUIRED_FIELDS

SCHEMA = pa.schema(
    [
        *(pa.field(name, pa.utf8(), nullable=name not in LEAD_REQUIRED_FIELDS) for name in LEAD_FIELDS),
        pa.field("_event_id", pa.utf8(), nullable=False),
        pa.field("_occurred_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("_ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)

FIRST_NAMES = [
    "Jean", "Marie", "Pierre", "Nathalie", "Michel", "Isabelle", "Philippe", "Sylvie", "Alain",
    "Catherine", "Nicolas", "Françoise", "Christophe", "Valérie", "Stéphane", "Sandrine", "Laurent",
    "Céline", "Frédéric", "Sophie", "Julien", "Aurélie", "Sébastien", "Émilie", "Thomas", "Camille",
    "Antoine", "Léa", "Maxime", "Chloé", "Hugo", "Manon", "Lucas", "Inès", "Louis", "Jade", "Gabriel",
    "Zoé", "Raphaël", "Anaïs", "Théo", "Clémence", "Benoît", "Hélène", "Jérôme", "Agnès", "Rémi",
    "Élodie", "François", "Mathilde", "Guillaume", "Pauline", "Arnaud", "Océane", "Cédric",
    "Margaux", "Loïc", "Noémie", "Yannick", "Bérénice", "Karim", "Yasmine", "Mehdi", "Fatima",
]
LAST_NAMES = [
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau",
    "Laurent", "Simon", "Michel", "Lefèvre", "Leroy", "Roux", "David", "Bertrand", "Morel", "Fournier",
    "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau", "Vincent", "Muller", "Lefebvre",
    "Faure", "André", "Mercier", "Blanc", "Guérin", "Boyer", "Garnier", "Chevalier", "François",
    "Legrand", "Gauthier", "Garcia", "Perrin", "Robin", "Clément", "Morin", "Nicolas", "Henry",
    "Roussel", "Mathieu", "Gautier", "Masson", "Marchand", "Duval", "Denis", "Dumont", "Marie",
    "Lemaire", "Noël", "Meyer", "Dufour", "Meunier", "Brun", "Blanchard", "Giraud", "Joly", "Rivière",
    "Lucas", "Brunet", "Gaillard", "Barbier", "Arnaud", "Le Goff", "Le Gall", "Da Silva",
    "Benoît-Lacroix", "Ménard", "Hoarau", "Payet", "Caron", "Renaud", "Schmitt",
]
DOMAINS = [
    "gmail.com", "gmail.com", "gmail.com", "orange.fr", "orange.fr", "free.fr", "wanadoo.fr",
    "laposte.net", "hotmail.fr", "sfr.fr", "outlook.fr", "yahoo.fr", "icloud.com", "bbox.fr",
    "cabinet-durand.fr", "groupe-mercier.com", "atelier-roux.fr", "sarl-martin.fr",
]

DAY_US = 86_400_000_000


def sql_list(values):
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def setup_macros(con, seed, start_us, span_us, tie_rate, datetime_rate):
    """Per-row values as pure functions of (lead, version, event): a duplicate row is identical."""
    macros = f"""
    -- Uniform [0, 1) from a seeded hash.
    CREATE MACRO u(tag, a, b) AS
        (hash({seed}, tag, CAST(a AS BIGINT), CAST(b AS BIGINT)) >> 11)::DOUBLE / 9007199254740992.0;
    -- Exponential with mean `mean_us` (microseconds), at least `min_us`.
    CREATE MACRO expo(tag, l, i, mean_us, min_us) AS
        min_us + CAST(floor(-ln(1 - u(tag, l, i)) * mean_us) AS BIGINT);
    -- Versions per lead: 1 + geometric (mean ~3, so ~4 in all), at most 30.
    CREATE MACRO versions(l) AS 1 + least(CAST(floor(-ln(1 - u('k', l, 0)) * 3.476) AS INTEGER), 29);
    CREATE MACRO t0(l) AS {start_us} + CAST(floor(u('t0', l, 0) * {span_us} * 0.97) AS BIGINT);
    CREATE MACRO step_gap(l, i) AS expo('gap', l, i, {6 * DAY_US}, 600000000);
    CREATE MACRO relance_every(l) AS {3 * DAY_US} + CAST(floor(u('rel', l, 0) * {18 * DAY_US}) AS BIGINT);
    -- Base time of version j: steps 1..4 a few days apart, then a relance every few days.
    CREATE MACRO base_t(l, j) AS t0(l)
        + CASE WHEN j >= 1 THEN step_gap(l, 1) ELSE 0 END
        + CASE WHEN j >= 2 THEN step_gap(l, 2) ELSE 0 END
        + CASE WHEN j >= 3 THEN step_gap(l, 3) ELSE 0 END
        + CASE WHEN j >= 4 THEN step_gap(l, 4) ELSE 0 END
        + CASE WHEN j > 4 THEN (j - 4) * relance_every(l)
            + CAST(floor(u('jit', l, j) * relance_every(l) / 2) AS BIGINT) ELSE 0 END;
    -- Minute-rounded source for half the leads.
    CREATE MACRO rounded_t(l, j) AS CASE WHEN u('src', l, 0) < 0.5
        THEN base_t(l, j) // 60000000 * 60000000 ELSE base_t(l, j) END;
    -- `_occurred_at` of version j (microseconds): sometimes the same instant as version j - 1.
    CREATE MACRO occurred(l, j) AS CASE WHEN j > 0 AND u('tie', l, j) < {tie_rate}
        THEN rounded_t(l, j - 1) ELSE rounded_t(l, j) END;
    CREATE MACRO ingest_delay(e) AS 200000 + CAST(floor(-ln(1 - u('ing', e, 0)) * 30000000) AS BIGINT);
    -- A date as the source gave it: a calendar day, or now and then an RFC 3339 date-time.
    CREATE MACRO render(l, s, t) AS CASE
        WHEN t IS NULL THEN NULL
        WHEN u('fmt', l, s) >= {datetime_rate} THEN CAST(CAST(make_timestamp(t) AS DATE) AS VARCHAR)
        WHEN u('fmt2', l, s) < 0.5 THEN strftime(make_timestamp(t), '%Y-%m-%dT%H:%M:%SZ')
        WHEN u('fmt3', l, s) < 0.5 THEN strftime(make_timestamp(t + 3600000000), '%Y-%m-%dT%H:%M:%S') || '+01:00'
        ELSE strftime(make_timestamp(t + 7200000000), '%Y-%m-%dT%H:%M:%S.%g') || '+02:00' END;
    -- Step s (0 contact, 1 proposed call, 2 booked call, 3 answer, 4 relance) as of version j.
    CREATE MACRO has_step(l, j, s) AS j >= s AND u('skip', l, s) >= CASE WHEN s = 0 THEN 0.03 ELSE 0.08 END
        AND NOT (s = 2 AND u('clear', l, j) < 0.02) AND NOT (s = 1 AND u('clear', l, j) >= 0.99);
    CREATE MACRO uuid_text(h) AS substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3)
        || '-' || substr('89ab', 1 + (ascii(substr(h, 17, 1)) % 4), 1) || substr(h, 18, 3) || '-' || substr(h, 21, 12);
    """
    con.execute(macros)


def batch_sql(first_names, last_names, domains):
    return f"""
    WITH r AS (
        SELECT seq, l, j, e, versions(l) AS k,
            {sql_list(first_names)}[1 + CAST(floor(u('fn', l, 0) * {len(first_names)}) AS INTEGER)] AS first_name,
            {sql_list(last_names)}[1 + CAST(floor(u('ln', l, 0) * {len(last_names)}) AS INTEGER)] AS last_name,
            occurred(l, j) AS t
        FROM ev WHERE seq >= $1 AND seq < $2
    )
    SELECT
        uuid_text(md5('{{seed}}:lead:' || l)) AS id,
        first_name || ' ' || last_name AS nom,
        CASE WHEN u('mail', l, 0) >= 0.05 THEN
            lower(replace(replace(strip_accents(first_name), ' ', ''), '''', '')) || '.'
            || lower(replace(replace(strip_accents(last_name), ' ', ''), '''', ''))
            || CASE WHEN u('mail', l, 1) < 0.3 THEN CAST(1 + CAST(floor(u('mail', l, 2) * 98) AS INTEGER) AS VARCHAR) ELSE '' END
            || '@' || {sql_list(domains)}[1 + CAST(floor(u('dom', l, 0) * {len(domains)}) AS INTEGER)]
        END AS email,
        CASE WHEN u('tel', l, 0) >= 0.10 THEN
            '+33' || CASE WHEN u('tel', l, 1) < 0.8 THEN '6' ELSE '7' END
            || lpad(CAST(hash({{seed}}, 'tel', CAST(l AS BIGINT)) % 100000000 AS VARCHAR), 8, '0')
        END AS telephone,
        render(l, 0, CASE WHEN has_step(l, j, 0) THEN occurred(l, 0)
            - CAST(floor(u('c', l, 0) * 2) AS BIGINT) * {DAY_US} END) AS date_prise_contact,
        render(l, 2, CASE WHEN has_step(l, j, 2) THEN occurred(l, 2)
            + (1 + CAST(floor(u('b', l, 0) * 10) AS BIGINT)) * {DAY_US} END) AS date_appel_booke,
        render(l, 1, CASE WHEN has_step(l, j, 1) THEN occurred(l, 1) END) AS date_appel_propose,
        render(l, 4, CASE WHEN has_step(l, j, 4) THEN t END) AS date_relance,
        render(l, 3, CASE WHEN has_step(l, j, 3) THEN occurred(l, 3) END) AS date_reponse_prospect,
        CASE
            WHEN u('snull', l, j) < 0.01 THEN NULL
            WHEN j = k - 1 AND k >= 3 AND u('end', l, 0) < 0.35 THEN 'gagne'
            WHEN j = k - 1 AND k >= 3 AND u('end', l, 0) < 0.60 THEN 'perdu'
            WHEN j = 0 THEN CASE WHEN u('s0', l, 0) < 0.6 THEN 'nouveau' ELSE 'contacte' END
            WHEN j = 1 THEN 'appel_propose'
            WHEN j = 2 THEN 'appel_booke'
            WHEN j = 3 THEN 'reponse_recue'
            ELSE 'relance'
        END AS statut,
        'lead-' || md5('{{seed}}:event:' || e) AS _event_id,
        CAST(make_timestamp(t) AS TIMESTAMPTZ) AS _occurred_at,
        CAST(make_timestamp(t + ingest_delay(e)) AS TIMESTAMPTZ) AS _ingested_at
    FROM r ORDER BY seq
    """


def dir_bytes(path: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, required=True, help="lead versions to write, duplicates included")
    parser.add_argument("--out", type=pathlib.Path, help="default /var/tmp/tributary-bench/leads-<rows>")
    parser.add_argument("--batch-rows", type=int, default=250_000, help="rows per commit (default 250000)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--start", default="2023-01-01", help="first lead creation day (UTC)")
    parser.add_argument("--years", type=float, default=3.0, help="span of lead creation")
    parser.add_argument("--duplicate-rate", type=float, default=0.01, help="redelivered rows / original rows")
    parser.add_argument("--tie-rate", type=float, default=0.005, help="versions sharing the previous one's instant")
    parser.add_argument("--datetime-rate", type=float, default=0.10, help="date values written as date-times")
    parser.add_argument("--force", action="store_true", help="replace an existing table")
    args = parser.parse_args()

    out = args.out or pathlib.Path(f"/var/tmp/tributary-bench/leads-{args.rows}")
    table_dir = out / "leads"
    if table_dir.exists():
        if not args.force:
            print(f"{table_dir} exists (use --force to replace it)", file=sys.stderr)
            return 1
        shutil.rmtree(table_dir)
    table_dir.mkdir(parents=True)
    work = out / "generator-tmp"
    work.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    con = duckdb.connect(config={"threads": os.cpu_count() or 2, "memory_limit": "1GB", "temp_directory": str(work)})
    con.execute("SET TimeZone = 'UTC'")
    start_us = con.execute("SELECT epoch_us(CAST(? AS TIMESTAMP))", [args.start]).fetchone()[0]
    span_us = int(args.years * 365.25 * DAY_US)
    setup_macros(con, args.seed, start_us, span_us, args.tie_rate, args.datetime_rate)

    originals = round(args.rows / (1 + args.duplicate_rate))
    duplicates = args.rows - originals
    # Enough leads for `originals` versions (mean 4 each), numbered in order; the events are the
    # first `originals` (lead, version) pairs, so the last lead may lose its latest versions.
    lead_count = math.ceil(originals / 4 * 1.1) + 100
    con.execute(
        f"""
        CREATE TABLE lead_meta AS
            SELECT l, versions(l) AS k, sum(versions(l)) OVER (ORDER BY l) - versions(l) AS first_event
            FROM range({lead_count}) AS t(l);
        CREATE TABLE originals AS
            SELECT l, j, first_event + j AS e
            FROM (SELECT l, first_event, unnest(range(k)) AS j FROM lead_meta WHERE first_event < {originals})
            WHERE first_event + j < {originals};
        -- Ingestion order: by `_ingested_at`; a redelivery arrives 1 minute to 14 days later.
        CREATE TABLE ev AS
            WITH deliveries AS (
                SELECT l, j, e, occurred(l, j) + ingest_delay(e) AS delivered FROM originals
                UNION ALL
                SELECT l, j, e, occurred(l, j) + ingest_delay(e) + 60000000
                    + CAST(floor(u('redeliver', e, 0) * {14 * DAY_US}) AS BIGINT)
                FROM (SELECT * FROM originals ORDER BY hash({args.seed}, 'dup', e) LIMIT {duplicates})
            )
            SELECT row_number() OVER (ORDER BY delivered, e) - 1 AS seq, CAST(l AS INTEGER) AS l,
                CAST(j AS SMALLINT) AS j, e
            FROM deliveries ORDER BY seq;
        DROP TABLE originals; DROP TABLE lead_meta;
        """
    )
    total, leads = con.execute("SELECT count(*), count(DISTINCT l) FROM ev").fetchone()
    prepared_s = time.monotonic() - started

    sql = batch_sql(FIRST_NAMES, LAST_NAMES, DOMAINS).replace("{seed}", str(args.seed))
    written = 0
    commits = 0
    while written < total:
        end = min(written + args.batch_rows, total)
        batch = con.execute(sql, [written, end]).to_arrow_table().cast(SCHEMA)
        write_deltalake(
            str(table_dir),
            batch,
            mode="append",
            name="leads",
            configuration={"delta.checkpointInterval": "20"} if commits == 0 else None,
        )
        written = end
        commits += 1
        print(f"  commit {commits}: {written}/{total} rows, {time.monotonic() - started:.1f} s", flush=True)
    con.close()
    shutil.rmtree(work, ignore_errors=True)

    elapsed = time.monotonic() - started
    dt = DeltaTable(str(table_dir))
    files = dt.file_uris()
    data_bytes = sum(os.path.getsize(f.removeprefix("file://")) for f in files)
    print(f"table        {table_dir} (version {dt.version()})")
    print(f"rows         {total} ({total - duplicates} versions + {duplicates} redelivered duplicates)")
    print(f"leads        {leads} distinct ids ({(total - duplicates) / leads:.2f} versions each)")
    print(f"files        {len(files)} Parquet files in {commits} commits ({data_bytes / len(files) / 2**20:.1f} MiB each)")
    print(f"bytes        {data_bytes} in data files ({data_bytes / 2**20:.1f} MiB), {dir_bytes(table_dir)} on disk with the log")
    print(f"time         {elapsed:.1f} s ({prepared_s:.1f} s to plan the rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
