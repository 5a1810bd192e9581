# Two commands do all set-up on a fresh machine:
#   make run    the whole service on embedded defaults (SQLite, a private Redis, moto's SQS)
#   make test   lint, type check, then the whole test suite against PostgreSQL and Redis on 127.0.0.1
#   make test-fast   unit and in-process web API tests (no notif process started), in four processes: under a minute
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: run host-app test test-fast lint test-e2e test-faults bench install clean

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,test]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/notif dev

# the example host app (another origin embedding <notif-inbox>), beside `make run`: examples/host-app/README.md
host-app: $(STAMP)
	$(BIN)/python examples/host-app/app.py

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 4 -m "not e2e and not faults and not processes" $(PYTEST_ARGS)

# ruff (with import sorting) over everything; mypy over the service and its built-in channels
lint: $(STAMP)
	$(BIN)/ruff check notif plugins tests bench examples
	$(BIN)/mypy

test-e2e: $(STAMP)
	$(BIN)/python -m pytest -m e2e $(PYTEST_ARGS)

test-faults: $(STAMP)
	$(BIN)/python -m pytest -m faults $(PYTEST_ARGS)

# benchmarks (not tests): figures and how to read them in docs/benchmarks.md
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .notif notif.db notif.db-shm notif.db-wal *.egg-info .pytest_cache
