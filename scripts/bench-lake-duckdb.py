#!/usr/bin/env python3
"""Times the aggregator's DuckDB statements on a local `leads` Delta table, outside Rust.

    .venv/bin/python scripts/bench-lake-duckdb.py TABLE_DIR                  # sql.rs as it is, week and month
    .venv/bin/python scripts/bench-lake-duckdb.py TABLE_DIR --case all       # every variant below
    .venv/bin/python scripts/bench-lake-duckdb.py TABLE_DIR --case per_request,max_struct --bucket week
    .venv/bin/python scripts/bench-lake-duckdb.py TABLE_DIR --list           # the cases and their SQL
    .venv/bin/python scripts/bench-lake-duckdb.py TABLE_DIR --sql-file FILE --params 'UTC,,'

TABLE_DIR is a Delta table (e.g. /var/tmp/tributary-bench/leads-10000000/leads, as written by
scripts/generate-bench-leads.py). Its current files come from the Delta log (python deltalake's
`DeltaTable(TABLE_DIR).file_uris()`).

Each case runs in a fresh child process (only `duckdb` imported there) opened the way
functions/aggregator/src/engine.rs opens the Lambda's connection: `threads` and `max_memory` from
`EngineLimits::for_lambda_memory(--lambda-mb, default 3538)` (2 threads, 2122 MB), extension
autoloading off, then `SET autoinstall_known_extensions = false; SET temp_directory =
'<cache>/duckdb-spill'; SET allowed_directories = ['<cache>/', '<lake root>/']; SET
enable_external_access = false; SET lock_configuration = true;` and the MACROS statement of
functions/aggregator/src/sql.rs, then the `lead_versions` view over the files (`lead_versions_view`)
and the query, bound like `stats::count_dates` binds it: ($1 zone, $2 first day, $3 last day) =
('UTC', NULL, NULL) unless --params says otherwise. Case `current` is sql.rs as it is: the
`latest_dates` table built once (`build_latest_dates`, timed once as "prep s"), then `count_dates`
over it; `merge_newest_file` times `merge_latest_dates` of one appended file. Case `per_request`
is the `count_dates` of sql.rs before the `latest_dates` table (commit b157667): the latest version
of every lead recomputed from the files at each request; most variants are variants of it. The
SQL is copied from sql.rs (the script warns when sql.rs's text no longer matches its copy).

Timings are wall clock per execution (execute + fetch): the first run is reported as "cold" (a new
connection, the OS page cache probably warm), then --runs more (default 5) give "best" and
"median". "cpu s" is the process's CPU time (user + system) of a warm run (median), less sensitive
to other processes than wall time, and "c/w" that CPU time over the run's wall time (2.0 = both
cores busy all along; less means waiting, or another process holding a core). "rss" is the child's peak
resident set (getrusage ru_maxrss) and "+rss" its growth over the set-up (Python, DuckDB, view);
with a "prep" the growth includes it (a kept table stays in memory). The 1-minute load average
before and after each case is printed next to it. Every count's result is compared with the first
checked case run for the same bucket ("reference", then "same" / "DIFFERENT"; `ts_only` and the
floors are not checked).

--sql-file FILE: the statements to run instead of the built-in ones, after the engine set-up above
(use --no-engine-setup to skip the SET statements and MACROS, e.g. when the file has its own).
Statements are separated by a line holding only `-- statement`; every statement but the last is
run once: the first as set-up (e.g. the `lead_versions` view), the ones between timed once as
"prep s" (e.g. the aggregator's `latest_dates` table), and the last one is the timed query.
`{files}` in the file is replaced by the quoted list of the table's current files (`'a', 'b'`), so a
view can be written `read_parquet([{files}], union_by_name = true)`. --params gives the timed query's
parameters, comma-separated, an empty item being NULL (default `UTC,,`).
"""

import argparse
import json
import os
import pathlib
import re
import resource
import statistics
import subprocess
import sys
import time

from lead_fields import LEAD_DATE_FIELDS

ROOT = pathlib.Path(__file__).resolve().parent.parent
SQL_RS = ROOT / "functions/aggregator/src/sql.rs"

# --- Copied from functions/aggregator/src/sql.rs (Rust line continuations applied) -------------

