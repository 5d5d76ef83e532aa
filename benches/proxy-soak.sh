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

. benches/proxy-start.sh

timeout $((SECS + 120)) "$BENCH" soak "$API" "$SECS" "$PID"
