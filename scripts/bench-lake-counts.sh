#!/usr/bin/env bash
# The lake benchmark: count_date_by_week/month on 1M and 10M generated lead versions, through the
# aggregator's query code (release build) and through the same SQL in Python DuckDB on the same
# files. Needs the Python packages of requirements-tools.txt in .venv. Tables are generated once
# into /var/tmp/tributary-bench (about 1.2 GB for both); pass sizes to override: 1000000 10000000.
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
out=/var/tmp/tributary-bench
sizes=("${@:-1000000 10000000}")
for rows in ${sizes[*]}; do
  lake="$out/leads-$rows"
  [ -d "$lake/leads/_delta_log" ] || "$python" scripts/generate-bench-leads.py --rows "$rows"
  for bucket in week month; do
    echo "== $rows lead versions, $bucket =="
    # A cold reader with nothing kept: it groups every version.
    rm -rf "$lake/leads/_derived"
    cargo bench -q -p aggregator --bench counts -- --lake "$lake" --bucket "$bucket" --print-sql "$out/$bucket-$rows.sql"
    cargo bench -q -p aggregator --bench counts -- --lake "$lake" --bucket "$bucket"
    "$python" scripts/bench-lake-duckdb.py "$lake/leads" --sql-file "$out/$bucket-$rows.sql"
    # The same once the hourly job has kept the latest dates (the job's own time printed first).
    cargo bench -q -p aggregator --bench counts -- --lake "$lake" --bucket "$bucket" --keep-latest-dates
  done
done