DATE_COLUMNS = LEAD_DATE_FIELDS
DATES = ", ".join(DATE_COLUMNS)
QUOTED = ", ".join(f"'{c}'" for c in DATE_COLUMNS)
FORMATS = {"week": "%G-W%V", "month": "%Y-%m"}
LATEST_VERSION_KEY = "(_occurred_at, _event_id)"

MACROS = (
    "CREATE OR REPLACE TEMP MACRO lead_day(text_value, zone) AS "
    "CASE WHEN length(text_value) = 10 THEN TRY_CAST(text_value AS DATE) "
    "ELSE CAST(timezone(zone, TRY_CAST(text_value AS TIMESTAMPTZ)) AS DATE) END;"
)

# `count_dates` before the `latest_dates` table (b157667^): the `latest` CTE, then what turns the
# latest dates into counts.
CURRENT_LATEST = f"SELECT arg_max(struct_pack({DATES}), {LATEST_VERSION_KEY}) AS lead FROM lead_versions GROUP BY id"
UNPIVOT_STRUCT = f"UNPIVOT (SELECT lead.* FROM latest) ON {DATES} INTO NAME field VALUE text_value"
DAYS = "SELECT field, lead_day(text_value, $1) AS day, count(*) AS n FROM dates GROUP BY ALL"
BUCKETS = (
    "SELECT field, strftime(day, '{format}') AS bucket, n FROM days "
    "WHERE day IS NOT NULL AND ($2::DATE IS NULL OR day >= $2::DATE) AND ($3::DATE IS NULL OR day <= $3::DATE)"
)
PIVOT = f"PIVOT buckets ON field IN ({QUOTED}) USING sum(n) GROUP BY bucket ORDER BY bucket"


# sql.rs since commit b157667: per lead, its latest version's key and dates kept in a table.
def latest_dates_select(source: str) -> str:
    return (
        f"SELECT id, lead.* FROM ( SELECT id, arg_max(struct_pack(_occurred_at, _event_id, {DATES}), "
        f"{LATEST_VERSION_KEY}) AS lead FROM {source} GROUP BY id )"
    )


BUILD_LATEST_DATES = f"CREATE OR REPLACE TEMP TABLE latest_dates AS {latest_dates_select('lead_versions')};"


def merge_latest_dates(files) -> str:
    source = "read_parquet([" + ", ".join(quote_literal(f) for f in files) + "], union_by_name = true)"
    return (
        f"CREATE OR REPLACE TEMP TABLE latest_dates_added AS {latest_dates_select(source)}; "
        "DELETE FROM latest_dates USING latest_dates_added AS added WHERE latest_dates.id = added.id "
        "AND (added._occurred_at > latest_dates._occurred_at "
        "OR (added._occurred_at = latest_dates._occurred_at AND added._event_id > latest_dates._event_id)); "
        "INSERT INTO latest_dates SELECT * FROM latest_dates_added AS added "
        "WHERE NOT EXISTS (SELECT 1 FROM latest_dates WHERE latest_dates.id = added.id); "
        "DROP TABLE latest_dates_added;"
    )


def count_sql_from_table(bucket: str, days: str = DAYS) -> str:
    """sql.rs `count_dates(bucket)` (over `latest_dates`); for variants another `days` CTE."""
    buckets = BUCKETS.format(format=FORMATS[bucket])
    return (
        f"WITH dates AS ( UNPIVOT (SELECT {DATES} FROM latest_dates) ON {DATES} INTO NAME field VALUE text_value ), "
        f"days AS ( {days} ), buckets AS ( {buckets} ) {PIVOT}"
    )


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def lead_versions_view(files, columns="*", union_by_name=True) -> str:
    listed = ", ".join(quote_literal(f) for f in files)
    options = ", union_by_name = true" if union_by_name else ""
    return f"CREATE OR REPLACE TEMP VIEW lead_versions AS SELECT {columns} FROM read_parquet([{listed}]{options});"


def count_sql(bucket, latest=CURRENT_LATEST, dates=UNPIVOT_STRUCT, days=DAYS) -> str:
    """`count_dates(bucket)` before `latest_dates` (b157667^), with, for variants, another
    `latest`, `dates` or `days` CTE."""
    buckets = BUCKETS.format(format=FORMATS[bucket])
    return (
        f"WITH latest AS ( {latest} ), dates AS ( {dates} ), days AS ( {days} ), "
        f"buckets AS ( {buckets} ) {PIVOT}"
    )


