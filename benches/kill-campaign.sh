#!/usr/bin/env bash
# Random-kill campaign: run a lab zone kill N times (default 100), SIGKILL the runner at a
# seeded random moment each time, and count faults left behind (stopped or dead instances)
# after the guardian (two runs in three) or `simian recover` (every third run) is done.
#
#   benches/kill-campaign.sh [RUNS] [SEED]
#
# Prints "N runs, K residual faults (seed S)"; exits non-zero when K > 0.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-100}"
seed="${2:-$RANDOM$RANDOM}"
rc=0
out=$(SIMIAN_CAMPAIGN_RUNS="$runs" SIMIAN_CAMPAIGN_SEED="$seed" \
  cargo test -q --test e2e guardian::runs_sigkilled_at_random_moments -- --nocapture 2>&1) || rc=$?
grep -E "runs, [0-9]+ residual|faults left behind|seed 0x|panicked" <<<"$out" || echo "$out" | tail -20
exit "$rc"
