#!/usr/bin/env bash
# Every performance figure simian claims, in one run on this machine: each bench below
# measures its own baseline in the same run (direct loopback, wrk, plain tokio sleep, …)
# and states the ratio; this collects their headline lines into one summary.
#
#   benches/all.sh            full outputs in target/bench-DATE/NAME.txt
#
# About 10 minutes on 2 cores after the release build. Only 127.0.0.1. Not run in CI.
set -uo pipefail
cd "$(dirname "$0")/.."
out="target/bench-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
cargo build --release -q --bin simian || exit 1

run() { # NAME PATTERN COMMAND...
  local name=$1 pattern=$2; shift 2
  echo "running $name …" >&2
  local t0=$SECONDS
  "$@" >"$out/$name.txt" 2>&1
  local rc=$?
  {
    echo "## $name ($((SECONDS - t0)) s, exit $rc): $*"
    grep -E "$pattern" "$out/$name.txt" | sed 's/^/    /'
    echo
  } >>"$out/summary.txt"
}

run proxy-overhead 'MiB/s|ratio|p50|added|delay error|machine' benches/proxy-overhead.sh
run delay-fidelity 'KS|median|tokio|sleep_precise' benches/delay-fidelity.sh
run http-probe 'probe steady|wrk rate|ratio' benches/http-probe.sh
run stop-to-revert 'reverted|breach' benches/stop-to-revert.sh 5 kill
run proxy-exact 'requests,|proxy fds' benches/proxy-exact.sh 1000000
run kill-campaign 'residual' benches/kill-campaign.sh 20
run zone-kill-3000 'fleet|plan|stop:|revert:|calls|peak' \
  cargo run -q -p simian-aws --example zone_kill_scale
echo "machine: $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB, $(uname -sr)" >>"$out/summary.txt"
cat "$out/summary.txt"
echo "full outputs: $out/" >&2
