# JCT — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# The bench's own venv: JCT's pinned runtime plus the peers it is compared with (bench/
# requirements.txt). Kept apart so `make run` and `make test` never install or see the peers.
BENCH_VENV  := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv run test test-unit test-integration test-e2e lint typecheck browser sandbox-tools bench bench-quick clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt requirements-otel.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP) sandbox-tools ## create/update .venv from requirements*.txt

run: $(STAMP) sandbox-tools ## start embedded PostgreSQL + S3, migrate, run API (gunicorn) and workers (dramatiq)
	$(BIN)/jct up

browser: ## install Debian's chromium for the browser tests (if missing)
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (Debian package) for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "could not install chromium; browser tests will skip (they fail under CI=true)"; }

sandbox-tools: ## install bubblewrap, git and a system python3 for the command sandbox (if missing)
	@missing=""; \
	command -v bwrap >/dev/null 2>&1 || missing="$$missing bubblewrap"; \
	command -v git >/dev/null 2>&1 || missing="$$missing git"; \
	{ test -x /usr/bin/python3 || test -x /usr/local/bin/python3; } || missing="$$missing python3"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (Debian packages) for the command sandbox"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	  || echo "could not install$$missing; sandbox tests will skip (they fail under CI=true)"; \
	fi

lint: $(STAMP) ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/mypy

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) browser sandbox-tools lint ## everything: lint, unit, integration and e2e tests against real services
	$(BIN)/pytest

test-unit: $(STAMP) ## unit tests only (no services)
	$(BIN)/pytest tests/unit

test-integration: $(STAMP) sandbox-tools ## integration tests (embedded PostgreSQL and S3, RabbitMQ on 127.0.0.1:5672)
	$(BIN)/pytest tests/integration

test-e2e: $(STAMP) browser ## e2e tests: `jct up` as a subprocess, driven over HTTP and in Chromium
	$(BIN)/pytest tests/e2e

$(BENCH_STAMP): requirements.txt bench/requirements.txt pyproject.toml
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q -r requirements.txt -r bench/requirements.txt
	$(BENCH_VENV)/bin/python -m pip install -q --no-deps -e .
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP) ## JCT vs celery, procrastinate, dramatiq and two ceilings in one run (~20 min); BENCH_ARGS=...
	$(BENCH_VENV)/bin/python -m bench $(BENCH_ARGS)

bench-quick: $(BENCH_STAMP) ## the same run in smoke form (about 2 minutes)
	$(BENCH_VENV)/bin/python -m bench --quick $(BENCH_ARGS)

clean: ## remove .venv, .venv-bench and .jct
	rm -rf $(VENV) $(BENCH_VENV) .jct .pytest_cache .mypy_cache .ruff_cache

.PHONY: drill
drill: $(STAMP) ## long soak: 20,000 tasks with a worker killed every few seconds
	$(BIN)/python -m drills.soak --tasks 20000 --kill-every 5

.PHONY: drill-hosts
drill-hosts: $(STAMP) ## multi-host drill on network namespaces (root): spread, partitions, restarts
	$(BIN)/python -m drills.hosts
