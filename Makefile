# recolake: everything a fresh machine needs, from two commands: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
JARS_STAMP := jars/.resolved-stamp
# Set-up steps print one line each; their output goes to .recolake/setup.log.
QUIETLY := scripts/quietly.sh

.PHONY: help install jars kafka-jars redis chromium deps demo test test-unit lint airflow-venv dist clean

help:
	@echo "make demo   - install everything, run the nightly pipeline on the sample, serve the API"
	@echo "make test   - install everything and run all tests"
	@echo "make test-unit - the service-free tests only (no Spark, Redis, Kafka, Airflow): < 1 min"
	@echo "make lint   - ruff"

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(QUIETLY) "python packages (.venv)" bash -c \
	  "$(BIN)/pip install -q --upgrade pip && $(BIN)/pip install -q -c requirements.lock -e '.[dev,kafka]'"
	@touch $@

install: $(STAMP)

# JVM jars (Delta, Kafka connector) from Maven Central into ./jars, per pom.xml.
$(JARS_STAMP): pom.xml
	@$(QUIETLY) "JVM jars (Maven, pom.xml)" mvn -q -B dependency:copy-dependencies
	@touch $@

jars: $(JARS_STAMP)

# A real Kafka broker (KRaft) for tests/kafka, into ./jars-kafka: never on Spark's classpath.
KAFKA_JARS_STAMP := jars-kafka/.resolved-stamp
$(KAFKA_JARS_STAMP): scripts/kafka/pom.xml
	@$(QUIETLY) "Kafka broker jars (Maven)" mvn -q -B -f scripts/kafka/pom.xml dependency:copy-dependencies
	@touch $@

kafka-jars: $(KAFKA_JARS_STAMP)

# A Redis server from Debian's package when none is on PATH; OpenBLAS speeds up ALS.
redis:
	@command -v redis-server >/dev/null || $(QUIETLY) "redis-server (Debian package)" bash -c \
	  "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server"
	@ldconfig -p | grep -q libopenblas || $(QUIETLY) "OpenBLAS (Debian package)" bash -c \
	  "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas0-pthread liblapack3" \
	  || echo "OpenBLAS not installed: ALS falls back to Java BLAS"

# Debian's Chromium for tests/browser (Playwright drives it: never `playwright install`).
chromium:
	@command -v chromium >/dev/null || $(QUIETLY) "chromium (Debian package)" bash -c \
	  "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium"

deps: install jars redis

demo: deps
	@scripts/demo.sh

test: deps airflow-venv dist kafka-jars chromium
	$(BIN)/ruff check .
	$(BIN)/pytest

# The tests that need no service (markers in pyproject.toml): a developer's one-minute loop.
UNIT_TESTS := not spark and not redis and not kafka and not airflow and not slow and not browser
test-unit: install
	$(BIN)/pytest -q -m "$(UNIT_TESTS)"

# Airflow 3 in its own venv (it cannot share one with full pyspark: ../shared/README.md).
AIRFLOW_VENV := .venv-airflow
$(AIRFLOW_VENV)/.installed-stamp: requirements-airflow.lock
	@test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	@$(QUIETLY) "Airflow (.venv-airflow)" bash -c \
	  "$(AIRFLOW_VENV)/bin/pip install -q --upgrade pip && $(AIRFLOW_VENV)/bin/pip install -q -r requirements-airflow.lock"
	@touch $@

airflow-venv: $(AIRFLOW_VENV)/.installed-stamp

# The project's packages as one zip for spark-submit --py-files (scripts/spark-submit.sh).
dist: $(STAMP)
	rm -rf dist && mkdir -p dist
	$(BIN)/python -m zipfile -c dist/recolake-py.zip recolake pipelines features models online

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf var .recolake

# Benchmarks: scripts that print figures (benchmarks/README.md), never part of `make test`.
# `implicit` is installed only for the ALS comparison, into .venv-bench (read by als_speed.py).
.PHONY: bench bench-deps bench-als bench-movielens bench-retail
BENCH_STAMP := .venv-bench/.installed-stamp
$(BENCH_STAMP):
	$(BIN)/pip install -q --target .venv-bench implicit==0.7.3
	touch $@

bench-deps: $(BENCH_STAMP)

bench-als: deps bench-deps
	$(BIN)/python benchmarks/als_speed.py

bench-movielens: deps
	$(BIN)/python benchmarks/movielens_100k.py

bench-retail: deps
	$(BIN)/python benchmarks/online_retail_full.py

bench: bench-als bench-movielens bench-retail
