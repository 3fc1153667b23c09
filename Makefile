# recolake: everything a fresh machine needs, from two commands: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
JARS_STAMP := jars/.resolved-stamp

.PHONY: help install jars redis deps demo test lint airflow-venv clean

help:
	@echo "make demo   - install everything, run the nightly pipeline on the sample, serve the API"
	@echo "make test   - install everything and run all tests"
	@echo "make lint   - ruff"

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	touch $@

install: $(STAMP)

# JVM jars (Delta, Kafka connector) from Maven Central into ./jars, per pom.xml.
$(JARS_STAMP): pom.xml
	mvn -q -B dependency:copy-dependencies
	touch $@

jars: $(JARS_STAMP)

# A Redis server from Debian's package when none is on PATH; OpenBLAS speeds up ALS.
redis:
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server (Debian package)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }
	@ldconfig -p | grep -q libopenblas || { \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas0-pthread liblapack3 \
	  || echo "OpenBLAS not installed: ALS falls back to Java BLAS"; }

deps: install jars redis

demo: deps
	scripts/demo.sh

test: deps
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf var .recolake