def rust_format(function: str, nth: int = 0) -> str | None:
    """The `nth` `format!` string of `function` in sql.rs, Rust line continuations applied."""
    try:
        source = SQL_RS.read_text()
    except OSError:
        return None
    body = re.search(rf"\bfn {function}\(.*?\n}}\n", source, re.S)
    key = re.search(r'const LATEST_VERSION_KEY: &str = "(.*?)";', source)
    strings = re.findall(r'format!\(\s*"((?:[^"\\]|\\.)*)"', body.group(0), re.S) if body else []
    if not key or len(strings) <= nth:
        return None
    return re.sub(r"\\\n\s*", "", strings[nth]).replace("{dates}", DATES).replace("{LATEST_VERSION_KEY}", key.group(1))


def rust_drift() -> list[str]:
    """Warnings for each statement whose sql.rs text differs from this script's copy."""
    warnings = []
    checks = [
        ("latest_dates_select", latest_dates_select("{source}")),
        ("count_dates", count_sql_from_table("week").replace("%G-W%V", "{format}").replace(QUOTED, "{quoted}")),
        ("merge_latest_dates", merge_latest_dates([]).replace(latest_dates_select("read_parquet([], union_by_name = true)"), "{added}")),
    ]
    for function, ours in checks:
        rust = rust_format(function, 1 if function == "merge_latest_dates" else 0)
        if rust is None:
            warnings.append(f"could not read {function} from {SQL_RS}")
        elif rust != ours:
            warnings.append(f"sql.rs {function} differs from this script's copy:\n  sql.rs: {rust}\n  ours:   {ours}")
    return warnings


def rust_macros() -> str | None:
    try:
        source = SQL_RS.read_text()
    except OSError:
        return None
    found = re.search(r'pub const MACROS: &str = "(.*?)";\n', source, re.S)
    return re.sub(r"\\\n\s*", "", found.group(1)) if found else None


TWO_PHASE_JOIN_LATEST = (
    f"SELECT arg_max(struct_pack({', '.join('v.' + c for c in DATE_COLUMNS)}), v._event_id) AS lead FROM lead_versions AS v "
    "JOIN (SELECT id, max(_occurred_at) AS at FROM lead_versions GROUP BY id) AS m "
    "ON v.id = m.id AND v._occurred_at = m.at GROUP BY v.id"
)
# Two phases: the greatest `_occurred_at` of each lead (a primitive aggregate), then the lead's rows
# at that instant (a join back), of which the greatest `_event_id` wins; arg_max_null keeps a NULL
# date of the winning row (rows with one `_event_id` are identical copies).
TWO_PHASE_LATEST = (
    "SELECT " + ", ".join(f"arg_max_null(v.{c}, v._event_id) AS {c}" for c in DATE_COLUMNS)
    + " FROM lead_versions AS v JOIN (SELECT id, max(_occurred_at) AS at FROM lead_versions GROUP BY id) AS m "
    "ON v.id = m.id AND v._occurred_at = m.at GROUP BY v.id"
)
# The same, aggregating only the leads with two rows at their greatest instant.
TWO_PHASE_TIE_LATEST = (
    "WITH m AS (SELECT id, max(_occurred_at, 2) AS top FROM lead_versions GROUP BY id), "
    f"at_max AS MATERIALIZED (SELECT v.id, v._event_id, {', '.join('v.' + c for c in DATE_COLUMNS)}, "
    "coalesce(m.top[1] = m.top[2], false) AS tied FROM lead_versions AS v JOIN m ON v.id = m.id AND v._occurred_at = m.top[1]) "
    f"SELECT {DATES} FROM at_max WHERE NOT tied UNION ALL SELECT "
    + ", ".join(f"arg_max_null({c}, _event_id)" for c in DATE_COLUMNS)
    + " FROM at_max WHERE tied GROUP BY id"
)

# `latest_dates` (same columns as sql.rs's) built in two phases.
BUILD_LATEST_DATES_TWO_PHASE = (
    "CREATE OR REPLACE TEMP TABLE latest_dates AS SELECT id, lead.* FROM ( SELECT v.id, arg_max(struct_pack("
    + ", ".join(f"v.{c}" for c in ["_occurred_at", "_event_id", *DATE_COLUMNS])
    + "), v._event_id) AS lead FROM lead_versions AS v "
    "JOIN (SELECT id, max(_occurred_at) AS at FROM lead_versions GROUP BY id) AS m "
    "ON v.id = m.id AND v._occurred_at = m.at GROUP BY v.id );"
)

