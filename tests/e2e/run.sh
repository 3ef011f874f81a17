#!/usr/bin/env bash
# End-to-end browser tests of the web app: installs what is missing (Debian's
# chromium, playwright-core from package-lock.json), then runs tests/e2e/*.test.mjs
# with node's test runner against the given server binary. Never skips: if the
# browser cannot start, the tests fail.
# Usage: tests/e2e/run.sh [path/to/mock-srv]   (default: target/release/mock-srv)
# Env: MOCK_SRV_ARGS extra server flags (e.g. "--static static" to test the working copy).
set -euo pipefail

bin=${1:-target/release/mock-srv}
here=$(cd "$(dirname "$0")" && pwd)

fail() { echo "e2e: $*" >&2; echo "e2e: 0 passed, 1 failed"; exit 1; }

[[ -x $bin ]] || fail "server binary not found: $bin (build it: cargo build --release)"
command -v node >/dev/null || fail "node (>= 20) is required"
if [[ ! -x /usr/bin/chromium ]]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q && apt-get install -y -q chromium || fail "could not install chromium"
fi
if [[ ! -d $here/node_modules/playwright-core ]]; then
  (cd "$here" && npm ci --no-audit --no-fund) || fail "npm ci failed in $here"
fi

rm -rf "$here/artifacts" # what a failing scenario leaves: screenshots, console and server logs
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
MOCK_SRV_BIN=$(realpath "$bin") node --test --test-reporter=tap "$here"/*.test.mjs | tee "$log" || status=$?

passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log" | tail -1)
failed=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log" | tail -1)
if [[ -z $passed || -z $failed ]]; then
  echo "e2e: the test runner ended without a summary (exit $status)" >&2
  passed=${passed:-0} failed=$((${failed:-0} + 1)) status=1
fi
((failed == 0)) || status=1
echo "e2e: $passed passed, $failed failed"
exit "$status"
