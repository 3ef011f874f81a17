# mock-srv: `make run` to start it, `make test` to prove it works.
ARGS ?=
FUZZ_SECONDS ?= 60
CARGO ?= cargo

.PHONY: run build test unit crash smoke autobahn e2e fuzz bench bench-smoke check fmt clippy clean

## run: build in release mode and start on http://localhost:3000 (extra flags: make run ARGS="--simulate")
run:
	$(CARGO) run --release --quiet -- $(ARGS)

build:
	$(CARGO) build --release

## test: unit and integration tests, the journal's crash test, the smoke test with curl,
## websocat and nc, the Autobahn WebSocket cases, then the browser tests (installs what is
## missing)
test: unit crash smoke autobahn e2e

unit:
	$(CARGO) test --workspace --all-targets

## crash: the release binary with --journal, killed with SIGKILL under load, CRASH_ROUNDS
## times (30 by default); every acknowledged order must be there after each restart
crash:
	$(CARGO) build --release --quiet
	MOCK_SRV_BIN=target/release/mock-srv $(CARGO) test --quiet --test crash

smoke:
	$(CARGO) build --release --quiet
	bash tests/smoke.sh target/release/mock-srv

## autobahn: the Autobahn WebSocket conformance cases (kosoku) against --echo
autobahn:
	$(CARGO) build --release --quiet
	bash tests/autobahn.sh target/release/mock-srv

## e2e: the web app driven in headless Chromium, each scenario against a fresh server
e2e:
	$(CARGO) build --release --quiet
	bash tests/e2e/run.sh target/release/mock-srv

## fuzz: cargo-fuzz (on stable, via RUSTC_BOOTSTRAP=1) for FUZZ_SECONDS per target: request
## framing in random splits, the static path guard, the WebSocket command parser
fuzz:
	bash fuzz/run.sh $(FUZZ_SECONDS)

## bench: release builds of mock-srv, the yardstick and the load generator, then one table of
## figures with mock-srv beside the yardstick (BENCH_ARGS="--seconds 10 --idle 50000" to change)
BENCH_ARGS ?=
bench:
	$(CARGO) build --release --workspace --quiet
	./target/release/mock-srv-bench $(BENCH_ARGS)

## bench-smoke: a short run with small counts that proves the bench works (figures not judged)
bench-smoke:
	$(CARGO) build --release --workspace --quiet
	./target/release/mock-srv-bench --quick

## check: formatting, lints (warnings are errors) and all tests
check: fmt clippy test

fmt:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --test crash -- -D warnings

clean:
	$(CARGO) clean
