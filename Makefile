# One vocabulary for people and CI: make run | up | down | test | bench | faults | lint | schemas
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
INFRA := $(VENV)/bin/teamnl-infra

.PHONY: bootstrap infra-up infra-down infra-status run up down test test-fast bench faults lint schemas schemas-check

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
test: infra-up schemas-check
	@$(PY) -m pytest tests

## Regenerate the JSON Schemas and the AsyncAPI document from the event models.
schemas: bootstrap
	@$(PY) -m teamnl_shared.contract.export

schemas-check: bootstrap
	@$(PY) -m teamnl_shared.contract.export --check

lint: bootstrap
	@$(VENV)/bin/ruff check shared services tests
	@$(VENV)/bin/ruff format --check shared services tests
	@$(VENV)/bin/mypy --strict shared/teamnl_shared
