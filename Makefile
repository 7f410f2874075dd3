# Tributary's one command surface. `make help` lists the targets.
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export SAM_CLI_TELEMETRY := 0
CARGO ?= cargo
# Where cargo builds (CARGO_TARGET_DIR when set): the demo runs the binaries from there.
TARGET_DIR = $(shell $(CARGO) metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
# What `cargo test --workspace` builds (every binary and test, one feature resolution): built once,
# it serves the tests, the demo and its functions alike.
BUILD_ALL = $(CARGO) build --workspace --locked --bins --tests
# The binaries the demo and the load run use (cargo metadata failing leaves TARGET_DIR empty).
BIN = $(if $(TARGET_DIR),$(TARGET_DIR)/debug,$(error cargo metadata did not name the target directory))
RELEASE_BIN = $(if $(TARGET_DIR),$(TARGET_DIR)/release,$(error cargo metadata did not name the target directory))

.PHONY: help setup test test-rust lint demo demo-check console-screenshots load bench-coldstart bench bench-puller-memory bench-lake-open bench-lake-counts bench-compare build-lambda sam-build events demo-data

help: ## This list
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: ## Install moto, cfn-lint, aws-sam-cli, cargo-lambda, zig and Playwright for .venv (idempotent)
	bash scripts/setup.sh

test: setup lint ## make lint, then every test (unit, moto integration, template lint) and the demo as a check, side by side
	$(CARGO) test --workspace --locked --no-run
	$(BUILD_ALL) --quiet  # nothing to do: cargo test built every binary
	@# The tests leave half a core idle on average (moto's one Python thread at a time): the demo
	@# check runs beside them, on ports of its own, its output shown once they are done.
	@# Interrupted, both are stopped (SIGTERM: the demo stops every process it started). The tests
	@# run as a job too, so that the trap runs at once rather than when they end.
	@demo_log=$$(mktemp); $(BIN)/demo --check > $$demo_log 2>&1 & demo=$$!; \
	  $(CARGO) test --workspace --locked & tests=$$!; \
	  stop() { kill $$tests $$demo 2>/dev/null; wait $$demo; rm -f $$demo_log; exit $$1; }; \
	  trap 'stop 130' INT; trap 'stop 143' TERM; \
	  wait $$tests; tests_status=$$?; wait $$demo; demo_status=$$?; trap - INT TERM; \
	  cat $$demo_log; rm -f $$demo_log; \
	  [ $$tests_status -eq 0 ] && [ $$demo_status -eq 0 ]

lint: ## Formatting, and clippy with warnings as errors (the workspace lints of Cargo.toml); the template's lint is a test
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

demo: setup ## The whole pipeline locally (moto, fake Matomo/Notion/CRM, every function); stays up until Ctrl-C
	$(BUILD_ALL)
	$(BIN)/demo

demo-check: setup ## The demo unattended on free ports: its summary checked against tests/demo/expected.json
	$(BUILD_ALL)
	$(BIN)/demo --check

console-screenshots: demo-check ## The demo check (its browser test writes .local/console/), then its screenshots into docs/console/ for the README
	mkdir -p docs/console
	cp .local/console/leads.png .local/console/customers.png .local/console/runs.png .local/console/failures.png docs/console/

load: setup ## The demo stack under volume: DELIVERIES signed deliveries, LEADS ingested leads, INSTANCES processes per function (2); events/s, memory and CPU of every process; RELEASE=1 runs the release binaries
	$(if $(filter 1,$(RELEASE)),$(CARGO) build --workspace --locked --release --bins,$(BUILD_ALL))
	$(if $(filter 1,$(RELEASE)),$(RELEASE_BIN),$(BIN))/load --deliveries $(or $(DELIVERIES),2000) --leads $(or $(LEADS),2000) --instances $(or $(INSTANCES),2)

demo-data: ## Regenerate tests/demo/ (the demo's Matomo visits, Notion leads, lead batch, expected summary)
	python3 scripts/generate-demo-data.py

bench: ## Criterion benchmarks: webhook in-process path, processor apply, puller visits (release build)
	$(CARGO) bench -p webhook --bench verify_normalise
	$(CARGO) bench -p processor --bench apply_event
	$(CARGO) bench -p puller --bench visits --no-run
	taskset -c 0 $(CARGO) bench -p puller --bench visits  # one core, as the target is stated (built on both above)

bench-coldstart: setup ## Cold start of each function (release): init, first invocation, peak memory, AWS calls; STARTS each (20)
	$(CARGO) build --workspace --locked --release --bins
	$(RELEASE_BIN)/coldstart --starts $(or $(STARTS),20)

bench-puller-memory: ## Peak memory of whole Matomo pulls: 10 and 100 days of 10 000 visits (release build)
	$(CARGO) bench -p puller --bench pull_memory -- --days 10
	$(CARGO) bench -p puller --bench pull_memory -- --days 100

bench-lake-open: ## Cost of opening a lake table after 10 and 1 000 commits, local disk and moto S3 (release build)
	$(CARGO) bench -p lake-writer --bench table_open

bench-lake-counts: ## Counts over 1M and 10M lead versions: aggregator vs Python DuckDB (needs requirements-tools.txt)
	bash scripts/bench-lake-counts.sh

bench-compare: ## Our webhook, puller and aggregator paths next to the Python way on the same bytes, with ratios (needs requirements-tools.txt)
	$(CARGO) bench -p webhook --bench verify_normalise --no-run
	$(CARGO) bench -p puller --bench visits --no-run
	taskset -c 0 $(CARGO) bench -p webhook --bench verify_normalise -- 'stripe_2kb/verify'
	BENCH_COMPARE_DIR=$(TARGET_DIR)/bench-compare taskset -c 0 $(CARGO) bench -p puller --bench visits -- 'matomo_visits/parse_name'
	taskset -c 0 .venv/bin/python scripts/bench-compare.py --criterion $(TARGET_DIR)/criterion --pages $(TARGET_DIR)/bench-compare
	bash scripts/bench-lake-counts.sh 1000000

build-lambda: setup ## Release bootstraps as deployed: arm64, the aggregator x86_64 (cargo-lambda + zig, no Docker)
	for function in webhook processor integrator api puller lake-writer rebuild; do (cd functions/$$function && cargo-lambda lambda build --release --arm64) || exit 1; done
	cd functions/aggregator && cargo-lambda lambda build --release --x86-64
	@ls -l $(TARGET_DIR)/lambda/*/bootstrap | awk '{printf "%12s bytes  %s\n", $$5, $$NF}'

sam-build: setup ## sam build (rust-cargolambda, beta feature) without Docker
	sam build --beta-features

events: ## Regenerate the sample events in events/ (signed with events/local-secrets.json)
	python3 scripts/generate-sample-events.py
