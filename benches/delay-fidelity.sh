#!/usr/bin/env bash
# Bench: delay fidelity (issue 3, "Accuracy"). Not run in CI.
#
# 1. The sampler and the precise timer alone: concurrent tasks draw a delay from each target,
#    sleep it with simian_delay::sleep_precise and measure the sleep (tokio::time::sleep for
#    comparison).
# 2. End to end through `simian proxy` in HTTP mode: a fast in-process HTTP upstream, a proxy
#    with `"mode": "http"` in front of it, and per target a `latency` toxic whose attributes
#    carry the distribution. For each request: (a) RTT − the run's median direct RTT against
#    the target distribution (Kolmogorov–Smirnov, one-sample against the exact CDF, and
#    two-sample against 1M draws), and (b) that measured delay − the `x-simian-delay-us`
#    header (the delay the proxy drew): the median absolute error.
#
# Targets: lognormal (median 20ms, σ 0.5), pareto (scale 5ms, shape 2.5, max 1s), normal
# (mean 20ms, σ 5ms, min 0), and constant 5ms; each figure is printed beside the issue's
# target (KS D ≤ 0.02; median |error| ≤ 100 µs, ≤ 50 µs for the constant) with PASS/FAIL.
#
# Usage: benches/delay-fidelity.sh      (env: N=20000 requests per target, CONCURRENCY=32,
#                                        PART=all|local|e2e)
# Needs: cargo. Only 127.0.0.1. Bounded: each part is killed after 15 minutes.
set -euo pipefail

cd "$(dirname "$0")/.."
N=${N:-20000}
CONCURRENCY=${CONCURRENCY:-32}
PART=${PART:-all}

log() { printf '%s\n' "$*" >&2; }

log "building (release)"
cargo build --release -q -p simian-delay --example delay-fidelity
BENCH=target/release/examples/delay-fidelity
BIN=target/release/simian
HAVE_PROXY=0
if [[ $PART != local ]]; then
    if cargo build --release -q --bin simian; then
        HAVE_PROXY=1
    else
        log "warning: the simian binary does not build; skipping the end-to-end part"
    fi
fi

TMP=$(mktemp -d /tmp/simian-fidelity.XXXXXX)
PROXY_PID=
cleanup() {
    if [[ -n $PROXY_PID ]]; then
        kill "$PROXY_PID" 2>/dev/null || true
        wait "$PROXY_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== delay fidelity: $(nproc) cores, $(uname -r), N=$N, concurrency=$CONCURRENCY"

if [[ $PART != e2e ]]; then
    echo
    echo "== part 1: sampler + precise timer alone"
    timeout 900 "$BENCH" local --n "$N" --concurrency "$CONCURRENCY"
fi

[[ $PART == local ]] && exit 0

echo
echo "== part 2: end to end through simian proxy (HTTP mode)"
if [[ $HAVE_PROXY == 0 ]]; then
    echo "   NOT RUN: simian proxy is not available; the end-to-end figures are still to come."
    exit 0
fi
"$BIN" proxy --listen 127.0.0.1:0 >"$TMP/proxy.out" 2>"$TMP/proxy.err" &
PROXY_PID=$!
API=
for _ in $(seq 100); do
    API=$(sed -n 's/^listening \(127\.0\.0\.1:[0-9]*\).*/\1/p' "$TMP/proxy.out" | head -n1)
    [[ -n $API ]] && break
    kill -0 "$PROXY_PID" 2>/dev/null || break
    sleep 0.1
done
if [[ -z $API ]]; then
    echo "   NOT RUN: \`simian proxy --listen 127.0.0.1:0\` did not print \`listening ADDR\`;"
    echo "   the end-to-end figures are still to come. Its stderr:"
    sed 's/^/     /' "$TMP/proxy.err" | tail -n 20
    exit 0
fi
if ! timeout 900 "$BENCH" e2e --api "$API" --n "$N" --concurrency "$CONCURRENCY"; then
    echo "   the end-to-end run failed (see above); proxy stderr:"
    sed 's/^/     /' "$TMP/proxy.err" | tail -n 20
    exit 1
fi