# Per snapshot: how many latest versions hold each (column, text), the text parsed once: a
# calendar day stays a DATE, a date-time becomes an instant (TRY_CAST to TIMESTAMPTZ uses the
# session time zone for a text without offset, exactly as lead_day does). Unparseable texts drop.
SUMMARY_TABLE = (
    "CREATE OR REPLACE TEMP TABLE date_summary AS "
    f"WITH latest AS ( {TWO_PHASE_JOIN_LATEST} ), dates AS ( {UNPIVOT_STRUCT} ), "
    "texts AS ( SELECT field, text_value, count(*) AS n FROM dates GROUP BY ALL ) "
    "SELECT field, CASE WHEN length(text_value) = 10 THEN TRY_CAST(text_value AS DATE) END AS day, "
    "CASE WHEN length(text_value) <> 10 THEN TRY_CAST(text_value AS TIMESTAMPTZ) END AS instant, sum(n) AS n "
    "FROM texts GROUP BY ALL HAVING day IS NOT NULL OR instant IS NOT NULL;"
)
SUMMARY_DAYS = (
    "SELECT field, coalesce(day, CAST(timezone($1, instant) AS DATE)) AS day, sum(n) AS n "
    "FROM date_summary GROUP BY ALL"
)

# --- Variants ------------------------------------------------------------------------------------

# Each case: the SQL (bucket -> text, or one text), optional view options, threads override, and
# whether its result must equal the current query's ("check") or is only measured.
ALL_DATES_STRUCT = f"struct_pack({DATES})"
UNPIVOT_COLUMNS = f"UNPIVOT latest ON {DATES} INTO NAME field VALUE text_value"
# Group the texts first: lead_day then runs once per distinct (column, text), not once per date.
DAYS_DISTINCT_TEXT = (
    "SELECT field, lead_day(text_value, $1) AS day, sum(n) AS n FROM "
    "(SELECT field, text_value, count(*) AS n FROM dates GROUP BY ALL) GROUP BY ALL"
)
NEEDED_COLUMNS = f"id, {DATES}, _event_id, _occurred_at"
# The latest version's dates, exactly (greatest (_occurred_at, _event_id)), from primitive-keyed
# aggregates: a lead whose greatest `_occurred_at` is held by one row takes that row's dates
# (arg_max_null: a NULL date of that row stays NULL); the few leads whose two greatest instants
# are equal (a tie, or a redelivered copy of the latest event) are redone from their rows at that
# instant, the greatest `_event_id` winning.
TIECHECK_LATEST = (
    "WITH per_id AS MATERIALIZED ( SELECT id, max(_occurred_at, 2) AS top, "
    + ", ".join(f"arg_max_null({c}, _occurred_at) AS {c}" for c in DATE_COLUMNS)
    + f" FROM lead_versions GROUP BY id ) "
    f"SELECT {DATES} FROM per_id WHERE NOT coalesce(top[1] = top[2], false) "
    f"UNION ALL SELECT lead.* FROM ( SELECT arg_max(struct_pack({', '.join('v.' + c for c in DATE_COLUMNS)}), v._event_id) AS lead "
    "FROM lead_versions AS v JOIN (SELECT id, top[1] AS at FROM per_id WHERE top[1] = top[2]) AS tied "
    "ON v.id = tied.id AND v._occurred_at = tied.at GROUP BY v.id )"
)

