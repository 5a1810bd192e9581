# Two commands do all set-up on a fresh machine:
#   make run    the whole service on embedded defaults (SQLite, a private Redis, moto's SQS)
#   make test   the test suite against PostgreSQL and Redis on 127.0.0.1 (see README)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: run test test-e2e test-faults bench install clean

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,test]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/notif dev

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-e2e: $(STAMP)
	$(BIN)/python -m pytest -m e2e $(PYTEST_ARGS)

test-faults: $(STAMP)
	$(BIN)/python -m pytest -m faults $(PYTEST_ARGS)

# benchmarks (not tests): figures and how to read them in docs/benchmarks.md
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .notif notif.db notif.db-shm notif.db-wal *.egg-info .pytest_cache
