# Set-up and everyday commands of the template repository. Needs only Python 3.11+, git and make:
# the first target that runs installs uv into .tools/ and the locked tooling into .venv/.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
export UV_PYTHON_DOWNLOADS := never
# Bytecode caches make every later Python start-up (copier, pytest, services) several times faster.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo try test lint bench release fleet-report clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/synced: $(UV) pyproject.toml uv.lock core/pyproject.toml
	$(UV) sync --locked
	touch $@

## demo: generate a service with the defaults and show it working end to end
demo: .venv/synced
	$(UV) run --locked python -m harness.demo

## try: build the core into a local index and print the `copier copy` line that uses it
try: .venv/synced
	$(UV) run --locked python -m harness.try_out

## test: the whole test suite (template, generated services, updates, core), in parallel
test: .venv/synced
	$(UV) run --locked pytest -n auto --dist loadgroup

## lint: the template repository's own lint and type check
lint: .venv/synced
	$(UV) run --locked ruff check
	$(UV) run --locked ruff format --check
	$(UV) run --locked mypy

## bench: benchmarks against their baselines; results in bench/results/
bench: .venv/synced
	$(UV) run --locked python -m bench

## release: tag VERSION (vX.Y.Z) once every variant the template renders passes its own `make check`
release: .venv/synced
	@test -n "$(VERSION)" || { echo "Name the version: make release VERSION=vX.Y.Z"; exit 2; }
	PYTHONPATH=. $(UV) run --locked python .github/scripts/release_gate.py --tag $(VERSION)
	@echo "Then push the tag, which starts the release workflow: git push origin $(VERSION)"

## fleet-report: which services of fleet.yml lag the template and the core; files in fleet-report/
fleet-report: .venv/synced
	$(UV) run --locked fleet report

## openapi-seed: rewrite template/openapi.json.jinja, the openapi.json a new service starts with
.PHONY: openapi-seed
openapi-seed: .venv/synced
	$(UV) run --locked python -m harness.openapi_seed

clean:
	rm -rf .tools .venv .demo .try bench/results fleet-report