CASES = {
    "current": dict(
        prepare=[BUILD_LATEST_DATES],
        sql=lambda b: count_sql_from_table(b),
        doc="sql.rs as it is: build_latest_dates once per snapshot ('prep s'), then count_dates over latest_dates",
    ),
    "current_distinct_text": dict(
        prepare=[BUILD_LATEST_DATES],
        sql=lambda b: count_sql_from_table(b, days=DAYS_DISTINCT_TEXT),
        doc="current, but lead_day once per distinct (column, text)",
    ),
    "current_build_two_phase": dict(
        prepare=[BUILD_LATEST_DATES_TWO_PHASE],
        sql=lambda b: count_sql_from_table(b),
        doc="current, latest_dates built in two phases (max(_occurred_at) per id, join back, arg_max by _event_id)",
    ),
    "merge_newest_file": dict(
        merge=True,
        check=False,
        doc="latest_dates built from every file but the newest ('prep s'), then (timed) merge_latest_dates of the "
        "newest in a transaction, as Engine::show_leads does for an append; the cold run is the real merge, "
        "the next ones merge the same file again (nothing newer: a no-op)",
    ),
    "per_request": dict(
        sql=lambda b: count_sql(b),
        doc="count_dates before latest_dates (b157667^): arg_max(struct_pack(dates), (_occurred_at, _event_id)) "
        "GROUP BY id over the files at each request",
    ),
    "per_request_1thread": dict(sql=lambda b: count_sql(b), threads=1, doc="per_request with threads = 1"),
    "per_request_narrow_view": dict(
        sql=lambda b: count_sql(b),
        view=dict(columns=NEEDED_COLUMNS),
        doc="per_request over a view that selects only the 8 needed columns",
    ),
    "per_request_no_union_by_name": dict(
        sql=lambda b: count_sql(b),
        view=dict(union_by_name=False),
        doc="per_request, read_parquet without union_by_name",
    ),
    "ts_only": dict(
        sql=lambda b: count_sql(b, latest=f"SELECT arg_max({ALL_DATES_STRUCT}, _occurred_at) AS lead FROM lead_versions GROUP BY id"),
        check=False,
        doc="arg_max keyed by _occurred_at alone: ties between two events of one instant not deterministic",
    ),
    "max_struct": dict(
        sql=lambda b: count_sql(
            b,
            latest=f"SELECT max(struct_pack(_occurred_at, _event_id, {DATES})) AS lead FROM lead_versions GROUP BY id",
            dates=f"UNPIVOT (SELECT lead.{DATE_COLUMNS[0]}, {', '.join('lead.' + c for c in DATE_COLUMNS[1:])} FROM latest) "
            f"ON {DATES} INTO NAME field VALUE text_value",
        ),
        doc="max() of one struct (_occurred_at, _event_id, dates...): the greatest key, whole row",
    ),
    "qualify_row_number": dict(
        sql=lambda b: count_sql(
            b,
            latest=f"SELECT {DATES} FROM lead_versions QUALIFY row_number() OVER "
            "(PARTITION BY id ORDER BY _occurred_at DESC, _event_id DESC) = 1",
            dates=UNPIVOT_COLUMNS,
        ),
        doc="window: row_number() over (partition by id order by _occurred_at desc, _event_id desc) = 1",
    ),
    "distinct_on": dict(
        sql=lambda b: count_sql(
            b,
            latest=f"SELECT DISTINCT ON (id) {DATES} FROM lead_versions ORDER BY id, _occurred_at DESC, _event_id DESC",
            dates=UNPIVOT_COLUMNS,
        ),
        doc="DISTINCT ON (id) ... ORDER BY id, _occurred_at DESC, _event_id DESC",
    ),
    "two_phase_join": dict(
        sql=lambda b: count_sql(b, latest=TWO_PHASE_JOIN_LATEST),
        doc="max(_occurred_at) per id, join back on (id, instant), then arg_max(struct_pack(dates), _event_id) per id",
    ),
    "per_request_distinct_text": dict(
        sql=lambda b: count_sql(b, days=DAYS_DISTINCT_TEXT),
        doc="per_request, but lead_day once per distinct (column, text)",
    ),
    "tiecheck": dict(
        sql=lambda b: count_sql(b, latest=TIECHECK_LATEST, dates=UNPIVOT_COLUMNS),
        doc="one pass of cheap aggregates (max(_occurred_at, 2), arg_max_null(date, _occurred_at) x5); "
        "leads whose two latest versions share the instant are redone exactly from a second scan",
    ),
    "tiecheck_distinct_text": dict(
        sql=lambda b: count_sql(b, latest=TIECHECK_LATEST, dates=UNPIVOT_COLUMNS, days=DAYS_DISTINCT_TEXT),
        doc="tiecheck, and lead_day once per distinct (column, text)",
    ),
    "materialized_latest": dict(
        prepare=[f"CREATE OR REPLACE TEMP TABLE latest_dates AS SELECT lead.* FROM ({TWO_PHASE_JOIN_LATEST});"],
        sql=lambda b: count_sql(b, latest="FROM latest_dates", dates=UNPIVOT_COLUMNS, days=DAYS_DISTINCT_TEXT),
        doc="the latest dates (two_phase_join) kept in a temp table once per snapshot ('prep s'), "
        "each count then only unpivots and counts",
    ),
    "summary_cache": dict(
        prepare=[SUMMARY_TABLE],
        sql=lambda b: count_sql(b, latest="SELECT 1", dates="SELECT 1", days=SUMMARY_DAYS),
        doc="once per snapshot: the latest dates counted per (column, text), texts parsed (a day, or an "
        "instant for date-times); each count then only maps instants to days in the zone and pivots",
    ),
    "two_phase_argmax_null": dict(
        sql=lambda b: count_sql(b, latest=TWO_PHASE_LATEST, dates=UNPIVOT_COLUMNS),
        doc="max(_occurred_at) per id, join back on (id, instant), then arg_max_null(date, _event_id) x5 per id",
    ),
    "two_phase_join_distinct_text": dict(
        sql=lambda b: count_sql(b, latest=TWO_PHASE_JOIN_LATEST, days=DAYS_DISTINCT_TEXT),
        doc="two_phase_join, and lead_day once per distinct (column, text)",
    ),
    "two_phase_join_1thread": dict(
        sql=lambda b: count_sql(b, latest=TWO_PHASE_JOIN_LATEST, days=DAYS_DISTINCT_TEXT),
        threads=1,
        doc="two_phase_join_distinct_text with threads = 1",
    ),
    "two_phase_tie": dict(
        sql=lambda b: count_sql(b, latest=TWO_PHASE_TIE_LATEST, dates=UNPIVOT_COLUMNS, days=DAYS_DISTINCT_TEXT),
        doc="max(_occurred_at, 2) per id, join back on (id, instant): a lead with one row there takes it, "
        "the others arg_max by _event_id; lead_day once per distinct (column, text)",
    ),
    # Floors: no counting, only the parts.
    "floor_latest_only": dict(
        sql=f"SELECT count(lead) FROM ({CURRENT_LATEST})",
        check=False,
        doc="only per_request's latest-version aggregation (no unpivot, lead_day or pivot)",
    ),
    "floor_group_by_id": dict(
        sql="SELECT count(*) FROM (SELECT id FROM lead_versions GROUP BY id)",
        check=False,
        doc="GROUP BY id alone",
    ),
    "floor_count_distinct": dict(
        sql="SELECT count(DISTINCT id) FROM lead_versions", check=False, doc="count(DISTINCT id)"
    ),
    "floor_scan": dict(
        sql="SELECT count(*), " + ", ".join(f"max({c})" for c in ["id", *DATE_COLUMNS, "_event_id", "_occurred_at"])
        + " FROM lead_versions",
        check=False,
        doc="read the 8 needed columns once (cheap max() of each)",
    ),
}


