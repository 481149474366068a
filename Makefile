# The two commands a newcomer runs: `make demo` and `make test`. Each bootstraps first.
.PHONY: setup demo test test-fast lint format bench bench-vet mutation doctor clean

VENV := .venv
PYTEST_WORKERS ?= 2

setup:
	@scripts/bootstrap

demo: setup
	@exec $(VENV)/bin/defiagent demo

# `exec` makes pytest the direct child of make, so if make is killed (even SIGKILL) the
# run notices it was orphaned and ends, and every anvil it started dies with it.
test: setup
	@exec $(VENV)/bin/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -q

# The same suite without the slow tests, for a quick loop while editing.
test-fast: setup
	@exec $(VENV)/bin/python -m pytest -n $(PYTEST_WORKERS) -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup
	@exec $(VENV)/bin/python scripts/bench.py

# Vetting: a first vet against bare Slither, batch throughput with 1 and 2 Dask workers.
bench-vet: setup
	@exec $(VENV)/bin/python scripts/bench_vet.py

# Mutation testing of the guard rules, the outcome checks and the journal (mutmut, configured
# in pyproject.toml); fails below 90% killed in any module. Separate from `make test`.
mutation: setup
	@exec $(VENV)/bin/python scripts/mutation.py

doctor: setup
	@exec $(VENV)/bin/defiagent doctor

clean:
	rm -rf $(VENV) scripts/toolchain/node_modules .pytest_cache .ruff_cache .mypy_cache
