#!/usr/bin/env bash
# Fetches DuckDB's official prebuilt shared library (C API) from its npm packages, so the aggregator
# links it in seconds instead of compiling DuckDB's C++ for half an hour. Checked by SHA-256;
# idempotent. Layout: .duckdb/<arch>/lib/libduckdb.so. The x86_64 folder is also the Lambda layer's
# content (a layer's lib/ lands in /opt/lib, on the Lambda loader path): the aggregator functions run
# on x86_64 with the very library the tests use (README, "Deploy").
set -euo pipefail
cd "$(dirname "$0")/.."

# arch  npm package@version  sha256 of the tarball
packages=(
  "x86_64 @duckdb/node-bindings-linux-x64@1.5.6-r.1 1b9f82478539bb9a1d1df44bd103121a12ae52142c07158dc52b97d2ec1d69ff"
)

for entry in "${packages[@]}"; do
  read -r arch package sha <<<"$entry"
  dir=".duckdb/$arch"
  if [ -f "$dir/.sha256" ] && [ "$(cat "$dir/.sha256")" = "$sha" ] && [ -f "$dir/lib/libduckdb.so" ]; then
    continue
  fi
  work=$(mktemp -d)
  (cd "$work" && npm pack --silent "$package" >/dev/null)
  tarball=$(ls "$work"/*.tgz)
  echo "$sha  $tarball" | sha256sum --check --quiet || { echo "fetch-duckdb: $package has an unexpected checksum" >&2; exit 1; }
  tar xzf "$tarball" -C "$work"
  rm -rf "$dir" && mkdir -p "$dir/lib"
  mv "$work/package/libduckdb.so" "$dir/lib/"
  mv "$work/package/LICENSE" "$dir/LICENSE"
  echo "$sha" > "$dir/.sha256"
  rm -rf "$work"
  echo "fetch-duckdb: $package -> $dir/lib/libduckdb.so"
done