# --- Child: one case in a fresh process --------------------------------------------------------


def run_child(spec: dict) -> dict:
    import duckdb  # only here: the parent's deltalake/pyarrow stay out of the child's RSS

    started = time.perf_counter()
    con = duckdb.connect(
        ":memory:",
        config={
            "threads": spec["threads"],
            "max_memory": f"{spec['memory_limit_mb']}MB",
            "autoload_known_extensions": False,
        },
    )
    if spec["engine_setup"]:
        dirs = ", ".join(quote_literal(d if d.endswith("/") else d + "/") for d in spec["readable_dirs"])
        con.execute(
            f"SET autoinstall_known_extensions = false; SET temp_directory = {quote_literal(spec['spill_dir'])}; "
            f"SET allowed_directories = [{dirs}]; SET enable_external_access = false; "
            f"SET lock_configuration = true; {MACROS}"
        )
    for statement in spec["setup"]:
        con.execute(statement)
    setup_s = time.perf_counter() - started
    rss_setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    prepare_s = None
    if spec.get("prepare"):
        t0 = time.perf_counter()
        for statement in spec["prepare"]:
            con.execute(statement)
        prepare_s = time.perf_counter() - t0
    times, cpus = [], []
    rows = None
    for _ in range(1 + spec["runs"]):
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        rows = con.execute(spec["query"], spec["params"]).fetchall()
        elapsed = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        times.append(elapsed)
        cpus.append(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime)
    return {
        "setup_s": setup_s,
        "prepare_s": prepare_s,
        "times": times,
        "cpus": cpus,
        "rss_setup_kb": rss_setup,
        "rss_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "rows": [[str(v) if not isinstance(v, (int, float, type(None))) else v for v in row] for row in rows],
    }


