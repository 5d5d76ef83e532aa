#!/usr/bin/env bash
# Bench: the HTTP probe's highest *steady* open-loop rate against one lab
# instance, then wrk against the same URL at the same concurrency.
#
# A step is steady when the achieved rate (successful requests/s) is >= 98% of
# the target and the success ratio is >= 99.9%. Rates double from 1k/s until a
# step is not steady, then two bisection steps narrow the edge.
#
# Usage: benches/http-probe.sh            (env: STEP_SECS=5, MAX_RATE=100000)
# Needs: cargo, jq, wrk (installed with apt-get if missing). Only 127.0.0.1.
set -euo pipefail

cd "$(dirname "$0")/.."
STEP_SECS=${STEP_SECS:-5}
MAX_RATE=${MAX_RATE:-100000}

log() { printf '%s\n' "$*" >&2; }

command -v jq >/dev/null || { log "jq is required"; exit 1; }
if ! command -v wrk >/dev/null; then
    log "installing wrk (Debian package)"
    apt-get install -y -qq wrk >/dev/null
fi

log "building (release)"
cargo build --release -q --bin simian
cargo build --release -q -p simian-probes --example http-target
BIN=target/release/simian
TARGET_BIN=target/release/examples/http-target

TMP=$(mktemp -d /tmp/simian-bench.XXXXXX)
LAB_UP=0
TARGET_PID=
cleanup() {
    if [[ $LAB_UP == 1 ]]; then
        timeout 30 "$BIN" --state-dir "$TMP" lab down >/dev/null 2>&1 || log "warning: lab down failed (state in $TMP)"
    fi
    if [[ -n $TARGET_PID ]]; then
        kill "$TARGET_PID" 2>/dev/null || true
        wait "$TARGET_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- target: one lab instance, or our own tiny server if the lab is not there
URL=
TARGET_DESC=
if timeout 60 "$BIN" --state-dir "$TMP" lab up --regions 1 --zones 1 --instances 1 >"$TMP/lab-up.log" 2>&1; then
    LAB_UP=1
    # An instance (it has a zone), not the store or a proxy that come first in the state.
    pick='first(.. | objects | select(has("url") and has("zone") and has("pid")) | .url) // empty'
    if [[ -f $TMP/lab/state.json ]]; then
        URL=$(jq -r "$pick" "$TMP/lab/state.json")
    fi
    if [[ -z $URL ]]; then
        URL=$(timeout 10 "$BIN" --state-dir "$TMP" lab status --json 2>/dev/null | jq -r "$pick" || true)
    fi
    [[ -n $URL ]] && TARGET_DESC="lab instance"
fi
if [[ -z $URL ]]; then
    log "lab not available (see below); using the stand-in target examples/http-target.rs"
    sed 's/^/  lab up: /' "$TMP/lab-up.log" >&2 || true
    "$TARGET_BIN" >"$TMP/target.url" &
    TARGET_PID=$!
    for _ in $(seq 50); do [[ -s $TMP/target.url ]] && break; sleep 0.1; done
    URL=$(head -n1 "$TMP/target.url")
    TARGET_DESC="stand-in target (lab not available)"
fi
URL="${URL%/}/play"
case $URL in
    http://127.0.0.1:*) ;;
    *) log "refusing a target that is not on 127.0.0.1: $URL"; exit 1 ;;
esac
log "target: $TARGET_DESC $URL"

# --- probe steps
# probe RATE -> JSON summary on stdout
probe() {
    timeout $((STEP_SECS + 30)) "$BIN" probe http "$URL" --rate "$1" --duration "${STEP_SECS}s" \
        --timeout 2s --max-in-flight 1000 --json --quiet
}
ms() { awk -v s="$1" 'BEGIN { if (s == "" || s == "null") print "-"; else printf "%.2fms", s * 1000 }'; }

