# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv and install what they need.

VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
PYTEST_ARGS ?=
JOBS ?= 2

.PHONY: demo test lint install clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

# The whole suite on SQLite, then again on PostgreSQL when CPAAS_TEST_PG_URL is set.
test: $(VENV)/.installed
	env -u CPAAS_TEST_PG_URL $(VENV)/bin/pytest -n $(JOBS) $(PYTEST_ARGS)
	@if [ -n "$$CPAAS_TEST_PG_URL" ]; then \
		echo "== again on PostgreSQL ($$CPAAS_TEST_PG_URL)"; \
		$(VENV)/bin/pytest -n $(JOBS) $(PYTEST_ARGS); \
	else \
		echo "CPAAS_TEST_PG_URL is not set: the PostgreSQL run was not done (.ci/run sets it)"; \
	fi

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) cpaas.db cpaas.db-wal cpaas.db-shm demo-out demo-callbacks.jsonl demo-sink.log demo-smsc-texts.txt
