# Herald's developer entry points. Each target first installs what is missing (uv, then what
# that target needs from uv.lock), then hands over to the workspace's `herald-dev` tool
# (tools/dev), which uses HERALD_DATABASE_URL / HERALD_REDIS_URL when set and embedded servers
# under .herald/ otherwise. Works non-interactively from a fresh clone.
#
#   make run                      migrate, seed, run the four services (Ctrl-C stops all)
#   make test [ARGS="-k foo"]     ruff, mypy, then pytest with ARGS
#   make fuzz [EXAMPLES=200]      schemathesis against the API, EXAMPLES cases per operation
#   make lint | fmt | typecheck | migrate | clean | sync

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

# uv: on PATH, or where `pip install --user` or uv's own installer put it (~/.local/bin on
# Linux, ~/Library/Python/3.x/bin on macOS), else the uv module of python3 (where pip leaves
# it when uv is installed but its script is not on PATH). `=`, not `:=`: looked up again after
# the `uv` target has installed it.
USER_BIN := $(shell python3 -m site --user-base 2>/dev/null)/bin
export PATH := $(PATH):$(HOME)/.local/bin:$(USER_BIN)
UV = $(shell PATH='$(PATH)' command -v uv 2>/dev/null || echo python3 -m uv)
# --no-sync: the target's own sync has just installed what uv.lock says; never re-lock here.
UV_RUN = $(UV) run --no-sync
HERALD_DEV = $(UV_RUN) herald-dev
# What running Herald needs, plus the dependency groups (pyproject.toml) a target names with
# --group: `make run` installs no test, lint or benchmark tools. --inexact: a target never
# removes what another one installed (`make run` after `make test` keeps the test tools).
SYNC = $(UV) sync --frozen --inexact --no-default-groups

.PHONY: uv sync run test fuzz chaos lint fmt typecheck migrate clean \
	bench bench-spike bench-steady bench-enqueue bench-api

# pip refuses --user installs into a Debian/Ubuntu system Python (PEP 668) unless told that a
# user-level uv is fine, hence the second try.
uv:
	@if ! $(UV) --version >/dev/null 2>&1; then \
		echo "make: uv not found; installing it with pip --user" >&2; \
		python3 -m pip install --user --quiet uv \
			|| python3 -m pip install --user --quiet --break-system-packages uv; \
	fi

# Everything in uv.lock, every group, and nothing else (what CI tests).
sync: uv
	@$(UV) sync --frozen --all-groups

run: uv
	@$(SYNC)
	$(HERALD_DEV) run

test: sync
	$(HERALD_DEV) test $(ARGS)

# The fuzz test also runs in `make test`, with 5 cases per operation.
EXAMPLES ?= 200
fuzz: uv
	@$(SYNC) --group test
	HERALD_FUZZ_EXAMPLES=$(EXAMPLES) $(HERALD_DEV) test --skip-checks -m fuzz $(ARGS)

# The large chaos run: 2,000 targets, publishers killed again and again, Redis restarted
# empty; prints the counts (published, duplicates, lost, unknown, failed). A small one runs in
# `make test`.
chaos: uv
	@$(SYNC) --group test
	HERALD_CHAOS=large $(HERALD_DEV) test --skip-checks tests/chaos -s $(ARGS)

# Benchmarks (bench/README.md): each starts its own stack (a fresh database on the dev
# Postgres, a private Redis, the services as processes, a fake platform), prints a table and
# writes bench/results/. Not part of `make test`. ARGS go to the benchmark, e.g.
# `make bench-spike ARGS="--targets 2000"`.
BENCH = $(UV_RUN) python -m bench
bench: bench-enqueue bench-api bench-steady bench-spike

bench-spike: uv
	@$(SYNC) --group bench
	$(BENCH) spike $(ARGS)

bench-steady: uv
	@$(SYNC) --group bench
	$(BENCH) steady $(ARGS)

bench-enqueue: uv
	@$(SYNC) --group bench
	$(BENCH) enqueue $(ARGS)

bench-api: uv
	@$(SYNC) --group bench
	@command -v wrk >/dev/null || echo "make: bench-api needs wrk (apt-get install -y wrk)" >&2
	$(BENCH) api $(ARGS)

lint: uv
	@$(SYNC) --group lint
	$(HERALD_DEV) lint

fmt: uv
	@$(SYNC) --group lint
	$(UV_RUN) ruff format .
	$(UV_RUN) ruff check --fix .

# mypy reads every package, the tests and the benchmarks, so it needs all their imports.
typecheck: sync
	$(HERALD_DEV) typecheck

migrate: uv
	@$(SYNC)
	$(HERALD_DEV) migrate

# Stops the embedded servers and removes caches. Keeps .herald/ (the dev database and API
# key) and .venv/; `rm -rf .herald` after this starts from an empty database.
clean:
	@if [ -x .venv/bin/herald-dev ]; then .venv/bin/herald-dev stop; fi
	rm -rf .mypy_cache .ruff_cache .pytest_cache
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
