# tagrelay: build and test tooling. GNU make.
#
#   make test           fmt check, clippy -D warnings, checkov over infra/, every test (installs what it needs)
#   make demo           the whole pipeline on a local AWS (moto server on loopback), no account needed
#   make bench          binary and zip sizes, cold start, warm invocation; burst simulation; the scale run (docs/)
#   make bench-scale    only the scale run: 1,000 services × 10 environments, 1,000 pushes (docs/performance.md)
#   make build          release Lambda zips for arm64 (what gets deployed)
#   make tools          .venv/ with moto_server and cargo-lambda (+ zig), and the arm64 Rust target
#   make lambdas-local  Lambda binaries for this machine's architecture (cargo-lambda), for the demo and e2e tests
#   make lambdas-test   the same from the dev build (what make test runs: nothing compiled twice)

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

VENV         := $(CURDIR)/.venv
PYTHON       ?= python3
REQUIREMENTS := testbed/requirements.txt
CONSTRAINTS  := testbed/constraints.txt
TOOLS_STAMP  := $(VENV)/.tools-stamp
# checkov pins dependencies moto does not accept: it gets a venv of its own.
INFRA_VENV   := $(CURDIR)/.venv-infra
INFRA_STAMP  := $(INFRA_VENV)/.tools-stamp
ARM64_TARGET := aarch64-unknown-linux-gnu

# `cargo lambda`, moto_server and zig come from the venv.
export PATH := $(VENV)/bin:$(PATH)

# Every workspace member with a binary is a Lambda but these: the test bed, the end-to-end tests,
# the developer tasks and the operator command.
LAMBDA_SELECTION := --workspace --exclude tagrelay-testbed --exclude tagrelay-tests --exclude xtask --exclude tagrelay-cli

HOST_ARCH := $(shell uname -m)
ifeq ($(HOST_ARCH),aarch64)
  HOST_ARCH_FLAG := --arm64
else ifeq ($(HOST_ARCH),arm64)
  HOST_ARCH_FLAG := --arm64
else
  HOST_ARCH_FLAG := --x86-64
endif

.PHONY: help test demo bench bench-scale tools infra-check rust-components rust-targets lambdas-local lambdas-test lambdas-release-host build clean

# A bare `make` explains itself rather than starting a cross-compilation.
help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

tools: $(TOOLS_STAMP) rust-targets

# Redone only when the pins change (or the venv is gone).
$(TOOLS_STAMP): $(REQUIREMENTS) $(CONSTRAINTS)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --disable-pip-version-check --quiet -r $(REQUIREMENTS) -c $(CONSTRAINTS)
	touch $@

# fmt and clippy are part of `make test`; a minimal rustup profile lacks them.
$(INFRA_STAMP): tests/infra/requirements.txt tests/infra/constraints.txt
	test -x $(INFRA_VENV)/bin/python || $(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --disable-pip-version-check --quiet -r tests/infra/requirements.txt -c tests/infra/constraints.txt
	touch $@

# checkov over infra/: no failed check, no parse error (checkov exits 0 on those), every skip
# with a reason.
infra-check: $(INFRA_STAMP)
	$(INFRA_VENV)/bin/checkov -d infra --framework terraform --compact -o json 2>/dev/null \
		| $(INFRA_VENV)/bin/python tests/infra/checkov_summary.py

rust-components:
	@for c in rustfmt clippy; do rustup component list --installed | grep -q "^$$c" || rustup component add $$c; done

rust-targets:
	@rustup target list --installed | grep -qx '$(ARM64_TARGET)' || rustup target add $(ARM64_TARGET)

# The demo and e2e tests run by hand use the `e2e` profile (not optimised, quick to build: see Cargo.toml);
# `make bench` measures what is deployed, the `release` profile, from its own directory.
lambdas-local: $(TOOLS_STAMP)
	cargo lambda build --profile e2e $(HOST_ARCH_FLAG) $(LAMBDA_SELECTION) --lambda-dir target/lambda/host

# make test's Lambdas: the functions' binaries from the dev build `cargo test` makes of every
# other target. --all-targets keeps the features `cargo test` resolves (dev-dependencies
# included), so only the three binaries compile (seconds); cargo-lambda's own profile and target
# would compile every dependency again (3 minutes on 2 cores). Run after `cargo test --no-run`.
FUNCTIONS := record-image-tag trigger-deploy promote
lambdas-test:
	cargo build --workspace --all-targets
	@for f in $(FUNCTIONS); do mkdir -p target/lambda/host/$$f && cp target/debug/$$f target/lambda/host/$$f/bootstrap; done

lambdas-release-host: $(TOOLS_STAMP)
	cargo lambda build --release $(HOST_ARCH_FLAG) $(LAMBDA_SELECTION) --lambda-dir target/lambda/host-release

build: tools
	cargo lambda build --release --arm64 --output-format zip $(LAMBDA_SELECTION) --lambda-dir target/lambda/arm64

# The two longest end-to-end binaries mostly wait on the local AWS (rollouts, soaks, a verify
# time-out): they run beside every other test binary, output kept apart (--output-sync). Every
# test file of every package runs in one of the two groups. Both select the whole workspace, so
# features unify as in the build and nothing is compiled again (the examples the test bed runs
# were built by --no-run, as `cargo test` builds them).
SLOW_TESTS  := verify_e2e promote_e2e
OTHER_TESTS := $(filter-out $(SLOW_TESTS),$(basename $(notdir $(wildcard */tests/*.rs))))

test: $(TOOLS_STAMP) rust-components infra-check
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace --no-run
	$(MAKE) --no-print-directory lambdas-test
	$(MAKE) --no-print-directory -j2 --output-sync=target test-slow-e2e test-rest

.PHONY: test-slow-e2e test-rest
test-slow-e2e:
	cargo test --workspace $(addprefix --test ,$(SLOW_TESTS))

test-rest:
	cargo test --workspace --lib --bins $(addprefix --test ,$(OTHER_TESTS))
	cargo test --workspace --doc

# The demo ends with `tagrelay status`: the operator command is built next to it.
demo: $(TOOLS_STAMP) lambdas-local
	cargo build --quiet -p tagrelay-cli --bin tagrelay
	cargo run --quiet -p xtask -- demo

# SCALE_ARGS: the scale run's options, e.g. SCALE_ARGS="--services 100 --pushes 100" for a quick one.
SCALE_ARGS ?=

bench: $(TOOLS_STAMP) lambdas-release-host
	TAGRELAY_LAMBDA_DIR=$(CURDIR)/target/lambda/host-release cargo run --quiet -p xtask -- bench
	cargo run --quiet -p xtask -- burst
	TAGRELAY_LAMBDA_DIR=$(CURDIR)/target/lambda/host-release cargo run --quiet -p xtask -- scale $(SCALE_ARGS)

bench-scale: $(TOOLS_STAMP) lambdas-release-host
	TAGRELAY_LAMBDA_DIR=$(CURDIR)/target/lambda/host-release cargo run --quiet -p xtask -- scale $(SCALE_ARGS)

clean:
	cargo clean
	rm -rf $(VENV) $(INFRA_VENV)
