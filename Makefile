# MemoryGraph developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Tools built from source (helm, ...) live outside the repository and are reused between runs.
TOOLS_DIR ?= $(HOME)/.cache/memorygraph/bin
# The end-to-end cluster's programs (etcd, kube-*, kubectl, kubelet, kwok, CoreDNS), built from
# e2e/go.mod and e2e/coredns; the real node's images are kept beside them (hack/images.sh).
E2E_BIN ?= $(HOME)/.cache/memorygraph/e2e/bin

.PHONY: help install serve test check bench generate check-generated lint tools generate-operator update-golden \
	test-operator e2e-build e2e cluster-up cluster-down

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## create .venv and install the project with its dev tools

serve: install ## run the data plane on the embedded default (./data, gRPC :50051, metrics :9090, a worker per CPU)
	$(VENV)/bin/memorygraph serve

tools: ## build the command-line tools the tests use (helm, minio) from Go modules into TOOLS_DIR
	TOOLS_DIR=$(TOOLS_DIR) bash hack/tools.sh

test: install lint tools e2e-build ## install and build everything, lint, then run the whole test suite (end-to-end tier included)
	PATH="$(TOOLS_DIR):$$PATH" $(PY) -m pytest

check: install lint ## the fast inner loop: lint, then the tests that need no servers in subprocesses and no cluster
	$(PY) -m pytest -q -m "not slow and not e2e" tests/test_import_boundaries.py tests/dataplane tests/operator

# Without Go there is nothing to build: the end-to-end tests then run against $$KUBECONFIG, or
# are skipped saying why (a failure when CI=true).
e2e-build: ## build the end-to-end cluster from Go modules, apt-install its node's Debian packages, build its images
	@if [ -n "$$KUBECONFIG" ]; then \
		echo "KUBECONFIG is set: the end-to-end tests use that cluster; building the test tools only"; \
		TOOLS_DIR=$(TOOLS_DIR) bash hack/tools.sh; \
	elif command -v go >/dev/null; then \
		E2E_BIN=$(E2E_BIN) TOOLS_DIR=$(TOOLS_DIR) bash hack/e2e-build.sh; \
	else \
		echo "!!! no Go toolchain and no KUBECONFIG: the end-to-end tier cannot run" >&2; \
	fi

e2e: install e2e-build ## only the end-to-end tier (a cluster with a real node is started unless KUBECONFIG is set)
	PATH="$(TOOLS_DIR):$$PATH" $(PY) -m pytest tests/e2e -v

cluster-up: ## start a local cluster: control plane, kwok nodes, a real node; prints the kubeconfig path
	E2E_BIN=$(E2E_BIN) bash hack/cluster.sh up

cluster-down: ## stop the local cluster, undo the real node's changes to the machine, delete its state
	E2E_BIN=$(E2E_BIN) bash hack/cluster.sh down

bench: install ## benchmark the data plane against echo, fast mode and PostgreSQL (ratios)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ echo "installing PostgreSQL (Debian package) for the baseline"; \
		  apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }
	$(PY) -m memorygraph.bench $(BENCH_ARGS)

generate: install ## regenerate every generated file (protobuf bindings, gRPC and API references, CRDs)
	$(PY) hack/generate_proto.py
	$(PY) -m memorygraph_operator.api.crdgen

check-generated: install ## fail when a generated file is stale
	$(PY) hack/generate_proto.py --check
	$(PY) -m pytest -q tests/operator/test_api_generated.py

lint: install ## ruff (with a complexity limit), formatting, mypy and the import-layer contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy dataplane/memorygraph operator/memorygraph_operator
	$(VENV)/bin/lint-imports

generate-operator: install ## regenerate crds/, the chart's CRDs and docs/reference/api.md from the API models
	$(PY) -m memorygraph_operator.api.crdgen

update-golden: install ## rewrite the operator renderers' golden files (review the diff like code)
	UPDATE_GOLDEN=1 $(PY) -m pytest tests/operator -q

test-operator: install tools ## the operator's tests only
	PATH="$(TOOLS_DIR):$$PATH" $(PY) -m pytest tests/operator -q
