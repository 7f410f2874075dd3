#!/usr/bin/env bash
# Installs the local tooling (moto, cfn-lint, aws-sam-cli, cargo-lambda, zig, Playwright) for ./.venv.
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

# The tools' virtual environment lives outside the clone, one per requirements-dev.txt, and .venv
# links to it: a new clone of the same requirements (every CI run) links it in a moment instead of
# installing some 300 MB again (about a minute). A checkout whose .venv is a directory of its own
# keeps it (rebuilt there when the requirements change). The key is the requirements and the
# Python that runs them.
want=$( (cat requirements-dev.txt; python3 -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)
if [ -d .venv ] && [ ! -L .venv ]; then
  venv=.venv
else
  cache="${TRIBUTARY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tributary}"
  venv="$cache/venv-${want:0:16}"
fi
ready() {
  [ -f "$venv/.requirements.sha256" ] && [ "$(cat "$venv/.requirements.sha256")" = "$want" ] &&
    [ -x "$venv/bin/moto_server" ] && "$venv/bin/python" -c '' 2> /dev/null
}
link() { if [ "$venv" != .venv ]; then ln -sfn "$venv" .venv; fi; }

if ready; then
  link
  echo "setup: .venv is up to date"
  exit 0
fi

if [ "$venv" != .venv ]; then
  mkdir -p "$(dirname "$venv")"
  # Two clones setting up at once: one installs, the other waits for it.
  exec 9> "$venv.lock"
  if command -v flock > /dev/null; then flock 9; fi
fi
if ! ready; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -r requirements-dev.txt
  echo "$want" > "$venv/.requirements.sha256"
fi
link
echo "setup: installed $(tr '\n' ' ' < <(grep -v '^#' requirements-dev.txt | grep .)) in $venv"
