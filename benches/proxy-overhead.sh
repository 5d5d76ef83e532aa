#!/usr/bin/env bash
# Bench: what `simian proxy` costs with no toxics, measured side by side with direct
# loopback in one run, and how precisely it applies a constant 5 ms latency toxic.
#   - bulk throughput, proxy / direct (target >= 0.6), and HAProxy / direct as a reference
#   - added round trip of a 64-byte ping-pong, p50 / p99 (targets <= 30 us / <= 100 us)
#   - constant 5 ms latency toxic: median absolute error of individual delays (<= 50 us)
#
# Usage: benches/proxy-overhead.sh            (env: GIB=1, GiB per throughput run)
# Release build; the proxy runs as its own process; only 127.0.0.1. Takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
GIB=${GIB:-1}

. benches/proxy-start.sh

echo "machine: $(nproc) cores, $(uname -sr); simian proxy pid $PID, API $API"
timeout 600 "$BENCH" overhead "$API" "$GIB"
