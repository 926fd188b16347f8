# lern-beam: everything a fresh machine needs is installed from here.
#   make demo   - set everything up, run the smoke job on sample data (batch and Flink streaming)
#   make test   - set everything up, run unit + pipeline + e2e tests
#   make up / down / status - the local stack (Kafka, Cassandra, Redis, expansion service, Flink cluster, emulator, SMTP)

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install system jars up down status demo test test-unit test-pipeline test-e2e lint clean

help:
	@sed -n '2,4p' Makefile

# Debian packages the stack needs: a JDK 17 and Maven (Redis is installed by local/stack.py on demand).
system:
	@command -v java >/dev/null && command -v mvn >/dev/null || { \
	  echo "[make] installing openjdk-17-jdk-headless and maven"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null; }

$(STAMP): requirements.txt requirements-dev.txt setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

install: system $(STAMP)

jars: install
	$(PY) local/stack.py jars

up: install
	$(PY) local/stack.py up

down:
	@$(PYTHON) local/stack.py down

status:
	@$(PYTHON) local/stack.py status

lint: install
	$(PY) -m ruff check pipelines local tests bench

test-unit: install
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

test-pipeline: up
	$(PY) -m pytest tests/pipeline -q $(PYTEST_ARGS)

test-e2e: up
	$(PY) -m pytest tests/e2e -q $(PYTEST_ARGS)

test: up lint
	$(PY) -m pytest tests/unit tests/pipeline tests/e2e -q --timeout=900 $(PYTEST_ARGS)

demo: up
	$(PY) local/demo.py

clean: down
	rm -rf .stack/cassandra .stack/kafka .stack/redis .stack/mail .stack/logs .stack/run .stack/flink
