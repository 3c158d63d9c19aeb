# Flowdeck: `make run` to see it work, `make test` to check it. Everything lives in .venv.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# The dashboard's pinned ES modules (web/package-lock.json), served from web/node_modules.
WEB_STAMP := web/node_modules/.installed-$(shell cat web/package-lock.json | cksum | cut -d' ' -f1)
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: setup run test check lint deadcode format typecheck imports synth bench bench-history clean

setup: $(STAMP) $(WEB_STAMP)  ## install pinned dependencies into .venv and web/node_modules (idempotent)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[local,cdk,dev]"
	rm -f $(VENV)/.installed-*
	touch $@

$(WEB_STAMP): web/package-lock.json
	cd web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

run: setup  ## start the local stack, run the demo workflow, keep serving until Ctrl-C
	$(BIN)/flowdeck up --demo

test: setup  ## the whole suite: unit, integration, stacks (CDK, cdk-nag, cfn-lint), end-to-end, browser
	cd web && node --test tests/
	$(BIN)/pytest -q -n 2 --dist loadgroup

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

deadcode: setup  ## unused code (vulture; true false positives in vulture_whitelist.py)
	$(BIN)/vulture

typecheck: setup
	$(BIN)/mypy flowdeck statemachines lambdas stacks

imports: setup  ## the import rules: no Lambda or CDK code in the core, layers ([tool.importlinter] in pyproject.toml)
	$(BIN)/lint-imports --no-cache

check: lint deadcode typecheck imports test  ## everything CI should be happy with

synth: setup  ## synthesize the CDK app into cdk.out/ (offline, no AWS account)
	$(BIN)/python app.py

bench: setup  ## benchmarks that print figures (name=value lines)
	$(BIN)/python bench/dispatch.py
	$(BIN)/python bench/idle_cpu.py
	$(BIN)/python bench/start_read.py
	$(BIN)/python bench/cancel.py

bench-history: setup  ## run history: 100,000 runs in the emulator, read ratio per filter combination (minutes)
	$(BIN)/python bench/history.py

clean:
	rm -rf cdk.out .flowdeck .pytest_cache .mypy_cache .ruff_cache
