#!/usr/bin/env bash
# Installs the local tooling (moto, cfn-lint, aws-sam-cli, cargo-lambda, zig) into ./.venv.
# Idempotent: a second run with nothing changed only checks the stamp and exits.
set -euo pipefail
cd "$(dirname "$0")/.."

# DuckDB's prebuilt library for the aggregator (its own checksum stamp).
bash scripts/fetch-duckdb.sh

# The console's browser test drives Debian's Chromium (Playwright uses it; it downloads no browser).
if ! command -v chromium > /dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    echo "setup: installing Debian's chromium for the console's browser test"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium > /dev/null
  else
    echo "setup: chromium is missing: install Debian's chromium package (sudo apt-get install chromium)" >&2
    exit 1
  fi
fi

venv=.venv
stamp="$venv/.requirements.sha256"
want=$(sha256sum requirements-dev.txt | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/moto_server" ]; then
  echo "setup: .venv is up to date"
  exit 0
fi

python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r requirements-dev.txt
echo "$want" > "$stamp"
echo "setup: installed $(tr '\n' ' ' < <(grep -v '^#' requirements-dev.txt | grep .))"