best=0 best_json= bad=0
declare -a ROWS
step() {
    local rate=$1 json achieved ratio p99 peak steady
    json=$(probe "$rate")
    achieved=$(jq -r '.rate' <<<"$json")
    ratio=$(jq -r '.success_ratio // 0' <<<"$json")
    p99=$(jq -r '.latency_s.p99' <<<"$json")
    peak=$(jq -r '.http.peak_in_flight' <<<"$json")
    if awk -v a="$achieved" -v t="$rate" -v s="$ratio" 'BEGIN { exit !(a >= 0.98 * t && s >= 0.999) }'; then
        steady=yes
        if ((rate > best)); then best=$rate best_json=$json; fi
    else
        steady=no
        if ((bad == 0 || rate < bad)); then bad=$rate; fi
    fi
    ROWS+=("$(printf '%9s %12.1f %9.3f%% %10s %9s %7s' "$rate" "$achieved" \
        "$(awk -v s="$ratio" 'BEGIN { print s * 100 }')" "$(ms "$p99")" "$peak" "$steady")")
    log "  ${ROWS[-1]}"
}

log "probe steps, ${STEP_SECS}s each:"
log "$(printf '%9s %12s %10s %10s %9s %7s' target/s achieved/s success p99 peak-infl steady)"
rate=1000
while ((rate <= MAX_RATE)); do
    step "$rate"
    ((bad == 0)) || break
    rate=$((rate * 2))
done
# Narrow the edge between the best steady step and the first one that was not.
for _ in 1 2; do
    ((bad > 0 && best > 0)) || break
    mid=$(((best + bad) / 2 / 500 * 500))
    ((mid > best && mid < bad)) || break
    step "$mid"
done

# --- wrk at the probe's concurrency
if [[ -n $best_json ]]; then
    conns=$(jq -r '.http.peak_in_flight' <<<"$best_json")
    probe_p99=$(jq -r '.latency_s.p99' <<<"$best_json")
    probe_rate=$(jq -r '.rate' <<<"$best_json")
else
    conns=1 probe_p99=null probe_rate=0
fi
((conns >= 1)) || conns=1
log "wrk: 1 thread, $conns connections, ${STEP_SECS}s"
wrk_out=$(timeout $((STEP_SECS + 30)) wrk -t1 -c"$conns" -d"${STEP_SECS}s" --latency "$URL")
wrk_rate=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$wrk_out")
# wrk prints e.g. "99%  1.23ms" (units us, ms, s) under "Latency Distribution".
wrk_p99=$(awk '/^ +99%/ { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
    f = (u == "us") ? 1e-6 : (u == "ms") ? 1e-3 : (u == "s") ? 1 : (u == "m") ? 60 : 0; print v * f }' <<<"$wrk_out")
wrk_errors=$(grep -E 'Socket errors|Non-2xx' <<<"$wrk_out" || true)

echo
echo "target:             $TARGET_DESC $URL"
echo "probe steps:        ${STEP_SECS}s each; steady = achieved >= 98% of target and success >= 99.9%"
printf '  %9s %12s %10s %10s %9s %7s\n' target/s achieved/s success p99 peak-infl steady
for r in "${ROWS[@]}"; do echo "  $r"; done
echo "probe steady rate:  ${best}/s target (achieved $(printf '%.1f' "$probe_rate")/s), p99 $(ms "$probe_p99"), peak in flight $conns"
echo "wrk rate:           $(printf '%.1f' "$wrk_rate")/s (1 thread, $conns connections, ${STEP_SECS}s), p99 $(ms "$wrk_p99")${wrk_errors:+ [$wrk_errors]}"
echo "ratio probe/wrk:    $(awk -v p="$probe_rate" -v w="$wrk_rate" 'BEGIN { if (w > 0) printf "%.2f", p / w; else print "-" }')"
echo "note: wrk is closed-loop (latency from send, at its own pace); the probe is open-loop (latency from the scheduled time)."
