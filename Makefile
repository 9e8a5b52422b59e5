# streamwatch — developer and user commands. `make help` lists them. The local runtime (real components,
# service runners, the demo) is the dev-only package in dev/ (streamwatch_dev), used by tests, bench and demo.
SHELL := /bin/bash
# ~/.cargo/bin: uv builds the observer's compiled classifier (native/visit_classifier) with cargo from rustup.
export PATH := $(CURDIR)/.tools/bin:$(PATH):$(HOME)/.cargo/bin
UV_RUN := uv run --frozen
PYTEST_ARGS ?=

.PHONY: help deps test lint fmt docs docs-check demo

help: ## list the commands
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

deps: ## install everything (apt packages, uv, Python environment, helm, Elasticsearch node) — idempotent
	@bash .ci/install-deps.sh

test: deps ## run the whole test suite against real local components
	$(UV_RUN) pytest $(PYTEST_ARGS)

lint: deps ## ruff (lint + format check) and mypy
	$(UV_RUN) ruff check .
	$(UV_RUN) ruff format --check .
	$(UV_RUN) mypy

fmt: ## format and auto-fix
	uv run ruff format .
	uv run ruff check --fix .

docs: ## regenerate the settings table in README.md and the chart schema's `settings` objects from the settings models
	$(UV_RUN) streamwatch-settings-doc --write README.md --schema charts/streamwatch/values.schema.json

docs-check: ## fail when the README settings table or the chart schema's `settings` objects are out of date
	$(UV_RUN) streamwatch-settings-doc --check README.md --schema charts/streamwatch/values.schema.json

demo: deps ## the infrastructure and every service as local processes wired from the rendered chart (dev/: streamwatch_dev.demo; Ctrl-C stops)
	$(UV_RUN) python -m streamwatch_dev.demo $(DEMO_ARGS)

.PHONY: spark-jars
spark-jars: deps ## copy Spark's JVM connector jars (Maven cache) into spark-jars/, for images whose jobs may run the jvm connector
	$(UV_RUN) python -m streamwatch_dev.images --spark-jars-only

.PHONY: container-images test-containers
container-images: deps ## build the five service images here, no registry needed (IMAGES_ARGS=--registry-bases for the official bases)
	$(UV_RUN) python -m streamwatch_dev.images $(IMAGES_ARGS)

test-containers: deps ## only the container tests: every image built, imported as uid 10001, the whole system run as containers wired by the chart
	$(UV_RUN) pytest tests/containers $(PYTEST_ARGS)

.PHONY: up down images e2e-kind
up: ## kind cluster with Strimzi Kafka and the whole chart (checks docker/kind/kubectl/helm first)
	@bash k8s/kind.sh up

down: ## delete the kind cluster
	@bash k8s/kind.sh down

images: ## build the service images (tagged by a hash of their inputs), load them into kind, roll the release onto them
	@bash k8s/kind.sh images

e2e-kind: ## only the end-to-end tests on the offline kind cluster (part of make test; k8s/offline/README.md)
	@bash k8s/kind.sh e2e

.PHONY: bench
BENCH ?=
QUICK ?=
bench: deps ## benchmarks on real local components, tables + JSON in bench/results (BENCH=observer,sla picks; QUICK=1 smoke run; not part of make test)
	$(UV_RUN) python -m bench $(if $(BENCH),--only $(BENCH)) $(if $(QUICK),--quick)
