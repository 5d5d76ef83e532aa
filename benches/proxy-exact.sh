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

. benches/proxy-start.sh

timeout 3600 "$BENCH" exact "$API" "$REQUESTS" "$PID"
