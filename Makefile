# The two commands of the README, and the pieces they are made of.
CARGO ?= cargo
export CARGO_TARGET_DIR ?= $(CURDIR)/target
BIN := $(CARGO_TARGET_DIR)/debug/landing-zone-operator
# End-to-end tests use a throwaway kube-apiserver when ../shared/k8s is there (they skip, saying so, otherwise).
ifneq ($(wildcard $(CURDIR)/../shared/k8s/up),)
export LZ_K8S_UP ?= $(abspath $(CURDIR)/../shared/k8s/up)
endif

# The suite mostly waits (AWS's pacing and asynchronous answers, control planes starting), so it
# runs more tests at once than the machine has cores; no test depends on how fast it runs.
TEST_THREADS ?= 6

.PHONY: demo test test-build test-under-load build crds lint emulator bench image audit

build:
	$(CARGO) build --locked -p landing-zone-operator

demo: build
	LZ_BIN=$(BIN) scripts/demo

test: test-build
	scripts/install-emulator
	scripts/install-prometheus                         # the dashboard's queries and the alert rules, checked for real
	scripts/image --if-possible --test-binary          # the image test runs it from its root file system
	scripts/test-and-report-skips $(CARGO) test --locked --workspace -- --test-threads $(TEST_THREADS)   # ends with what skipped and why

# The end-to-end tests run the binary. Built with every target, so with the same features as the
# tests (dev-dependencies unify them): one compile, not one for the binary and one for the tests.
test-build:
	$(CARGO) build --locked --workspace --all-targets
	@echo "== built at $$(date -u +%T)" >&2

# `make test` while stress-ng keeps every core busy (LZ_LOAD_WORKERS, default all): no test may
# depend on how fast the machine is. Installs stress-ng from Debian's packages when missing.
test-under-load:
	scripts/under-load $(MAKE) test

# Not part of `make test`: the demo's landing zone judged by Prowler's CIS AWS Foundations v5.0
# checks in every ACTIVE account (scripts/audit; Prowler pinned in its own virtualenv).
audit: build
	LZ_BIN=$(BIN) scripts/audit

# The release binary and its OCI image, without a container daemon: target/image/landing-zone-operator.oci.tar.
image:
	scripts/image

crds: build
	$(BIN) crds --out crds
	$(BIN) crds --out charts/landing-zone-operator/crds

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

# Not part of `make test`: API calls, time and memory at N = 100 and 1,000 accounts (LZ_BENCH_ACCOUNTS).
# Release build: memory and speed are measured as the operator ships.
bench:
	scripts/install-emulator
	$(CARGO) build --locked --release -p landing-zone-operator
	$(CARGO) run --locked --release -p landing-zone-tests --bin bench   # LZ_BENCH_ACCOUNTS (default 100,1000), LZ_BENCH_SCENARIOS (default sync,vending)
