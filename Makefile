# gauntlet: two commands set everything up on a fresh machine (Python 3.11):
#   make demo   one nightly run of the pipeline through Airflow on the embedded S3 server
#   make test   lint, type-check and the test suite (what CI runs)
.PHONY: setup demo test lint typecheck pytest format clean

VENV := .venv
BIN := $(VENV)/bin

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

lint: setup
	$(BIN)/ruff check src tests dags plugins scripts
	$(BIN)/ruff format --check src tests dags plugins scripts

typecheck: setup
	$(BIN)/mypy src/gauntlet

pytest: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test: lint typecheck pytest

format: setup
	$(BIN)/ruff format src tests dags plugins scripts
	$(BIN)/ruff check --fix src tests dags plugins scripts

clean:
	rm -rf .airflow artifacts .pytest_cache .mypy_cache .ruff_cache
