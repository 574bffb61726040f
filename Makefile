# One vocabulary for people and CI: make run | up | down | test | lint | bench | faults | docs
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
INFRA := $(VENV)/bin/teamnl-infra

.PHONY: bootstrap infra-up infra-down infra-status run up down test bench faults lint docs docs-check

bootstrap:
	@scripts/bootstrap.sh

infra-up: bootstrap
	@$(INFRA) up

infra-down:
	@$(INFRA) down

infra-status:
	@$(INFRA) status

## Start the whole suite in the foreground (Ctrl-C stops it).
run: infra-up
	@$(VENV)/bin/teamnl run

## Start the suite detached / stop it (for scripts).
up: infra-up
	@$(VENV)/bin/teamnl up

down:
	@$(VENV)/bin/teamnl down || true
	@$(INFRA) down

## Every test: unit, integration (real Kafka + PostgreSQL), contract, browser.
test: infra-up docs-check
	@$(PY) -m pytest tests

## Regenerate what is generated from code: JSON Schemas + AsyncAPI (from the event models)
## and docs/CONFIGURATION.md (from the settings classes).
docs: bootstrap
	@$(PY) -m teamnl_shared.contract.export
	@$(PY) -m teamnl_suite.reference

docs-check: bootstrap
	@$(PY) -m teamnl_shared.contract.export --check
	@$(PY) -m teamnl_suite.reference --check

lint: bootstrap
	@$(VENV)/bin/ruff check shared services suite tests bench
	@$(VENV)/bin/ruff format --check shared services suite tests bench
	@$(VENV)/bin/mypy --strict shared/teamnl_shared
	@$(VENV)/bin/lint-imports

## Benchmarks, fault injection and soak (issues 7, 10); each starts its own private Kafka +
## PostgreSQL (ports 29092/25532, shifted by TEAMNL_BENCH_SLOT) and writes
## bench/results/*-latest.{md,json}. FAULTS_SIZE=full / SOAK_SIZE=full for the long runs.
BENCH_SIZE ?= full
FAULTS_SIZE ?= smoke
SOAK_SIZE ?= smoke
BENCH_ARGS ?=
.PHONY: bench-smoke soak
bench: bootstrap
	@$(PY) -m bench.run --size $(BENCH_SIZE) --profile $(BENCH_ARGS)

bench-smoke: bootstrap
	@$(PY) -m bench.run --size smoke

faults: bootstrap
	@$(PY) -m bench.faults --size $(FAULTS_SIZE)

soak: bootstrap
	@$(PY) -m bench.soak --size $(SOAK_SIZE)
