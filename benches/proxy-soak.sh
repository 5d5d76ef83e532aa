#!/usr/bin/env bash
# Bench: a long soak of `simian proxy`. 16 client threads open, use and close connections
# through one TCP proxy as fast as they can while a toxic is added and removed every
# 100 ms (latency, slicer, limit_data, a distribution at toxicity 0.5); the proxy's open
# descriptors and RSS are printed over time and after the load stops. Flat = no leak.
#
# Usage: benches/proxy-soak.sh [SECONDS]      (default 300). Only 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-300}

cargo build --release -q --bin simian
cargo build --release -q -p simian-proxy --example proxy-bench
BIN=target/release/simian
BENCH=target/release/examples/proxy-bench

OUT=$(mktemp /tmp/simian-proxy-soak.XXXXXX)
"$BIN" proxy --listen 127.0.0.1:0 >"$OUT" 2>/dev/null &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -f "$OUT"' EXIT
for _ in $(seq 100); do [[ -s $OUT ]] && break; sleep 0.05; done
API=$(awk '/^listening /{print $2; exit}' "$OUT")
[[ -n $API ]] || { echo "simian proxy did not print its listening line" >&2; exit 1; }

timeout $((SECS + 120)) "$BENCH" soak "$API" "$SECS" "$PID"
