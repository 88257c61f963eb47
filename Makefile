# `make dev` runs the whole console; `make test` runs the tests (what .ci/run calls).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

# Tests run against the real services on this machine unless the environment points elsewhere.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/console
# Redis database 15, not 0: the tests purge queues and one of them flushes its database, which must never be a
# console's (a dev console on this machine uses database 0).
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
# The settings refuse to start with DEBUG off and no key of their own; the tests run with DEBUG off, so they get one.
TEST_SECRET_KEY ?= test-only-secret-key-never-used-outside-make-test-0123456789

.PHONY: dev test install services migrate system-packages bench bench-memory bench-compare

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

# The development database (make dev's first step); production migrates in compose's one-shot migrate service.
migrate: install
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} $(BIN)/python manage.py migrate --noinput

# Web on :8000, worker, beat and the Evolution sandbox on :8081. With no DATABASE_URL/REDIS_URL it is
# all embedded (SQLite and a filesystem broker under var/); set them to use PostgreSQL and Redis. The sandbox
# registers the console (CONSOLE_PUBLIC_URL, the web process by default) as its webhook each time it starts.
# honcho would load .env into every process (over the shell's variables), and .env is docker compose's file:
# production ports, host.docker.internal, HTTPS redirects. `-e /dev/null` keeps the dev defaults; variables
# set in the shell still apply.
dev: migrate
	@if [ -f .env ]; then echo "make dev: not reading .env (docker compose's settings); set variables in the shell, e.g. DATABASE_URL=... make dev" >&2; fi
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} $(BIN)/python manage.py bootstrap_console
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} CONSOLE_PUBLIC_URL=$${CONSOLE_PUBLIC_URL:-http://127.0.0.1:$${WEB_PORT:-8000}} $(BIN)/honcho start -f Procfile -e /dev/null

# Start PostgreSQL and Redis if they are down (the commands the machine documents).
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && exit 0; sleep 1; done; echo "PostgreSQL or Redis did not start" >&2; exit 1

# Debian packages the tests use: docker-compose only parses docker-compose.yml (no engine runs), and the
# admin's browser test drives headless Chromium through chromedriver. Installed once, when missing.
system-packages:
	@command -v docker-compose >/dev/null && command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose chromium chromium-driver; }

test: install services system-packages
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		DJANGO_SECRET_KEY=$${DJANGO_SECRET_KEY:-$(TEST_SECRET_KEY)} $(BIN)/python manage.py makemigrations --check --dry-run
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		DJANGO_SECRET_KEY=$${DJANGO_SECRET_KEY:-$(TEST_SECRET_KEY)} $(BIN)/python -m pytest $(PYTEST_ARGS)

# Benchmarks (README, Performance): their own database and Redis DB unless BENCH_DATABASE_URL / BENCH_REDIS_URL
# say otherwise. Needs wrk (apt-get install -y wrk). Each figure is run three times: min / median / max.
bench: install services
	@command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

# The long drain (50,000 messages) that checks the workers' memory stays flat.
bench-memory: install services
	$(BIN)/python bench/drain.py --runs 1 --messages 50000 --memory

# The peer (the FastAPI + Celery design this console replaces) measured by its own scripts, then `make bench`'s
# figures, back to back, in one table with the ratios and issue 14's goals. Needs an idle machine.
PEER_DIR ?= ../shared/peer
bench-compare: install services
	@command -v wrk >/dev/null && [ -x /usr/bin/time ] || { echo "wrk and GNU time are missing: apt-get install -y wrk time" >&2; exit 1; }
	$(BIN)/python bench/compare.py --peer-dir $(PEER_DIR) $(BENCH_ARGS)
