#!/usr/bin/env bash
# WebSocket conformance: the Autobahn test cases (run by kosoku, from PyPI) against the
# server's /echo endpoint, which uses the same reactor and framing code as /orders.
# Compression (cases 12.* and 13.*, permessage-deflate) is not offered, so not tested.
# Usage: tests/autobahn.sh [path/to/mock-srv]
set -euo pipefail

bin=${1:-target/release/mock-srv}
command -v kosoku >/dev/null || python3 -m pip install --quiet kosoku

tmp=$(mktemp -d)
server_pid=
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# Autobahn sends messages up to 16 MiB: raise the limits for this run only.
mkfifo "$tmp/stdout"
"$bin" --port 0 --echo --max-ws-message-bytes 16777216 --ws-queue-bytes 67108864 \
  >"$tmp/stdout" 2>"$tmp/server.log" &
server_pid=$!
exec 3<"$tmp/stdout"
read -r -t 10 line <&3 || { echo "autobahn: server did not start"; cat "$tmp/server.log"; exit 1; }
port=${line##*:}

status=0
(cd "$tmp" && kosoku -p 2 -x '12.*' -x '13.*' "ws://127.0.0.1:$port/echo") >"$tmp/kosoku.log" 2>&1 || status=$?
tail -n 5 "$tmp/kosoku.log"

python3 - "$tmp/reports/clients/index.json" "$status" <<'PY'
import collections, json, sys
results = json.load(open(sys.argv[1]))
counts, non_strict, bad = collections.Counter(), [], []
for cases in results.values():
    for case, r in sorted(cases.items(), key=lambda kv: [int(p) for p in kv[0].split(".")]):
        behavior = r["behavior"]
        counts[behavior] += 1
        if behavior == "NON-STRICT":
            non_strict.append(case)
        elif behavior not in ("OK", "INFORMATIONAL") or r.get("behaviorClose") not in ("OK", "INFORMATIONAL"):
            bad.append(f"{case}: {behavior}/{r.get('behaviorClose')}")
print("autobahn cases by result:", dict(counts))
print("autobahn NON-STRICT:", " ".join(non_strict) or "none")
for line in bad:
    print("autobahn FAILED", line)
total = sum(counts.values())
print(f"autobahn: {total - len(bad)} passed, {len(bad)} failed")
sys.exit(1 if bad or int(sys.argv[2]) != 0 else 0)
PY