# --- Parent ------------------------------------------------------------------------------------


def lambda_limits(memory_mb: int) -> tuple[int, int]:
    """engine.rs `EngineLimits::for_lambda_memory`."""
    return min(max(memory_mb // 1769, 1), 6), max(memory_mb * 3 // 5, 64)


def load() -> float:
    return os.getloadavg()[0]


def run_case(base: dict, setup: list[str], query: str, params, threads: int | None, prepare=None) -> dict:
    spec = dict(base, setup=setup, query=query, params=params, prepare=prepare or [])
    if threads is not None:
        spec["threads"] = threads
    before = load()
    done = subprocess.run(
        [sys.executable, __file__, "--child"], input=json.dumps(spec), capture_output=True, text=True
    )
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if "Error" in line or "Exception" in line]
        result = {"error": (errors[-1] if errors else done.stderr.strip()[-300:])}
    else:
        result = json.loads(done.stdout)
    result["load"] = (before, load())
    result["threads"] = spec["threads"]
    return result


def summary(name: str, result: dict, verdict: str) -> str:
    if "error" in result:
        return f"{name:<44} {result['threads']:>2}  FAILED ({result['load'][0]:4.2f}/{result['load'][1]:4.2f}): {result['error']}"
    warm = result["times"][1:] or result["times"]
    cpu = statistics.median(result["cpus"][1:] or result["cpus"])
    median = statistics.median(warm)
    return (
        f"{name:<44} {result['threads']:>2}  {result['times'][0]:7.3f} {min(warm):7.3f} {median:7.3f}"
        f"  {cpu:6.3f} {cpu / median:4.2f}  {result['rss_peak_kb'] / 1024:7.0f} {(result['rss_peak_kb'] - result['rss_setup_kb']) / 1024:7.0f}"
        f"  {result['load'][0]:4.2f}/{result['load'][1]:4.2f}  {len(result['rows']):>4}  {verdict}"
        + (f" (prep s {result['prepare_s']:.3f})" if result.get("prepare_s") is not None else "")
    )


HEADER = (
    f"{'case':<44} {'th':>2}  {'cold s':>7} {'best s':>7} {'med s':>7}  {'cpu s':>6} {'c/w':>4}  {'rss MB':>7} {'+rss MB':>7}"
    f"  {'load b/a':>9}  {'rows':>4}  result"
)


def parse_params(text: str):
    return [item if item != "" else None for item in text.split(",")]


def main() -> int:
    if len(sys.argv) == 2 and sys.argv[1] == "--child":
        print(json.dumps(run_child(json.loads(sys.stdin.read()))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", type=pathlib.Path, help="the Delta table directory (…/leads)")
    parser.add_argument("--case", default="current", help=f"comma-separated, or 'all': {', '.join(CASES)}")
    parser.add_argument("--bucket", default="week,month", help="week, month or both (default)")
    parser.add_argument("--runs", type=int, default=5, help="warm runs after the cold one (default 5)")
    parser.add_argument("--lambda-mb", type=int, default=3538, help="Lambda memory the limits derive from")
    parser.add_argument("--threads", type=int, help="override the threads derived from --lambda-mb")
    parser.add_argument("--cache-dir", type=pathlib.Path, default=pathlib.Path("/var/tmp/tributary-bench/cache"))
    parser.add_argument("--sql-file", type=pathlib.Path, help="statements to run instead (see above)")
    parser.add_argument("--params", default="UTC,,", help="the timed query's parameters (default 'UTC,,')")
    parser.add_argument("--no-engine-setup", action="store_true", help="with --sql-file: skip the SETs and MACROS")
    parser.add_argument("--list", action="store_true", help="print the cases' SQL and exit")
    parser.add_argument("--print-result", action="store_true", help="print each case's rows")
    parser.add_argument("--json", type=pathlib.Path, help="also write every result here")
    args = parser.parse_args()

    buckets = [b.strip() for b in args.bucket.split(",") if b.strip()]
    names = list(CASES) if args.case == "all" else [c.strip() for c in args.case.split(",") if c.strip()]
    for name in names:
        if name not in CASES:
            parser.error(f"unknown case {name}")

    # The built-in cases run this script's copies of sql.rs (exploration of variants); with
    # --sql-file the statements are the aggregator's own, printed by its benchmark.
    for warning in [] if args.sql_file else rust_drift():
        print(f"warning: {warning}", file=sys.stderr)
    if rust_macros() not in (None, MACROS):
        print(f"warning: sql.rs MACROS differs from this script's copy:\n{rust_macros()}", file=sys.stderr)

    from deltalake import DeltaTable

    table = args.table.resolve()
    files = [uri.removeprefix("file://") for uri in DeltaTable(str(table)).file_uris()]
    data_bytes = sum(os.path.getsize(f) for f in files)

    if args.list:
        print(lead_versions_view(["<file>", "..."]))
        for name, case in CASES.items():
            print(f"\n-- {name}: {case['doc']}")
            for statement in case.get("prepare", []):
                print(f"-- once per snapshot:\n{statement}")
            if case.get("merge"):
                print(f"-- once:\n{BUILD_LATEST_DATES}\n{merge_latest_dates(['<newest file>'])}")
                continue
            sql = case["sql"]
            print(sql if isinstance(sql, str) else "\n".join(f"-- {b}\n{sql(b)}" for b in FORMATS))
        return 0

    threads, memory_mb = lambda_limits(args.lambda_mb)
    spill = args.cache_dir / "duckdb-spill"
    spill.mkdir(parents=True, exist_ok=True)
    base = dict(
        threads=args.threads or threads,
        memory_limit_mb=memory_mb,
        spill_dir=str(spill),
        readable_dirs=[str(args.cache_dir), str(table.parent)],
        runs=args.runs,
        engine_setup=not args.no_engine_setup,
    )
    print(f"table {table}: {len(files)} files, {data_bytes / 2**20:.1f} MiB")
    print(
        f"engine: threads={base['threads']} max_memory={memory_mb}MB (Lambda {args.lambda_mb} MB) "
        f"temp_directory={spill}; load {os.getloadavg()}"
    )
    print(HEADER)
    results = {}
    if args.sql_file:
        statements = [s.strip() for s in re.split(r"(?m)^-- statement\s*$", args.sql_file.read_text())]
        statements = [s.replace("{files}", ", ".join(quote_literal(f) for f in files)) for s in statements if s]
        # The first statement sets up (the view); the ones between are timed once as "prep s" (e.g.
        # the aggregator's latest_dates table); the last is the timed query.
        result = run_case(base, statements[:1], statements[-1], parse_params(args.params), None, statements[1:-1])
        results[str(args.sql_file)] = result
        print(summary(args.sql_file.name, result, ""))
        if args.print_result:
            for row in result.get("rows", []):
                print("   ", row)
    else:
        reference = {}
        newest = max(files, key=os.path.getmtime)
        for bucket in buckets:
            for name in names:
                case = CASES[name]
                if case.get("merge"):
                    if bucket != buckets[0]:
                        continue
                    older = [f for f in files if f != newest]
                    query = f"BEGIN TRANSACTION; {merge_latest_dates([newest])} COMMIT; SELECT count(*) FROM latest_dates"
                    result = run_case(base, [lead_versions_view(older)], query, [], case.get("threads"), [BUILD_LATEST_DATES])
                    results[name] = result
                    print(summary(name, result, f"merged {os.path.basename(newest)}"), flush=True)
                    continue
                sql = case["sql"]
                bucketed = not isinstance(sql, str)
                if not bucketed and bucket != buckets[0]:
                    continue
                view = lead_versions_view(files, **case.get("view", {}))
                params = parse_params(args.params) if bucketed else []
                result = run_case(
                    base, [view], sql(bucket) if bucketed else sql, params, case.get("threads"), case.get("prepare")
                )
                label = f"{name}:{bucket}" if bucketed else name
                results[label] = result
                verdict = ""
                if bucketed and "error" not in result and case.get("check", True):
                    if bucket not in reference:
                        reference[bucket] = result["rows"]
                        verdict = "reference"
                    else:
                        verdict = "same" if result["rows"] == reference[bucket] else "DIFFERENT"
                elif bucketed and "error" not in result and bucket in reference:
                    verdict = ("same" if result["rows"] == reference[bucket] else "DIFFERENT") + " (not required)"
                print(summary(label, result, verdict), flush=True)
                if args.print_result:
                    for row in result.get("rows", []):
                        print("   ", row)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
