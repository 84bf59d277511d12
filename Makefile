# gauntlet: two commands set everything up on a fresh machine (Python 3.11):
#   make demo   one nightly run of the pipeline through Airflow on the embedded S3 server
#               (DATASET=wine or DATASET=diabetes: the examples `gauntlet init` wrote)
#   make test   lint, type-check and the test suite (what CI runs)
.PHONY: setup demo test test-scale lint typecheck pytest test-stack browser up down stack-status mlflow format clean image image-gpu docker-e2e reliability evaluation bench bench-quick lock

VENV := .venv
BIN := $(VENV)/bin

setup:
	@bash scripts/setup.sh

lock:  ## regenerate requirements.lock from requirements.txt + requirements-dev.txt (UPGRADE=1: newest of everything)
	@UPGRADE=$(UPGRADE) bash scripts/lock.sh

DATASET ?= digits
demo: setup  ## make demo DATASET=wine | diabetes runs a shipped example instead of digits
	@DATASET=$(DATASET) bash scripts/demo.sh

lint: setup
	$(BIN)/ruff check src tests dags plugins scripts benchmarks
	$(BIN)/ruff format --check src tests dags plugins scripts benchmarks

typecheck: setup
	$(BIN)/mypy src/gauntlet

pytest: setup mlflow
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not stack and not scale" $(PYTEST_ARGS)

browser:
	@bash scripts/install_browser.sh

test-stack: setup browser  ## against a running Airflow stack: REST API, backfill, sweep, UI screenshot
	$(BIN)/python -m pytest -q -m stack tests/stack --durations=0

test: lint typecheck pytest test-stack

test-scale: setup  ## scale-out: the production profile (PostgreSQL, Celery, Redis) under load and faults, multi-host Horovod
	$(BIN)/python -m pytest -q -m scale tests/scale --durations=0

up: setup  ## Airflow 3.3 (API server + UI, scheduler, DAG processor, triggerer) with the embedded S3 server; PROFILE=production: PostgreSQL, Redis, Celery workers, logs in S3
	@if [ "$(MLFLOW)" = 1 ]; then bash scripts/mlflow_server.sh start || exit 1; export MLFLOW_TRACKING_URI=$$(bash scripts/mlflow_server.sh uri); fi; \
		bash scripts/stack.sh up

down:
	@bash scripts/stack.sh down
	@bash scripts/mlflow_server.sh stop

mlflow:  ## MLflow in its own virtualenv (.venv-mlflow, built once); `make up MLFLOW=1` mirrors runs to it
	@bash scripts/mlflow_server.sh install

stack-status:
	@bash scripts/stack.sh status

reliability: setup  ## dead rank, faulty S3, bad-input corpus, overlapping runs, secret-leak scan
	$(BIN)/python -m pytest -q tests/reliability

evaluation: setup  ## protocol, gate from real runs, registry, ledger, report images
	$(BIN)/python -m pytest -q tests/unit/test_protocol.py tests/unit/test_protocol_options.py tests/unit/test_experiments.py \
		tests/e2e/test_gate_real_runs.py tests/unit/test_registry.py tests/e2e/test_report_images.py tests/unit/test_ledger.py

image: setup  ## CPU task image, built offline from the wheelhouse; prints its id and digest
	bash scripts/build_image.sh

image-gpu:  ## GPU task image (CUDA + NCCL); needs a registry to pull its base
	docker build --target gpu -t gauntlet:gpu .

docker-e2e: setup  ## the nightly DAG with every step in a container
	bash scripts/ci/docker_e2e.sh

bench: setup  ## every benchmark; writes artifacts/bench/results.{json,md}
	$(BIN)/python benchmarks/run_all.py --out artifacts/bench

bench-quick: setup  ## the small configuration CI runs so the benchmarks cannot rot
	$(BIN)/python benchmarks/run_all.py --quick --out artifacts/bench/quick

format: setup
	$(BIN)/ruff format src tests dags plugins scripts benchmarks
	$(BIN)/ruff check --fix src tests dags plugins scripts benchmarks

clean:
	rm -rf .airflow artifacts .pytest_cache .mypy_cache .ruff_cache
