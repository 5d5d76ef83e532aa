#!/usr/bin/env bash
# Bench: REQUESTS (default 1,000,000) request/response exchanges of 64 B to 32 KB, 32 per
# connection, 16 client threads, through one `simian proxy` TCP proxy to an echo server,
# while delaying and splitting toxics are added and removed every 100 ms. Every echo is
# checked byte for byte; the proxy's descriptors and RSS are printed over time.
#
# Usage: benches/proxy-exact.sh [REQUESTS]. Only 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${1:-1000000}

cargo build --release -q --bin simian
cargo build --release -q -p simian-proxy --example proxy-bench
BIN=target/release/simian
BENCH=target/release/examples/proxy-bench

OUT=$(mktemp /tmp/simian-proxy-exact.XXXXXX)
"$BIN" proxy --listen 127.0.0.1:0 >"$OUT" 2>/dev/null &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -f "$OUT"' EXIT
for _ in $(seq 100); do [[ -s $OUT ]] && break; sleep 0.05; done
API=$(awk '/^listening /{print $2; exit}' "$OUT")
[[ -n $API ]] || { echo "simian proxy did not print its listening line" >&2; exit 1; }

timeout 3600 "$BENCH" exact "$API" "$REQUESTS" "$PID"
