#!/usr/bin/env bash
# Random-kill campaign: run the lab scenarios (chaos-gorilla, split-brain, latency-monkey,
# chaos-kong; shortened) N times in turn (default 100), SIGKILL the runner at a seeded
# random moment each time, and count faults left behind: an instance stopped or dead, a
# proxy disabled or with a toxic, the global steering changed. Each scenario's runs cycle
# through who undoes them: the guardian, `simian recover` after `--no-guardian`, and (for
# the leased faults: split, latency) nobody at all, only the fault's 2 s lease.
#
#   benches/kill-campaign.sh [RUNS] [SEED]
#
# As root it then runs the split on a `--netns` lab (nftables) RUNS/4 times (at least 3).
#
# Prints "N runs, K residual faults (seed S; undone by {...})"; exits non-zero when K > 0.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-100}"
seed="${2:-$RANDOM$RANDOM}"
rc=0
out=$(SIMIAN_CAMPAIGN_RUNS="$runs" SIMIAN_CAMPAIGN_SEED="$seed" \
  cargo test -q --test e2e guardian::runs_sigkilled_at_random_moments -- --nocapture 2>&1) || rc=$?
grep -E "runs, [0-9]+ residual|faults left behind|seed 0x|panicked" <<<"$out" || echo "$out" | tail -20
# As root, also the split on a `--netns` lab (nftables in its router namespace), a quarter
# as many runs: guardian, recover and lease in turn.
if [[ $(id -u) == 0 ]]; then
  out=$(SIMIAN_NETNS_CAMPAIGN_RUNS=$(( runs / 4 > 3 ? runs / 4 : 3 )) SIMIAN_CAMPAIGN_SEED="$seed" \
    cargo test -q --test e2e split_brain::netns::runs_sigkilled -- --nocapture 2>&1) || rc=$?
  grep -E "runs, [0-9]+ residual|faults left behind|seed 0x|panicked" <<<"$out" || echo "$out" | tail -20
fi
exit "$rc"
