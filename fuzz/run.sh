#!/usr/bin/env bash
# Fuzz every target for SECONDS each (default 60) with cargo-fuzz on the stable toolchain
# (RUSTC_BOOTSTRAP=1 lets stable accept the -Z flags cargo-fuzz passes; no nightly needed).
# Starts from the seeds in fuzz/corpus/<target>/ (what the run adds there is git-ignored).
# Prints one line per target; exits non-zero when a target crashes or fails to build.
# A crashing input is saved under fuzz/artifacts/<target>/; the full libFuzzer output of
# each target is in fuzz/target/fuzz-logs/<target>.log.
#
# usage: fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-60}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SECONDS]   (a whole number of seconds per target, default 60)" >&2
  exit 2
fi

if ! command -v cargo-fuzz >/dev/null; then
  echo "fuzz: installing cargo-fuzz (a few minutes, once)"
  cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
# The static_path target builds its fixture folder here; removed on exit.
MOCK_SRV_FUZZ_TMP=$(mktemp -d)
export MOCK_SRV_FUZZ_TMP
trap 'rm -rf "$MOCK_SRV_FUZZ_TMP"' EXIT

targets=(http_framing static_path ws_command)
logs=target/fuzz-logs
mkdir -p "$logs"

# Build everything first so a compile error shows up as one, not as a "crash".
cargo fuzz build

failed=0
for t in "${targets[@]}"; do
  log=$logs/$t.log
  mkdir -p "corpus/$t"
  status=0
  cargo fuzz run "$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 >"$log" 2>&1 || status=$?
  # libFuzzer's last line on a clean finish: "Done 123456 runs in 60 second(s)".
  runs=$(sed -n 's/^Done \([0-9][0-9]*\) runs in .*/\1/p' "$log" | tail -n 1)
  if ((status == 0)) && [[ -n $runs ]]; then
    echo "fuzz $t: $runs executions, 0 crashes"
  else
    failed=$((failed + 1))
    # On a crash there is no "Done" line: take the last status line's count instead
    # (none when an input of the seed corpus itself crashes).
    last=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#' || true)
    echo "fuzz $t: ${last:-?} executions, 1 crash (exit status $status), full output in fuzz/$log" >&2
    if grep -q 'panicked at' "$log"; then
      grep -A 6 'panicked at' "$log" | head -n 20 | sed 's/^/    /' >&2
    else
      tail -n 25 "$log" | sed 's/^/    /' >&2
    fi
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    if [[ -n $artifact && -f $artifact ]]; then
      echo "fuzz $t: crashing input $artifact" >&2
      echo "fuzz $t: hex: $(od -An -tx1 -v "$artifact" | tr -d ' \n' | head -c 4000)" >&2
      echo "fuzz $t: reproduce: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $t $artifact)" >&2
    fi
  fi
done
echo "fuzz: $(( ${#targets[@]} - failed )) passed, $failed failed"
exit $(( failed > 0 ))
