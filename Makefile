# The two commands of the README: `make run` and `make test`. Everything else supports them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# The Lambda runtime's Python (template.yaml: Runtime python3.12). pyenv installs it without putting it on PATH,
# so look there first; fall back to any python3 that is new enough (3.11 runs everything but the built-artifact test).
PYTHON_VERSION := 3.12
PYTHON ?= $(shell local/find-python $(PYTHON_VERSION))
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
PORT ?= 8080
ORG ?=
SCOPES ?= ingest,read
PYTEST_ARGS ?=
BENCH_ARGS ?=
CHAOS_ARGS ?=
VEGETA := $(VENV)/bin/vegeta

.PHONY: help setup services run key test test-unit lint format down env build bench chaos maintain replay observe

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(INSTALLED): requirements-dev.txt layers/logpipe/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(INSTALLED) ## create .venv with every dependency

services: setup ## start Kafka, PostgreSQL and Redis natively (idempotent), create topics, migrate
	$(PY) local/services.py up >/dev/null

run: services ## start the services and serve the API on http://127.0.0.1:8080 (PORT=...; Ctrl-C stops the runner)
	@eval "$$($(PY) local/services.py env)"; \
	dev_key=$$(PYTHONPATH=layers/logpipe $(PY) -m logpipe.ops.keys --org acme --scopes ingest,read,admin --name dev | tail -n 1); \
	echo; \
	echo "logpipe is up at http://127.0.0.1:$(PORT)  (services keep running; 'make down' stops them)"; \
	echo "Development API key for organization acme (ingest, read, admin): $$dev_key"; \
	echo "Try:"; \
	echo "  curl -i -X POST http://127.0.0.1:$(PORT)/api/logs -H 'Content-Type: application/json' -H 'Authorization: Bearer $$dev_key' \\"; \
	echo "    -d '{\"organizationId\":\"acme\",\"level\":\"INFO\",\"message\":\"User logged in\",\"source\":\"auth-service\"}'"; \
	echo "  curl -s 'http://127.0.0.1:$(PORT)/api/logs?level=INFO&limit=5' -H 'Authorization: Bearer $$dev_key'"; \
	echo "  curl -s http://127.0.0.1:$(PORT)/health"; \
	echo "API docs: http://127.0.0.1:$(PORT)/docs"; \
	echo "  eval \"\$$(make -s env)\" && psql -c 'SELECT id, organization_id, level, message, source FROM log_events ORDER BY stored_at DESC LIMIT 5'"; \
	echo; \
	exec $(PY) local/runner.py --port $(PORT)

key: services ## create an API key: make key ORG=acme SCOPES=ingest,read (the key is alone on the last line)
	@eval "$$($(PY) local/services.py env)"; \
	PYTHONPATH=layers/logpipe $(PY) -m logpipe.ops.keys --org "$(ORG)" --scopes "$(SCOPES)"

observe: setup ## Prometheus (Debian package) + the dashboard page, scraping the runner on PORT; prints the URLs
	LOGPIPE_RUNNER_ADDRESS=127.0.0.1:$(PORT) $(PY) local/services.py observe

test: services ## start the services, install the tests' browser if missing (root), run every test
	$(PY) local/services.py browser
	eval "$$($(PY) local/services.py env)"; \
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup ## run the unit tests only (no services)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

$(VEGETA): | $(INSTALLED)
	GOBIN=$(abspath $(VENV)/bin) go install github.com/tsenart/vegeta/v12@v12.13.0

bench: services $(VEGETA) ## run bench/ (BENCH_ARGS=--quick for a 1-minute smoke run): bench/results/latest.json
	eval "$$($(PY) local/services.py env)"; \
	$(PY) bench/run.py $(BENCH_ARGS)

chaos: setup ## faults under load on private services (CHAOS_ARGS=--short: CI's 2-minute form; --seed N repeats a run)
	$(PY) bench/chaos $(CHAOS_ARGS)

lint: setup ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

down: ## stop the services started by `make run`/`make test` (data stays in local/.state; PURGE=1: and outside it)
	@if [ -x $(PY) ]; then $(PY) local/services.py down $(if $(PURGE),--purge); \
	else $(PYTHON) local/services.py down $(if $(PURGE),--purge); fi

build: setup ## sam validate --lint, then sam build into .aws-sam/build (no Docker: the layer is built by pip)
	export PATH="$(CURDIR)/$(VENV)/bin:$$PATH" SAM_CLI_TELEMETRY=0; \
	sam validate --lint --region us-east-1; \
	sam build

maintain: services ## create day partitions ahead, drop those past RETENTION_DAYS with their ids (ARGS=--dry-run)
	eval "$$($(PY) local/services.py env)"; \
	PYTHONPATH=layers/logpipe $(PY) -m logpipe.ops.maintenance $(ARGS)

replay: services ## re-publish dead letters to their source topic, once each (ARGS=--dry-run to only list them)
	eval "$$($(PY) local/services.py env)"; \
	PYTHONPATH=layers/logpipe $(PY) -m logpipe.ops.replay $(ARGS)

env: ## print the running stack's connection settings as export lines
	@$(if $(wildcard $(PY)),$(PY),$(PYTHON)) local/services.py env
