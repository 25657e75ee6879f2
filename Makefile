# pgshovel — every developer and CI entry point. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# Each recipe runs with a Node >= 22 first on PATH (provisioned into .tools/ when missing).
WITH_NODE = PATH="$$(./scripts/toolchain.sh):$$PATH"
# The stack's addresses, from the env file that `make services` writes (in PGSHOVEL_STACK_DIR if set).
WITH_STACK = set -a && source "$${PGSHOVEL_STACK_DIR:-.services}/env" && set +a &&

.PHONY: help setup build lint typecheck services services-down services-status \
        test test-unit test-integration demo bench clean proto

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# `npm ci` installs exactly what package-lock.json holds and never rewrites it, so a fresh
# clone stays clean. The lock file lists every platform's optional binaries (biome's, buf's),
# as npm 11 writes it; `npm ci` refuses a lock file out of step with package.json: after
# changing a dependency, run `npm install` once and commit both files.
node_modules/.package-lock.json: package.json package-lock.json
	$(WITH_NODE) npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup: node_modules/.package-lock.json build ## provision Node, install npm packages, build

build: node_modules/.package-lock.json ## compile TypeScript into dist/
	$(WITH_NODE) npx tsc -p tsconfig.json

lint: node_modules/.package-lock.json ## biome lint and format check
	$(WITH_NODE) npx biome check .

typecheck: node_modules/.package-lock.json ## tsc without emitting
	$(WITH_NODE) npx tsc -p tsconfig.json --noEmit

# The services need no npm package (only a Node, for Kafka's readiness probe): no setup first.
services: ## install (when missing) and start PostgreSQL+PgQ+pgqd, ZooKeeper, Kafka on loopback
	./scripts/services.sh up

services-down: ## stop every service started by `make services`
	./scripts/services.sh down

services-status: ## show which local services are running
	./scripts/services.sh status

test-unit: build ## unit tests (no services)
	$(WITH_NODE) npm run --silent test:unit

test-integration: build services ## integration tests against the local services
	$(WITH_STACK) $(WITH_NODE) npm run --silent test:integration

test: setup services lint typecheck ## the whole suite: setup, services, lint, type check, unit and integration tests
	$(WITH_NODE) npm run --silent test:unit
	$(WITH_STACK) $(WITH_NODE) npm run --silent test:integration

demo: setup ## the main job: capture a pgbench workload, show the stream, land it in a replica that set verify proves equal (services keep running)
	./scripts/demo.sh

bench: setup services ## benchmarks; writes bench/results/latest.json and docs/benchmarks.md
	$(WITH_STACK) $(WITH_NODE) node dist/bench/run.js $(BENCH_ARGS)

proto: node_modules/.package-lock.json ## lint the .proto and regenerate src/stream/gen
	$(WITH_NODE) npx buf lint && $(WITH_NODE) npx buf generate

clean: ## remove build output (services and their data stay; see services-down)
	rm -rf dist
