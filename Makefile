# AiSpendTrack: `make run` serves everything on a laptop; `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
PORT ?= 8000
HOST ?= 127.0.0.1
WEB_CONCURRENCY ?= $(shell nproc 2>/dev/null || echo 2)
# uvicorn with the request limits of config/httpguard.py (431, 408, 503; README "Request limits");
# on SIGTERM, calls still running after GRACEFUL_TIMEOUT s are cut (and recorded as cancelled).
GRACEFUL_TIMEOUT ?= 7
UVICORN := $(BIN)/uvicorn config.asgi:application --host $(HOST) --port $(PORT) --loop uvloop \
	--http config.httpguard:GuardedHttpToolsProtocol --timeout-graceful-shutdown $(GRACEFUL_TIMEOUT) \
	--no-server-header --no-date-header --no-proxy-headers

.PHONY: run serve test lint format bench install migrate prices worker clean

# Laptop defaults: DEBUG on, SQLite under var/, no Redis (kombu filesystem broker).
run: export DEBUG ?= 1
run: install
	$(MANAGE) migrate --noinput
	$(MANAGE) rollups_rebuild
	$(MANAGE) sync_prices
	@echo "AiSpendTrack on http://$(HOST):$(PORT)  (pages, API and proxy; Celery worker + beat, the ledger writer and the rollups fold alongside; Ctrl-C stops all)"
	@$(BIN)/celery -A config worker -B --concurrency 1 --loglevel INFO & celery=$$!; \
	$(MANAGE) rollups_fold --loop & fold=$$!; \
	$(MANAGE) ledger_writer & writer=$$!; \
	trap 'kill -TERM $$celery $$fold 2>/dev/null; wait $$celery $$fold; kill -TERM $$writer 2>/dev/null; wait $$writer' EXIT; \
	$(UVICORN)

# uvicorn runs with --no-server-header --no-date-header: proxied answers carry the
# provider's own Server/Date headers, and uvicorn would add a second of each.
# Production-style: DEBUG off, $(WEB_CONCURRENCY) workers, honours DATABASE_URL / REDIS_URL;
# the ledger writer (manage.py ledger_writer) and the rollups fold (manage.py
# rollups_fold --loop) run beside the web workers. Background jobs of make's
# shell ignore Ctrl-C: the writer is stopped (TERM) only once the web workers
# have exited, so it writes every call they answered before it goes.
serve: install
	@var="$${AISPENDTRACK_VAR_DIR:-var}"; if [ -z "$$SECRET_KEY" ] && [ ! -s "$$var/secret_key" ]; then \
		mkdir -p "$$var" && (umask 077; $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(50))" \
		> "$$var/secret_key"); echo "generated $$var/secret_key (settings read it when SECRET_KEY is unset)"; fi
	@$(MANAGE) migrate --noinput && \
	$(MANAGE) rollups_rebuild && \
	$(MANAGE) collectstatic --noinput -v 0 && \
	$(MANAGE) sync_prices && \
	{ $(MANAGE) rollups_fold --loop & fold=$$!; \
	$(MANAGE) ledger_writer & writer=$$!; \
	$(UVICORN) --workers $(WEB_CONCURRENCY) --no-access-log & web=$$!; \
	trap 'kill -TERM $$web $$fold 2>/dev/null' TERM INT; \
	while kill -0 $$web 2>/dev/null; do wait $$web; done; \
	kill -TERM $$fold $$writer 2>/dev/null; wait; }

worker: install
	$(BIN)/celery -A config worker -B --loglevel INFO

test: install lint
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DEBUG=1 $(BIN)/mypy .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The load benchmarks drive Debian's wrk (/usr/bin/wrk): installed here when missing.
bench: install
	@command -v wrk >/dev/null 2>&1 || { echo "installing wrk (Debian's package) for the load benchmarks"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python -m bench $(BENCH_ARGS)

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

migrate: install
	DEBUG=$${DEBUG:-1} $(MANAGE) migrate --noinput

clean:
	rm -rf $(VENV) var
